"""The kernel's VFIO migration capability (``_vfio``) and what discovery opens (issue 13).

No VFIO device here: what is opened, when, and how the answers are read is checked
with stand-ins for ``/proc`` and ``/dev``, and the ioctl sequence against files that
are not VFIO nodes. The kernel's own answers are the kernel labs' (6.1: ENOTTY;
6.12: STOP_COPY).
"""

import errno
import os
import time

import pytest

from ansible_collections.vfio.migration.plugins.module_utils import _gather, _vfio
from ansible_collections.vfio.migration.plugins.module_utils._sysfs import is_vfio_pci_driver
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from tests.conftest import REPO
from tests.fixtures.sysfs_builder import SysfsTree
from tests.synthetic import facts as synthetic_facts
from tests.synthetic import ok, probe_all

# The vfio-pci variant drivers issue 13 names (kernel driver names), each with a migration driver of its own.
VARIANTS = ("mlx5_vfio_pci", "hisi_acc_vfio_pci", "pds_vfio_pci", "virtio_vfio_pci", "qat_vfio_pci",
            "xe_vfio_pci", "nvgrace_gpu_vfio_pci")
U1, U2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
NO_MIGRATION = "the driver offers no VFIO migration (VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY)"


def fake_proc(tmp_path, links):
    """A ``/proc`` whose processes hold ``links`` (``{pid: [fd targets]}``)."""
    proc = tmp_path / "proc"
    for pid, targets in links.items():
        fd_dir = proc / str(pid) / "fd"
        fd_dir.mkdir(parents=True)
        for n, target in enumerate(targets):
            os.symlink(target, str(fd_dir / str(n)))
    (proc / "self").mkdir(parents=True, exist_ok=True)  # not a pid: skipped
    return str(proc)


def fake_dev(tmp_path, groups):
    """A ``/dev`` with ``vfio/vfio`` and ``vfio/<group>`` as plain files (not VFIO nodes)."""
    dev = tmp_path / "dev"
    (dev / "vfio").mkdir(parents=True)
    for name in ("vfio",) + tuple(str(g) for g in groups):
        (dev / "vfio" / name).write_text("")
    return str(dev)


def test_nodes_a_process_holds_are_found(tmp_path):
    proc = fake_proc(tmp_path, {101: ["/dev/vfio/7", "/dev/null"], 202: ["/dev/vfio/vfio", "socket:[1]"], 303: []})
    assert _vfio.open_vfio_nodes(proc) == {"/dev/vfio/7", "/dev/vfio/vfio"}
    assert _vfio.open_vfio_nodes(str(tmp_path / "absent")) == set()


def test_a_group_a_process_holds_is_in_use_and_never_opened(tmp_path, monkeypatch):
    monkeypatch.setattr(_vfio, "_in_child", lambda *a: pytest.fail("a held group must not be opened"))
    got = _vfio.ask_device(fake_dev(tmp_path, [7]), "7", U1, held={"/dev/vfio/7"})
    assert (got["checked"], got["migratable"], got["in_use"]) == (False, None, True)
    assert got["message"] == "in use: /dev/vfio/7 is held open by a process"


def test_ebusy_from_the_kernel_is_in_use_not_an_answer(tmp_path, monkeypatch):
    """A VM that took the group after the /proc scan: the kernel's one-opener rule answers EBUSY."""
    monkeypatch.setattr(_vfio, "_in_child", lambda func, args, timeout: {"in_use": True, "errno": errno.EBUSY,
                                                                         "stage": "open group"})
    got = _vfio.ask_device(fake_dev(tmp_path, [7]), "7", U1)
    assert (got["checked"], got["migratable"], got["in_use"], got["errno_name"]) == (False, None, True, "EBUSY")
    assert got["message"] == "in use: the kernel refused to open group (EBUSY)"


@pytest.mark.parametrize("group, message", [(None, "the device has no IOMMU group"),
                                            ("", "the device has no IOMMU group"),
                                            ("../7", "the device has no IOMMU group"),
                                            ("9", "/dev/vfio/9 does not exist (vfio not loaded?)")])
