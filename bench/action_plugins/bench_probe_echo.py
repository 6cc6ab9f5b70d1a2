# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench action for ``bench/library/bench_probe_echo.py``: the probe's own action, running the echo module.

So the echo turn takes its batch exactly as the probe does (``batches_var`` read as stored
on the controller, this host's entry sent as ``checks``, an empty batch skipped without a
connection) and differs from the probe only in the module that runs on the host.
"""

from ansible_collections.vfio.migration.plugins.action.migration_probe import ActionModule as ProbeAction


class ActionModule(ProbeAction):
    pass
