# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs vfio.migration.migration_probe; a managed host whose Python is too old gets a message saying so (see _module_action).

An empty ``checks`` list asks the host nothing: the task is skipped here, on
the controller, without a connection (the matrix role gives every host its
batch this way, with no per-host conditional to evaluate).
"""

from ansible_collections.vfio.migration.plugins.plugin_utils._module_action import ModuleAction


class ActionModule(ModuleAction):

    def run(self, tmp=None, task_vars=None):
        if self._task.args.get("checks") == []:
            return {"changed": False, "skipped": True, "skip_reason": "no checks: nothing to ask this host"}
        return super(ActionModule, self).run(tmp, task_vars)
