# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench callback: wall time per task, nothing else (cheap enough for the timed runs).

It implements no ``v2_runner_*`` method on purpose: ansible-core 2.19 gives
every callback that does its own deep copy of each result, which would add
the bench's own cost to the run it measures (``bench_count`` does that, in a
separate counting run). Writes JSON to ``$BENCH_TASKS_OUT`` at the end.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: bench_tasks
type: aggregate
short_description: wall time of each task (vfio.migration bench)
description:
  - Writes the wall time of every task to the file named by C(BENCH_TASKS_OUT).
requirements:
  - enable in callbacks_enabled
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.t0 = time.monotonic()
        self.tasks = []
        self.current = None
        self.seen = set()

    def _close(self):
        if self.current is not None:
            self.current["seconds"] = round(time.monotonic() - self.current.pop("_start"), 4)
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task._uuid in self.seen:  # meta tasks announce themselves once per host
            return
        self.seen.add(task._uuid)
        self._close()
        self.current = {"name": task.get_name(), "action": task.action, "run_once": bool(task.run_once),
                        "_start": time.monotonic()}

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        out = os.environ.get("BENCH_TASKS_OUT")
        if out:
            with open(out, "w") as f:
                json.dump({"seconds": round(time.monotonic() - self.t0, 4), "tasks": self.tasks}, f, indent=1)
