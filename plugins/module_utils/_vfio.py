# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask the kernel whether a free VFIO device can migrate at all (the merged uAPI).

The VFIO migration uAPI (Linux 5.18 and later) has no compatibility query, but
it does say whether a device can be migrated: ``VFIO_DEVICE_FEATURE`` with
``GET | MIGRATION`` on an open device returns the flags ``STOP_COPY``, ``P2P``
and ``PRE_COPY``, or fails with ``ENOTTY`` when the driver offers no
migration. QEMU asks the same question when it starts a VM; a device that
answers ``ENOTTY`` makes QEMU block every migration of that VM.

What is opened, in this order, and why it is safe:

1. ``/proc/*/fd`` is read first: a group or device node that any process holds
   open (a VM's QEMU) is never touched; it is reported ``in use``.
2. ``/dev/vfio/vfio`` (a new, empty container) and ``/dev/vfio/<group>``. The
   kernel allows one opener per group, so a group a VM took after step 1 fails
   with ``EBUSY``, which is reported ``in use``, never as an answer.
3. The group is attached to the container (``VFIO_GROUP_SET_CONTAINER``) and
   the container given the type1 IOMMU backend, as every VFIO user must before
   it may open a device; nothing is mapped.
4. ``VFIO_GROUP_GET_DEVICE_FD`` opens the device, the feature is read, and
   every descriptor is closed (which detaches the group and frees the empty
   container).

Opening a device runs its driver's ``open_device``/``close_device``. For the
``mtty`` sample that is nothing but releasing what a VM had set up, so it is
checked by default. For other drivers opening has effects: vfio-pci and its
variant drivers reset the function on open and close; Intel GVT-g activates
and deactivates the vGPU; NVIDIA's vGPU driver starts its per-VM manager;
vfio-ccw enables the subchannel; vfio-ap refuses without a KVM. Those are
checked only when the operator asks for it (``always``). Everything runs in a
child process with a time limit, so a driver that hangs in ``open`` cannot
hang discovery.

Only the Python standard library is used.
"""

import errno
import fcntl
import json
import os
import select
import signal
import struct
import time

# ioctl numbers: _IO(';', 100 + n), no size or direction encoded (linux/vfio.h)
_VFIO_TYPE = ord(";")
VFIO_SET_IOMMU = (_VFIO_TYPE << 8) | 102
VFIO_GROUP_GET_STATUS = (_VFIO_TYPE << 8) | 103
VFIO_GROUP_SET_CONTAINER = (_VFIO_TYPE << 8) | 104
VFIO_GROUP_GET_DEVICE_FD = (_VFIO_TYPE << 8) | 106
VFIO_DEVICE_FEATURE = (_VFIO_TYPE << 8) | 117

VFIO_TYPE1_IOMMU = 1
VFIO_TYPE1V2_IOMMU = 3
VFIO_GROUP_FLAGS_VIABLE = 1
VFIO_DEVICE_FEATURE_GET = 1 << 16
VFIO_DEVICE_FEATURE_MIGRATION = 1
MIGRATION_FLAGS = (("STOP_COPY", 1 << 0), ("P2P", 1 << 1), ("PRE_COPY", 1 << 2))

MODES = ("auto", "always", "never")
# mdev drivers whose open_device/close_device have no effect on a free device.
SAFE_TO_OPEN = frozenset(("mtty",))
DEFAULT_TIMEOUT = 5.0


def record(checked, migratable=None, flags=None, device=None, errno_value=None, message=None, in_use=False):
    """One capability answer as it appears in the facts."""
    return {"checked": checked, "migratable": migratable, "flags": flags or [], "device": device,
            "errno": errno_value, "errno_name": errno.errorcode.get(errno_value) if errno_value else None,
            "in_use": in_use, "message": message}


def open_vfio_nodes(proc_root="/proc"):
    """Every ``/dev/vfio/...`` node some process holds open, as link targets."""
    held = set()
    try:
        pids = [p for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return held
    for pid in pids:
        fd_dir = os.path.join(proc_root, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("/dev/vfio/"):
                held.add(target)
    return held


def _ioctl_buf(fd, request, data):
    buf = bytearray(data)
    ret = fcntl.ioctl(fd, request, buf, True)
    return ret, buf


def _ask(dev_root, group, name):
    """In the child: open, read the feature, close. Returns a JSON-able dict."""
    fds = []
    try:
        container = os.open(os.path.join(dev_root, "vfio", "vfio"), os.O_RDWR | os.O_CLOEXEC)
        fds.append(container)
        try:
            gfd = os.open(os.path.join(dev_root, "vfio", group), os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return {"in_use": True, "errno": exc.errno, "stage": "open group"}
            raise
        fds.append(gfd)
        status = _ioctl_buf(gfd, VFIO_GROUP_GET_STATUS, struct.pack("=II", 8, 0))[1]
        if not struct.unpack("=II", bytes(status))[1] & VFIO_GROUP_FLAGS_VIABLE:
            return {"errno": errno.EPERM, "stage": "group status",
                    "message": "IOMMU group %s is not viable (a device in it is bound to another driver)" % group}
        fcntl.ioctl(gfd, VFIO_GROUP_SET_CONTAINER, bytearray(struct.pack("=i", container)), True)
        try:
            fcntl.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU)
        except OSError:
            fcntl.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU)
        try:
            dfd = fcntl.ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, bytearray(name.encode("ascii") + b"\0"), True)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return {"in_use": True, "errno": exc.errno, "stage": "open device"}
            raise
        fds.append(dfd)
        try:
            buf = _ioctl_buf(dfd, VFIO_DEVICE_FEATURE,
                             struct.pack("=IIQ", 16, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, 0))[1]
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                return {"migratable": False, "errno": exc.errno, "stage": "feature"}
            raise
        return {"migratable": True, "flags": struct.unpack("=IIQ", bytes(buf))[2]}
    except OSError as exc:
        return {"errno": exc.errno, "stage": "setup", "message": exc.strerror}
    finally:
        for fd in reversed(fds):
            try:
                os.close(fd)
            except OSError:
                pass


def _in_child(func, args, timeout):
    """``func(*args)`` in a forked child with a time limit; its dict, or None on timeout."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(rfd)
            out = json.dumps(func(*args)).encode("utf-8")
            os.write(wfd, out)
        finally:
            os._exit(0)
    os.close(wfd)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                return None
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        return {"errno": errno.EIO, "stage": "child", "message": "the check ended without an answer"}


def ask_device(dev_root, group, name, held=(), timeout=DEFAULT_TIMEOUT):
    """The capability of one device (an mdev uuid or a PCI address) in IOMMU group ``group``."""
    group_node = "/dev/vfio/%s" % group
    if not group or not str(group).isdigit():
        return record(False, device=name, message="the device has no IOMMU group")
    if group_node in held:
        return record(False, device=name, in_use=True, message="in use: %s is held open by a process" % group_node)
    if not os.path.exists(os.path.join(dev_root, "vfio", str(group))):
        return record(False, device=name, errno_value=errno.ENOENT,
                      message="%s does not exist (vfio not loaded?)" % group_node)
    got = _in_child(_ask, (dev_root, str(group), name), timeout)
    if got is None:
        return record(False, device=name, errno_value=errno.ETIMEDOUT,
                      message="no answer within %g s" % timeout)
    if got.get("in_use"):
        return record(False, device=name, in_use=True, errno_value=got.get("errno"),
                      message="in use: the kernel refused to %s (EBUSY)" % got.get("stage"))
    if got.get("migratable") is True:
        flags = [n for n, bit in MIGRATION_FLAGS if got["flags"] & bit]
        return record(True, True, flags, device=name,
                      message="VFIO migration supported: %s" % ", ".join(flags or ["no flags"]))
    if got.get("migratable") is False:
        return record(True, False, device=name, errno_value=got.get("errno"),
                      message="the driver offers no VFIO migration (VFIO_DEVICE_FEATURE_MIGRATION: %s)"
                      % errno.errorcode.get(got.get("errno"), got.get("errno")))
    return record(False, device=name, errno_value=got.get("errno"),
                  message="could not ask (%s: %s)" % (got.get("stage"), got.get("message")
                                                      or errno.errorcode.get(got.get("errno"), "error")))


def may_open(mode, driver):
    """Whether ``mode`` allows opening a free device bound to ``driver``."""
    if mode == "never":
        return False
    return mode == "always" or driver in SAFE_TO_OPEN


def type_capability(candidates, mode, dev_root="/dev", held=(), timeout=DEFAULT_TIMEOUT):
    """The capability of one mdev type from its instances ``[(uuid, group, driver)]``.

    The first instance that gives an answer decides; instances in use are skipped.
    """
    if mode == "never":
        return record(False, message="not checked (check_vfio_capability=never)")
    if not candidates:
        return record(False, message="no instance of this type to ask")
    tried = []
    for uuid, group, driver in candidates:
        if not may_open(mode, driver):
            tried.append(record(False, device=uuid, message="not opened: driver %s has effects on open "
                                                            "(check_vfio_capability=always allows it)" % driver))
            continue
        got = ask_device(dev_root, group, uuid, held, timeout)
        if got["checked"]:
            return got
        tried.append(got)
    last = tried[-1]
    if all(t["in_use"] for t in tried):
        last = dict(last, message="no free instance of this type to ask (every instance is in use)")
    return last
