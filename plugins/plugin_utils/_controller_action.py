# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What this collection's actions do on the controller: read a play variable as stored, and the
base of the actions that run on the controller alone (compat_matrix, matrix_reports).

No connection and no module: such an action validates its arguments and does
its work in the task's worker, in check mode as in any other run (each action
says what check mode changes for it). Documented by the
``vfio.migration.controller_action`` doc fragment.
"""

from ansible.plugins.action import ActionBase

from ansible_collections.vfio.migration.plugins.plugin_utils._data import view


def play_variable(templar, task_vars, name):
    """The play variable ``name`` (defined) as it is stored: a string is templated, anything else is not walked.

    An action reads large values this way (the matrix, every host's probe batch):
    ansible-core finalizes templated task arguments element by element.
    """
    value = task_vars[name]
    if isinstance(value, str):
        value = templar.template(value)
    return view(value)


class ControllerAction(ActionBase):
    """Validates the task's arguments against ``ARGUMENT_SPEC`` and returns ``act``'s result."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False
    ARGUMENT_SPEC = {}

    def run(self, tmp=None, task_vars=None):
        result = super(ControllerAction, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        dummy, args = self.validate_argument_spec(self.ARGUMENT_SPEC)
        result.update(self.act(args, task_vars or {}))
        return result

    def act(self, args, task_vars):
        """The action's result, from its validated ``args`` and the task's variables."""
        raise NotImplementedError
