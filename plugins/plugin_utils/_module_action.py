# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action that runs this collection's modules: ansible-core's plain module run, plus one message.

On a managed host whose Python is older than ansible-core's floor for
targets (3.8 for ansible-core 2.19), no byte of a module runs: the AnsiballZ
wrapper that ansible-core builds around every module fails to parse first
(Python 2.7: ``SyntaxError: invalid syntax`` at a type annotation; 3.6:
``future feature annotations is not defined``; 3.7: a positional-only
parameter), and the task shows a parser's traceback. A version check in the
module's own first lines would never be reached, so the check is made here,
on the controller: when a module run fails with a ``SyntaxError``, the
interpreter it ran under is asked its version (one more command, only on
that failure), and a version below the floor replaces the message with one
that says what to do. Any other failure is returned as it was.

Before the module runs, the action reads the options a task names variables for
in ``option_vars`` (the ``vfio.migration.managed_host`` doc fragment): each
variable as it is stored, so no host's worker compiles a template for it.
"""

import re
import shlex
from collections.abc import Mapping

from ansible.errors import AnsibleActionFail, AnsibleValueOmittedError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.vfio.migration.plugins.plugin_utils._ansible_internals import used_interpreter
from ansible_collections.vfio.migration.plugins.plugin_utils._controller_action import play_variable
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain

# ansible-core 2.19 (meta/runtime.yml) runs modules on Python 3.8 and later
MIN_PYTHON = (3, 8)
# prints the version on every Python from 2.6 on
_VERSION_PROBE = "import sys; sys.stdout.write('%d.%d.%d' % tuple(sys.version_info[:3]))"


def old_python_message(interpreter, version):
    """The failure message for a host whose ``interpreter`` reports ``version`` ("2.7.18"), or None when new enough."""
    match = re.match(r"^(\d+)\.(\d+)", version or "")
    if not match or tuple(int(n) for n in match.groups()) >= MIN_PYTHON:
        return None
    return ("vfio.migration modules need Python %d.%d or later on the managed host; %s is Python %s. Point "
            "ansible_python_interpreter at a Python 3 of the host (python3 on every supported distribution)."
            % (MIN_PYTHON + (interpreter, version)))


def _unparsed(result):
    """Did the module (or ansible-core's wrapper around it) fail to parse on the host?"""
    output = "%s%s" % (result.get("module_stderr") or "", result.get("module_stdout") or "")
    return bool(result.get("failed")) and "SyntaxError" in output


def kind_of(value):
    """A value's kind as a playbook author knows it (Ansible's tagged containers are lists and dicts)."""
    for kind in (str, list, Mapping, bool, int, float):
        if isinstance(value, kind):
            return "dict" if kind is Mapping else kind.__name__
    return type(value).__name__


def option_vars_args(args, allowed, task_vars, templar, module):
    """``args`` with ``option_vars`` ({option: variable name}) replaced by the options it names, each variable
    read as stored (:func:`play_variable`: a string is templated). A named option's value comes from its variable
    whatever ``args`` has for it (as a templated argument in the task overrides ``module_defaults``, which
    ansible-core has merged into ``args`` by now); a variable whose value templates to ``omit`` leaves the option
    as ``args`` has it. Raises ``AnsibleActionFail`` naming what is wrong; the module is not run then."""
    names = args.get("option_vars")
    if names is None:
        return args
    if not isinstance(names, Mapping):
        raise AnsibleActionFail("%s: option_vars must map option names to variable names, not %s"
                                % (module, kind_of(names)))
    args = dict(args)
    del args["option_vars"]
    for option, name in names.items():
        if option not in allowed:
            raise AnsibleActionFail("%s: option_vars: %s is not an option that can be read from a variable (those "
                                    "are %s)" % (module, option, ", ".join(allowed)))
        if not isinstance(name, str) or not name:
            raise AnsibleActionFail("%s: option_vars: %s must name a variable, not %r" % (module, option, name))
        if name not in task_vars:
            raise AnsibleActionFail("%s: option_vars: %s: the variable %s is not defined" % (module, option, name))
        try:
            args[option] = plain(play_variable(templar, task_vars, name))
        except AnsibleValueOmittedError:
            pass
    return args


class ModuleAction(ActionBase):
    """Runs the task's module as ansible-core's ``normal`` action does; explains a too-old host Python."""

    _supports_check_mode = True
    _supports_async = True
    #: the module's fully qualified name, for messages
    MODULE = ""
    #: the module's options a task may read from variables through ``option_vars``
    VAR_OPTIONS = ()

    def module_args(self, args, task_vars):
        """The arguments the module is run with (a subclass adds its own steps)."""
        return option_vars_args(args, self.VAR_OPTIONS, task_vars, self._templar, self.MODULE)

    def skip_reason(self, args):  # pylint: disable=unused-argument
        """Why the module need not run with ``args`` (skipped on the controller, no connection), or None."""
        return None

    def run(self, tmp=None, task_vars=None):
        self._task.args = args = self.module_args(self._task.args, task_vars or {})
        reason = self.skip_reason(args)
        if reason:
            return {"changed": False, "skipped": True, "skip_reason": reason}
        result = super(ModuleAction, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if _unparsed(result):
            message = self._old_python_message()
            if message:
                result["msg"] = message
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _old_python_message(self):
        interpreter = used_interpreter(self)
        if interpreter is None:
            return None
        # the interpreter line may carry arguments (/usr/bin/env python3): it is a command line, as in the shebang
        answer = self._low_level_execute_command("%s -c %s" % (interpreter, shlex.quote(_VERSION_PROBE)))
        if answer.get("rc") != 0:
            return None
        return old_python_message(interpreter, (answer.get("stdout") or "").strip())
