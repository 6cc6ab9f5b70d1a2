# Copyright: (c) 2026, vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Migration lab: Debian 6.12 kernels running libvirt 11.3 and QEMU 10 with real VMs.

Four qemu guests (``-accel tcg``) boot Debian's 6.12 kernel from
bookworm-backports and load the 6.12 ``mtty`` sample patched so that its
``migration_version`` attribute and its migration stream agree
(``mtty-612-migration.patch``). Each guest runs ``libvirtd`` from this
machine's root (shared read-only over 9p, writable state on tmpfs) and owns
libvirt domains whose ``<hostdev type='mdev'>`` are mtty instances. VMs
live-migrate between guests with ``virsh migrate --live``: the migration
stream goes from the source guest to ``10.0.2.2`` (slirp's alias for this
machine's loopback) and into the target guest through a ``hostfwd`` bound
to ``127.0.0.1``; nothing leaves this machine's loopback.

    python3 tests/kernel/lab612.py build     # backports packages, mtty.ko, initramfs
    python3 tests/kernel/lab612.py up        # build, boot, start libvirt and the VMs
    python3 tests/kernel/lab612.py virsh mig-a -- list --all
    python3 tests/kernel/lab612.py down

The pytest module ``test_migration_lab.py`` drives it (marker ``kernel``).
"""

import json
import os
import re
import shlex
import struct
import subprocess
import sys
import threading
import time
import uuid as _uuid
from dataclasses import dataclass

if __package__ in (None, ""):      # run as a script: make ``tests.kernel`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.kernel import lab as base  # noqa: E402  pylint: disable=wrong-import-position

HERE = base.HERE
REPO = base.REPO
LAB_DIR = base.LAB_DIR
KV = os.environ.get("KERNEL_LAB612_KV", "6.12.95+deb12-amd64")
PATCH = os.path.join(HERE, "mtty-612-migration.patch")
SOURCE_TARBALL = "/usr/src/linux-source-6.12.tar.xz"
MTTY_MEMBER = "linux-source-6.12/samples/vfio-mdev/mtty.c"
VM_MEMORY = os.environ.get("KERNEL_LAB612_MEMORY", "1536")
LIBVIRT_TIMEOUT = float(os.environ.get("KERNEL_LAB612_LIBVIRT_TIMEOUT", "600"))

BACKPORTS = "bookworm-backports"
BACKPORTS_SOURCES = "/etc/apt/sources.list.d/bookworm-backports.sources"
BACKPORTS_SOURCES_TEXT = """\
# Written by vfio.migration tests/kernel/lab612.py: kernel 6.12, QEMU 10 and
# libvirt 11.3 for the migration lab (only packages named /bookworm-backports).
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# (package, lowest acceptable version or None); anything missing or older is
# installed with ``-t bookworm-backports`` (naming package/bookworm-backports is
# not enough: apt would take their new dependencies from bookworm and give up).
# Held during that install: with -t, apt moves the kernel meta packages to 6.12
# too, and the 6.1 lab boots the kernel linux-image-amd64 depends on.
KEEP_FROM_BACKPORTS = ("linux-image-amd64", "linux-headers-amd64", "linux-libc-dev", "linux-perf")
BACKPORTS_PACKAGES = (
    ("linux-image-%s" % KV, None),
    ("linux-headers-%s" % KV, None),
    ("linux-source-6.12", None),
    ("qemu-system-x86", "1:10.0"),
    ("libvirt-daemon", "11.3"),
    ("libvirt-daemon-driver-qemu", "11.3"),
    ("libvirt-clients", "11.3"),
)

MIG_PORT_SPAN = 2   # ports per guest for incoming migrations (libvirt wants a range)

log = base.log


def _uuid_for(*parts):
    return str(_uuid.uuid5(_uuid.NAMESPACE_URL, "vfio-migration-lab/" + "/".join(parts)))


# ------------------------------------------------------------------- the lab's hosts and VMs

@dataclass(frozen=True)
class Domain:
    """A libvirt domain of the lab: its mtty instances and whether it runs."""
    name: str
    host: str
    mdevs: tuple        # uuids (created at boot by the guest's /init)
    running: bool = True
    note: str = ""


U = {key: _uuid_for("lab", key) for key in ("a1-1", "a1-2", "a2", "a-free", "b1", "b-free", "c1", "d1")}

MIG_VMS = (
    base.VM("mig-a", 1, "mtty-1.2",
            ((U["a1-1"], "mtty-1"), (U["a1-2"], "mtty-2"), (U["a2"], "mtty-2"), (U["a-free"], "mtty-1")),
            "accepts mtty-1.0 .. 1.2: refuses mig-b's 1.3"),
    base.VM("mig-b", 1, "mtty-1.3", ((U["b1"], "mtty-2"), (U["b-free"], "mtty-1")),
            "accepts mig-a's 1.2 (asymmetric with mig-a); one free pre-created mtty-1"),
    base.VM("mig-c", 1, "mtty-2.0", ((U["c1"], "mtty-2"),),
            "other major: refuses and is refused by mig-a and mig-b"),
    base.VM("mig-d", 0, None, ((U["d1"], "mtty-1"),),
            "no migration_version and no VFIO migration support"),
)

DOMAINS = (
    Domain("vm-a1", "mig-a", (U["a1-1"], U["a1-2"]), True, "two instances (mtty-1, mtty-2)"),
    Domain("vm-a2", "mig-a", (U["a2"],), False, "shut off: defined, not running"),
    Domain("vm-b1", "mig-b", (U["b1"],), True),
    Domain("vm-c1", "mig-c", (U["c1"],), True),
    Domain("vm-d1", "mig-d", (U["d1"],), True, "its host cannot migrate VFIO devices"),
)
# created at boot, owned by no VM: mig-a's is not demand when mig-a is drained; mig-b's is
# the one free pre-created instance of the type vm-a1 needs on the only target that takes it
# (a drain must use it, under its own UUID, rather than create another)
FREE_INSTANCES = {U["a-free"]: "mig-a", U["b-free"]: "mig-b"}


def halt_image(lab_dir):
    """The lab VMs' kernel: a multiboot image whose whole program is ``cli; hlt``.

    A VM without anything to boot keeps SeaBIOS busy (half a guest CPU under
    nested TCG, for each VM); this one halts for good after the BIOS, so an
    idle lab VM costs nothing and its vCPU state still migrates. Multiboot
    header with the address fields (flag 16): loaded at 1 MiB, entry right
    after the 32-byte header.
    """
    load = 0x100000
    magic, flags = 0x1BADB002, 0x00010000
    header = struct.pack("<8I", magic, flags, (-(magic + flags)) & 0xFFFFFFFF,
                         load, load, 0, 0, load + 32)
    code = bytes((0xFA, 0xF4, 0xEB, 0xFD))          # cli; hlt; jmp back to hlt
    path = os.path.join(lab_dir, "halt-vm.mb")
    if not os.path.exists(path) or open(path, "rb").read() != header + code:
        with open(path + ".tmp", "wb") as f:
            f.write(header + code)
        os.replace(path + ".tmp", path)
    return path


def domain_xml(name, mdevs, kernel, migratable=True, dom_uuid=None):
    """A tiny TCG domain (no disk; ``kernel`` halts) owning the mdev instances ``mdevs``.

    The QEMU properties the issue found necessary go through libvirt's
    ``qemu:override`` on each hostdev: ``x-device-dirty-page-tracking=off``
    (mtty has no dirty tracking; QEMU would refuse at ram_save_setup) and
    ``enable-migration=on``. A host whose driver offers no VFIO migration
    cannot start a device with ``enable-migration=on``; its VMs leave the
    property at QEMU's default (auto: a migration blocker).
    """
    hostdevs, overrides = [], []
    for i, uuid in enumerate(mdevs):
        alias = "ua-mtty%d" % i
        hostdevs.append(
            "    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>\n"
            "      <source><address uuid='%s'/></source>\n"
            "      <alias name='%s'/>\n"
            "    </hostdev>\n" % (uuid, alias))
        props = "        <qemu:property name='x-device-dirty-page-tracking' type='string' value='off'/>\n"
        if migratable:
            props += "        <qemu:property name='enable-migration' type='string' value='on'/>\n"
        overrides.append("    <qemu:device alias='%s'>\n      <qemu:frontend>\n%s"
                         "      </qemu:frontend>\n    </qemu:device>\n" % (alias, props))
    fields = (name, dom_uuid or _uuid_for("domain", name), kernel, "".join(hostdevs), "".join(overrides))
    return (
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
        "  <name>%s</name>\n"
        "  <uuid>%s</uuid>\n"
        "  <memory unit='MiB'>16</memory>\n"
        "  <vcpu>1</vcpu>\n"
        "  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel></os>\n"
        "  <features><tcg><tb-cache unit='MiB'>16</tb-cache></tcg></features>\n"
        "  <on_reboot>destroy</on_reboot>\n"
        "  <devices>\n"
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
        "    <controller type='usb' model='none'/>\n"
        "%s"
        "    <memballoon model='none'/>\n"
        "  </devices>\n"
        "  <qemu:override>\n%s  </qemu:override>\n"
        "</domain>\n" % fields)


# ------------------------------------------------------------------- build

def _installed_version(pkg):
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or "install ok installed" not in proc.stdout:
        return None
    return proc.stdout.split("\t", 1)[1]


def _at_least(version, minimum):
    return subprocess.run(["dpkg", "--compare-versions", version, "ge", minimum], check=False).returncode == 0


def _backports_listed():
    paths = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        paths += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith((".list", ".sources"))]
    for p in paths:
        try:
            with open(p) as f:
                for line in f:
                    if BACKPORTS in line and not line.lstrip().startswith("#"):
                        return True
        except OSError:
            pass
    return False


