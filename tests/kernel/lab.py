"""Real-kernel lab: Debian 6.1 kernels under qemu with a patched mtty sample.

Each VM is a real Linux kernel (the installed Debian ``linux-image-amd64``)
that loads ``vfio``, ``vfio_iommu_type1``, ``mdev`` and the kernel's
``samples/vfio-mdev/mtty.c`` extended with the proposed ``migration_version``
attribute (``mtty-migration-version.patch``), creates real mdev instances and
serves this machine's root filesystem (shared read-only over 9p) through its
own sshd, so Ansible manages it like any host: ``/usr/bin/python3``,
``mdevctl`` and ``sshd`` come from the build machine.

    python3 tests/kernel/lab.py build        # packages, mtty.ko, initramfs, ssh keys
    python3 tests/kernel/lab.py up           # build, boot all VMs, write the inventory
    python3 tests/kernel/lab.py ssh kvm-a -- cat /sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/migration_version
    python3 tests/kernel/lab.py down         # stop the VMs ``up`` started

Everything is written under ``build/kernel-lab/`` (``KERNEL_LAB_DIR``), or under
``/var/tmp/vfio-migration-lab-<hash>/`` for a checkout below ``/tmp``, ``/run``
or ``/root``, which the guests cannot see (``default_lab_dir``).
The pytest fixture ``lab`` (``tests/kernel/conftest.py``) uses ``Lab`` directly.
"""

import argparse
import errno as _errno
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# The guests mount tmpfs over these paths of the shared host root (guest-init.sh):
# a file below them is invisible inside a guest.
GUEST_TMPFS = ("/tmp", "/run", "/var/run", "/root", "/dev", "/proc", "/sys")


def _hidden_in_guests(path):
    real = os.path.realpath(path)
    for top in GUEST_TMPFS:
        top = os.path.realpath(top)
        if real == top or real.startswith(top.rstrip("/") + "/"):
            return True
    return False


def default_lab_dir():
    """Where the lab builds and runs: ``build/kernel-lab`` of the checkout, when guests see it.

    A checkout under ``/tmp`` or ``/root`` is hidden from the guests (tmpfs), and
    they load modules the build put there (tests reload ``mtty.ko``): such a
    checkout gets ``/var/tmp/vfio-migration-lab-<hash of its path>`` instead.
    ``KERNEL_LAB_DIR`` overrides both.
    """
    if os.environ.get("KERNEL_LAB_DIR"):
        return os.environ["KERNEL_LAB_DIR"]
    if _hidden_in_guests(REPO):
        digest = hashlib.sha256(os.path.realpath(REPO).encode()).hexdigest()[:12]
        return os.path.join("/var/tmp", "vfio-migration-lab-%s" % digest)
    return os.path.join(REPO, "build", "kernel-lab")


LAB_DIR = default_lab_dir()
PATCH = os.path.join(HERE, "mtty-migration-version.patch")
GUEST_INIT = os.path.join(HERE, "guest-init.sh")
SOURCE_TARBALL = "/usr/src/linux-source-6.1.tar.xz"
MTTY_MEMBER = "linux-source-6.1/samples/vfio-mdev/mtty.c"
COLLECTIONS = os.path.join(REPO, "build", "collections")

# Installed on a fresh machine when missing (apt-get, as root).
APT_PACKAGES = (
    "linux-image-amd64", "linux-headers-amd64", "linux-source-6.1", "qemu-system-x86",
    "busybox-static", "openssh-server", "openssh-client", "mdevctl", "kmod", "cpio",
    "xz-utils", "zstd", "patch", "make", "gcc", "python3",
)

# Loaded by the guest's /init in this order, each after its modules.dep
# dependencies (virtio_ring before virtio before virtio_pci, netfs/fscache
# before 9p); the patched mtty.ko comes last with per-VM parameters.
# virtio_rng (with qemu's virtio-rng-pci) initialises the guest's CRNG early:
# without it sshd blocks in getrandom() for seconds under TCG.
GUEST_MODULES = ("virtio_pci", "virtio_rng", "e1000", "9pnet_virtio", "9p",
                 "vfio", "vfio_iommu_type1", "mdev")

