"""Sysfs trees for the reliability suite: hostile content, symlink tricks, faulty drivers.

Every builder writes host trees in the layout of ``tests/fixtures/sysfs_builder.py``
(``HOST/sys`` + ``HOST/rules.json``), served by the FUSE emulator
(``tests/emulator``) so that reads and writes fail with real errno values.
"""

import os

from tests.fixtures import sysfs_builder as B

GVT_4 = "00028086-193b-i915-GVTg_V5_4"
NV = "000210de-nvidia-257-%s"
DEV_UUID = "0d0e0f10-1112-4314-8516-171819202122"
FOREIGN_UUID = "0d0e0f10-1112-4314-8516-0000000000f0"
# A range-rule version 4095 bytes long: with the newline, exactly one sysfs page.
LONG_PREFIX = "L" * (4095 - len("-2.3"))
LONG_SELF = LONG_PREFIX + "-2.3"
# The only names migration_probe may ever write to.
ALLOWED_ATTRIBUTES = ("migration_version", "version")


# -- bad input: one target with symlink tricks ------------------------------------

def probe_target(src):
    """``src/target``: the host probed with bad input; ``src/other``: a neighbour it must never touch.

    target offers i915-GVTg_V5_4 (exact rule), nvidia-257 on two parents
    (range rule 2.3 and 2.1, one instance), ``long-1`` whose version is 4095
    bytes, and links that lead elsewhere: a type attribute linked to the
    parent's ``remove``, one linked out of the tree, a parent alias
    (``class/mdev_bus/sneaky``) and an mdev device that both lead into the
    neighbour host, and a parent that is a symlink loop.
    """
    other = B.SysfsTree(os.path.join(src, "other"))
    odev = B.intel_gvtg(other, types={"4": B.GVT_TYPES["4"]})
    other.mdev_instance(odev, "i915-GVTg_V5_4", FOREIGN_UUID,
                        migration={"rule": "exact", "self": GVT_4})
    other.save()

    t = B.SysfsTree(os.path.join(src, "target"))
    B.intel_gvtg(t, types={"4": B.GVT_TYPES["4"]})
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, types={"257": B.NVIDIA_TYPES["257"]},
                  instances=[("257", DEV_UUID)])
    B.nvidia_vgpu(t, "0000:5e:00.0", minor=1, types={"257": B.NVIDIA_TYPES["257"]})
    gpu = B.nvidia_vgpu(t, "0000:af:00.0", types={"258": B.NVIDIA_TYPES["258"]})
    t.mdev_type(gpu, "long-1", "vfio-pci", 1, migration={"rule": "range", "self": LONG_SELF})
    evil = t.mdev_type(gpu, "odd-evil", "vfio-pci", 1)
    t.link(evil + "/migration_version", gpu + "/remove")
    outside = t.mdev_type(gpu, "odd-outside", "vfio-pci", 1)
    os.symlink("/tmp/vfio-migration-outside/migration_version", t.abs(outside + "/migration_version"))
    # links out of this host's sys/ into the neighbour's (both served by the same emulator)
    os.symlink("../../../../other/sys/devices/pci0000:00/0000:00:02.0", t.abs("class/mdev_bus/sneaky"))
    os.symlink("../../../../../other/sys/devices/pci0000:00/0000:00:02.0/" + FOREIGN_UUID,
               t.abs("bus/mdev/devices/" + FOREIGN_UUID))
    os.symlink("loop", t.abs("class/mdev_bus/loop"))
    return t.save()


# -- hostile sysfs content ----------------------------------------------------------

SCRIPT = '<script>alert("x")</script>'
IMG = "<img src=x onerror=alert(1)>"
SVG = "<svg onload=alert(2)>"
ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"
JINJA = "{{ lookup('pipe', 'touch %s') }}"
MIB = 1024 * 1024
UNPLUGGED = "0000:5e:00.0"
GONE = "0000:d8:00.0"
GONE_UUID = "0d0e0f10-1112-4314-8516-00000000dead"
LOOP_UUID = "0d0e0f10-1112-4314-8516-0000000100f0"
HOSTILE_VERSION = "0002" + SCRIPT  # printable ASCII: a valid, hostile version