def ensure_backports():
    """Kernel 6.12, QEMU 10 and libvirt 11.3 from bookworm-backports; returns what was installed."""
    missing = []
    for pkg, minimum in BACKPORTS_PACKAGES:
        have = _installed_version(pkg)
        if have is None or (minimum and not _at_least(have, minimum)):
            missing.append(pkg)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise RuntimeError("missing %s from %s; install them as root" % (" ".join(missing), BACKPORTS))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _backports_listed():
        log("adding %s (%s)" % (BACKPORTS, BACKPORTS_SOURCES))
        with open(BACKPORTS_SOURCES, "w") as f:
            f.write(BACKPORTS_SOURCES_TEXT)
    base.run(["apt-get", "update", "-qq"], env=env)
    held = subprocess.run(["apt-mark", "showhold"], capture_output=True, text=True, check=True).stdout.split()
    hold = [p for p in KEEP_FROM_BACKPORTS if _installed_version(p) and p not in held]
    log("installing from %s: %s (holding %s)" % (BACKPORTS, " ".join(missing), " ".join(hold) or "nothing"))
    if hold:
        base.run(["apt-mark", "hold"] + hold, stdout=subprocess.DEVNULL)
    try:
        base.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-t", BACKPORTS] + missing, env=env)
    finally:
        if hold:
            base.run(["apt-mark", "unhold"] + hold, stdout=subprocess.DEVNULL)
    return missing