BOOT_TIMEOUT = float(os.environ.get("KERNEL_LAB_BOOT_TIMEOUT", "420"))
SSH_TIMEOUT = float(os.environ.get("KERNEL_LAB_SSH_TIMEOUT", "120"))
VM_MEMORY = os.environ.get("KERNEL_LAB_MEMORY", "512")


@dataclass(frozen=True)
class VM:
    """One lab host: the mtty parameters it loads and the instances it creates."""
    name: str
    migration: int            # mtty's migration= parameter: 0 absent, 1 present, 2 ENODEV
    version: object = None    # mtty's migration_version= (None when migration=0)
    mdevs: tuple = ()         # ((uuid, type_id), ...) created at boot
    note: str = ""

    @property
    def mtty_params(self):
        params = ["migration=%d" % self.migration]
        if self.version:
            params.append("migration_version=%s" % self.version)
        return params


LAB_VMS = (
    VM("kvm-a", 1, "mtty-1.2", (("4b1f0a52-7d3e-4c59-9b7a-0a0000000a01", "mtty-2"),),
       "accepts mtty-1.0 .. mtty-1.2; refuses kvm-b's 1.3"),
    VM("kvm-b", 1, "mtty-1.3", (),
       "accepts kvm-a's 1.2 (asymmetric with kvm-a)"),
    VM("kvm-c", 1, "mtty-2.0", (("4b1f0a52-7d3e-4c59-9b7a-0a0000000c01", "mtty-2"),),
       "other major: refuses and is refused by kvm-a and kvm-b"),
    VM("kvm-d", 0, None, (),
       "no migration support: no migration_version attribute"),
)

MTTY_PARENT = "mtty"
MTTY_TYPES = {"mtty-1": "Single port serial", "mtty-2": "Dual port serial"}
MTTY_PORTS = {"mtty-1": 1, "mtty-2": 2}
MTTY_MAX_PORTS = 24
MTTY_DEVICE_API = "vfio-pci"