def test_nothing_to_open_is_not_an_answer(tmp_path, group, message):
    got = _vfio.ask_device(fake_dev(tmp_path, [7]), group, U1)
    assert (got["checked"], got["migratable"], got["message"]) == (False, None, message)


def test_the_kernel_s_answers_are_read_as_flags_or_cannot(tmp_path, monkeypatch):
    dev = fake_dev(tmp_path, [7])
    monkeypatch.setattr(_vfio, "_in_child", lambda func, args, timeout: {"migratable": True, "flags": 0b101})
    can = _vfio.ask_device(dev, "7", U1)
    assert (can["checked"], can["migratable"], can["flags"]) == (True, True, ["STOP_COPY", "PRE_COPY"])
    assert can["message"] == "VFIO migration supported: STOP_COPY, PRE_COPY"
    monkeypatch.setattr(_vfio, "_in_child", lambda func, args, timeout: {"migratable": False, "errno": errno.ENOTTY,
                                                                         "stage": "feature"})
    cannot = _vfio.ask_device(dev, "7", U1)
    assert (cannot["checked"], cannot["migratable"], cannot["errno_name"]) == (True, False, "ENOTTY")
    assert cannot["message"] == NO_MIGRATION


def test_enotty_while_setting_up_is_not_read_as_cannot_migrate(tmp_path):
    """The real ioctl sequence against plain files: the first ioctl fails (ENOTTY) before the feature is asked."""
    got = _vfio.ask_device(fake_dev(tmp_path, [7]), "7", U1)
    assert (got["checked"], got["migratable"], got["errno_name"]) == (False, None, "ENOTTY")
    assert got["message"].startswith("could not ask (setup: ")


def slow(*_args):
    time.sleep(30)
    return {"migratable": True, "flags": 1}


def test_a_driver_that_hangs_costs_the_time_limit_only():
    """The child is killed at the limit: a driver that hangs in open cannot hang discovery."""
    t0 = time.monotonic()
    got = _vfio._in_child(slow, (), 0.5)  # pylint: disable=protected-access
    assert got is None and time.monotonic() - t0 < 10


def test_a_timeout_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.setattr(_vfio, "_in_child", lambda func, args, timeout: None)
    got = _vfio.ask_device(fake_dev(tmp_path, [7]), "7", U1, timeout=0.5)
    assert (got["checked"], got["errno_name"], got["message"]) == (False, "ETIMEDOUT", "no answer within 0.5 s")


def test_modes_decide_which_drivers_are_opened():
    assert _vfio.MODES == ("auto", "always", "never")
    assert _vfio.may_open("auto", "mtty") and not _vfio.may_open("never", "mtty")
    for driver in ("i915", "nvidia", "vfio_ccw", "vfio_ap", "vfio_mdev") + VARIANTS:
        assert not _vfio.may_open("auto", driver), driver
        assert _vfio.may_open("always", driver), driver


def test_a_type_without_a_free_instance_says_so(monkeypatch):
    calls = []

    def ask(dev_root, group, name, held=(), timeout=None):
        calls.append(name)
        return _vfio.record(False, device=name, in_use=True, message="in use: /dev/vfio/%s is held open" % group)

    monkeypatch.setattr(_vfio, "ask_device", ask)
    assert _vfio.type_capability([], "auto")["message"] == "no instance of this type to ask"
    assert _vfio.type_capability([(U1, "7", "mtty")], "never")["message"] == \
        "not checked (check_vfio_capability=never)"
    busy = _vfio.type_capability([(U1, "7", "mtty"), (U2, "8", "mtty")], "auto")
    assert (busy["checked"], busy["in_use"]) == (False, True) and calls == [U1, U2]
    assert busy["message"] == "no free instance of this type to ask (every instance is in use)"
    gvt = _vfio.type_capability([(U1, "7", "i915")], "auto")
    assert gvt["message"] == "not opened: driver i915 has effects on open (check_vfio_capability=always allows it)"
    assert calls == [U1, U2]