def build(lab_dir=LAB_DIR, install=True):
    """Packages, the patched 6.12 mtty.ko, the initramfs and the kernel image; cached."""
    t0 = time.monotonic()
    if install:
        base.ensure_packages()
        ensure_backports()
    for path in ("/boot/vmlinuz-%s" % KV, "/lib/modules/%s/modules.dep" % KV, SOURCE_TARBALL):
        if not os.path.exists(path):
            raise RuntimeError("%s is missing (packages of %s)" % (path, BACKPORTS))
    os.makedirs(lab_dir, exist_ok=True)
    with base._Lock(os.path.join(lab_dir, ".build.lock")):  # pylint: disable=protected-access
        pristine = base.pristine_mtty(lab_dir, SOURCE_TARBALL, MTTY_MEMBER, "src-6.12")
        ko = base.build_mtty(lab_dir, KV, PATCH, pristine)
        keys = base.ssh_keys(lab_dir)
        initramfs, modules = base.build_initramfs(lab_dir, KV, ko, keys)
        kernel = base.kernel_image(lab_dir, KV)
        ssh_wrapper = write_ssh_wrapper(lab_dir, keys["client"])
        halt = halt_image(lab_dir)
    base.collections_farm()
    b = base.Build(kv=KV, kernel=kernel, initramfs=initramfs, mtty_ko=ko, modules=modules,
                   keys=dict(keys, wrapper=ssh_wrapper, vm_kernel=halt), lab_dir=lab_dir,
                   seconds=time.monotonic() - t0)
    log("built for %s in %.1f s" % (KV, b.seconds))
    return b


