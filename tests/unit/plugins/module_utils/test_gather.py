"""``gather()`` over the builder's fixture trees (tests/fixtures/sysfs_builder.py): what discovery reads,
without root, FUSE or a real device. Every expected value below is what the builder wrote."""

import os

import pytest

from ansible_collections.vfio.migration.plugins.module_utils._gather import gather
from ansible_collections.vfio.migration.plugins.module_utils._inventory import SCHEMA_VERSION


@pytest.fixture(scope="module")
def facts(fixture_trees):
    """``{scenario: facts}`` gathered once per scenario."""
    return {name: gather(os.path.join(hostdir, "sys"), use_udev=True, host_root=os.path.join(hostdir, "root"))
            for name, hostdir in fixture_trees.items()}


def types_of(f, parent):
    return f["parents"][parent]["types"]


def test_every_scenario_reads_without_errors(facts):
    assert sorted(facts) == ["gvtg", "nomigration", "nvidia", "proposal", "s390", "vendor_vfio", "vfio_variant"]
    for name, f in facts.items():
        assert f["schema_version"] == SCHEMA_VERSION, name
        assert f["errors"] == [], name
        assert f["udev"] is False, name  # a test tree is never the host's /sys
        assert f["vms"] == {} and f["libvirt"]["present"] is False, name


def test_devices_are_never_opened_on_a_test_tree(facts):
    for f in facts.values():
        caps = [t["vfio_migration"] for p in f["parents"].values() for t in p["types"].values()]
        caps += [fn["vfio_migration"] for fn in f["physical"].values()]
        assert all(c["message"] == "not checked: sysfs_root is not /sys" for c in caps)


def test_intel_gvtg_types_instances_and_versions(facts):
    f = facts["gvtg"]
    types = types_of(f, "0000:00:02.0")
    assert {t: (v["available_instances"], v["devices"]) for t, v in types.items()} == {
        "i915-GVTg_V5_1": (0, []), "i915-GVTg_V5_2": (0, ["882cc4da-dede-11e7-9180-078a62063ab1"]),
        "i915-GVTg_V5_4": (1, ["5ac1fb20-2bbf-4842-bb7e-36c58c3be9cd"]), "i915-GVTg_V5_8": (2, [])}
    assert types["i915-GVTg_V5_4"]["migration"]["version"] == "00028086-193b-i915-GVTg_V5_4"
    assert types["i915-GVTg_V5_4"]["migration"]["supported"] is True
    assert f["parents"]["0000:00:02.0"]["driver"] == "i915"
    assert {u: (d["parent"], d["mdev_type"]) for u, d in f["devices"].items()} == {
        "5ac1fb20-2bbf-4842-bb7e-36c58c3be9cd": ("0000:00:02.0", "i915-GVTg_V5_4"),
        "882cc4da-dede-11e7-9180-078a62063ab1": ("0000:00:02.0", "i915-GVTg_V5_2")}


def test_nvidia_one_type_per_gpu_is_what_the_tree_says(facts):
    f = facts["nvidia"]
    busy, idle = types_of(f, "0000:3b:00.0"), types_of(f, "0000:d8:00.0")
    assert {t: v["available_instances"] for t, v in busy.items()} == {
        "nvidia-256": 0, "nvidia-257": 7, "nvidia-258": 0, "nvidia-259": 0}
    assert {t: v["available_instances"] for t, v in idle.items()} == {
        "nvidia-256": 16, "nvidia-257": 8, "nvidia-258": 4, "nvidia-259": 2}
    assert busy["nvidia-257"]["migration"]["version"] == "000210de-nvidia-257-2.3"


def test_parents_that_cannot_migrate_are_unsupported_not_errors(facts):
    f = facts["nomigration"]
    for t in types_of(f, "mtty").values():  # no attribute at all
        assert (t["migration"]["supported"], t["migration"]["attribute"], t["migration"]["error"]) == (False, None, None)
    for type_id, t in types_of(f, "0000:00:02.0").items():  # an empty version: the driver says no
        mig = t["migration"]
        assert (mig["supported"], mig["attribute"], mig["version"]) == (False, "version", None), type_id
        assert (mig["error"]["means"], mig["error"]["errno"], mig["error"]["message"]) == (
            "unsupported", None, "version is empty")
    assert types_of(f, "mtty")["mtty-2"]["devices"] == ["83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"]


def test_the_proposal_layout_is_read_as_self_and_compatible(facts):
    mig = types_of(facts["proposal"], "0000:00:02.0")["i915-GVTg_V5_4"]["migration"]
    assert mig["self"] and mig["compatible"]
    assert isinstance(mig["compatible"], list) and all(isinstance(b, dict) for b in mig["compatible"])


def test_s390_ccw_and_ap(facts):
    f = facts["s390"]
    assert types_of(f, "0.0.0313")["vfio_ccw-io"]["migration"]["version"] == "00100000-vfio_ccw-io-1.0"
    assert types_of(f, "matrix")["vfio_ap-passthrough"]["migration"]["version"] == "00200000-vfio_ap-passthrough-1.0"


def test_only_vfio_bound_functions_are_physical(facts):
    physical = facts["vfio_variant"]["physical"]
    assert sorted(physical) == ["0000:5e:00.1", "0000:5e:00.2"]  # not the sound card on snd_hda_intel
    fn = physical["0000:5e:00.1"]
    assert (fn["driver"], fn["type"]) == ("mlx5_vfio_pci", "pci-15b3:101e")
    assert fn["migration"]["version"] == "000215b3-mlx5-cx7-1.0"


def test_vendor_vfio_vgpus_and_the_host_stack(facts):
    f = facts["vendor_vfio"]
    vfs = f["vendor_vgpu"]["vfs"]
    assert sorted(vfs) == ["0000:41:00.1", "0000:41:00.2", "0000:41:00.3", "0000:41:00.4"]
    assert vfs["0000:41:00.1"]["current"] == {"id": 1414, "name": "NVIDIA H200X-1-18C"}
    assert f["parents"] == {} and f["devices"] == {}
    assert (f["stack"]["kernel"], f["stack"]["qemu"], f["stack"]["libvirt"]) == ("6.1.0-27-amd64", "8.2.2", "9.0.0")


def test_a_missing_sysfs_root_is_one_error_not_a_crash(tmp_path):
    f = gather(str(tmp_path / "absent"), host_root=str(tmp_path))
    assert (f["parents"], f["devices"], f["physical"], f["udev"]) == ({}, {}, {}, False)
    assert [(e["errno_name"], e["what"]) for e in f["errors"]] == [("ENOENT", "sysfs_root")]


def test_gathering_changes_nothing(fixture_trees):
    """Discovery only reads: every file's bytes and mtime are the same afterwards."""
    def snapshot(root):
        out = {}
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    out[path] = (f.read(), os.stat(path).st_mtime_ns)
        return out
    for hostdir in fixture_trees.values():
        before = snapshot(hostdir)
        gather(os.path.join(hostdir, "sys"), host_root=os.path.join(hostdir, "root"), check_vfio_capability="always")
        assert snapshot(hostdir) == before
