"""The roles' Molecule scenarios (extensions/molecule): create, converge, idempotence, verify, destroy.

Each scenario runs over three emulated hypervisors (``ansible_connection:
local``) whose sysfs trees the shared create playbook serves with the FUSE
emulator; idempotence fails if a second converge changes anything, reports
and persisted fact files included.
"""

import os
import re
import subprocess

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.emulator.mount import fuse_unavailable

pytestmark = [pytest.mark.lint, pytest.mark.emulator,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

STEPS = ("create", "converge", "idempotence", "verify", "destroy")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("scenario", ["facts", "matrix", "precheck"])
def test_molecule_scenario(scenario):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), NO_COLOR="1",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(VENV_BIN, "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    out = ANSI.sub("", proc.stdout + proc.stderr)
    assert proc.returncode == 0, out[-6000:]
    for step in STEPS:  # the details list each step ("facts ➜ converge", "facts > converge" without colour)
        assert re.search(r"%s (\u279c|>) %s\]?: Executed: Successful" % (scenario, step), out), (step, out[-3000:])
    assert re.search(r"%s\s*: actions=5\s+successful=5 .* failed=0" % scenario, out), out[-1500:]