def hostile_host(hostdir, marker):
    """A host whose sysfs holds every kind of hostile content discovery may meet.

    * GVT-g types with HTML/script and terminal escapes in ``name`` and
      ``description``, a 1 MiB description, an unreadable (EACCES) description,
      an ``available_instances`` that fails with EIO, a 1 MiB version;
    * a parent and types whose *names* are HTML and terminal escapes, one
      version that is HTML (valid printable ASCII);
    * nvidia-257 whose version is a Jinja expression that would create
      ``marker`` if anything templated it;
    * a parent unplugged mid-scan (listed, every read answers ENODEV), a parent
      and an mdev device whose links lead nowhere (gone before the read), and
      symlink loops.
    """
    t = B.SysfsTree(hostdir)
    gvt = B.intel_gvtg(t, types={k: B.GVT_TYPES[k] for k in ("1", "2", "4", "8")})
    types = gvt + "/mdev_supported_types/"
    t.attr(types + "i915-GVTg_V5_4/name", SCRIPT)
    t.attr(types + "i915-GVTg_V5_4/description", "%s\n%s\nweight: 4" % (ESC + "red", IMG))
    t.attr(types + "i915-GVTg_V5_2/description", "A" * MIB)
    t.rules[types + "i915-GVTg_V5_1/description"] = {"rule": "read_error", "errno": "EACCES"}
    t.rules[types + "i915-GVTg_V5_1/available_instances"] = {"rule": "read_error", "errno": "EIO"}
    t.write(types + "i915-GVTg_V5_8/version", "0" * MIB + "\n", 0o644)
    del t.rules[types + "i915-GVTg_V5_8/version"]

    evil = "devices/virtual/evil/evil"
    os.makedirs(t.abs(evil), exist_ok=True)
    t.mdev_parent(SVG, evil)
    t.mdev_type(evil, IMG, "vfio-pci", 1, name=SCRIPT, migration={"rule": "exact", "self": HOSTILE_VERSION})
    t.mdev_type(evil, "esc" + ESC, "vfio-pci", 1, name=ESC, description=ESC)

    B.nvidia_vgpu(t, "0000:3b:00.0", types={"257": B.NVIDIA_TYPES["257"]})
    t.rules["devices/pci0000:3b/0000:3b:00.0/mdev_supported_types/nvidia-257/migration_version"] = {
        "rule": "exact", "self": JINJA % marker}

    gone = B.nvidia_vgpu(t, UNPLUGGED, types={"257": B.NVIDIA_TYPES["257"]})
    for rel in ("vendor", "device", "numa_node", "mdev_supported_types/nvidia-257/name",
                "mdev_supported_types/nvidia-257/description",
                "mdev_supported_types/nvidia-257/available_instances",
                "mdev_supported_types/nvidia-257/migration_version"):
        t.rules["%s/%s" % (gone, rel)] = {"rule": "read_error", "errno": "ENODEV"}

    os.symlink("../../devices/pci0000:d8/" + GONE, t.abs("class/mdev_bus/" + GONE))
    os.symlink("../../../devices/pci0000:d8/%s/%s" % (GONE, GONE_UUID), t.abs("bus/mdev/devices/" + GONE_UUID))
    os.symlink("loop", t.abs("class/mdev_bus/loop"))
    os.symlink(LOOP_UUID, t.abs("bus/mdev/devices/" + LOOP_UUID))
    return t.save()


def hostile_peer(hostdir):
    """A well-behaved host offering the hostile host's ordinary types (nvidia-257 at 2.4, GVT-g)."""
    t = B.SysfsTree(hostdir)
    B.intel_gvtg(t)
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=4, types={"257": B.NVIDIA_TYPES["257"]})
    return t.save()


# -- faults across a fleet ---------------------------------------------------------------

SRC_UUIDS = ("6a0c5e1e-0001-4000-8000-0000000000a1", "6a0c5e1e-0002-4000-8000-0000000000a2")


