"""How much discovery asks of the kernel: every system call of ``gather()`` on a host's
sysfs is a request to the kernel (on the bench, one to the FUSE emulator). Counted here on
the builder's trees with the real ``os`` calls, wrapped only to count them."""

import collections
import os
import subprocess
import sys

import pytest

from ansible_collections.vfio.migration.plugins.module_utils import _sysfs
from ansible_collections.vfio.migration.plugins.module_utils._gather import gather


@pytest.fixture
def calls(monkeypatch):
    """Counts ``os.open``/``os.read``/``os.readlink`` per path while they do their real work."""
    seen = {"open": collections.Counter(), "read": collections.Counter(), "readlink": collections.Counter()}
    fds = {}
    real_open, real_read, real_readlink = os.open, os.read, os.readlink

    def counted_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        fds[fd] = os.fspath(path)
        seen["open"][fds[fd]] += 1
        return fd

    def counted_read(fd, n):
        seen["read"][fds.get(fd, fd)] += 1
        return real_read(fd, n)

    def counted_readlink(path, *args, **kwargs):
        seen["readlink"][os.fspath(path)] += 1
        return real_readlink(path, *args, **kwargs)

    real_stat = os.stat

    def counted_stat(path, *args, **kwargs):
        seen["stat"][os.fspath(path)] += 1
        return real_stat(path, *args, **kwargs)

    seen["stat"] = collections.Counter()
    monkeypatch.setattr(os, "open", counted_open)
    monkeypatch.setattr(os, "read", counted_read)
    monkeypatch.setattr(os, "readlink", counted_readlink)
    monkeypatch.setattr(os, "stat", counted_stat)
    return seen


def gather_tree(hostdir):
    return gather(os.path.join(hostdir, "sys"), use_udev=True, host_root=os.path.join(hostdir, "root"))


@pytest.mark.parametrize("scenario", ["nvidia", "gvtg", "s390", "vfio_variant", "proposal", "vendor_vfio"])
def test_each_attribute_is_one_read_and_each_link_one_readlink(fixture_trees, calls, scenario):
    facts = gather_tree(fixture_trees[scenario])
    assert facts["errors"] == []
    sysfs_opens = {p: n for p, n in calls["open"].items() if "/sys/" in p}
    assert sysfs_opens, "gather read no attribute"
    assert {p: calls["read"][p] for p in sysfs_opens} == {p: 1 for p in sysfs_opens}
    assert {p: n for p, n in sysfs_opens.items() if n > 1} == {}
    assert {p: n for p, n in calls["readlink"].items() if n > 1} == {}
    # an optional attribute is opened, not looked at first: its absence is the open's ENOENT (a stat
    # tells apart only the two layouts of migration/self and compatible, and an SR-IOV PF)
    looked_at = {p for p in set(calls["stat"]) & set(sysfs_opens)
                 if not (os.path.basename(os.path.dirname(p)) == "migration" or p.endswith("/sriov_totalvfs"))}
    assert sorted(looked_at) == []


def test_two_gpus_on_one_driver_read_its_module_version_once(fixture_trees, calls):
    facts = gather_tree(fixture_trees["nvidia"])
    versions = {p["driver_version"] for p in facts["parents"].values()}
    assert len(facts["parents"]) == 2 and len(versions) == 1 and None not in versions
    module_version_reads = sum(n for p, n in calls["open"].items()
                               if p.endswith("/module/version") and "/driver/" in p)
    assert module_version_reads == 1


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 65535, 65536, 65537, 200000])
def test_read_raw_returns_the_whole_file_up_to_its_limit(tmp_path, size):
    data = bytes(bytearray(i % 251 for i in range(size)))
    path = tmp_path / "attr"
    path.write_bytes(data)
    fs = _sysfs.Sysfs(str(tmp_path))
    got, err = fs.read_raw(str(path), limit=300000)
    assert err is None and got == data
    got, err = fs.read_raw(str(path))  # the attribute limit: one byte over tells it was longer
    assert err is None and got == data[:_sysfs.ATTR_READ_MAX + 1]
    fs.read_text(str(path))
    truncated = [p for p in fs.problems if "truncated" in p["message"]]
    assert bool(truncated) == (size > _sysfs.ATTR_READ_MAX)


def test_a_link_that_fails_fails_the_same_way_each_time(tmp_path):
    (tmp_path / "dir").mkdir()
    os.symlink("../elsewhere/nvidia", str(tmp_path / "dir" / "driver"))
    fs = _sysfs.Sysfs(str(tmp_path))
    assert fs.link_name(str(tmp_path / "dir" / "driver")) == "nvidia"
    assert fs.link_name(str(tmp_path / "dir" / "driver")) == "nvidia"
    for dummy in range(2):  # absent: None, not recorded as a problem
        assert fs.link_name(str(tmp_path / "dir" / "iommu_group")) is None
    for dummy in range(2):  # not a link (EINVAL): None
        assert fs.link_name(str(tmp_path / "dir")) is None
    assert fs.problems == []


def test_pyudev_is_imported_only_to_name_devices_of_the_real_sys(fixture_trees):
    """A gather over any other tree adds no udev names, so it does not import pyudev (5 ms a run)."""
    hostdir = fixture_trees["nvidia"]
    code = ("import sys\n"
            "from ansible_collections.vfio.migration.plugins.module_utils._gather import gather\n"
            "f = gather(sys.argv[1] + '/sys', use_udev=True, host_root=sys.argv[1] + '/root')\n"
            "assert f['parents'] and f['udev'] is False\n"
            "print('pyudev' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, hostdir], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.strip() == "False"


def test_an_absent_attribute_is_left_out_and_an_unreadable_one_is_none_with_a_problem(tmp_path):
    """Reading without a stat first keeps the difference: absent is no key, unreadable is None and noted."""
    from ansible_collections.vfio.migration.plugins.module_utils._inventory import Inventory
    dev = tmp_path / "sys" / "devices" / "css0" / "0.0.0008"
    dev.mkdir(parents=True)
    (dev / "type").write_text("0\n")
    (dev / "vendor").mkdir()  # a directory where an attribute should be: the read fails with EISDIR
    fs = Inventory(str(tmp_path / "sys"))
    ident = fs.identity(str(dev))
    assert ident["subchannel_type"] == "0" and ident["vendor"] is None and ident["numa_node"] is None
    assert not {"device", "class", "revision"} & set(ident)
    assert [(p["path"], p["errno_name"]) for p in fs.problems] == [(str(dev / "vendor"), "EISDIR")]


def test_below_a_file_is_absent_for_an_optional_read_and_a_problem_otherwise(tmp_path):
    """``nvidia`` as a file where a directory would be: the optional read says absent, as a stat would."""
    from ansible_collections.vfio.migration.plugins.module_utils._inventory import ABSENT, Inventory
    (tmp_path / "nvidia").write_text("not a directory\n")
    fs = Inventory(str(tmp_path))
    assert fs.read_text(str(tmp_path / "nvidia" / "creatable_vgpu_types"), missing=ABSENT) is ABSENT
    assert fs.problems == []
    assert fs.read_text(str(tmp_path / "nvidia" / "creatable_vgpu_types")) is None
    assert [p["errno_name"] for p in fs.problems] == ["ENOTDIR"]