def parse_version(text):
    m = re.fullmatch(r"mtty-(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def expected_write_errno(target, source_version, incompatible_errno=_errno.EINVAL):
    """What writing ``source_version`` to ``target``'s attribute returns: 0 or an errno.

    The patched driver strips one trailing newline and accepts a source with
    the same major and a minor not newer than its own.
    """
    if not target.migration:
        return _errno.ENOENT            # no attribute to open
    if target.migration == 2:
        return _errno.ENODEV
    src = source_version[:-1] if source_version.endswith("\n") else source_version
    mine, theirs = parse_version(target.version), parse_version(src)
    if theirs is None or theirs[0] != mine[0] or theirs[1] > mine[1]:
        return incompatible_errno
    return 0


def log(msg):
    print("[kernel-lab %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, **kw)


# --------------------------------------------------------------------------- build

def ensure_packages(packages=APT_PACKAGES):
    """Install the Debian packages the lab needs when any is missing."""
    missing = []
    for pkg in packages:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or "install ok installed" not in proc.stdout:
            missing.append(pkg)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise RuntimeError("missing Debian packages %s; install them as root" % " ".join(missing))
    log("installing %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, env=env)
    return missing


def kernel_version():
    """KV of the Debian kernel that linux-image-amd64 installs (not ``uname -r``).

    ``KERNEL_LAB_KV`` overrides. Otherwise the kernel linux-image-amd64
    depends on, else the newest /boot/vmlinuz-* with modules and headers.
    """
    def usable(kv):
        return (os.path.exists("/boot/vmlinuz-%s" % kv)
                and os.path.exists("/lib/modules/%s/modules.dep" % kv)
                and os.path.isdir("/lib/modules/%s/build" % kv))

    kv = os.environ.get("KERNEL_LAB_KV")
    if kv:
        return kv
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", "linux-image-amd64"],
                          capture_output=True, text=True, check=False)
    m = re.search(r"linux-image-(\S+-amd64)\b", proc.stdout)
    if m and usable(m.group(1)):
        return m.group(1)
    found = [n[len("vmlinuz-"):] for n in os.listdir("/boot") if n.startswith("vmlinuz-")]
    found = [kv for kv in found if usable(kv)]
    if not found:
        raise RuntimeError("no /boot/vmlinuz-* with /lib/modules/<KV>/{modules.dep,build}")

    def key(kv):
        return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", kv)]
    return sorted(found, key=key)[-1]


def _sha256(*paths, extra=""):
    h = hashlib.sha256(extra.encode())
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


class _Lock:
    def __init__(self, path, blocking=True):
        self.path, self.blocking, self.fd = path, blocking, None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        flags = fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fd, flags)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def pristine_mtty(lab_dir, tarball=SOURCE_TARBALL, member=MTTY_MEMBER, subdir="src"):
    """mtty.c extracted (that one file only) from the Debian linux-source tarball; cached."""
    src_dir = os.path.join(lab_dir, subdir)
    dest = os.path.join(src_dir, "mtty.c")
    st = os.stat(tarball)
    stamp = os.path.join(src_dir, "mtty.c.from")
    want = "%s %d %d" % (tarball, st.st_size, int(st.st_mtime))
    if os.path.exists(dest) and os.path.exists(stamp) and open(stamp).read() == want:
        return dest
    os.makedirs(src_dir, exist_ok=True)
    log("extracting %s from %s (~15 s)" % (member, tarball))
    with tempfile.TemporaryDirectory(dir=src_dir) as tmp:
        run(["tar", "-xJf", tarball, "-C", tmp, "--occurrence=1", member])
        shutil.move(os.path.join(tmp, member), dest)
    with open(stamp, "w") as f:
        f.write(want)
    return dest


def build_mtty(lab_dir, kv, patch_file=PATCH, pristine=None):
    """Patch mtty.c and build it out of tree against /lib/modules/KV/build; cached."""
    pristine = pristine or pristine_mtty(lab_dir)
    work = os.path.join(lab_dir, "mtty", kv)
    mod_dir = os.path.join(work, "samples", "vfio-mdev")
    ko = os.path.join(mod_dir, "mtty.ko")
    stamp = os.path.join(work, ".stamp")
    digest = _sha256(pristine, patch_file, extra=kv)
    if os.path.exists(ko) and os.path.exists(stamp) and open(stamp).read() == digest:
        return ko
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(mod_dir)
    shutil.copy(pristine, os.path.join(mod_dir, "mtty.c"))
    log("patching mtty.c with %s" % os.path.relpath(patch_file, REPO))
    with open(patch_file) as f:
        run(["patch", "-p1", "--no-backup-if-mismatch", "-d", work], stdin=f,
            stdout=subprocess.DEVNULL)
    with open(os.path.join(mod_dir, "Kbuild"), "w") as f:
        f.write("obj-m := mtty.o\n")
    log("building mtty.ko against /lib/modules/%s/build" % kv)
    proc = subprocess.run(["make", "-C", "/lib/modules/%s/build" % kv, "M=%s" % mod_dir, "modules"],
                          capture_output=True, text=True, check=False)
    with open(os.path.join(work, "build.log"), "w") as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not os.path.exists(ko):
        raise RuntimeError("mtty build failed:\n%s%s" % (proc.stdout[-3000:], proc.stderr[-3000:]))
    with open(stamp, "w") as f:
        f.write(digest)
    return ko


def ssh_keys(lab_dir):
    """The lab's client key (root's authorized key) and the guests' host key."""
    d = os.path.join(lab_dir, "ssh")
    os.makedirs(d, exist_ok=True)
    keys = {"client": os.path.join(d, "id_ed25519"), "host": os.path.join(d, "ssh_host_ed25519_key")}
    for name, path in keys.items():
        if not os.path.exists(path):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kernel-lab-%s" % name, "-f", path])
        os.chmod(path, 0o600)
    return keys


def read_modules_dep(kv):
    """``{module_name: (path, [dep names])}`` from /lib/modules/KV/modules.dep."""
    base = "/lib/modules/%s" % kv
    mods = {}

    def name_of(path):
        n = os.path.basename(path)
        n = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", n)
        return n.replace("-", "_")

    with open(os.path.join(base, "modules.dep")) as f:
        for line in f:
            target, deps = line.split(":", 1)
            mods[name_of(target)] = (os.path.join(base, target),
                                     [name_of(d) for d in deps.split()])
    return mods


def module_load_order(kv, wanted=GUEST_MODULES):
    """Modules to insmod, dependencies first (a depth-first walk of modules.dep)."""
    mods = read_modules_dep(kv)
    order, seen = [], set()

    def visit(name, chain=()):
        name = name.replace("-", "_")
        if name in seen:
            return
        if name not in mods:
            if os.path.exists("/lib/modules/%s/modules.builtin" % kv):
                with open("/lib/modules/%s/modules.builtin" % kv) as f:
                    if any(re.search(r"/%s\.ko$" % re.escape(name), l.strip().replace("-", "_")) for l in f):
                        seen.add(name)
                        return  # built into the kernel
            raise RuntimeError("module %s not in modules.dep (%s)" % (name, " -> ".join(chain + (name,))))
        seen.add(name)
        for dep in reversed(mods[name][1]):
            visit(dep, chain + (name,))
        order.append((name, mods[name][0]))

    for w in wanted:
        visit(w)
    return order


def _module_bytes(path):
    """A module's ELF bytes; compressed modules are unpacked for busybox insmod."""
    if path.endswith(".xz"):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".gz"):
        with gzip.open(path) as f:
            return f.read()
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    with open(path, "rb") as f:
        return f.read()