def write_ssh_wrapper(lab_dir, key):
    """The ssh libvirt's qemu+ssh transport runs (``command=``): lab key, no known_hosts, multiplexed."""
    path = os.path.join(lab_dir, "ssh", "lab-ssh")
    mux = os.path.join(lab_dir, "ssh", "mux")
    os.makedirs(mux, exist_ok=True)
    text = ("#!/bin/sh\n# libvirt's ssh for the migration lab (tests/kernel/lab612.py)\n"
            "exec ssh -i %s -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes "
            "-o ControlMaster=auto -o ControlPath=%s/%%C -o ControlPersist=600 \"$@\"\n"
            % (shlex.quote(key), shlex.quote(mux)))
    if not os.path.exists(path) or open(path).read() != text:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
    return path


# ------------------------------------------------------------------- the running lab

LIBVIRT_SETUP = r'''
set -e
for d in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
    mountpoint -q $d || mount -t tmpfs -o mode=0755 tmpfs $d
done
mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu
if ! mountpoint -q /etc/libvirt; then
    mkdir -p /run/lab/etc-libvirt
    cp -a /etc/libvirt/. /run/lab/etc-libvirt/
    mount --bind /run/lab/etc-libvirt /etc/libvirt
fi
cat > /etc/libvirt/qemu.conf <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_port_min = $MIGPORT
migration_port_max = $MIGPORT_MAX
EOF
cat > /etc/libvirt/libvirtd.conf <<EOF
host_uuid = "$HOSTUUID"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
pgrep -x libvirtd >/dev/null || libvirtd -d
'''


