"""The probe's core on a temporary tree: ``validate_checks`` (what is refused before any write) and
``Prober`` (where each check is written, what is decided without a write, the gates before a write).

A plain directory stands in for sysfs (``allow_non_sysfs``), so every write
that happens succeeds; drivers' refusals are the FUSE emulator's tests.
"""

import errno
import mmap
import os

import pytest

from ansible_collections.vfio.migration.plugins.module_utils import _probe
from ansible_collections.vfio.migration.plugins.module_utils._probe import (
    SYSFS_STORE_MAX, Prober, ProbeInputError, validate_checks,
)
from tests.fixtures.sysfs_builder import scenario_gvtg, scenario_nomigration, scenario_vfio_variant

GVTG = "0000:00:02.0"
V5_4 = "00028086-193b-i915-GVTg_V5_4"
UUID_V5_4 = "5ac1fb20-2bbf-4842-bb7e-36c58c3be9cd"


def check(cid="c1", mdev_type="i915-GVTg_V5_4", version=V5_4, **more):
    return dict({"id": cid, "mdev_type": mdev_type, "version": version}, **more)


# -- validate_checks ---------------------------------------------------------------

def test_valid_checks_are_normalised():
    got = validate_checks([check(version=V5_4 + "\n"), check("c2", device=UUID_V5_4, parent=GVTG)])
    assert got == [{"id": "c1", "mdev_type": "i915-GVTg_V5_4", "version": V5_4, "parent": None, "device": None},
                   {"id": "c2", "mdev_type": "i915-GVTg_V5_4", "version": V5_4, "parent": GVTG, "device": UUID_V5_4}]


@pytest.mark.parametrize("checks, problem", [
    ("c1", "checks must be a list"),
    (["c1"], "checks[0]: must be a dict"),
    ([check(extra=1)], "checks[0]: unknown keys extra"),
    ([check(mdev_type="../../power")], "checks[0]: mdev_type '../../power' must not contain '/', '..' or NUL"),
    ([check(mdev_type="a b")], "checks[0]: mdev_type 'a b' has characters outside [A-Za-z0-9_.:+@-]"),
    ([check(cid="")], "checks[0]: id must be a non-empty string"),
    ([check(parent="x" * 256)], "checks[0]: parent is longer than 255 characters"),
    ([check(device="not-a-device")], "checks[0]: device 'not-a-device' is neither an mdev uuid nor a PCI address"),
    ([check(version=7)], "checks[0]: version must be a string"),
    ([check(version="")], "checks[0]: version is empty"),
    ([check(version="a\nb")], "checks[0]: version contains a line break"),
    ([check(version="a\x00b")], "checks[0]: version contains a NUL byte"),
    ([check(version="x" * 4097)], "checks[0]: version is 4097 bytes; the limit is 4096 (PATH_MAX)"),
    ([check(), check()], "checks[1]: duplicate id 'c1'"),
])
def test_bad_checks_are_refused_with_the_reason(checks, problem):
    with pytest.raises(ProbeInputError) as exc:
        validate_checks(checks)
    assert problem in str(exc.value)


def test_every_problem_of_a_batch_is_told_at_once():
    with pytest.raises(ProbeInputError) as exc:
        validate_checks([check(version=""), check("c2", mdev_type="a/b")])
    assert str(exc.value) == ("refused, nothing written: checks[0]: version is empty; "
                              "checks[1]: mdev_type 'a/b' must not contain '/', '..' or NUL")


# -- Prober on a temporary tree ------------------------------------------------------

@pytest.fixture
def gvtg(tmp_path):
    return os.path.join(scenario_gvtg(str(tmp_path / "gvtg")), "sys")


def type_attribute(sys_root, mdev_type, name="version"):
    return os.path.join(sys_root, "class", "mdev_bus", GVTG, "mdev_supported_types", mdev_type, name)


def read(path):
    with open(path) as f:
        return f.read()


def by_id(results):
    return {r["id"]: r for r in results}


