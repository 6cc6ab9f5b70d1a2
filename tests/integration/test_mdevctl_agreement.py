"""mdev_facts and Debian's mdevctl read the same fixture trees the same way.

mdevctl has no root override, so each tree is bind-mounted over /sys in a
private mount namespace (``unshare -m``) for the mdevctl run only.
"""

import json
import os
import shutil
import subprocess

import pytest

from tests.ansible_runner import adhoc, write_inventory
from tests.fixtures.sysfs_builder import SCENARIOS
from tests.mdevctl_view import from_facts, from_mdevctl

pytestmark = [pytest.mark.mdevctl, pytest.mark.ansible]

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="bind-mounting over /sys needs root and unshare")


def mdevctl_json(tree_sys, *args):
    script = 'mount --bind "$1" /sys && shift && exec mdevctl "$@" --dumpjson'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", tree_sys] + list(args),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout) if proc.stdout.strip() else []


def mdevctl_view(tree_sys):
    """mdevctl's view of a tree: types by parent, devices by uuid."""
    return from_mdevctl(mdevctl_json(tree_sys, "types"), mdevctl_json(tree_sys, "list"))


@pytest.fixture(scope="module")
def facts_by_scenario(fixture_trees, tmp_path_factory):
    inv = write_inventory(str(tmp_path_factory.mktemp("inv") / "hosts.json"),
                          {name: {"tree": os.path.join(path, "sys")} for name, path in fixture_trees.items()})
    results, proc = adhoc(inv, "vfio.migration.mdev_facts", "sysfs_root={{ tree }}")
    assert proc.returncode == 0, proc.stderr
    return {host: r["ansible_facts"]["vfio_mdev"] for host, r in results.items()}


@needs_root
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_mdev_facts_agrees_with_mdevctl(scenario, fixture_trees, facts_by_scenario):
    tree_sys = os.path.join(fixture_trees[scenario], "sys")
    want_types, want_devices = mdevctl_view(tree_sys)
    facts = facts_by_scenario[scenario]
    got_types, got_devices = from_facts(facts)
    assert got_types == want_types
    assert got_devices == want_devices
    # and every instance is listed under its type
    for uuid, d in facts["devices"].items():
        assert uuid in facts["parents"][d["parent"]]["types"][d["mdev_type"]]["devices"]


def test_fixture_scenarios_are_not_empty(facts_by_scenario):
    """A scenario that discovered nothing would make the agreement test vacuous."""
    for name, facts in facts_by_scenario.items():
        assert facts["parents"] or facts["physical"] or facts["vendor_vgpu"]["vfs"], name
        assert facts["errors"] == [], (name, facts["errors"])
