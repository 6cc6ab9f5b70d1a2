# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assembles the compatibility matrix on the controller, as its own result (documentation: modules/compat_matrix.py).

The same matrix as the ``vfio.migration.compat_matrix`` filter, built by the
same code. The difference is how it reaches the play: a ``set_fact`` of the
filter makes ansible-core 2.19 finalize the filter's result element by element
in the task's worker (most of that task's time: tens of seconds for a
1,000-host matrix of a million values), while an action's result is taken as
it is, and ``register`` keeps it.

A matrix it built is not shown to callbacks (the result says ``_ansible_no_log``,
which ``register`` leaves out): ansible-core would otherwise copy and convert the
whole matrix again for them in the controller's main process, about 5 s at a
thousand hosts while nothing else runs, for a line that says ``ok`` - and a
callback that keeps results (the json callback, an AWX/AAP job event) would
carry the whole matrix. A failure is shown in full.
"""

from ansible.errors import AnsibleActionFail, AnsibleError

from ansible_collections.vfio.migration.plugins.filter import matrix as F
from ansible_collections.vfio.migration.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain

NAME = "vfio.migration.compat_matrix"

ARGUMENT_SPEC = {
    "hosts": {"type": "list", "elements": "str"},
    "policy": {"type": "dict"},
    "facts_result_var": {"type": "str", "default": F.FACTS_RESULT_VAR},
    "probe_result_var": {"type": "str", "default": F.PROBE_RESULT_VAR},
    "gather_state_var": {"type": "str", "default": F.GATHER_STATE_VAR},
}


class ActionModule(ControllerAction):
    """Builds the matrix from the play's ``hostvars``; connects to no host."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars):
        hosts = args["hosts"]
        if hosts is None:
            hosts = plain(task_vars.get("ansible_play_hosts_all")) or []
        try:
            matrix = F.compat_matrix(task_vars.get("hostvars") or {}, hosts, args["policy"],
                                     facts_result_var=args["facts_result_var"],
                                     probe_result_var=args["probe_result_var"],
                                     gather_state_var=args["gather_state_var"])
        except AnsibleError as exc:  # the filter's message starts with the filter's name
            message = str(exc.message)
            if message.startswith("compat_matrix: "):
                message = message[len("compat_matrix: "):]
            raise AnsibleActionFail("%s: %s" % (NAME, message)) from exc
        matrix["changed"] = False
        matrix["_ansible_no_log"] = True  # for callbacks only: register strips it (see above)
        return matrix