class Cpio:
    """A minimal newc (SVR4, no CRC) archive writer: device nodes need no root."""

    def __init__(self):
        self.chunks, self.ino = [], 300000

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        self.ino += 1
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08x" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
        out = hdr.encode() + name_b
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
        self.chunks.append(out)

    def dir(self, name, perm=0o755):
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name, data, perm=0o644):
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, perm=0o600):
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def bytes(self):
        return b"".join(self.chunks) + self._trailer()

    def _trailer(self):
        name_b = b"TRAILER!!!\0"
        hdr = ("070701" + "%08x" * 13 % (0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(name_b), 0)).encode()
        out = hdr + name_b
        return out + b"\0" * (-len(out) % 4)


def build_initramfs(lab_dir, kv, mtty_ko, keys):
    """busybox-static, the modules (dependencies first), mtty.ko, /init and the ssh keys."""
    order = module_load_order(kv)
    a = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "modules", "lab", "hostroot"):
        a.dir(d)
    a.chardev("dev/console", 5, 1)
    a.chardev("dev/null", 1, 3, 0o666)
    with open("/bin/busybox", "rb") as f:
        a.file("bin/busybox", f.read(), 0o755)
    a.symlink("bin/sh", "busybox")
    with open(GUEST_INIT, "rb") as f:
        a.file("init", f.read(), 0o755)
    for name, path in order:
        a.file("modules/%s.ko" % name, _module_bytes(path))
    a.file("modules/order", "".join(name + "\n" for name, _path in order).encode())
    with open(mtty_ko, "rb") as f:
        a.file("modules/mtty.ko", f.read())
    with open(keys["host"], "rb") as f:
        a.file("lab/ssh_host_ed25519_key", f.read(), 0o600)
    with open(keys["client"] + ".pub", "rb") as f:
        a.file("lab/authorized_keys", f.read())
    out = os.path.join(lab_dir, "initramfs-%s.cpio" % kv)
    with open(out + ".tmp", "wb") as f:
        f.write(a.bytes())
    os.replace(out + ".tmp", out)
    return out, [name for name, _path in order]