@pytest.mark.parametrize("driver", VARIANTS + ("vfio-pci", "pds-vfio-pci"))
def test_variant_drivers_are_vfio_pci_functions(driver):
    assert is_vfio_pci_driver(driver)


@pytest.mark.parametrize("driver", ["mlx5_core", "nvidia", "i915", "vfio_ccw", "vfio_ap", "vfio_mdev", "", None])
def test_other_drivers_are_not(driver):
    assert not is_vfio_pci_driver(driver)


@pytest.fixture
def variant_tree(tmp_path):
    """One function on each named variant driver, one on plain vfio-pci, one on a host driver."""
    t = SysfsTree(str(tmp_path / "host"))
    bdfs = {}
    for n, driver in enumerate(VARIANTS + ("vfio-pci",)):
        bdf = "0000:5e:00.%d" % n
        t.pci_device(bdf, "0x15b3", "0x101e", driver, pci_class="0x020000", root_port="pci0000:5d")
        bdfs[bdf] = driver
    t.pci_device("0000:60:00.0", "0x15b3", "0x101d", "mlx5_core", pci_class="0x020000")
    t.save()
    return str(tmp_path / "host"), bdfs


def test_discovery_lists_every_variant_and_plain_vfio_pci_cannot_migrate(variant_tree):
    hostdir, bdfs = variant_tree
    f = _gather.gather(os.path.join(hostdir, "sys"), use_udev=False, host_root=os.path.join(hostdir, "root"))
    assert {bdf: fn["driver"] for bdf, fn in f["physical"].items()} == bdfs  # not mlx5_core
    for bdf, driver in bdfs.items():
        cap = f["physical"][bdf]["vfio_migration"]
        if driver == "vfio-pci":
            assert (cap["checked"], cap["migratable"]) == (False, False)
            assert cap["message"] == "bound to plain vfio-pci, which has no migration driver"
        else:
            assert (cap["checked"], cap["migratable"]) == (False, None)  # a test tree is never opened


def test_variants_are_opened_only_when_always(variant_tree, monkeypatch):
    hostdir, bdfs = variant_tree
    f = _gather.gather(os.path.join(hostdir, "sys"), use_udev=False, host_root=os.path.join(hostdir, "root"))
    asked = []

    def ask(dev_root, group, name, held=(), timeout=None):
        asked.append(name)
        return _vfio.record(True, False, device=name, errno_value=errno.ENOTTY, message=NO_MIGRATION)

    monkeypatch.setattr(_vfio, "ask_device", ask)
    monkeypatch.setattr(_vfio, "open_vfio_nodes", lambda proc_root="/proc": set())
    _gather.vfio_capabilities(f, "auto", real=True)
    assert asked == []
    for bdf, driver in bdfs.items():
        if driver != "vfio-pci":
            assert f["physical"][bdf]["vfio_migration"]["message"].startswith("not opened: vfio-pci drivers reset")
    _gather.vfio_capabilities(f, "always", real=True)
    assert sorted(asked) == sorted(b for b, d in bdfs.items() if d != "vfio-pci")  # plain vfio-pci: never opened


def variant_fleet(driver, cap):
    out = {}
    for host, bdf in (("a", "0000:65:00.1"), ("b", "0000:65:00.1")):
        f = synthetic_facts({})
        f["physical"][bdf] = {"driver": driver, "driver_version": None, "vendor": "0x15b3", "device": "0x101e",
                              "type": "pci-15b3:101e",
                              "migration": {"attribute": None, "supported": False, "version": None, "error": None},
                              "vfio_migration": cap if host == "a" else {"checked": False, "migratable": None}}
        out[host] = ok(f)
    return out