class MigrationLab(base.Lab):
    """``base.Lab`` with libvirt in every guest and a forwarded migration port each."""

    with_libvirt = True

    def __init__(self, build_, run_dir):
        super().__init__(build=build_, run_dir=run_dir, memory=VM_MEMORY)
        self.mig_ports = {}

    def start(self, vms=MIG_VMS):
        for vm in vms:
            self.mig_ports[vm.name] = _free_port_pair()
        super().start(vms)

    def qemu_cmd(self, host):
        cmd = super().qemu_cmd(host)
        i = next(i for i, a in enumerate(cmd) if a.startswith("user,id=n0,"))
        p = self.mig_ports[host.name]
        # the same port on both sides: libvirt's target listens on the URI's port
        cmd[i] += ",hostfwd=tcp:127.0.0.1:%d-:%d" % (p, p)
        return cmd

    # ---- libvirt

    def uri(self, name):
        port = self.hosts[name].port
        return ("qemu+ssh://root@127.0.0.1:%d/system?command=%s&no_verify=1&no_tty=1"
                % (port, self.build.keys["wrapper"]))

    def virsh(self, name, *args, check=True, timeout=300, input=None):
        """``virsh -c <guest's libvirtd> ARGS`` run on this machine; the CompletedProcess."""
        cmd = ["virsh", "-q", "-c", self.uri(name)] + list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("virsh %s %s: rc=%s\n%s%s" % (name, " ".join(args), proc.returncode,
                                                               proc.stdout, proc.stderr))
        return proc

    def start_libvirt(self, timeout=LIBVIRT_TIMEOUT):
        """libvirtd in every guest (tmpfs state, lab qemu.conf), until ``virsh version`` answers."""
        t0 = time.monotonic()
        for name in self.hosts:
            p = self.mig_ports[name]
            env = "MIGPORT=%d MIGPORT_MAX=%d HOSTUUID=%s" % (p, p + MIG_PORT_SPAN - 1, _uuid_for("host", name))
            self.ssh(name, "%s sh -s" % env, input=LIBVIRT_SETUP)
        errors = {}

        def wait(name):
            while True:
                # the first answer waits for libvirtd's QEMU capability probe: on a loaded
                # machine one attempt can outlast its 120 s; only the overall timeout counts
                try:
                    proc = self.virsh(name, "version", check=False, timeout=120)
                    said = proc.stdout + proc.stderr
                    if proc.returncode == 0 and "QEMU" in proc.stdout:
                        return
                except subprocess.TimeoutExpired:
                    said = "virsh version: no answer within 120 s"
                if time.monotonic() - t0 > timeout:
                    errors[name] = said
                    return
                time.sleep(2)

        _parallel(wait, self.hosts)
        if errors:
            raise RuntimeError("libvirtd did not answer: %s" % errors)
        log("libvirtd answers in all %d guests after %.1f s" % (len(self.hosts), time.monotonic() - t0))
        return time.monotonic() - t0

    def define_domains(self, domains=DOMAINS):
        """Define every lab domain on its host and start the running ones."""
        def one(name):
            for d in domains:
                if d.host != name:
                    continue
                xml = self.domain_xml(d.name, d.mdevs, name)
                self.virsh(name, "define", "/dev/stdin", input=xml)
                if d.running:
                    self.virsh(name, "start", d.name)
        _parallel(one, self.hosts)

    def domain_xml(self, dom, mdevs, host):
        """A lab domain for ``host``: migratable unless its driver offers no migration."""
        return domain_xml(dom, mdevs, self.build.keys["vm_kernel"], migratable=self.vm(host).migration == 1)

    # ---- mdev instances

    def mdev_create(self, name, uuid, type_id, parent="mtty"):
        self.ssh(name, "echo %s > /sys/class/mdev_bus/%s/mdev_supported_types/%s/create" % (uuid, parent, type_id))

    def mdev_remove(self, name, uuid):
        self.ssh(name, "d=/sys/bus/mdev/devices/%s; if [ -e $d ]; then echo 1 > $d/remove; fi" % uuid)

    def mdev_list(self, name):
        out = self.ssh(name, "ls /sys/bus/mdev/devices").stdout
        return sorted(out.split())

    def mdev_where(self, name):
        """``{uuid: (parent, type)}`` of every instance on the guest, as sysfs links them."""
        out = self.ssh(name, 'for d in /sys/bus/mdev/devices/*; do [ -e "$d" ] || continue; '
                             'r=$(readlink -f "$d"); t=$(readlink -f "$d/mdev_type"); '
                             'echo "${d##*/} $(basename "$(dirname "$r")") ${t##*/}"; done').stdout
        return {u: (p, t) for u, p, t in (line.split() for line in out.splitlines() if line.strip())}

    def available(self, name, parent="mtty"):
        """``{type: available_instances}`` the parent publishes on the guest now."""
        out = self.ssh(name, "cd /sys/class/mdev_bus/%s/mdev_supported_types && "
                             "for t in *; do echo $t $(cat $t/available_instances); done" % parent).stdout
        return {t: int(n) for t, n in (line.split() for line in out.splitlines() if line.strip())}

    def qemu_mdevs(self, name, dom):
        """The mdev UUIDs the running QEMU of ``dom`` opened (``sysfsdev=`` on its command line)."""
        out = self.ssh(name, "tr '\\0' ' ' < /proc/$(cat /run/libvirt/qemu/%s.pid)/cmdline" % dom).stdout
        return sorted(set(re.findall(r"/sys/bus/mdev/devices/([0-9a-f-]{36})", out)))

    def write_state(self):
        path = super().write_state()
        with open(path) as f:
            state = json.load(f)
        state["migration_ports"] = self.mig_ports
        state["uris"] = {n: self.uri(n) for n in self.hosts}
        with open(path, "w") as f:
            json.dump(state, f, indent=1)
        return path


