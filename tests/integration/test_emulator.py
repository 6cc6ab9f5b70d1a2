"""The FUSE sysfs emulator answers like vendor drivers do.

Tiny host trees are built here, mounted with ``EmulatorMount`` and written to
with plain ``os.open``/``os.write``, as a real writer would.
"""

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from tests.emulator.mount import EMULATOR, EmulatorMount, is_mounted

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="/dev/fuse is absent"),
]

GVT = "devices/pci0000:00/0000:00:02.0"
GVT_TYPES = GVT + "/mdev_supported_types"
UUID = "5ac1fb20-2bbf-4842-bb7e-36c58c3be9cd"
V5_4 = "00028086-193b-i915-GVTg_V5_4"
V5_2 = "00028086-193b-i915-GVTg_V5_2"
MTTY_TYPES = "devices/virtual/mtty/mtty/mdev_supported_types"
NV_A = "devices/pci0000:3b/0000:3b:00.0"
NV_B = "devices/pci0000:d8/0000:d8:00.0"
SLOW_DELAY = 0.5


# -- building host trees -----------------------------------------------------------

class Host(object):
    """A minimal host tree: ``root/sys`` plus ``root/rules.json``."""

    def __init__(self, root):
        self.root = str(root)
        self.rules = {}

    def file(self, rel, content="", mode=0o444):
        path = os.path.join(self.root, "sys", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)

    def link(self, rel, target_rel):
        path = os.path.join(self.root, "sys", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(os.path.relpath(os.path.join(self.root, "sys", target_rel), os.path.dirname(path)), path)

    def attr(self, rel, spec):
        self.file(rel, "%s\n" % spec.get("self", ""), 0o644)
        self.rules[rel] = spec

    def save(self):
        with open(os.path.join(self.root, "rules.json"), "w") as f:
            json.dump({"version": 1, "attributes": self.rules}, f)


def build_gvt_host(root):
    """Intel GVT-g parent, an instance, and an mtty parent carrying the odd rules."""
    h = Host(root)
    h.file(GVT + "/vendor", "0x8086\n")
    h.link("class/mdev_bus/0000:00:02.0", GVT)
    for suffix, spec in (("4", {"rule": "exact", "self": V5_4}),
                         ("2", {"rule": "exact", "self": V5_2}),
                         ("8", {"rule": "exact", "self": "00028086-5917-i915-GVTg_V5_8", "unsupported": True})):
        t = "%s/i915-GVTg_V5_%s" % (GVT_TYPES, suffix)
        h.file(t + "/name", "GVTg_V5_%s\n" % suffix)
        h.file(t + "/create", "", 0o200)
        h.attr(t + "/version", spec)
    h.link(GVT + "/%s/mdev_type" % UUID, GVT_TYPES + "/i915-GVTg_V5_4")
    h.file(GVT + "/%s/remove" % UUID, "", 0o200)
    h.link("bus/mdev/devices/" + UUID, GVT + "/" + UUID)
    h.attr(MTTY_TYPES + "/mtty-1/migration_version", {"rule": "read_enodev"})
    h.attr(MTTY_TYPES + "/mtty-2/migration_version",
           {"rule": "slow", "delay": SLOW_DELAY, "inner": {"rule": "exact", "self": "mtty-2-v1"}})
    h.attr(MTTY_TYPES + "/mtty-eio/migration_version", {"rule": "eio", "self": "mtty-eio-v1"})
    h.attr(MTTY_TYPES + "/mtty-eacces/migration_version", {"rule": "eacces", "self": "mtty-eacces-v1"})
    h.attr(MTTY_TYPES + "/mtty-hang/migration_version", {"rule": "hang", "self": "mtty-hang-v1"})
    h.attr(MTTY_TYPES + "/mtty-hang2/migration_version", {"rule": "hang", "self": "mtty-hang2-v1"})
    h.save()


def build_nvidia_host(root):
    """Two GPUs offering nvidia-256 at different minor versions, one nvidia-257."""
    h = Host(root)
    for dev, minor in ((NV_A, 3), (NV_B, 1)):
        h.link("class/mdev_bus/" + dev.rsplit("/", 1)[1], dev)
        h.attr(dev + "/mdev_supported_types/nvidia-256/migration_version",
               {"rule": "range", "self": "000210de-nvidia-256-2.%d" % minor})
    h.attr(NV_A + "/mdev_supported_types/nvidia-257/migration_version",
           {"rule": "range", "self": "000210de-nvidia-257-2.3"})
    h.save()


# -- acting like a real reader and writer -------------------------------------------

def store(path, data):
    """One write(2) on an O_WRONLY fd: the count returned, or the errno name."""
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, data)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    finally:
        os.close(fd)