def _nv(t, minor=3, major=2, wrap=None, instances=()):
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=minor, major=major, types={"257": B.NVIDIA_TYPES["257"]},
                  wrap=wrap, instances=instances)


FAULT_HOSTS = {
    # the source: two nvidia-257 vGPUs at 2.3
    "src": lambda t: _nv(t, instances=[("257", u) for u in SRC_UUIDS]),
    # controls: a driver that accepts 2.3 and one that refuses it
    "good": lambda t: _nv(t, minor=4),
    "refuse": lambda t: _nv(t, major=3, minor=0),
    # faults: permission denied, I/O error, a hung driver
    "eacces": lambda t: _nv(t, minor=4, wrap={"rule": "eacces"}),
    "eio": lambda t: _nv(t, minor=4, wrap={"rule": "eio"}),
    "hang": lambda t: _nv(t, minor=4, wrap={"rule": "hang"}),
    # would accept 2.3, but its Python is killed during the probe
    "crash": lambda t: _nv(t, minor=4),
    # a driver that never answers a read of its migration_version: gathering never ends
    "wedged": lambda t: _nv(t, minor=4, wrap={"rule": "slow", "delay": 3600}),
    # would accept 2.3, but its probe never returns (see stuck_python)
    "stuck": lambda t: _nv(t, minor=4),
}
FAULTY = ("eacces", "eio", "hang", "crash", "wedged", "stuck", "offline")
# the task time limits the inventory gives the wedged and the stuck host
WEDGED_FACTS_TIMEOUT = 8
STUCK_PROBE_TIMEOUT = 5


def fault_fleet(src):
    """Build every host of :data:`FAULT_HOSTS` below ``src``."""
    out = {}
    for name, fn in sorted(FAULT_HOSTS.items()):
        t = B.SysfsTree(os.path.join(src, name))
        fn(t)
        B.host_stack(t)
        out[name] = t.save()
    return out


def killed_python(path, python, module="migration_probe"):
    """An interpreter that runs every module except ``module``, which it kills with SIGKILL.

    A host whose Python dies mid-run (OOM killer, reboot) after fact gathering.
    """
    with open(path, "w") as f:
        f.write('#!/bin/sh\ncase "$*" in *AnsiballZ_%s*) kill -KILL $$ ;; esac\nexec %s "$@"\n' % (module, python))
    os.chmod(path, 0o755)
    return path


def stuck_python(path, python, module="migration_probe", seconds=60):
    """An interpreter that runs every module except ``module``, which sleeps ``seconds`` instead.

    A host whose probe never comes back (a driver that never answers a read of the
    target's own version, an interpreter stuck in the kernel) after fact gathering.
    """
    with open(path, "w") as f:
        f.write('#!/bin/sh\ncase "$*" in *AnsiballZ_%s*) exec sleep %d ;; esac\nexec %s "$@"\n'
                % (module, seconds, python))
    os.chmod(path, 0o755)
    return path


UNREACHABLE_VARS = {
    "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_user": "nobody",
    "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
}


# -- a large fleet for the kill test (plain directories, no writes needed) ---------------------

def large_fleet(src, hosts=3, types=24):
    """``hosts`` hosts with ``types`` mtty-like types each (no migration attribute, no probe writes).

    Every type has an instance, so every row meets every target in the report:
    the reports grow to hundreds of kilobytes while the run stays short.
    """
    out = {}
    for h in range(hosts):
        t = B.SysfsTree(os.path.join(src, "big-%02d" % h))
        dev = "devices/virtual/mtty/mtty"
        os.makedirs(t.abs(dev), exist_ok=True)
        t.mdev_parent("mtty", dev)
        for i in range(types):
            t.mdev_type(dev, "mtty-%03d" % i, "vfio-pci", 4, name="Serial type %d" % i)
            t.mdev_instance(dev, "mtty-%03d" % i, "6a0c5e1e-%04x-4000-8000-%012x" % (h, i))
        B.host_stack(t)
        out[t.hostdir] = t.save()
    return out