def test_a_check_is_written_to_every_parent_offering_its_type(gvtg):
    results = Prober(gvtg, allow_non_sysfs=True).run([check(version=V5_4 + "\n")])
    assert len(results) == 1
    r = results[0]
    assert (r["status"], r["parent"], r["errno"], r["target_version"]) == ("compatible", GVTG, None, V5_4)
    assert r["attribute"] == os.path.realpath(type_attribute(gvtg, "i915-GVTg_V5_4"))
    assert read(type_attribute(gvtg, "i915-GVTg_V5_4")) == V5_4 + "\n"


def test_what_is_decided_without_a_write(gvtg):
    untouched = {t: read(type_attribute(gvtg, t)) for t in ("i915-GVTg_V5_1", "i915-GVTg_V5_2")}
    results = by_id(Prober(gvtg, allow_non_sysfs=True).run([
        check("absent", mdev_type="nvidia-257"),
        check("other-parent", parent="0000:00:03.0"),
        check("no-device", device="00000000-0000-0000-0000-000000000000"),
        check("wrong-type", mdev_type="i915-GVTg_V5_2", device=UUID_V5_4),
        check("device-no-attribute", device=UUID_V5_4),
        check("too-long", mdev_type="i915-GVTg_V5_1", version="x" * SYSFS_STORE_MAX),
    ]))
    assert {cid: r["status"] for cid, r in results.items()} == {
        "absent": "missing_type", "other-parent": "missing_type", "no-device": "missing_type",
        "wrong-type": "missing_type", "device-no-attribute": "unsupported", "too-long": "error"}
    assert results["absent"]["message"] == "type nvidia-257 is not offered by any parent on this host"
    assert results["wrong-type"]["message"] == ("device %s is of type i915-GVTg_V5_4, not i915-GVTg_V5_2; "
                                                "types must match" % UUID_V5_4)
    assert (results["device-no-attribute"]["errno"], results["device-no-attribute"]["errno_name"]) == (
        errno.ENOENT, "ENOENT")
    assert results["too-long"]["message"].startswith("not asked: the 4096-byte version plus its newline")
    assert {t: read(type_attribute(gvtg, t)) for t in untouched} == untouched


def test_a_type_without_attribute_is_unsupported(tmp_path):
    tree = os.path.join(scenario_nomigration(str(tmp_path / "nom")), "sys")
    r = by_id(Prober(tree, allow_non_sysfs=True).run([check("m", mdev_type="mtty-1", version="mtty-1-v1")]))["m"]
    assert (r["status"], r["parent"], r["errno_name"]) == ("unsupported", "mtty", "ENOENT")


def test_a_vfio_pci_function_is_written_at_the_device(tmp_path):
    tree = os.path.join(scenario_vfio_variant(str(tmp_path / "vf")), "sys")
    results = Prober(tree, allow_non_sysfs=True).run([check("f", mdev_type="pci-15b3:101e",
                                                            version="000215b3-mlx5-cx7-1.0")])
    assert sorted((r["parent"], r["status"]) for r in results) == [("0000:5e:00.1", "compatible"),
                                                                   ("0000:5e:00.2", "compatible")]


def test_duplicate_versions_share_one_write(gvtg, monkeypatch):
    """Each attribute is read once, and each (attribute, version) written once, however many checks share it."""
    asked = []
    real = _probe._Writers.ask  # pylint: disable=protected-access

    def ask(writers, numbers):
        numbers = list(numbers)
        asked.append([writers.jobs[n] for n in numbers])
        return real(writers, numbers)
    monkeypatch.setattr(_probe._Writers, "ask", ask)  # pylint: disable=protected-access
    checks = [check("a"), check("b"), check("c", version="00028086-193b-i915-GVTg_V5_2")]
    results = Prober(gvtg, allow_non_sysfs=True).run(checks)
    assert [r["status"] for r in results] == ["compatible"] * 3
    reads, writes = asked
    assert [version for dummy, version in reads] == [None]  # the type's one attribute, read once
    assert sorted(version for dummy, version in writes) == ["00028086-193b-i915-GVTg_V5_2",
                                                            "00028086-193b-i915-GVTg_V5_4"]  # a and b share theirs
    assert set(path for path, dummy in reads + writes) == {reads[0][0]}