def show(path):
    """The bytes one read returns, or the errno name."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    try:
        return os.read(fd, 4096)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    finally:
        os.close(fd)


def failure(fn, *args):
    """The errno name ``fn(*args)`` fails with, or None."""
    try:
        fn(*args)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return None


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def start_writer(path, data):
    """A separate process writing ``data`` to ``path`` once; prints the outcome."""
    code = ("import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\n"
            "try:\n    print(os.write(fd, sys.argv[2].encode()))\n"
            "except OSError as e:\n    print(e.errno)\n")
    return subprocess.Popen([sys.executable, "-c", code, path, data.decode()],
                            stdout=subprocess.PIPE, text=True)


# -- fixtures -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Two host trees at different depths and a tree without rules."""
    src = tmp_path_factory.mktemp("emu-src")
    build_gvt_host(src / "site-a" / "gvt")
    build_nvidia_host(src / "nv")
    Host(src / "plain").file("devices/x/version", "plain-v1\n", 0o644)
    return str(src)


@pytest.fixture(scope="module")
def emu(source, tmp_path_factory):
    work = tmp_path_factory.mktemp("emu-mnt")
    with EmulatorMount(source, str(work / "mnt"), str(work / "writes.jsonl")) as mount:
        yield mount
    assert not is_mounted(mount.mountpoint)


def gvt(emu, rel):
    return emu.path("site-a/gvt/sys", rel)


def nv(emu, rel):
    return emu.path("nv/sys", rel)


def last_write(emu, rel):
    entries = emu.writes(rel)
    return entries[-1] if entries else None


# -- the mirror ---------------------------------------------------------------------

def test_tree_is_mirrored(emu, source):
    t4 = GVT_TYPES + "/i915-GVTg_V5_4"
    assert sorted(os.listdir(gvt(emu, t4))) == ["create", "name", "version"]
    assert sorted(os.listdir(emu.mountpoint)) == ["nv", "plain", "site-a"]
    assert show(gvt(emu, t4 + "/name")) == b"GVTg_V5_4\n"
    st = os.stat(gvt(emu, t4 + "/name"))
    assert st.st_size == 4096 and stat.S_IMODE(st.st_mode) == 0o444
    assert stat.S_IMODE(os.stat(gvt(emu, t4 + "/create")).st_mode) == 0o200
    assert stat.S_IMODE(os.stat(gvt(emu, t4 + "/version")).st_mode) == 0o644
    with open(emu.path("site-a/gvt/rules.json")) as f:
        assert json.load(f)["version"] == 1


def test_relative_symlinks_resolve_inside_the_mount(emu, source):
    link = gvt(emu, "class/mdev_bus/0000:00:02.0")
    assert os.readlink(link) == os.readlink(os.path.join(source, "site-a/gvt/sys/class/mdev_bus/0000:00:02.0"))
    assert os.readlink(link) == "../../devices/pci0000:00/0000:00:02.0"
    assert os.path.realpath(link) == gvt(emu, GVT)
    assert show(os.path.join(link, "vendor")) == b"0x8086\n"
    mdev_type = gvt(emu, "bus/mdev/devices/%s/mdev_type" % UUID)
    assert os.path.basename(os.path.realpath(mdev_type)) == "i915-GVTg_V5_4"
    assert show(os.path.join(mdev_type, "version")) == (V5_4 + "\n").encode()
    assert store(os.path.join(mdev_type, "version"), (V5_4 + "\n").encode()) == len(V5_4) + 1


# -- rules ------------------------------------------------------------------------

def test_exact_accepts_only_the_identical_string(emu):
    v4 = GVT_TYPES + "/i915-GVTg_V5_4/version"
    path = gvt(emu, v4)
    assert show(path) == (V5_4 + "\n").encode()
    assert store(path, (V5_4 + "\n").encode()) == len(V5_4) + 1
    assert store(path, V5_4.encode()) == "EINVAL"  # without the kernel's newline
    assert store(path, (V5_2 + "\n").encode()) == "EINVAL"
    assert store(path, (V5_4 + "\n\n").encode()) == "EINVAL"


