# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench callback: module invocations per host (timing is ``bench_tasks``'s job).

Enabled by the bench with ``ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins``
and ``ANSIBLE_CALLBACKS_ENABLED=bench_count``; writes one JSON document to
``$BENCH_COUNT_OUT`` when the run ends.

A *module invocation* is a result that carries ``invocation`` (every
AnsibleModule adds it when it exits; action plugins that run on the
controller, such as set_fact, debug or assert, do not). Results of tasks
delegated to another host (the reports, written on localhost) are counted
apart as ``delegated``: they do not run on the host they are listed under.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: bench_count
type: aggregate
short_description: count module invocations per host (vfio.migration bench)
description:
  - Writes module invocations per host and action and results per status to the file named by the
    environment variable C(BENCH_COUNT_OUT).
requirements:
  - enable in callbacks_enabled
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.modules = {}      # host -> {action: count}
        self.delegated = {}    # action -> count
        self.statuses = {}     # status -> count

    # -- results -------------------------------------------------------------

    def _record(self, result, status):
        self.statuses[status] = self.statuses.get(status, 0) + 1
        data = result._result if isinstance(result._result, dict) else {}
        action = result._task.action
        items = data.get("results") if isinstance(data.get("results"), list) and "invocation" not in data else None
        count = sum(1 for r in items if isinstance(r, dict) and "invocation" in r) if items else int("invocation" in data)
        if not count:
            return
        if data.get("_ansible_delegated_vars") or result._task.delegate_to:
            self.delegated[action] = self.delegated.get(action, 0) + count
            return
        per = self.modules.setdefault(result._host.get_name(), {})
        per[action] = per.get(action, 0) + count

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    # -- end ----------------------------------------------------------------

    def v2_playbook_on_stats(self, stats):
        out = os.environ.get("BENCH_COUNT_OUT")
        if not out:
            return
        doc = {"modules": self.modules, "delegated": self.delegated, "statuses": self.statuses}
        with open(out, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
