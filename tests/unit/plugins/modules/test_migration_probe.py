"""migration_probe ``main()`` on a temporary tree: the writes, and the input it refuses before writing.

A plain directory stands in for sysfs (``allow_non_sysfs``): every write
succeeds there, so these tests check the module's plumbing, not a driver's
answer (the FUSE emulator tests do that).
"""

import os

import pytest

from ansible_collections.vfio.migration.plugins.modules import migration_probe
from tests.fixtures.sysfs_builder import scenario_gvtg

GVTG = "0000:00:02.0"
V5_4 = "00028086-193b-i915-GVTg_V5_4"


@pytest.fixture
def tree(tmp_path):
    return os.path.join(scenario_gvtg(str(tmp_path / "gvtg")), "sys")


def attribute(sys_root, mdev_type):
    with open(os.path.join(sys_root, "class", "mdev_bus", GVTG, "mdev_supported_types", mdev_type, "version")) as f:
        return f.read()


def test_each_check_is_written_and_answered(run_module, tree):
    checks = [{"id": "c1", "mdev_type": "i915-GVTg_V5_4", "version": V5_4 + "\n"},
              {"id": "c2", "mdev_type": "i915-GVTg_V5_8", "version": "00028086-193b-i915-GVTg_V5_8", "parent": GVTG},
              {"id": "c3", "mdev_type": "nvidia-257", "version": "000210de-nvidia-257-2.3"}]
    result = run_module(migration_probe.main, {"checks": checks, "sysfs_root": tree, "allow_non_sysfs": True})
    assert (result["failed"], result["changed"]) == (False, False)
    got = {r["id"]: r for r in result["results"]}
    assert (got["c1"]["status"], got["c1"]["parent"], got["c1"]["target_version"]) == ("compatible", GVTG, V5_4)
    assert got["c2"]["status"] == "compatible"
    assert (got["c3"]["status"], got["c3"]["parent"]) == ("missing_type", None)
    assert attribute(tree, "i915-GVTg_V5_4") == V5_4 + "\n"  # one trailing newline, as echo writes


def test_bad_input_is_refused_and_nothing_written(run_module, tree):
    before = attribute(tree, "i915-GVTg_V5_4")
    checks = [{"id": "ok", "mdev_type": "i915-GVTg_V5_4", "version": "00028086-193b-i915-GVTg_V5_2"},
              {"id": "bad", "mdev_type": "../../../etc", "version": "x"}]
    result = run_module(migration_probe.main, {"checks": checks, "sysfs_root": tree, "allow_non_sysfs": True})
    assert result["failed"] is True and result["results"] == []
    assert result["msg"].startswith("refused, nothing written: checks[1]: mdev_type '../../../etc' must not contain")
    assert attribute(tree, "i915-GVTg_V5_4") == before


def test_a_tree_that_is_not_sysfs_is_refused(run_module, tree):
    checks = [{"id": "c1", "mdev_type": "i915-GVTg_V5_4", "version": V5_4}]
    result = run_module(migration_probe.main, {"checks": checks, "sysfs_root": tree})
    assert result["failed"] is True
    assert "not sysfs; nothing written (set allow_non_sysfs for test trees and emulators)" in result["msg"]


@pytest.mark.parametrize("limits", [{"timeout": 0}, {"timeout": float("inf")}, {"timeout": float("nan")},
                                    {"parallel": 0}])
def test_a_limit_that_could_hang_the_play_is_refused(run_module, tree, limits):
    checks = [{"id": "c1", "mdev_type": "i915-GVTg_V5_4", "version": V5_4}]
    result = run_module(migration_probe.main, dict({"checks": checks, "sysfs_root": tree, "allow_non_sysfs": True},
                                                   **limits))
    assert result["failed"] is True
    assert result["msg"] == "timeout must be a finite number > 0 and parallel >= 1; nothing written"