def test_exact_through_the_shell(emu):
    """``echo`` opens with O_TRUNC and writes once, as in the 2019 `version` proposal."""
    path = gvt(emu, GVT_TYPES + "/i915-GVTg_V5_2/version")
    ok = subprocess.run(["bash", "-c", 'echo "$1" > "$2"', "bash", V5_2, path], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["bash", "-c", 'echo "$1" > "$2"', "bash", V5_4, path], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "Invalid argument" in bad.stderr
    assert show(path) == (V5_2 + "\n").encode()


def test_exact_unsupported_is_enodev(emu):
    path = gvt(emu, GVT_TYPES + "/i915-GVTg_V5_8/version")
    assert show(path) == "ENODEV"
    assert store(path, b"00028086-5917-i915-GVTg_V5_8\n") == "ENODEV"


@pytest.mark.parametrize("target, written, expected", [
    (NV_A, "000210de-nvidia-256-2.3\n", 24),
    (NV_A, "000210de-nvidia-256-2.1\n", 24),  # older source minor
    (NV_A, "000210de-nvidia-256-2.3", 23),  # newline optional
    (NV_B, "000210de-nvidia-256-2.3\n", "EINVAL"),  # newer source minor: asymmetric
    (NV_B, "000210de-nvidia-256-2.1\n", 24),
    (NV_A, "000210de-nvidia-256-3.3\n", "EPROTO"),
    (NV_A, "000210de-nvidia-257-2.3\n", "EINVAL"),
    (NV_A, "nonsense\n", "EINVAL"),
    (NV_A, "000210de-nvidia-256-2.x\n", "EINVAL"),
])
def test_range(emu, target, written, expected):
    path = nv(emu, target + "/mdev_supported_types/nvidia-256/migration_version")
    assert store(path, written.encode()) == expected


def test_range_reads_self(emu):
    assert show(nv(emu, NV_B + "/mdev_supported_types/nvidia-256/migration_version")) == b"000210de-nvidia-256-2.1\n"
    assert store(nv(emu, NV_A + "/mdev_supported_types/nvidia-257/migration_version"),
                 b"000210de-nvidia-257-2.3\n") == 24


def test_read_enodev(emu):
    path = gvt(emu, MTTY_TYPES + "/mtty-1/migration_version")
    assert show(path) == "ENODEV"
    assert store(path, b"anything\n") == "ENODEV"


@pytest.mark.parametrize("type_id, code", [("mtty-eio", "EIO"), ("mtty-eacces", "EACCES")])
def test_refusing_rules_read_self(emu, type_id, code):
    path = gvt(emu, "%s/%s/migration_version" % (MTTY_TYPES, type_id))
    assert show(path) == ("%s-v1\n" % type_id).encode()
    assert store(path, ("%s-v1\n" % type_id).encode()) == code


def test_slow_blocks_nobody_else(emu):
    path = gvt(emu, MTTY_TYPES + "/mtty-2/migration_version")
    outcome = {}

    def slow_write():
        start = time.monotonic()
        outcome["result"] = store(path, b"mtty-2-v1\n")
        outcome["took"] = time.monotonic() - start

    writer = threading.Thread(target=slow_write)
    writer.start()
    time.sleep(0.1)
    start = time.monotonic()
    assert show(gvt(emu, GVT_TYPES + "/i915-GVTg_V5_4/name")) == b"GVTg_V5_4\n"
    assert store(gvt(emu, GVT_TYPES + "/i915-GVTg_V5_4/version"), (V5_4 + "\n").encode()) == len(V5_4) + 1
    assert time.monotonic() - start < SLOW_DELAY / 2
    assert writer.is_alive()
    writer.join(5)
    assert outcome["result"] == 10 and outcome["took"] >= SLOW_DELAY * 0.9
    assert store(path, b"mtty-2-v2\n") == "EINVAL"


def test_hang_blocks_until_the_writer_is_killed(emu):
    rel = MTTY_TYPES + "/mtty-hang/migration_version"
    assert show(gvt(emu, rel)) == b"mtty-hang-v1\n"
    writer = start_writer(gvt(emu, rel), b"mtty-hang-v1\n")
    try:
        time.sleep(0.4)
        assert writer.poll() is None, "write should still be blocked"
        start = time.monotonic()
        assert show(gvt(emu, MTTY_TYPES + "/mtty-eio/migration_version")) == b"mtty-eio-v1\n"
        assert store(gvt(emu, MTTY_TYPES + "/mtty-1/migration_version"), b"x\n") == "ENODEV"
        assert time.monotonic() - start < 0.5
    finally:
        writer.kill()
    writer.wait(timeout=5)
    logged = "site-a/gvt/sys/" + rel
    assert wait_for(lambda: emu.writes(logged))
    assert last_write(emu, logged)["errno_name"] == "EINTR"


# -- files without rules, tree changes --------------------------------------------

@pytest.mark.parametrize("rel", [
    GVT_TYPES + "/i915-GVTg_V5_4/create",
    GVT + "/%s/remove" % UUID,
    GVT_TYPES + "/i915-GVTg_V5_4/name",
])
def test_files_without_rules_refuse_writes(emu, rel):
    assert store(gvt(emu, rel), b"1\n") == "EACCES"
    entry = last_write(emu, "site-a/gvt/sys/" + rel)
    assert entry["errno"] == errno.EACCES and entry["data"] == "1\n"


def test_host_without_rules_is_read_only(emu):
    path = emu.path("plain/sys/devices/x/version")
    assert show(path) == b"plain-v1\n"
    assert store(path, b"plain-v1\n") == "EACCES"


def test_tree_cannot_change(emu, source):
    t4 = gvt(emu, GVT_TYPES + "/i915-GVTg_V5_4")
    refused = {"EPERM", "EROFS"}
    assert failure(os.mkdir, os.path.join(t4, "new")) in refused
    assert failure(os.rmdir, gvt(emu, GVT_TYPES + "/i915-GVTg_V5_4")) in refused | {"ENOTEMPTY"}
    assert failure(os.unlink, os.path.join(t4, "name")) in refused
    assert failure(os.rename, os.path.join(t4, "name"), os.path.join(t4, "other")) in refused
    assert failure(os.chmod, os.path.join(t4, "version"), 0o666) in refused
    assert failure(os.symlink, "name", os.path.join(t4, "link")) in refused
    assert failure(os.open, os.path.join(t4, "newfile"), os.O_WRONLY | os.O_CREAT) in refused
    assert sorted(os.listdir(t4)) == ["create", "name", "version"]
    assert sorted(os.listdir(os.path.join(source, "site-a/gvt/sys", GVT_TYPES, "i915-GVTg_V5_4"))) == \
        ["create", "name", "version"]


def test_truncate_is_accepted_and_changes_nothing(emu):
    path = gvt(emu, GVT_TYPES + "/i915-GVTg_V5_4/version")
    os.truncate(path, 0)
    os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))
    assert show(path) == (V5_4 + "\n").encode()
    assert os.stat(path).st_size == 4096