def test_each_run_reads_the_links_again(gvtg):
    """A Prober run twice sees a device that changed type in between (no link remembered across runs)."""
    prober = Prober(gvtg, allow_non_sysfs=True)
    device = check("d", device=UUID_V5_4)
    assert prober.run([device])[0]["status"] != "missing_type"
    link = os.path.join(os.path.realpath(os.path.join(gvtg, "bus", "mdev", "devices", UUID_V5_4)), "mdev_type")
    target = os.readlink(link)
    os.unlink(link)
    os.symlink(target.replace("GVTg_V5_4", "GVTg_V5_2"), link)
    again = prober.run([device])[0]
    assert again["status"] == "missing_type"
    assert "is of type i915-GVTg_V5_2" in again["message"]


def test_an_attribute_leading_out_of_the_tree_is_not_written(gvtg, tmp_path):
    outside = tmp_path / "outside" / "version"
    outside.parent.mkdir()
    outside.write_text("precious\n")
    attr = type_attribute(gvtg, "i915-GVTg_V5_8")
    os.unlink(attr)
    os.symlink(str(outside), attr)
    r = Prober(gvtg, allow_non_sysfs=True).run([check(mdev_type="i915-GVTg_V5_8")])[0]
    assert r["status"] == "error" and r["message"].startswith("refused to write: attribute resolves to %s, outside "
                                                              "sysfs_root" % outside)
    assert outside.read_text() == "precious\n"


def test_only_sysfs_is_written_unless_allowed(gvtg, tmp_path):
    other = check(version="00028086-193b-i915-GVTg_V5_2")  # a write would show in the file
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n")
    with pytest.raises(ProbeInputError) as exc:
        Prober(gvtg, mountinfo=str(mountinfo)).run([other])
    assert "is on a ext4 file system, not sysfs; nothing written" in str(exc.value)
    assert read(type_attribute(gvtg, "i915-GVTg_V5_4")) == V5_4 + "\n"
    # the same tree mounted as sysfs (as the host's /sys is) is written
    mountinfo.write_text("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
                         "23 22 0:22 / %s rw - sysfs sysfs rw\n" % os.path.realpath(gvtg))
    assert Prober(gvtg, mountinfo=str(mountinfo)).run([other])[0]["status"] == "compatible"
    assert read(type_attribute(gvtg, "i915-GVTg_V5_4")) == other["version"] + "\n"


def test_a_missing_root_is_refused(tmp_path):
    with pytest.raises(ProbeInputError) as exc:
        Prober(str(tmp_path / "absent"), allow_non_sysfs=True).run([check()])
    assert str(exc.value) == "sysfs_root %s is not a directory; nothing written" % (tmp_path / "absent")


# -- a worker's opens ------------------------------------------------------------------

def test_a_worker_reads_and_writes_an_attribute_through_one_open(tmp_path):
    path = str(tmp_path / "migration_version")
    with open(path, "w") as f:
        f.write("self-1\n")
    memory = mmap.mmap(-1, 2 * _probe.SHOW_MAX)
    attributes = _probe._OpenAttributes()  # pylint: disable=protected-access
    assert attributes.show(path, memory, _probe.SHOW_MAX) == [7, None]
    assert memory[_probe.SHOW_MAX:_probe.SHOW_MAX + 7] == b"self-1\n"
    fd = attributes.fds[path]
    assert attributes.store(path, "v-2") == [4, None]
    assert attributes.fds == {path: fd}  # written through the open the read made
    assert read(path).startswith("v-2\n")


def test_an_attribute_the_kernel_will_not_open_for_writing_is_read_as_cat_would():
    """Real sysfs refuses O_RDWR on a read-only attribute, even to root: the worker reads it with an open
    of its own (as the module did before it read through the worker) and keeps nothing open for writes."""
    path = "/sys/devices/system/cpu/online"
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError:
        pass
    else:
        pytest.skip("%s opens for writing here" % path)
    if not os.access(path, os.R_OK):
        pytest.skip("no readable %s" % path)
    memory = mmap.mmap(-1, _probe.SHOW_MAX)
    attributes = _probe._OpenAttributes()  # pylint: disable=protected-access
    length, code = attributes.show(path, memory, 0)
    with open(path, "rb") as f:
        assert (code, memory[:length]) == (None, f.read())
    assert attributes.fds == {}
