"""A managed host whose Python is older than 3.8 gets a message saying so, not a SyntaxError.

With ansible-core 2.19 no byte of a module runs on such a host: the AnsiballZ
wrapper fails to parse first. These tests run the two modules through
``ansible`` against real old interpreters where this machine has them
(pyenv's 2.7, 3.6 and 3.7; skipped where absent) and, everywhere, against a
stand-in script that answers like Python 2.7 (fails to parse the wrapper,
reports 2.7.18 when asked its version). What the stand-in proves is only the
controller side: that the action asks and rewrites the message.
"""

import glob
import json
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.vfio.migration.plugins.plugin_utils import _module_action as A
from tests.ansible_runner import adhoc, write_inventory
from tests.conftest import COLLECTIONS, ansible_bin

pytestmark = pytest.mark.ansible

MODULES = {"mdev_facts": {"sysfs_root": "/nonexistent", "use_udev": False, "query_qemu": False},
           # one check: an empty batch is skipped on the controller, and the host never asked
           "migration_probe": {"checks": [{"id": "c", "mdev_type": "t", "version": "v"}], "sysfs_root": "/nonexistent"}}

STAND_IN = """#!/bin/sh
# Answers like a Python 2.7 would: ansible-core 2.19's module wrapper does not parse, -c code runs.
if [ "$1" = "-c" ]; then printf '2.7.18'; exit 0; fi
printf '  File "%s", line 40\\n    zip_data: str,\\n            ^\\nSyntaxError: invalid syntax\\n' "$1" >&2
exit 1
"""


def _pyenv(version):
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/%s.*/bin/python%s" % (version, version))))
    return found[-1] if found else None


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    path = tmp_path_factory.mktemp("python27") / "python2.7"
    path.write_text(STAND_IN)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _run(tmp_path, interpreters, module):
    hosts = {name: {"ansible_python_interpreter": python} for name, python in interpreters.items()}
    inventory = write_inventory(str(tmp_path / "hosts.json"), hosts)
    results, dummy = adhoc(inventory, "vfio.migration." + module, json.dumps(MODULES[module]),
                           env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS})
    return results


def _expected(python, version):
    return ("vfio.migration modules need Python 3.8 or later on the managed host; %s is Python %s. Point "
            "ansible_python_interpreter at a Python 3 of the host (python3 on every supported distribution)."
            % (python, version))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_python_2_7_stand_in_is_told_what_it_needs(tmp_path, stand_in, module):
    results = _run(tmp_path, {"stand-in": stand_in, "current": sys.executable}, module)
    # (the tree callback's file for a host leaves out "failed"; a failed module run has rc 1)
    assert results["stand-in"]["rc"] == 1 and results["stand-in"]["msg"] == _expected(stand_in, "2.7.18")
    assert "SyntaxError" in results["stand-in"]["module_stderr"]  # the original output is kept beside it
    assert "rc" not in results["current"] and "Python" not in str(results["current"].get("msg")), results["current"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_real_old_pythons_are_told_what_they_need(tmp_path, module):
    real = {"real-%s" % v: _pyenv(v) for v in ("2.7", "3.6", "3.7")}
    real = {name: python for name, python in real.items() if python}
    if not real:
        pytest.skip("no Python 2.7, 3.6 or 3.7 under ~/.pyenv on this machine")
    results = _run(tmp_path, real, module)
    for name, python in real.items():
        version = subprocess.run([python, "-c", A._VERSION_PROBE], capture_output=True, text=True, check=True).stdout
        assert results[name]["rc"] == 1 and results[name]["msg"] == _expected(python, version), name
        assert "SyntaxError" in results[name]["module_stderr"], name


def test_other_failures_keep_their_message(tmp_path):
    """A module that fails on a new enough Python says what it said (no version check, no rewrite)."""
    hosts = {"current": {"ansible_python_interpreter": sys.executable}}
    inventory = write_inventory(str(tmp_path / "hosts.json"), hosts)
    results, dummy = adhoc(inventory, "vfio.migration.migration_probe", json.dumps({"checks": "not a list"}),
                           env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS})
    assert results["current"]["msg"] == "dictionary requested, could not parse JSON or key=value", results["current"]


def test_the_facts_role_records_the_message_as_the_host_s_reason(tmp_path, stand_in):
    hosts = {"old": {"ansible_python_interpreter": stand_in}, "new": {"ansible_python_interpreter": sys.executable}}
    inventory = write_inventory(str(tmp_path / "hosts.json"), hosts, {
        "vfio_migration_sysfs_root": str(tmp_path), "vfio_migration_host_root": str(tmp_path),
        "vfio_migration_use_udev": False, "vfio_migration_query_qemu": False})
    (tmp_path / "play.yml").write_text("""
- hosts: all
  gather_facts: false
  roles:
    - vfio.migration.facts
  tasks:
    - ansible.builtin.copy:
        dest: "{{ playbook_dir }}/states.json"
        content: "{{ vfio_migration_states | to_json }}"
        mode: "0644"
      delegate_to: localhost
      run_once: true
""")
    proc = subprocess.run([ansible_bin("ansible-playbook"), "-i", inventory, "play.yml"], cwd=tmp_path,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    states = json.loads((tmp_path / "states.json").read_text())
    assert states["new"]["state"] == "ok"
    assert states["old"] == {"state": "failed", "reason": _expected(stand_in, "2.7.18")}


@pytest.mark.parametrize("version, old", [("2.7.18", True), ("3.6.15", True), ("3.7.16", True), ("3.8.0", False),
                                          ("3.13.1", False), ("", False), ("garbage", False)])
def test_which_versions_are_too_old(version, old):
    assert (A.old_python_message("/usr/bin/python", version) is not None) is old