def test_store_longer_than_a_page_is_einval(emu):
    rel = GVT_TYPES + "/i915-GVTg_V5_4/version"
    assert store(gvt(emu, rel), b"x" * 5000) == "EINVAL"
    entry = last_write(emu, "site-a/gvt/sys/" + rel)
    assert entry["length"] == 5000 and entry["errno_name"] == "EINVAL"


# -- the log and several hosts ----------------------------------------------------------

def test_write_log_records_every_write(emu):
    rel_a = "site-a/gvt/sys/" + GVT_TYPES + "/i915-GVTg_V5_2/version"
    rel_b = "nv/sys/" + NV_B + "/mdev_supported_types/nvidia-256/migration_version"
    before = len(emu.writes())
    started = time.time()
    assert store(emu.path(rel_a), (V5_2 + "\n").encode()) == len(V5_2) + 1
    assert store(emu.path(rel_b), b"000210de-nvidia-256-9.0\n") == "EPROTO"
    new = emu.writes()[before:]
    assert [e["path"] for e in new] == [rel_a, rel_b]
    ok, bad = new
    assert ok == {"time": ok["time"], "path": rel_a, "data": V5_2 + "\n", "length": len(V5_2) + 1,
                  "result": len(V5_2) + 1, "errno": None, "errno_name": None, "pid": os.getpid(),
                  "open": ok["open"]}
    assert bad["pid"] == os.getpid()  # the writer, as the kernel names it to FUSE
    assert isinstance(ok["open"], int) and bad["open"] > ok["open"]  # two opens, numbered in turn
    assert bad["result"] is None and bad["errno"] == errno.EPROTO and bad["errno_name"] == "EPROTO"
    assert bad["data"] == "000210de-nvidia-256-9.0\n" and bad["length"] == 24
    assert started - 1 <= ok["time"] <= bad["time"] <= time.time() + 1


