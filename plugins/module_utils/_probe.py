# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write-side compatibility check (seeds 000-004).

A target host is handed a batch of checks, one per distinct source
``(mdev type, version)`` class. For each check the source's version is written
to the target's ``migration_version`` (or ``version``) attribute of every
parent offering the type, or of one instance; the write's result is the
verdict. Nothing else is ever written:

* every input is validated first; one bad check refuses the whole batch;
* the attribute's resolved path must stay below ``sysfs_root`` and be named
  ``migration_version`` or ``version``;
* the file system holding it must be sysfs unless the caller allows otherwise;
* the file is opened without ``O_CREAT`` or ``O_TRUNC`` and without following
  a final symlink, so a missing attribute is never created;
* each write runs in a child process with a time limit, so a driver that hangs
  gives an ``error`` verdict instead of a hung play.
"""

import errno
import json
import os
import re
import select
import signal
import time

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.module_utils._sysfs import (
    MIGRATION_ATTRIBUTES, PCI_ADDR_RE, UUID_RE, Sysfs, physical_type,
)
from ansible_collections.vfio.migration.plugins.module_utils._version import version_problem

SYSFS_FSTYPE = "sysfs"
# One sysfs store is at most a page; the version plus the newline `echo` adds must fit.
SYSFS_STORE_MAX = 4096
NAME_MAX = 255
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:+@-]+\Z")  # \Z: `$` would let a trailing newline through


class ProbeInputError(ValueError):
    """A check that must not be acted on; the batch is refused."""


# -- input ------------------------------------------------------------------

def _name_problem(value, what):
    if not isinstance(value, str) or not value:
        return "%s must be a non-empty string" % what
    if len(value) > NAME_MAX:
        return "%s is longer than %d characters" % (what, NAME_MAX)
    if "/" in value or value in (".", "..") or ".." in value or "\x00" in value:
        return "%s %r must not contain '/', '..' or NUL" % (what, value[:80])
    if not _NAME_RE.match(value):
        return "%s %r has characters outside [A-Za-z0-9_.:+@-]" % (what, value[:80])
    return None


def normalize_version(version):
    """Strip the one trailing newline ``cat`` shows; return bytes to validate."""
    if isinstance(version, str) and version.endswith("\n"):
        version = version[:-1]
    return version


def check_problems(check):
    """Why one check must not be written (a list, empty when it may be).

    The controller calls this too, so a class the probe would refuse is left
    out of the batches instead of blanking a whole target's batch.
    """
    if not isinstance(check, dict):
        return ["must be a dict"]
    problems = []
    unknown = set(check) - {"id", "mdev_type", "version", "parent", "device"}
    if unknown:
        problems.append("unknown keys %s" % ", ".join(sorted(unknown)))
    for key in ("id", "mdev_type", "parent"):
        if key != "parent" or check.get(key) is not None:
            p = _name_problem(check.get(key), key)
            if p:
                problems.append(p)
    device = check.get("device")
    if device is not None and not (isinstance(device, str) and (UUID_RE.match(device) or PCI_ADDR_RE.match(device))):
        problems.append("device %r is neither an mdev uuid nor a PCI address" % str(device)[:80])
    version = normalize_version(check.get("version"))
    p = version_problem(version) if isinstance(version, str) else "version must be a string"
    if p:
        problems.append(p)
    return problems


def validate_checks(checks):
    """Validate every check; return normalised copies or raise ProbeInputError.

    Problems of all checks are collected so the caller sees them at once.
    """
    if not isinstance(checks, list):
        raise ProbeInputError("checks must be a list")
    problems, out, seen = [], [], set()
    for i, check in enumerate(checks):
        where = "checks[%d]" % i
        found = check_problems(check)
        problems.extend("%s: %s" % (where, p) for p in found)
        if not isinstance(check, dict):
            continue
        cid = check.get("id")
        if isinstance(cid, str):
            if cid in seen:
                problems.append("%s: duplicate id %r" % (where, cid))
            seen.add(cid)
        out.append({"id": cid, "mdev_type": check.get("mdev_type"), "version": normalize_version(check.get("version")),
                    "parent": check.get("parent"), "device": check.get("device")})
    if problems:
        raise ProbeInputError("refused, nothing written: " + "; ".join(problems))
    return out


# -- where to write -----------------------------------------------------------

def _unescape_mount(path):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mount_fstype(path, mountinfo="/proc/self/mountinfo"):
    """File system type of the mount holding ``path`` (longest matching mount point)."""
    best, fstype = "", None
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        mnt = _unescape_mount(fields[4])
        if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, right.split()[0]
    return fstype


class Target(object):
    """One attribute a check writes to, or why there is none."""

    def __init__(self, check, parent=None, device=None, attribute=None, status=None, message=None):
        self.check, self.parent, self.device = check, parent, device
        self.attribute, self.status, self.message = attribute, status, message
        self.errno = None
        self.target_version = None

    def result(self):
        code = self.errno
        return {
            "id": self.check["id"], "mdev_type": self.check["mdev_type"],
            "parent": self.parent, "device": self.device, "attribute": self.attribute,
            "status": self.status, "errno": code, "errno_name": E.errno_name(code),
            "message": self.message, "target_version": self.target_version,
        }


class Prober(object):
    """Resolves checks to attributes below ``sysfs_root`` and writes them."""

    def __init__(self, sysfs_root="/sys", allow_non_sysfs=False, timeout=10.0, parallel=8,
                 mountinfo="/proc/self/mountinfo"):
        self.fs = Sysfs(sysfs_root)
        self.root = os.path.realpath(self.fs.root)
        self.allow_non_sysfs = allow_non_sysfs
        self.timeout = timeout
        self.parallel = max(1, parallel)
        self.mountinfo = mountinfo
        self._fstype = {}

    def check_root(self):
        """Refuse a root that is not a directory, or not sysfs unless allowed."""
        if not os.path.isdir(self.root):
            raise ProbeInputError("sysfs_root %s is not a directory; nothing written" % self.fs.root)
        fstype = mount_fstype(self.root, self.mountinfo)
        if fstype != SYSFS_FSTYPE and not self.allow_non_sysfs:
            raise ProbeInputError(
                "sysfs_root %s is on a %s file system, not sysfs; nothing written "
                "(set allow_non_sysfs for test trees and emulators)" % (self.fs.root, fstype or "unknown"))

    def _attribute_in(self, dirpath):
        for name in MIGRATION_ATTRIBUTES:
            p = os.path.join(dirpath, name)
            if os.path.lexists(p):
                return p
        return None

    def _safe(self, target):
        """Final gate before a write: name, place and file system."""
        real = os.path.realpath(target.attribute)
        if os.path.basename(real) not in MIGRATION_ATTRIBUTES:
            return "resolves to %s, which is not a migration attribute" % real
        if not real.startswith(self.root.rstrip("/") + "/"):
            return "resolves to %s, outside sysfs_root %s" % (real, self.root)
        if not self.allow_non_sysfs:
            mnt = os.path.dirname(real)
            fstype = self._fstype.get(mnt)
            if fstype is None:
                fstype = self._fstype[mnt] = mount_fstype(real, self.mountinfo)
            if fstype != SYSFS_FSTYPE:
                return "is on a %s file system, not sysfs" % (fstype or "unknown")
        target.attribute = real
        return None

    def _type_targets(self, check):
        """Every parent (or VFIO PCI function) offering the check's type."""
        out = []
        if check["mdev_type"].startswith("pci-"):
            base = self.fs.path("bus", "pci", "devices")
            for bdf in self.fs.listdir(base):
                if check["parent"] not in (None, bdf):
                    continue
                devdir = os.path.join(base, bdf)
                ident = {k: (self.fs.read_text(os.path.join(devdir, k)) or "") for k in ("vendor", "device")}
                if physical_type(ident) == check["mdev_type"] and \
                        "vfio_pci" in (self.fs.link_name(os.path.join(devdir, "driver")) or "").replace("-", "_"):
                    out.append(Target(check, parent=bdf, device=bdf, attribute=self._attribute_in(devdir)))
            return out
        base = self.fs.path("class", "mdev_bus")
        parents = [check["parent"]] if check["parent"] else self.fs.listdir(base)
        for parent in parents:
            typedir = os.path.join(base, parent, "mdev_supported_types", check["mdev_type"])
            if os.path.isdir(typedir):
                out.append(Target(check, parent=parent, attribute=self._attribute_in(typedir)))
        return out

    def _device_target(self, check):
        dev = check["device"]
        if UUID_RE.match(dev):
            devdir = self.fs.path("bus", "mdev", "devices", dev)
            if not os.path.isdir(devdir):
                return Target(check, device=dev, status=E.MISSING_TYPE, message="no mdev device %s on this host" % dev)
            real = os.path.realpath(devdir)
            parent = os.path.basename(os.path.dirname(real))
            dtype = self.fs.link_name(os.path.join(devdir, "mdev_type"))
        else:
            devdir = self.fs.path("bus", "pci", "devices", dev)
            if not os.path.isdir(devdir):
                return Target(check, device=dev, status=E.MISSING_TYPE, message="no PCI function %s on this host" % dev)
            parent = dev
            dtype = physical_type({k: self.fs.read_text(os.path.join(devdir, k)) for k in ("vendor", "device")})
        if dtype != check["mdev_type"]:
            return Target(check, parent=parent, device=dev, status=E.MISSING_TYPE,
                          message="device %s is of type %s, not %s; types must match" % (dev, dtype, check["mdev_type"]))
        if check["parent"] not in (None, parent):
            return Target(check, parent=parent, device=dev, status=E.MISSING_TYPE,
                          message="device %s belongs to parent %s, not %s" % (dev, parent, check["parent"]))
        attr = os.path.join(devdir, "migration_version")
        return Target(check, parent=parent, device=dev, attribute=attr if os.path.lexists(attr) else None)

    def resolve(self, check):
        """Targets for one check; those that can be decided without a write get a status."""
        if check["device"]:
            targets = [self._device_target(check)]
        else:
            targets = self._type_targets(check)
            if not targets:
                where = "parent %s" % check["parent"] if check["parent"] else "any parent"
                return [Target(check, parent=check["parent"], status=E.MISSING_TYPE,
                               message="type %s is not offered by %s on this host" % (check["mdev_type"], where))]
        for t in targets:
            if t.status is not None:
                continue
            if t.attribute is None:
                t.status, t.errno = E.UNSUPPORTED, errno.ENOENT
                t.message = "target has no migration_version or version attribute: it does not support migration"
                continue
            if len(t.check["version"]) + 1 > SYSFS_STORE_MAX:
                # the kernel would refuse or cut the store before the driver sees it: no verdict
                t.status = E.ERROR
                t.message = ("not asked: the %d-byte version plus its newline does not fit one sysfs store "
                             "(%d bytes)" % (len(t.check["version"]), SYSFS_STORE_MAX))
                continue
            problem = self._safe(t)
            if problem:
                t.status, t.message = E.ERROR, "refused to write: attribute %s" % problem
                continue
            got = self.fs.read_version(t.attribute)
            if got["error"] is not None:
                t.errno = got["error"]["errno"]
                t.status = got["error"]["means"]
                t.message = "reading the target's own version failed: %s" % got["error"]["message"]
            else:
                t.target_version = got["version"]
        return targets

    # -- writing ------------------------------------------------------------

    def run(self, checks):
        """Validate, resolve and write; return one result per (check, target)."""
        checks = validate_checks(checks)
        self.check_root()
        targets = [t for c in checks for t in self.resolve(c)]
        todo = {}
        for t in targets:
            if t.status is None:
                # one write per (attribute, version): duplicate checks share it
                todo.setdefault((t.attribute, t.check["version"]), []).append(t)
        outcomes = self._write_all(list(todo))
        for key, ts in todo.items():
            result, code = outcomes[key]
            for t in ts:
                self._judge(t, result, code, len(key[1]) + 1)
        return [t.result() for t in targets]

    @staticmethod
    def _judge(t, result, code, length):
        if code is None and result == length:
            t.status, t.message = E.COMPATIBLE, "target accepted the source version"
        elif code is None:
            t.status, t.errno = E.ERROR, errno.EIO
            t.message = "short write: %s of %d bytes accepted" % (result, length)
        else:
            t.errno, t.status = code, E.write_error_means(code)
            t.message = {
                E.INCOMPATIBLE: "target refused the source version (%s)",
                E.UNSUPPORTED: "target cannot migrate this type (%s)",
                E.ERROR: "could not ask the target (%s)",
            }[t.status] % E.errno_name(code)
            if code == errno.ETIMEDOUT and result == "timeout":
                t.message = "no answer from the driver within the time limit"

    def _write_all(self, jobs):
        """Write each ``(path, version)`` in a child process, a few at a time."""
        outcomes, pending, running = {}, list(jobs), {}
        while pending or running:
            while pending and len(running) < self.parallel:
                job = pending.pop(0)
                running.update([self._spawn(job)])
            now = time.monotonic()
            wait = max(0.0, min(r[2] for r in running.values()) - now)
            ready = select.select(list(running), [], [], wait)[0]
            for fd in ready:
                pid, job = running.pop(fd)[:2]
                outcomes[job] = self._collect(fd, pid)
            now = time.monotonic()
            for fd in [fd for fd, r in running.items() if r[2] <= now]:
                pid, job = running.pop(fd)[:2]
                self._abandon(fd, pid)
                outcomes[job] = ("timeout", errno.ETIMEDOUT)
        return outcomes

    def _spawn(self, job):
        path, version = job
        data = (version + "\n").encode("ascii")  # as `echo VERSION > attribute` writes
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: one open, one write, report, exit
            os.close(r)
            try:
                fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
                try:
                    res = [os.write(fd, data), None]
                finally:
                    os.close(fd)
            except OSError as exc:
                res = [None, exc.errno]
            except BaseException:  # pylint: disable=broad-except
                res = [None, errno.EIO]
            os.write(w, json.dumps(res).encode("ascii"))
            os._exit(0)  # pylint: disable=protected-access
        os.close(w)
        return r, (pid, job, time.monotonic() + self.timeout)

    @staticmethod
    def _collect(fd, pid):
        chunks = []
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        os.waitpid(pid, 0)
        try:
            result, code = json.loads(b"".join(chunks).decode("ascii"))
        except ValueError:
            return None, errno.EIO
        return result, code

    @staticmethod
    def _abandon(fd, pid):
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            # a write stuck in the kernel ends when the call returns; do not wait long for it
            for attempt in range(20):  # pylint: disable=unused-variable
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.01)
        except OSError:
            pass
