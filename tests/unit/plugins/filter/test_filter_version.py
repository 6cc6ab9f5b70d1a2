"""The version filters (plugins/filter/version.py): decode_version, parse_migration_layout, compatible_match."""

import json
import os
import subprocess
import sys

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.filter import version as F
from ansible_collections.vfio.migration.plugins.plugin_utils._compatible import parse_compatible
from tests.unit.seeds import SEED_COMPATIBLE, SEED_SELF


def test_filter_names():
    filters = F.FilterModule().filters()
    assert sorted(filters) == ["compatible_match", "decode_version", "parse_migration_layout"]


def test_filters_return_the_shared_results():
    assert F.decode_version("00028086-193b-i915-GVTg_V5_4")["device_api"] == "vfio-pci"
    assert F.parse_migration_layout("a=1\nb=2\n\na=3") == [{"a": "1", "b": "2"}, {"a": "3"}]
    assert F.parse_migration_layout(SEED_COMPATIBLE, templates=True) == parse_compatible(SEED_COMPATIBLE)
    assert F.compatible_match(SEED_SELF, SEED_COMPATIBLE)["bindings"] == {"val1": 4}


@pytest.mark.parametrize("call,message", [
    (lambda: F.decode_version("mtty-1.2"), "decode_version: version 'mtty-1.2' is not decodable"),
    (lambda: F.decode_version(None), "decode_version: version must be a string, not NoneType"),
    (lambda: F.parse_migration_layout("junk"), "parse_migration_layout: line 1: expected key=value"),
    (lambda: F.parse_migration_layout(["a=1"]), "parse_migration_layout: input must be key=value text, not list"),
    (lambda: F.parse_migration_layout("a={", templates=True), "parse_migration_layout: compatible block 0: key a"),
    (lambda: F.compatible_match(SEED_SELF, "type={n:float}"), "compatible_match: compatible block 0: key type: "
                                                              "unknown kind 'float'"),
])
def test_filter_errors_are_ansible_filter_errors(call, message):
    with pytest.raises(AnsibleFilterError) as err:
        call()
    assert message in str(err.value)


def _collections_env():
    env = dict(os.environ)
    if "ANSIBLE_COLLECTIONS_PATH" not in env:
        env["ANSIBLE_COLLECTIONS_PATH"] = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(F.__file__))))))
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    return env


def _ansible(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else name


@pytest.mark.parametrize("name", ["decode_version", "parse_migration_layout", "compatible_match"])
def test_filter_documentation(name):
    proc = subprocess.run([_ansible("ansible-doc"), "-t", "filter", "--json", "vfio.migration." + name],
                          env=_collections_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr
    doc = json.loads(proc.stdout)["vfio.migration." + name]
    assert doc["doc"]["name"] == name
    assert doc["doc"]["short_description"]
    assert "_input" in doc["doc"]["options"]
    assert doc["examples"]
    assert "_value" in doc["return"]


def test_filter_in_a_playbook(tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  vars:
    compatible: |
%s
  tasks:
    - ansible.builtin.assert:
        that:
          - (version | vfio.migration.decode_version).device_api == 'vfio-pci'
          - (source_self | vfio.migration.compatible_match(compatible)).bindings.val1 == 4
          - (source_self | vfio.migration.compatible_match(compatible | vfio.migration.parse_migration_layout)).match
      vars:
        version: 00028086-193b-i915-GVTg_V5_4
        source_self: %s  # not "self": Jinja reserves that name
""" % ("\n".join("      " + line for line in SEED_COMPATIBLE.splitlines()), json.dumps(SEED_SELF)))
    env = _collections_env()
    env.setdefault("ANSIBLE_LOCALHOST_WARNING", "0")
    env.setdefault("ANSIBLE_INVENTORY_UNPARSED_WARNING", "0")
    proc = subprocess.run([_ansible("ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed=0" in proc.stdout