def _free_port_pair():
    while True:
        p = base.free_port()
        if p + 1 < 65536 and _port_free(p + 1):
            return p


def _port_free(port):
    import socket  # pylint: disable=import-outside-toplevel
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _parallel(fn, items):
    errors = []

    def call(item):
        try:
            fn(item)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append((item, exc))

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0][1]


def boot(b, run_dir, vms=MIG_VMS, timeout=base.BOOT_TIMEOUT):
    """Boot the guests, start libvirtd in each and the lab's domains; returns the MigrationLab."""
    lab = MigrationLab(b, run_dir)
    lab.start(vms)
    try:
        lab.wait(timeout)
        lab.timings["boot (all guests answer ssh)"] = lab.boot_seconds
        lab.timings["libvirtd up in every guest"] = lab.start_libvirt()
        t0 = time.monotonic()
        lab.define_domains()
        lab.timings["lab VMs defined and started"] = time.monotonic() - t0
    except BaseException:
        lab.stop()
        raise
    lab.write_inventory()
    lab.write_state()
    return lab


def attach(run_dir=None):
    """A ``MigrationLab`` for the guests ``up`` left running (to try a test's steps by hand)."""
    run_dir = run_dir or os.path.join(LAB_DIR, "run612")
    st = base._state(os.path.dirname(run_dir), os.path.basename(run_dir), "lab612.py")  # pylint: disable=protected-access
    lab = MigrationLab(build(install=False), run_dir)
    by_name = {vm.name: vm for vm in MIG_VMS}
    for name, h in st["hosts"].items():
        lab.hosts[name] = base.Host(vm=by_name[name], port=h["port"], run_dir=os.path.join(run_dir, name))
    lab.mig_ports = dict(st["migration_ports"])
    lab.inventory = st["inventory"]
    return lab


# ------------------------------------------------------------------- CLI

def _state():
    return base._state(LAB_DIR, "run612", "lab612.py")


def main(argv=None):
    import argparse  # pylint: disable=import-outside-toplevel
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("packages", help="install the Debian and bookworm-backports packages the lab needs")
    sub.add_parser("build", help="install packages, build mtty.ko and the initramfs")
    sub.add_parser("up", help="build, boot, start libvirt and the lab VMs; writes run612/inventory.yml")
    sub.add_parser("down", help="stop the guests `up` started")
    for name in ("ssh", "virsh"):
        p = sub.add_parser(name, help="%s into a running guest" % name)
        p.add_argument("host")
        p.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    run_dir = os.path.join(LAB_DIR, "run612")
    if args.cmd == "packages":
        base.ensure_packages()
        print("installed: %s" % (" ".join(ensure_backports()) or "nothing, all present"))
    elif args.cmd == "build":
        print(json.dumps(build().__dict__, indent=1))
    elif args.cmd == "up":
        b = build()
        os.makedirs(run_dir, exist_ok=True)
        lab = boot(b, run_dir)
        print("inventory: %s" % lab.inventory)
    elif args.cmd == "down":
        for name, h in _state()["hosts"].items():
            try:
                with open(os.path.join(run_dir, name, "qemu.pid")) as f:
                    pid = int(f.read().strip())
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if pid != h["pid"] or b"qemu-system" not in f.read():
                        continue
                os.kill(pid, 15)
                print("stopped %s (pid %d)" % (name, pid))
            except (OSError, ValueError):
                pass
    else:
        st = _state()
        command = [c for c in args.command if c != "--"]
        if args.cmd == "ssh":
            os.execvp("ssh", base.ssh_base(st["key"], st["hosts"][args.host]["port"]) + command)
        os.execvp("virsh", ["virsh", "-c", st["uris"][args.host]] + command)


if __name__ == "__main__":
    main()