def _has_pvh_entry(elf):
    """Whether an x86-64 vmlinux carries the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        ptype, _flags, off, _va, _pa, filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if ptype != 4:  # PT_NOTE
            continue
        pos, end = off, off + filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _zstd_payload(data):
    """The vmlinux of a zstd-compressed bzImage (Debian's 6.12), unpacked by the zstd tool."""
    off = data.find(b"\x28\xb5\x2f\xfd")
    if off < 0:
        raise OSError("no xz or zstd payload")
    # The frame is followed by the image's size field: zstd complains about the
    # trailing bytes after writing the whole frame, so the output is judged by itself.
    proc = subprocess.run(["zstd", "-dc"], input=data[off:], capture_output=True, check=False)
    if proc.stdout[:4] != b"\x7fELF":
        raise OSError("zstd payload did not unpack: %s" % proc.stderr.decode(errors="replace")[-200:])
    return proc.stdout


def kernel_image(lab_dir, kv):
    """The kernel qemu boots: the uncompressed vmlinux (PVH entry) when it can be had.

    Debian's bzImage carries an xz-compressed vmlinux; under TCG its
    decompressor costs ~4 s of CPU a VM. qemu boots a vmlinux with a PVH note
    directly, so it is unpacked once here (cached). ``KERNEL_LAB_PVH=0`` or
    any surprise falls back to /boot/vmlinuz-KV.
    """
    bz = "/boot/vmlinuz-%s" % kv
    if os.environ.get("KERNEL_LAB_PVH", "1") == "0":
        return bz
    out = os.path.join(lab_dir, "vmlinux-%s" % kv)
    st = os.stat(bz)
    stamp, want = out + ".from", "%s %d %d" % (bz, st.st_size, int(st.st_mtime))
    if os.path.exists(out) and os.path.exists(stamp) and open(stamp).read() == want:
        return out
    with open(bz, "rb") as f:
        data = f.read()
    off = data.find(b"\xfd7zXZ\x00")
    try:
        if off >= 0:
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[off:])
        else:
            elf = _zstd_payload(data)
    except (lzma.LZMAError, OSError) as exc:
        log("booting %s (no vmlinux: %s)" % (bz, exc))
        return bz
    if not _has_pvh_entry(elf):
        log("booting %s (vmlinux has no PVH entry)" % bz)
        return bz
    with open(out + ".tmp", "wb") as f:
        f.write(elf)
    os.replace(out + ".tmp", out)
    with open(stamp, "w") as f:
        f.write(want)
    return out


