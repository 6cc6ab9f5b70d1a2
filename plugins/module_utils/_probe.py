# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write-side compatibility check (the `version` and `migration_version` proposals, docs/proposals.md).

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
* the reads of the targets' own versions and the writes run in a worker
  process (one per batch while the drivers answer quickly) and each has a
  time limit, so a driver that hangs gives an ``error`` verdict instead of a
  hung play.
"""

import collections
import errno
import mmap
import os
import re
import select
import signal
import struct
import time

from ansible_collections.vfio.migration.plugins.module_utils import _errno
from ansible_collections.vfio.migration.plugins.module_utils._sysfs import (
    MIGRATION_ATTRIBUTES, PCI_ADDR_RE, UUID_RE, VERSION_MAX, Sysfs, physical_type, version_record,
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


# What a write's answer means, in words, when nothing more is known: a compact
# result leaves these out and the controller puts them back (standard_message).
_STANDARD_MESSAGES = {
    _errno.COMPATIBLE: "target accepted the source version",
    _errno.INCOMPATIBLE: "target refused the source version (%s)",
    _errno.UNSUPPORTED: "target cannot migrate this type (%s)",
    _errno.ERROR: "could not ask the target (%s)",
}


def standard_message(status, errno_name=None):
    """The message a result with this status and errno has when it says nothing more (None: none)."""
    text = _STANDARD_MESSAGES.get(status)
    if text is None or ("%s" in text) != (errno_name is not None):
        return None
    return text % errno_name if errno_name is not None else text


class Target(object):
    """One attribute a check writes to, or why there is none."""

    def __init__(self, check, parent=None, device=None, attribute=None, status=None, message=None):
        self.check, self.parent, self.device = check, parent, device
        self.attribute, self.status, self.message = attribute, status, message
        self.errno = None
        self.target_version = None

    def result(self, compact=False):
        code = self.errno
        name = _errno.errno_name(code)
        if compact:
            # what the matrix reads, and nothing a reader could not tell from the status
            out = {"id": self.check["id"], "parent": self.parent, "status": self.status}
            if self.device is not None:
                out["device"] = self.device
            if code is not None:
                out["errno"], out["errno_name"] = code, name
            if self.message != standard_message(self.status, name):
                out["message"] = self.message
            return out
        return {
            "id": self.check["id"], "mdev_type": self.check["mdev_type"],
            "parent": self.parent, "device": self.device, "attribute": self.attribute,
            "status": self.status, "errno": code, "errno_name": name,
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
        self._forget()

    def _forget(self):
        """Drop what one run learnt about the tree (each run looks again).

        A batch holds one check per class, so many checks name the same type:
        24 classes of 4 types on 2 parents are 48 writes to only 8 attributes.
        Within a run each parent list, PCI identity, attribute lookup, safety
        gate and target version is read once and shared by the checks.
        """
        self.fs.forget()
        self._mdev_parents = None
        self._pci = None
        self._parent_dirs = {}
        self._typedirs = {}
        self._attributes = {}
        self._gates = {}

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
        if dirpath not in self._attributes:
            self._attributes[dirpath] = self._find_attribute(dirpath)
        return self._attributes[dirpath]

    @staticmethod
    def _find_attribute(dirpath):
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

    def _gate(self, target):
        """``_safe``, once per attribute and run: the problem, or None (``target.attribute`` is then resolved)."""
        key = target.attribute
        if key not in self._gates:
            problem = self._safe(target)
            self._gates[key] = (problem, target.attribute)
        problem, target.attribute = self._gates[key]
        return problem

    def _type_targets(self, check):
        """Every parent (or VFIO PCI function) offering the check's type."""
        out = []
        if check["mdev_type"].startswith("pci-"):
            for bdf, ptype, devdir in self._vfio_functions():
                if check["parent"] in (None, bdf) and ptype == check["mdev_type"]:
                    out.append(Target(check, parent=bdf, device=bdf, attribute=self._attribute_in(devdir)))
            return out
        base = self.fs.path("class", "mdev_bus")
        if check["parent"]:
            parents = [check["parent"]]
        else:
            if self._mdev_parents is None:
                self._mdev_parents = self.fs.listdir(base)
            parents = self._mdev_parents
        for parent in parents:
            typedir = os.path.join(self._parent_dir(base, parent), "mdev_supported_types", check["mdev_type"])
            if typedir not in self._typedirs:
                self._typedirs[typedir] = os.path.isdir(typedir)
            if not self._typedirs[typedir]:
                continue
            out.append(Target(check, parent=parent, attribute=self._attribute_in(typedir)))
        return out

    def _parent_dir(self, base, parent):
        """The device directory behind ``class/mdev_bus/<parent>``, its link followed once per run."""
        link = os.path.join(base, parent)
        if link not in self._parent_dirs:
            self._parent_dirs[link] = os.path.realpath(link)
        return self._parent_dirs[link]

    def _vfio_functions(self):
        """``(address, pci-VVVV:DDDD type, directory)`` of every PCI function bound to a vfio-pci driver."""
        if self._pci is None:
            base = self.fs.path("bus", "pci", "devices")
            self._pci = []
            for bdf in self.fs.listdir(base):
                devdir = os.path.join(base, bdf)
                if "vfio_pci" not in (self.fs.link_name(os.path.join(devdir, "driver")) or "").replace("-", "_"):
                    continue
                ident = {k: (self.fs.read_text(os.path.join(devdir, k)) or "") for k in ("vendor", "device")}
                self._pci.append((bdf, physical_type(ident), devdir))
        return self._pci

    def _device_target(self, check):
        dev = check["device"]
        if UUID_RE.match(dev):
            devdir = self.fs.path("bus", "mdev", "devices", dev)
            if not os.path.isdir(devdir):
                return Target(check, device=dev, status=_errno.MISSING_TYPE, message="no mdev device %s on this host" % dev)
            real = os.path.realpath(devdir)
            parent = os.path.basename(os.path.dirname(real))
            dtype = self.fs.link_name(os.path.join(devdir, "mdev_type"))
        else:
            devdir = self.fs.path("bus", "pci", "devices", dev)
            if not os.path.isdir(devdir):
                return Target(check, device=dev, status=_errno.MISSING_TYPE, message="no PCI function %s on this host" % dev)
            parent = dev
            dtype = physical_type({k: self.fs.read_text(os.path.join(devdir, k)) for k in ("vendor", "device")})
        if dtype != check["mdev_type"]:
            return Target(check, parent=parent, device=dev, status=_errno.MISSING_TYPE,
                          message="device %s is of type %s, not %s; types must match" % (dev, dtype, check["mdev_type"]))
        if check["parent"] not in (None, parent):
            return Target(check, parent=parent, device=dev, status=_errno.MISSING_TYPE,
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
                return [Target(check, parent=check["parent"], status=_errno.MISSING_TYPE,
                               message="type %s is not offered by %s on this host" % (check["mdev_type"], where))]
        for t in targets:
            if t.status is not None:
                continue
            if t.attribute is None:
                t.status, t.errno = _errno.UNSUPPORTED, errno.ENOENT
                t.message = "target has no migration_version or version attribute: it does not support migration"
                continue
            if len(t.check["version"]) + 1 > SYSFS_STORE_MAX:
                # the kernel would refuse or cut the store before the driver sees it: no verdict
                t.status = _errno.ERROR
                t.message = ("not asked: the %d-byte version plus its newline does not fit one sysfs store "
                             "(%d bytes)" % (len(t.check["version"]), SYSFS_STORE_MAX))
                continue
            problem = self._gate(t)
            if problem:
                t.status, t.message = _errno.ERROR, "refused to write: attribute %s" % problem
        return targets

    # -- writing ------------------------------------------------------------

    def run(self, checks, compact=False):
        """Validate, resolve, read and write; return one result per (check, target) (``Target.result``)."""
        checks = validate_checks(checks)
        self._forget()
        self.check_root()
        targets = [t for c in checks for t in self.resolve(c)]
        asked = [t for t in targets if t.status is None]
        if asked:
            self._read_and_write(asked)
        return [t.result(compact) for t in targets]

    def _read_and_write(self, asked):
        """Read each target's own version, then write the source's where the read allows it, and judge.

        Seed 004: an errno on read means the type does not support migration;
        such a target (and one whose version is not a valid one) is not
        written. Each attribute is read once, and each (attribute, version)
        written once: duplicate checks share it. Reads and writes go through
        the same workers, each reading and writing an attribute through one open.
        """
        reads = list(dict.fromkeys(t.attribute for t in asked))
        writes = list(dict.fromkeys((t.attribute, t.check["version"]) for t in asked))
        number = dict((job, len(reads) + k) for k, job in enumerate(writes))
        workers = _Writers(self.timeout, self.parallel)
        try:
            workers.open([(path, None) for path in reads] + writes)
            answers = workers.ask(range(len(reads)))
            shown = {}
            for n, path in enumerate(reads):
                length, code = answers[n]
                err = None if code is None else _read_error(length, code, path)
                shown[path] = version_record(None if err else workers.shown(n, length), err, path)
            left = [t for t in asked if self._apply_read(t, shown[t.attribute])]
            outcomes = workers.ask(sorted(set(number[(t.attribute, t.check["version"])] for t in left)))
        finally:
            workers.close()
        for t in left:
            result, code = outcomes[number[(t.attribute, t.check["version"])]]
            self._judge(t, result, code, len(t.check["version"]) + 1)

    @staticmethod
    def _apply_read(t, got):
        """Apply what reading the target's own version gave (``version_record``); True when it is to be written."""
        if got["error"] is not None:
            t.errno = got["error"]["errno"]
            t.status = got["error"]["means"]
            t.message = "reading the target's own version failed: %s" % got["error"]["message"]
            return False
        t.target_version = got["version"]
        return True

    @staticmethod
    def _judge(t, result, code, length):
        if code is None and result == length:
            t.status, t.message = _errno.COMPATIBLE, standard_message(_errno.COMPATIBLE)
        elif code is None:
            t.status, t.errno = _errno.ERROR, errno.EIO
            t.message = "short write: %s of %d bytes accepted" % (result, length)
        else:
            t.errno, t.status = code, _errno.write_error_means(code)
            t.message = standard_message(t.status, _errno.errno_name(code))
            if code == errno.ETIMEDOUT and result == TIMED_OUT:
                t.message = NO_ANSWER


# -- the workers that read and write -----------------------------------------------
#
# A driver may never return from a store (or a show: a store that hangs may
# hold the lock its show needs), and a process stuck in one can only be
# killed. So the reads of the targets' own versions and the writes run in
# worker processes, never in the module's own.
#
# A worker is forked with the batch's jobs in its memory and is sent their
# numbers, a window of them at once, over a pipe of 4-byte records. It takes
# them one at a time, reads or writes, and puts each answer (with the time it
# ended) on a second pipe that nobody waits on; when it finds no more numbers
# it says so on a third. So while the drivers answer quickly, the module
# process sleeps once per window (a batch is two: the reads, then the writes
# they allow), not once per write, and the worker only waits for the drivers.
#
# Every answer's end time is the start of the worker's next job, so each
# job's age is known. A read or write older than the time limit gets ETIMEDOUT and
# its worker is killed; the rest go on in a new worker. The module process
# holds the read end of each request pipe as well: before it gives up on a
# worker, it takes back the numbers the worker has not claimed (a pipe hands
# each record to one reader), so no job is written twice or lost. While every
# worker is waiting on a write older than SLOW_WRITE, the rest of the batch
# is taken back and another worker starts (up to ``parallel``), one job at a
# time from then on, so one slow or hung driver does not hold up the others.
# A batch whose writes are quick is written by one worker: one fork per batch.
#
# A worker opens each attribute once, reads the target's own version from it
# (into memory it shares with the module process: a version may be a page
# long) and writes every version it is sent for that attribute with a write
# of its own, at offset 0. sysfs hands each write whole to the driver's store
# (and ignores the offset), so each write's result is that version's verdict,
# as if it had its own open; a batch of 24 classes on 8 attributes opens 8
# files, not one for each of its 8 reads and 48 writes.

SLOW_WRITE = 1.0
# the result of a read or write given up on after the time limit (its errno is ETIMEDOUT), and what it says
TIMED_OUT = "timeout"
NO_ANSWER = "no answer from the driver within the time limit"
# files a worker keeps open between writes (the oldest is closed first)
OPEN_ATTRIBUTES = 64
# a job's number, as the worker is sent it
_JOB = struct.Struct("<i")
# one answer: the job's number, the write's result (-1: none), its errno (0: none), when it ended
_ANSWER = struct.Struct("<iiid")
# numbers sent at once: one pipe write of at most PIPE_BUF bytes, which reaches the pipe whole
WINDOW = select.PIPE_BUF // _JOB.size
# what a read of a target's own version takes in: enough to tell a version longer than PATH_MAX
SHOW_MAX = VERSION_MAX + 2


def _read_error(result, code, path):
    """The error record of a read that answered ``(result, code)``: the driver's errno, or no answer in time."""
    record = _errno.error_record(OSError(code, os.strerror(code)), path)
    if result == TIMED_OUT:
        record["message"] = NO_ANSWER
    return record


def _write_fully(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _read_available(fd):
    """Everything a non-blocking pipe holds now: ``(data, ended)``, ``ended`` at EOF."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _open_attribute(path, mode=os.O_WRONLY):
    """Open an attribute for writing as ``echo`` would, but never creating it or following a final symlink."""
    return os.open(path, mode | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


def _store(fd, version):
    """One write of the version and the newline ``echo`` adds, at offset 0 as after a fresh open: ``[result, errno]``."""
    try:
        return [os.pwrite(fd, (version + "\n").encode("ascii"), 0), None]
    except OSError as exc:
        return [None, exc.errno]


def _leave_output():
    """Point a worker's stdin, stdout and stderr at /dev/null.

    A worker stuck in a store that even SIGKILL cannot end (a driver waiting
    uninterruptibly) must not hold the module's output open: Ansible reads it
    to its end, which would then never come.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


class _OpenAttributes(object):
    """A worker's open attributes, each opened on its first read or write (at most ``OPEN_ATTRIBUTES``)."""

    def __init__(self):
        self.fds = {}

    def _keep(self, path, fd):
        if path in self.fds:
            os.close(self.fds.pop(path))
        if len(self.fds) >= OPEN_ATTRIBUTES:
            os.close(self.fds.pop(next(iter(self.fds))))
        self.fds[path] = fd

    def show(self, path, memory, offset):
        """Read ``path``'s own version into ``memory`` at ``offset``: ``[length, errno]``.

        The attribute is opened for reading and writing, and kept open for the
        writes that follow. Where that open is refused (an attribute that may be
        read but not written), it is read as ``cat`` would, and its writes open
        it again, each failing as a write alone would.
        """
        try:
            fd = _open_attribute(path, os.O_RDWR)
        except OSError:
            fd = None
        own = fd is None
        try:
            if own:
                fd = _open_attribute(path, os.O_RDONLY)
            data = os.pread(fd, SHOW_MAX, 0)  # an attribute gives its whole content to one read
        except OSError as exc:
            return [None, exc.errno]
        finally:
            if own and fd is not None:
                os.close(fd)
            elif fd is not None:
                self._keep(path, fd)
        memory[offset:offset + len(data)] = data
        return [len(data), None]

    def store(self, path, version):
        """Write ``version`` to ``path``: ``[result, errno]``, the open's errno when it could not be opened."""
        fd = self.fds.get(path)
        if fd is None:
            try:
                fd = _open_attribute(path)
            except OSError as exc:
                return [None, exc.errno]
            self._keep(path, fd)
        return _store(fd, version)


def _serve(batch, requests, answers, idle):
    """A worker's loop: claim a job's number, read or write, answer; say when none is left; end at EOF.

    ``requests`` is non-blocking, and shared with the module process, which may
    take numbers back: a number read here is this worker's to write.
    """
    attributes = _OpenAttributes()
    while True:
        try:
            claimed = os.read(requests, _JOB.size)
        except (BlockingIOError, InterruptedError):
            try:
                os.write(idle, b".")
            except OSError:  # the module process has stopped listening: EOF follows
                pass
            select.select([requests], [], [])
            continue
        if not claimed:
            return  # the worker's exit closes its attributes
        (index,) = _JOB.unpack(claimed)
        try:
            path, version = batch.jobs[index]
            if version is None:
                result, code = attributes.show(path, batch.memory, batch.slots[index])
            else:
                result, code = attributes.store(path, version)
        except Exception:  # pylint: disable=broad-except
            result, code = None, errno.EIO
        os.write(answers, _ANSWER.pack(index, -1 if result is None else result, code or 0, time.monotonic()))


class _Worker(object):
    """A child process that reads or writes the jobs whose numbers it is sent, in order."""

    def __init__(self, batch, others):
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        idle_r, idle_w = os.pipe()
        os.set_blocking(req_r, False)  # for the worker and, taking numbers back, for this process
        pid = os.fork()
        if pid == 0:  # the child: only its own pipe ends stay open
            status = 0
            try:
                for fd in (req_w, ans_r, idle_r):
                    os.close(fd)
                for other in others:
                    other.close_fds()
                _leave_output()
                _serve(batch, req_r, ans_w, idle_w)
            except BaseException:  # pylint: disable=broad-except
                status = 1
            finally:
                os._exit(status)  # pylint: disable=protected-access
        os.close(ans_w)
        os.close(idle_w)
        os.set_blocking(ans_r, False)
        os.set_blocking(idle_r, False)
        self.pid, self.requests, self.answers, self.idle, self.unclaimed = pid, req_w, ans_r, idle_r, req_r
        self.queued = collections.deque()  # numbers sent and not answered, in order: the first is being written
        self.since = None  # when the first of them began (sent to an idle worker, or the last answer's end)
        self.gone = False
        self._buf = b""

    def close_fds(self, fds=None):
        for fd in (self.requests, self.answers, self.idle, self.unclaimed) if fds is None else fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def send(self, numbers):
        """Queue jobs; False when the worker is gone."""
        try:
            _write_fully(self.requests, b"".join(_JOB.pack(n) for n in numbers))
        except OSError:
            return False
        if not self.queued:
            self.since = time.monotonic()
        self.queued.extend(numbers)
        return True

    def receive(self):
        """The answers there are now: ``{number: (result, errno)}``; at EOF the worker is ``gone``."""
        _read_available(self.idle)
        data, ended = _read_available(self.answers)
        self._buf += data
        out = {}
        whole = len(self._buf) - len(self._buf) % _ANSWER.size
        for offset in range(0, whole, _ANSWER.size):
            number, result, code, ended_at = _ANSWER.unpack_from(self._buf, offset)
            if self.queued and self.queued[0] == number:  # answers come in the order sent
                self.queued.popleft()
                out[number] = (None if result < 0 else result, code or None)
                self.since = ended_at
        self._buf = self._buf[whole:]
        self.gone = self.gone or ended
        return out

    def take_back(self):
        """The numbers this worker has not claimed yet, which it now never will (in order)."""
        data = _read_available(self.unclaimed)[0]
        numbers = [_JOB.unpack_from(data, offset)[0] for offset in range(0, len(data), _JOB.size)]
        taken = set(numbers)
        self.queued = collections.deque(n for n in self.queued if n not in taken)
        return numbers

    def stop(self):
        """End the worker: an idle one at EOF, a busy one (or one that does not end) by SIGKILL."""
        self.close_fds([self.requests, self.unclaimed, self.idle])
        ended = not self.queued and self._ended(1.0)
        self.close_fds([self.answers])
        if ended and _reaped(self.pid, None):  # it closed its pipe on its way out: only the end is left
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            return
        # a store stuck in the kernel ends when the call returns; do not wait long for it
        _reaped(self.pid, 0.2)

    def _ended(self, wait):
        """Wait up to ``wait`` seconds for the end of the answers: the worker ending at EOF of its requests."""
        if self.gone:
            return True
        deadline = time.monotonic() + wait
        while select.select([self.answers], [], [], max(0.0, deadline - time.monotonic()))[0]:
            if _read_available(self.answers)[1]:
                return True
        return False


def _reaped(pid, wait):
    """Collect ``pid`` if it ends within ``wait`` seconds (None: however long); True when it did (or is gone)."""
    if wait is None:
        try:
            os.waitpid(pid, 0)
        except OSError:  # ECHILD: already collected
            pass
        return True
    deadline = time.monotonic() + wait
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except OSError:  # ECHILD: already collected
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


class _Writers(object):
    """Runs a batch of reads and writes through as few workers, and as few wake-ups, as its drivers allow.

    ``open(jobs)`` names the batch's jobs: ``(path, version)`` writes
    ``version``, ``(path, None)`` reads the attribute's own version. Each
    ``ask(numbers)`` then runs some of them, by number, and returns their
    outcomes; the workers it starts stay for the next ``ask`` until ``close()``.
    """

    def __init__(self, timeout, parallel, slow=SLOW_WRITE):
        self.timeout = timeout
        self.parallel = max(1, parallel)
        self.slow = min(slow, timeout / 2.0)
        self.window = WINDOW  # one job at a time once a write has been slow
        self.workers = []
        self.jobs, self.memory, self.slots = [], None, {}

    def open(self, jobs):
        """The batch's jobs, in the memory of every worker forked from now on."""
        self.jobs = list(jobs)
        reads = [n for n, (dummy, version) in enumerate(self.jobs) if version is None]
        self.slots = dict((n, k * SHOW_MAX) for k, n in enumerate(reads))
        # shared with the workers, who read into it: a read's answer on the pipe is only its length
        self.memory = mmap.mmap(-1, len(reads) * SHOW_MAX) if reads else None

    def ask(self, numbers):
        """Run the jobs ``numbers``: ``{number: (result, errno)}``; a read's result is the length read."""
        pending, outcomes = list(reversed(list(numbers))), {}
        while pending or self._busy():
            self._dispatch(pending, outcomes)
            self._wait(pending, outcomes)
        return outcomes

    def shown(self, number, length):
        """What the read job ``number`` read (``length`` bytes, its result)."""
        offset = self.slots[number]
        return self.memory[offset:offset + length]

    def close(self):
        while self.workers:
            self.workers.pop().stop()
        if self.memory is not None:
            self.memory.close()
            self.memory = None

    def run(self, jobs):
        """Write each ``(path, version)``; return ``{job: (result, errno)}``."""
        try:
            self.open(jobs)
            outcomes = self.ask(range(len(self.jobs)))
        finally:
            self.close()
        return dict((self.jobs[n], outcome) for n, outcome in outcomes.items())

    def _busy(self):
        return [w for w in self.workers if w.queued]

    def _give(self, worker, pending, outcomes):
        numbers = [pending.pop() for dummy in range(min(self.window, len(pending)))]
        if not worker.send(numbers):
            for n in numbers:
                outcomes[n] = (None, errno.EIO)
            self._retire(worker)

    def _retire(self, worker):
        self.workers.remove(worker)
        worker.stop()

    @staticmethod
    def _put_back(pending, numbers):
        pending.extend(reversed(numbers))  # next, in their order

    def _may_grow(self, now):
        """Another worker helps only while every worker waits on a slow write."""
        return len(self.workers) < self.parallel and \
            all(w.queued and now - w.since >= self.slow for w in self.workers)

    def _dispatch(self, pending, outcomes):
        for worker in list(self.workers):
            if not worker.queued and pending:
                self._give(worker, pending, outcomes)
        while pending and self._may_grow(time.monotonic()):
            try:
                worker = _Worker(self, self.workers)
            except OSError as exc:  # no process to write with (EAGAIN, ENOMEM)
                if self.workers:
                    return  # the running workers take the rest
                outcomes[pending.pop()] = (None, exc.errno)
                continue
            self.workers.append(worker)
            self._give(worker, pending, outcomes)

    def _wait(self, pending, outcomes):
        busy = self._busy()
        if not busy:
            return
        wake = min(w.since for w in busy) + self.timeout
        if len(self.workers) < self.parallel and (pending or any(len(w.queued) > 1 for w in busy)):
            wake = min(wake, max(w.since for w in busy) + self.slow)
        select.select([w.idle for w in busy], [], [], max(0.0, wake - time.monotonic()))
        for worker in busy:
            self._collect(worker, pending, outcomes)
        now = time.monotonic()
        for worker in self._busy():
            if now - worker.since >= self.timeout:
                self._give_up(worker, pending, outcomes)
        if len(self.workers) < self.parallel:
            for worker in self._busy():
                if len(worker.queued) > 1 and now - worker.since >= self.slow:
                    # what waits behind a slow write goes to another worker, one job at a time
                    self._put_back(pending, worker.take_back())
                    self.window = 1

    def _collect(self, worker, pending, outcomes):
        outcomes.update(worker.receive())
        if worker.gone:  # died mid-write: that write is EIO, the rest goes to another worker
            self._put_back(pending, worker.take_back())
            for number in worker.queued:
                outcomes[number] = (None, errno.EIO)
            self._retire(worker)

    def _give_up(self, worker, pending, outcomes):
        """The first queued write is older than the time limit: ETIMEDOUT, unless it answers now."""
        late = worker.queued[0]
        self._put_back(pending, worker.take_back())
        self._collect(worker, pending, outcomes)
        if worker in self.workers and worker.queued and worker.queued[0] == late:
            outcomes[late] = (TIMED_OUT, errno.ETIMEDOUT)
            self._retire(worker)  # killed: its write is still queued
