"""Run a module's ``main()`` in this process, as AnsiballZ would on a host, and return its result."""

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleDone(Exception):
    """``exit_json`` or ``fail_json`` was called; ``result`` is what the controller would receive."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


@pytest.fixture
def run_module(monkeypatch):
    """``run_module(main, args)`` -> the result dict (``failed`` is true when the module failed)."""
    def exit_json(self, **kwargs):
        raise ModuleDone(dict(kwargs, failed=False))

    def fail_json(self, msg, **kwargs):
        raise ModuleDone(dict(kwargs, failed=True, msg=msg))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def run(main, args):
        with patch_module_args(args), pytest.raises(ModuleDone) as done:
            main()
        return done.value.result

    return run
