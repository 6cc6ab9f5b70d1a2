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

Without ``sysfs_root`` the host is probed in the tree its ``vfio_mdev`` facts
were read from (``/sys`` when it has none), read from the facts as stored:
the matrix role's probe task has no template left for every host's worker to
compile (``option_vars`` reads the rest).
"""

from collections.abc import Mapping

from ansible.errors import AnsibleActionFail

from ansible_collections.vfio.migration.plugins.plugin_utils._controller_action import play_variable
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain
from ansible_collections.vfio.migration.plugins.plugin_utils._module_action import ModuleAction, kind_of

NAME = "vfio.migration.migration_probe"


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
                                % (NAME, name, kind_of(batches)))
    batch = plain(batches.get(host))
    if batch is None:
        return []
    if not isinstance(batch, list):
        raise AnsibleActionFail("%s: batches_var: %s[%r] must be a list of checks, not %s"
                                % (NAME, name, host, kind_of(batch)))
    return batch


def facts_sysfs_root(task_vars):
    """The sysfs tree this host's ``vfio_mdev`` facts were read from, as stored; None when it has none."""
    facts = task_vars.get("ansible_facts")
    mdev = facts.get("vfio_mdev") if isinstance(facts, Mapping) else None
    root = mdev.get("sysfs_root") if isinstance(mdev, Mapping) else None
    return plain(root) if isinstance(root, str) and root else None


class ActionModule(ModuleAction):
    MODULE = NAME
    VAR_OPTIONS = ("sysfs_root", "allow_non_sysfs", "timeout", "parallel", "compact")

    def module_args(self, args, task_vars):
        args = super(ActionModule, self).module_args(args, task_vars)
        if args.get("batches_var") is not None:
            if args.get("checks") is not None:
                raise AnsibleActionFail("%s: give checks or batches_var, not both; nothing written" % NAME)
            args = dict(args)
            args["checks"] = host_batch(task_vars, args.pop("batches_var"), task_vars.get("inventory_hostname"),
                                        self._templar)
        if args.get("sysfs_root") is None:
            root = facts_sysfs_root(task_vars)
            if root:  # probe the tree the facts were read from
                args = dict(args, sysfs_root=root)
        return args

    def skip_reason(self, args):
        return "no checks: nothing to ask this host" if args.get("checks") == [] else None