def collections_farm():
    """``build/collections/ansible_collections/vfio/migration`` -> the repo (as tests/conftest.py)."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "vfio", "migration")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if not os.path.islink(link):
        os.symlink(REPO, link)
    return COLLECTIONS


@dataclass
class Build:
    kv: str
    kernel: str
    initramfs: str
    mtty_ko: str
    modules: list
    keys: dict
    lab_dir: str
    seconds: float = 0.0


def build(lab_dir=LAB_DIR, install=True):
    """Everything the VMs need; cheap when nothing changed (the .ko and sources are cached)."""
    t0 = time.monotonic()
    if install:
        ensure_packages()
    os.makedirs(lab_dir, exist_ok=True)
    kv = kernel_version()
    with _Lock(os.path.join(lab_dir, ".build.lock")):
        ko = build_mtty(lab_dir, kv)
        keys = ssh_keys(lab_dir)
        initramfs, modules = build_initramfs(lab_dir, kv, ko, keys)
        kernel = kernel_image(lab_dir, kv)
    collections_farm()
    b = Build(kv=kv, kernel=kernel, initramfs=initramfs, mtty_ko=ko,
              modules=modules, keys=keys, lab_dir=lab_dir, seconds=time.monotonic() - t0)
    log("built for %s in %.1f s: %s" % (kv, b.seconds, os.path.relpath(initramfs, REPO)))
    return b


# --------------------------------------------------------------------------- boot

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_base(key, port, extra=()):
    return ["ssh", "-p", str(port), "-i", key,
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=20"] + list(extra) + ["root@127.0.0.1"]


@dataclass
class Host:
    vm: VM
    port: int
    run_dir: str
    proc: object = None
    boot_seconds: object = None

    @property
    def name(self):
        return self.vm.name

    @property
    def console_log(self):
        return os.path.join(self.run_dir, "console.log")


@dataclass
class Lab:
    """A running lab: what tests (and the lead's precheck tests) need.

    ``inventory``: path of the generated YAML inventory; ``hosts``: name -> Host
    (``.vm`` has ``migration``, ``version``, ``mdevs``); ``versions``: name ->
    the migration_version the guest reads back (None without the attribute).
    """
    build: Build
    run_dir: str
    hosts: dict = field(default_factory=dict)
    inventory: str = ""
    boot_seconds: float = 0.0
    timings: dict = field(default_factory=dict)   # label -> seconds, for the summary
    # The guests share the build machine's root: without this, its libvirt (if installed) would
    # make every guest a libvirt host with no VMs, whose free instances are not demand.
    with_libvirt = False
    memory: str = VM_MEMORY                        # MiB of each guest

    @property
    def versions(self):
        return {n: h.vm.version if h.vm.migration == 1 else None for n, h in self.hosts.items()}

    @property
    def key(self):
        return self.build.keys["client"]

    def vm(self, name):
        return self.hosts[name].vm

    def ssh_cmd(self, name, command=None):
        # one multiplexed connection a guest: a key exchange costs ~1 s under TCG
        sock = os.path.join(self.hosts[name].run_dir, "ssh.sock")
        cmd = ssh_base(self.key, self.hosts[name].port,
                       ("-o", "ControlMaster=auto", "-o", "ControlPath=%s" % sock,
                        "-o", "ControlPersist=300"))
        return cmd + ([command] if command else [])

    def ssh(self, name, command, input=None, check=True, timeout=SSH_TIMEOUT):
        """Run a shell command in the guest; returns the CompletedProcess (text)."""
        proc = subprocess.run(self.ssh_cmd(name, command), input=input, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("ssh %s %r: rc=%s\n%s%s" % (name, command, proc.returncode,
                                                             proc.stdout, proc.stderr))
        return proc

    def python(self, name, script, *args, check=True, timeout=SSH_TIMEOUT):
        """Run a Python script with the guest's /usr/bin/python3; returns its JSON stdout."""
        cmd = "/usr/bin/python3 - " + " ".join("'%s'" % a.replace("'", "'\\''") for a in args)
        proc = self.ssh(name, cmd, input=script, check=check, timeout=timeout)
        return json.loads(proc.stdout)

    def console_says(self, name, text):
        try:
            with open(self.hosts[name].console_log, "rb") as f:
                return text.encode() in f.read()
        except OSError:
            return False

    def console_tail(self, name, lines=40):
        try:
            with open(self.hosts[name].console_log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # ---- lifecycle

    def qemu_cmd(self, host):
        vm = host.vm
        append = ["console=ttyS0", "panic=-1", "loglevel=4", "lab_name=%s" % vm.name,
                  "lab_mtty=%s" % ",".join(vm.mtty_params)]
        if vm.mdevs:
            append.append("lab_mdevs=%s" % ",".join("%s:%s" % m for m in vm.mdevs))
        if not self.with_libvirt:
            append.append("lab_libvirt=hidden")
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-m", self.memory, "-smp", "1",
            "-nographic", "-monitor", "none", "-serial", "file:%s" % host.console_log,
            "-no-reboot", "-name", vm.name,
            "-kernel", self.build.kernel, "-initrd", self.build.initramfs,
            "-append", " ".join(append),
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22" % host.port,
            "-device", "e1000,netdev=n0,romfile=",   # no iPXE ROM: -kernel boots directly
            "-device", "virtio-rng-pci",
            "-pidfile", os.path.join(host.run_dir, "qemu.pid"),
        ]

    def _spawn(self, host):
        os.makedirs(host.run_dir, exist_ok=True)
        for f in ("console.log", "qemu.log", "qemu.pid", "ssh.sock"):
            try:
                os.unlink(os.path.join(host.run_dir, f))
            except FileNotFoundError:
                pass
        with open(os.path.join(host.run_dir, "qemu.log"), "w") as errlog:
            cmd = self.qemu_cmd(host)
            errlog.write(" ".join(cmd) + "\n")
            errlog.flush()
            host.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=errlog,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, vms=LAB_VMS):
        for vm in vms:
            host = Host(vm=vm, port=free_port(), run_dir=os.path.join(self.run_dir, vm.name))
            self.hosts[vm.name] = host
            self._spawn(host)
        log("booting %s (qemu -accel tcg, %s MiB each), consoles in %s"
            % (", ".join("%s:%d" % (h.name, h.port) for h in self.hosts.values()),
               self.memory, os.path.relpath(self.run_dir, REPO)))

    def wait(self, timeout=BOOT_TIMEOUT):
        """Wait until every guest answers ssh; raises with the console tail on failure."""
        t0 = time.monotonic()
        errors = {}

        def one(host):
            restarted = False
            while True:
                if host.proc.poll() is not None:
                    with open(os.path.join(host.run_dir, "qemu.log"), errors="replace") as f:
                        qlog = f.read()
                    if "hostfwd" in qlog and not restarted:   # port taken meanwhile
                        restarted = True
                        host.port = free_port()
                        self._spawn(host)
                        continue
                    errors[host.name] = "qemu exited rc=%s\n%s" % (host.proc.returncode, qlog[-2000:])
                    return
                if time.monotonic() - t0 > timeout:
                    errors[host.name] = "no ssh after %.0f s" % timeout
                    return
                if self.console_says(host.name, "lab: FAILED"):
                    errors[host.name] = "the guest's /init reported a failure"
                    return
                # Knock only once /init has started sshd: an earlier connection sits in
                # slirp while the guest's SYNs back off, and the first login lands late.
                if not self.console_says(host.name, "lab: ready"):
                    time.sleep(0.5)
                    continue
                try:
                    proc = subprocess.run(self.ssh_cmd(host.name, "test -d /sys/class/mdev_bus/mtty"),
                                          capture_output=True, text=True, timeout=60, check=False)
                    if proc.returncode == 0:
                        host.boot_seconds = time.monotonic() - t0
                        log("%s: ssh up after %.1f s" % (host.name, host.boot_seconds))
                        return
                except subprocess.TimeoutExpired:
                    pass
                time.sleep(1)

        threads = [threading.Thread(target=one, args=(h,)) for h in self.hosts.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.boot_seconds = time.monotonic() - t0
        if errors:
            msg = []
            for name, err in errors.items():
                msg.append("%s: %s\n--- console (%s) ---\n%s" % (
                    name, err, self.hosts[name].console_log, self.console_tail(name)))
            raise RuntimeError("kernel lab did not come up:\n" + "\n".join(msg))
        log("all %d VMs answer ssh after %.1f s" % (len(self.hosts), self.boot_seconds))

    def stop(self):
        for host in self.hosts.values():
            sock = os.path.join(host.run_dir, "ssh.sock")
            if os.path.exists(sock):
                subprocess.run(ssh_base(self.key, host.port, ("-o", "ControlPath=%s" % sock, "-O", "exit")),
                               capture_output=True, timeout=10, check=False)
        for host in self.hosts.values():
            if host.proc and host.proc.poll() is None:
                host.proc.terminate()
        for host in self.hosts.values():
            if host.proc:
                try:
                    host.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    host.proc.kill()
                    host.proc.wait()

    # ---- outputs

    def write_inventory(self, path=None):
        """An Ansible YAML inventory of the lab (group ``kernel_lab``)."""
        path = path or os.path.join(self.run_dir, "inventory.yml")
        q = json.dumps  # a JSON string is a YAML scalar
        lines = ["# Generated by tests/kernel/lab.py: real Debian %s kernels under qemu" % self.build.kv,
                 "# with the patched mtty sample (tests/kernel/mtty-migration-version.patch).",
                 "all:", "  children:", "    kernel_lab:", "      hosts:"]
        for host in self.hosts.values():
            vm = host.vm
            lines += [
                "        %s:" % vm.name,
                "          ansible_host: 127.0.0.1",
                "          ansible_port: %d" % host.port,
                "          ansible_user: root",
                "          ansible_ssh_private_key_file: %s" % q(self.key),
                "          ansible_python_interpreter: /usr/bin/python3",
                "          ansible_ssh_common_args: %s" % q(
                    "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"),
                "          ansible_ssh_pipelining: true",
                "          ansible_ssh_timeout: 60",   # a first login under loaded TCG can take >10 s
                "          kernel_lab_migration: %d" % vm.migration,
                "          kernel_lab_migration_version: %s" % (q(vm.version) if vm.version else "null"),
                "          kernel_lab_mdevs: %s" % q(dict(vm.mdevs)),
                "          kernel_lab_console_log: %s" % q(host.console_log),
            ]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.inventory = path
        return path

    def write_state(self):
        state = {
            "kv": self.build.kv, "inventory": self.inventory, "key": self.key,
            "build_seconds": round(self.build.seconds, 1), "boot_seconds": round(self.boot_seconds, 1),
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "hosts": {n: {"port": h.port, "pid": h.proc.pid if h.proc else None,
                          "boot_seconds": h.boot_seconds and round(h.boot_seconds, 1),
                          "migration": h.vm.migration, "migration_version": h.vm.version,
                          "mdevs": dict(h.vm.mdevs),
                          "console_log": h.console_log}
                      for n, h in self.hosts.items()},
        }
        path = os.path.join(self.run_dir, "lab.json")
        with open(path, "w") as f:
            json.dump(state, f, indent=1)
        return path


def run_dir_for(lab_dir, name="session"):
    """``build/kernel-lab/<name>``, locked for the lab's lifetime; a private dir when busy.

    pytest uses ``session/``; ``lab.py up`` uses ``run/``. A second pytest run
    at the same time (another engineer on this machine) gets ``session-<pid>/``.
    Returns ``(run_dir, lock)``; release the lock with ``lock.__exit__()``.
    """
    default = os.path.join(lab_dir, name)
    os.makedirs(default, exist_ok=True)
    lock = _Lock(os.path.join(default, ".lock"), blocking=False)
    try:
        lock.__enter__()
        return default, lock
    except BlockingIOError:
        private = os.path.join(lab_dir, "%s-%d" % (name, os.getpid()))
        os.makedirs(private, exist_ok=True)
        log("%s is in use by another lab; using %s" % (default, private))
        return private, None


def boot(b, run_dir, vms=LAB_VMS, timeout=BOOT_TIMEOUT):
    lab = Lab(build=b, run_dir=run_dir)
    lab.start(vms)
    try:
        lab.wait(timeout)
    except BaseException:
        lab.stop()
        raise
    lab.write_inventory()
    lab.write_state()
    return lab


# --------------------------------------------------------------------------- CLI

def _state(lab_dir, run="run", tool="lab.py"):
    """The state ``up`` wrote for the lab running under ``lab_dir/run`` (exits when there is none)."""
    path = os.path.join(lab_dir, run, "lab.json")
    if not os.path.exists(path):
        sys.exit("no running lab (%s missing); run `%s up`" % (path, tool))
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="install packages, build mtty.ko and the initramfs")
    up = sub.add_parser("up", help="build and boot all VMs in the background; writes run/inventory.yml")
    up.add_argument("--timeout", type=float, default=BOOT_TIMEOUT)
    sub.add_parser("down", help="stop the VMs `up` started")
    sh = sub.add_parser("ssh", help="ssh into a running VM")
    sh.add_argument("host")
    sh.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)

    if args.cmd == "build":
        b = build()
        print(json.dumps(b.__dict__, indent=1))
    elif args.cmd == "up":
        b = build()
        run_dir = os.path.join(LAB_DIR, "run")
        if os.path.exists(os.path.join(run_dir, "lab.json")):
            for h in _state(LAB_DIR)["hosts"].values():
                if h["pid"] and os.path.exists("/proc/%d" % h["pid"]):
                    sys.exit("a lab from `lab.py up` is still running (pid %d); `lab.py down` first" % h["pid"])
        os.makedirs(run_dir, exist_ok=True)
        lab = boot(b, run_dir, timeout=args.timeout)
        print("inventory: %s" % lab.inventory)
        print("ANSIBLE_COLLECTIONS_PATH=%s .venv/bin/ansible -i %s all -m ansible.builtin.ping"
              % (os.path.relpath(COLLECTIONS, REPO), os.path.relpath(lab.inventory, REPO)))
    elif args.cmd == "down":
        for name, h in _state(LAB_DIR)["hosts"].items():
            try:
                with open(os.path.join(LAB_DIR, "run", name, "qemu.pid")) as f:
                    pid = int(f.read().strip())
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
                if pid != h["pid"] or b"qemu-system" not in cmdline:
                    continue  # not the process `up` started
                os.kill(pid, signal.SIGTERM)
                print("stopped %s (pid %d)" % (name, pid))
            except (OSError, ValueError):
                pass
    elif args.cmd == "ssh":
        st = _state(LAB_DIR)
        cmd = ssh_base(st["key"], st["hosts"][args.host]["port"])
        command = [c for c in args.command if c != "--"]
        os.execvp("ssh", cmd + command)


if __name__ == "__main__":
    main()