def test_two_host_trees_in_one_mount(emu):
    """Each host's rules apply to its own sys/ only."""
    assert store(gvt(emu, GVT_TYPES + "/i915-GVTg_V5_4/version"), (V5_4 + "\n").encode()) == len(V5_4) + 1
    assert store(nv(emu, NV_A + "/mdev_supported_types/nvidia-256/migration_version"),
                 b"000210de-nvidia-256-2.2\n") == 24
    assert show(nv(emu, "class/mdev_bus/0000:d8:00.0/mdev_supported_types/nvidia-256/migration_version")) == \
        b"000210de-nvidia-256-2.1\n"


# -- life cycle -------------------------------------------------------------------------

def test_unmount_releases_a_hanging_writer(source, tmp_path):
    mnt, log = str(tmp_path / "mnt"), str(tmp_path / "writes.jsonl")
    rel = "site-a/gvt/sys/" + MTTY_TYPES + "/mtty-hang2/migration_version"
    mount = EmulatorMount(source, mnt, log)
    with mount:
        assert is_mounted(mnt)
        writer = start_writer(mount.path(rel), b"mtty-hang2-v1\n")
        time.sleep(0.4)
        assert writer.poll() is None
        start = time.monotonic()
    assert time.monotonic() - start < 5
    assert writer.wait(timeout=5) == 0
    assert writer.stdout.read().strip() == str(errno.EIO)
    writer.stdout.close()
    assert not mount.alive and mount.proc.returncode == 0
    assert not is_mounted(mnt) and not os.path.ismount(mnt)
    assert [e["errno_name"] for e in mount.writes(rel)] == ["EIO"]


def test_nice_reaches_every_thread_of_the_emulator(source, tmp_path):
    """The bench's --emulator-nice: set before the process starts, so the FUSE worker threads have it too."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with EmulatorMount(source, str(tmp_path / "mnt"), str(tmp_path / "log"), nice=3) as mount:
        assert show(gvt(mount, GVT_TYPES + "/i915-GVTg_V5_4/version")) == (V5_4 + "\n").encode()
        tids = [int(t) for t in os.listdir("/proc/%d/task" % mount.proc.pid)]
        assert len(tids) > 1  # the main thread and at least one that served the read
        assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in tids} == {min(own + 3, 19)}


def test_bad_rules_stop_the_emulator_at_start(tmp_path):
    h = Host(tmp_path / "src" / "h")
    h.attr("devices/x/version", {"rule": "no-such-rule", "self": "v"})
    h.save()
    os.mkdir(str(tmp_path / "mnt"))
    proc = subprocess.run([sys.executable, EMULATOR, str(tmp_path / "src"), str(tmp_path / "mnt"),
                           "--log", str(tmp_path / "log")], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "no-such-rule" in proc.stderr
    assert not is_mounted(str(tmp_path / "mnt"))


def test_serves_the_shared_fixture_trees(fixture_trees, tmp_path):
    """The trees tests/fixtures/sysfs_builder.py writes read back through the emulator."""
    parents = {os.path.dirname(p) for p in fixture_trees.values()}
    assert len(parents) == 1
    src = parents.pop()
    with EmulatorMount(src, str(tmp_path / "mnt"), str(tmp_path / "log")) as mount:
        for hostdir in fixture_trees.values():
            name = os.path.basename(hostdir)
            with open(os.path.join(hostdir, "rules.json")) as f:
                rules = json.load(f)["attributes"]
            for rel, spec in rules.items():
                if spec["rule"] in ("slow", "hang"):
                    continue
                path = mount.path(name, "sys", rel)
                got = show(path)
                with open(os.path.join(hostdir, "sys", rel), "rb") as f:
                    plain = f.read()
                if spec["rule"] == "read_enodev" or spec.get("unsupported"):
                    assert got == "ENODEV", rel
                    continue
                assert got == plain, rel
                if spec["rule"] in ("exact", "range"):
                    assert store(path, got) == len(got), rel