@pytest.mark.parametrize("driver", VARIANTS)
def test_each_variant_is_judged_by_the_kernel_s_capability(driver):
    """Not unsupported by name: a variant whose kernel says it can migrate is the policy's question (same
    type and driver version: compatible); one that cannot is unsupported with the kernel's reason."""
    policy = {"enabled": True, "driver_version": "any"}
    can = {"checked": True, "migratable": True, "flags": ["STOP_COPY"], "device": "0000:65:00.1", "errno": None,
           "errno_name": None, "in_use": False, "message": "VFIO migration supported: STOP_COPY"}
    cannot = {"checked": True, "migratable": False, "flags": [], "device": "0000:65:00.1", "errno": errno.ENOTTY,
              "errno_name": "ENOTTY", "in_use": False, "message": NO_MIGRATION}
    for cap, expected in ((can, ("compatible", "policy")), (cannot, ("unsupported", "vfio"))):
        hosts = variant_fleet(driver, cap)
        m = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)), policy)
        (v,) = [c for c in M.expand_cells(m) if (c["source_host"], c["target_host"]) == ("a", "b")]
        assert (v["status"], v["evidence"]) == expected, (driver, v)
        if expected[0] == "unsupported":
            assert v["message"].startswith("source function 0000:65:00.1: " + NO_MIGRATION)


def test_readme_names_the_variant_drivers():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text[text.index("#### Does the device migrate at all?"):text.index("### The probe's safety rules")]
    for driver in VARIANTS:
        assert "`%s`" % driver in section, driver


def test_a_free_instance_that_cannot_migrate_from_sysfs_to_the_cell(tmp_path, monkeypatch):
    """End to end, as on the 6.1 lab: an mtty whose attribute accepts the target's version but whose device
    the kernel says cannot migrate. Discovery (a sysfs tree), the real ``ask_device`` path with the child
    process, the kernel's ENOTTY at the feature (a stand-in for the ioctls), then the matrix: the cell is
    ``unsupported`` on the kernel's word, the driver's yes kept among its reasons."""
    t = SysfsTree(str(tmp_path / "kvm-a"))
    dev = "devices/virtual/mtty/mtty"
    os.makedirs(t.abs(dev), exist_ok=True)
    t.mdev_parent("mtty", dev)
    t.mdev_type(dev, "mtty-2", "vfio-pci", 11, name="Dual port serial", migration={"rule": "range", "self": "mtty-1.2"})
    irel = t.mdev_instance(dev, "mtty-2", U1)
    t.link(irel + "/driver", t.driver("mdev", "mtty"))  # the 6.1+ mtty binds its instances itself
    t.save()
    f = _gather.gather(t.sys, use_udev=False, host_root=t.root)
    f["stack"] = dict(synthetic_facts({})["stack"])
    group = f["devices"][U1]["iommu_group"]
    asked = []

    def kernel_says_enotty(dev_root, grp, name):  # runs in the forked child, as _ask does
        return {"migratable": False, "errno": errno.ENOTTY, "stage": "feature"}

    monkeypatch.setattr(_vfio, "_ask", kernel_says_enotty)
    monkeypatch.setattr(_vfio, "open_vfio_nodes", lambda proc_root="/proc": asked.append(proc_root) or set())
    _gather.vfio_capabilities(f, "auto", real=True, dev_root=fake_dev(tmp_path, [group]), proc_root="/nonexistent")
    cap = f["parents"]["mtty"]["types"]["mtty-2"]["vfio_migration"]
    assert asked == ["/nonexistent"]  # the holders are looked up before anything is opened
    assert (cap["checked"], cap["migratable"], cap["errno_name"], cap["device"]) == (True, False, "ENOTTY", U1)

    hosts = {"kvm-a": ok(f), "kvm-b": ok(synthetic_facts({"mtty": {"mtty-2": ("mtty-1.3", 12, [])}}))}
    m = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)))
    (c,) = [c for c in M.expand_cells(m) if (c["source_host"], c["target_host"]) == ("kvm-a", "kvm-b")]
    assert (c["status"], c["evidence"]) == ("unsupported", "vfio")
    assert c["message"].startswith("source mtty-2 on mtty: %s (free instance %s)" % (NO_MIGRATION, U1))
    assert [(r["evidence"], r["status"]) for r in c["reasons"]] == [("vfio", "unsupported"), ("driver", "compatible")]
