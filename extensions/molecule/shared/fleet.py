"""The Molecule scenarios' emulated hypervisors: build their sysfs trees, serve them, stop.

    python extensions/molecule/shared/fleet.py up DIR     # build DIR/src, mount DIR/mnt (background)
    python extensions/molecule/shared/fleet.py down DIR   # unmount, stop the emulator

``up`` prints ``mounted`` when it mounted and ``already mounted`` otherwise;
``down`` prints ``unmounted`` or ``not mounted`` (for ``changed_when``).
The emulator's output goes to DIR/emulator.log, its writes to DIR/writes.log.
"""

import os
import signal
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)

from tests.emulator.mount import EmulatorMount, is_mounted, unmount  # noqa: E402
from tests.fixtures import sysfs_builder as B  # noqa: E402

TYPES = {k: B.NVIDIA_TYPES[k] for k in ("257", "258")}
A1_VGPUS = ("6a0c5e1e-0001-4000-8000-00000000a101", "6a0c5e1e-0002-4000-8000-00000000a102")


def build(src):
    hosts = {
        "gpu-a1": lambda t: B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, types=TYPES,
                                          instances=[("257", u) for u in A1_VGPUS]),
        "gpu-a2": lambda t: (B.nvidia_vgpu(t, "0000:3b:00.0", minor=4, types=TYPES),
                             B.nvidia_vgpu(t, "0000:d8:00.0", minor=4, types=TYPES, numa_node=1)),
        "gpu-b1": lambda t: B.nvidia_vgpu(t, "0000:3b:00.0", major=3, minor=0, types=TYPES),
    }
    for name, fn in sorted(hosts.items()):
        tree = B.SysfsTree(os.path.join(src, name))
        fn(tree)
        B.host_stack(tree)
        tree.save()


def up(fleet):
    mnt = os.path.join(fleet, "mnt")
    if is_mounted(mnt):
        print("already mounted")
        return 0
    src = os.path.join(fleet, "src")
    if not os.path.isdir(src):
        build(src)
    log = open(os.path.join(fleet, "emulator.log"), "a")
    try:
        os.setsid()  # the emulator outlives this command and the play that ran it
    except OSError:
        pass
    out, err = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)  # the emulator must not hold the caller's pipes open
    os.dup2(log.fileno(), 2)
    emu = EmulatorMount(src, mnt, os.path.join(fleet, "writes.log"), timeout=30)
    try:
        emu.start()
    except RuntimeError as exc:
        os.write(err, ("%s (see %s)\n" % (exc, log.name)).encode())
        return 1
    with open(os.path.join(fleet, "emulator.pid"), "w") as f:
        f.write("%d\n" % emu.proc.pid)
    os.write(out, b"mounted\n")
    return 0


def down(fleet):
    mnt = os.path.join(fleet, "mnt")
    pidfile = os.path.join(fleet, "emulator.pid")
    was = is_mounted(mnt)
    if was and not unmount(mnt):
        unmount(mnt, lazy=True)
    try:
        with open(pidfile) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        pid = None
    if pid:
        deadline = time.monotonic() + 10
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists("/proc/%d" % pid):
            os.kill(pid, signal.SIGKILL)
        os.unlink(pidfile)
    print("unmounted" if was else "not mounted")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("up", "down"):
        sys.exit(__doc__)
    os.makedirs(sys.argv[2], exist_ok=True)
    sys.exit({"up": up, "down": down}[sys.argv[1]](os.path.abspath(sys.argv[2])))
