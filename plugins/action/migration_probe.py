# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs vfio.migration.migration_probe; a managed host whose Python is too old gets a message saying so (see _module_action).

``batches_var`` names a play variable mapping every host to its checks: the
action reads it as stored and sends the host only its own entry, as
``checks``. Reaching the same entry through a template in ``checks`` costs
every host's worker a template to compile, the whole mapping (one entry per
host of the fleet) wrapped for the lookup, and the batch finalized element by
element: about 1.6 ms of CPU per host (bench/template_cost.py).

An empty batch asks the host nothing: the task is skipped here, on the
controller, without a connection (the matrix role gives every host its
batch this way, with no per-host conditional to evaluate).
"""

from collections.abc import Mapping

from ansible.errors import AnsibleActionFail

from ansible_collections.vfio.migration.plugins.plugin_utils._controller_action import play_variable
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain
from ansible_collections.vfio.migration.plugins.plugin_utils._module_action import ModuleAction

NAME = "vfio.migration.migration_probe"


def _kind(value):
    """A value's kind as a playbook author knows it (Ansible's tagged containers are lists and dicts)."""
    for kind in (str, list, Mapping, bool, int, float):
        if isinstance(value, kind):
            return "dict" if kind is Mapping else kind.__name__
    return type(value).__name__


def host_batch(task_vars, name, host, templar):
    """``host``'s checks from the play variable ``name`` ({host: [checks]}), read as stored; [] when it has none."""
    if not isinstance(name, str) or not name:
        raise AnsibleActionFail("%s: batches_var must be a variable name, not %r" % (NAME, name))
    if name not in task_vars:
        raise AnsibleActionFail("%s: batches_var: %s is not defined (the vfio.migration.probe_batches filter makes "
                                "it)" % (NAME, name))
    batches = play_variable(templar, task_vars, name)
    if not isinstance(batches, Mapping):
        raise AnsibleActionFail("%s: batches_var: %s must map host names to lists of checks, not %s"
                                % (NAME, name, _kind(batches)))
    batch = plain(batches.get(host))
    if batch is None:
        return []
    if not isinstance(batch, list):
        raise AnsibleActionFail("%s: batches_var: %s[%r] must be a list of checks, not %s"
                                % (NAME, name, host, _kind(batch)))
    return batch


class ActionModule(ModuleAction):

    def run(self, tmp=None, task_vars=None):
        args = self._task.args
        if args.get("batches_var") is not None:
            if args.get("checks") is not None:
                raise AnsibleActionFail("%s: give checks or batches_var, not both; nothing written" % NAME)
            task_vars = task_vars or {}
            args = dict(args)
            args["checks"] = host_batch(task_vars, args.pop("batches_var"), task_vars.get("inventory_hostname"),
                                        self._templar)
            self._task.args = args
        if args.get("checks") == []:
            return {"changed": False, "skipped": True, "skip_reason": "no checks: nothing to ask this host"}
        return super(ActionModule, self).run(tmp, task_vars)
