"""A FUSE file system that serves sysfs trees the way vendor drivers answer.

    python tests/emulator/sysfs_emulator.py SOURCE MOUNTPOINT --log LOGFILE [--foreground]

SOURCE is mirrored read-only: directories, regular files and symlinks exactly
as they are (relative links resolve inside the mount). Every directory below
SOURCE holding ``rules.json`` next to ``sys/`` is a host tree; its rules turn
attribute files below ``sys/`` into scripted vendor-driver attributes (see
``rules.py`` and ``README.md``). A write to such a file returns what the rule
says, including a real errno; a write to any other file fails with EACCES.
Every write is appended to LOGFILE as one JSON line.

The process stays in the foreground until the mount goes away (``fusermount3
-u``, also lazily) or it gets SIGINT/SIGTERM; blocked ``hang`` writes are then
released with EIO.
"""

import argparse
import errno
import json
import logging
import os
import re
import stat
import sys
import threading
import time

import mfusepy

try:
    from .rules import RuleError, Waiter, build_rule
except ImportError:  # run as a script: rules.py sits next to this file
    from rules import RuleError, Waiter, build_rule

#: sysfs attributes are one page; longer stores are refused.
PAGE_SIZE = 4096
RULES_FILE = "rules.json"
SYSFS_DIR = "sys"
#: fuse_main()'s status when its loop ended with an error, as after SIGINT/SIGTERM
LOOP_ENDED_BY_SIGNAL = 8

log = logging.getLogger("sysfs_emulator")


def refuse(code):
    return OSError(code, os.strerror(code))


# -- host trees ---------------------------------------------------------------

class HostTree(object):
    """One host below the source: ``<rel>/sys`` plus the rules from ``<rel>/rules.json``."""

    def __init__(self, rel, rules):
        self.rel = rel
        self.rules = rules

    @classmethod
    def load(cls, source, rel, waiter):
        path = os.path.join(source, rel, RULES_FILE)
        with open(path) as f:
            doc = json.load(f)
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise RuleError("%s: not a version 1 rules file" % path)
        sysdir = os.path.realpath(os.path.join(source, rel, SYSFS_DIR))
        rules = {}
        for key, spec in sorted(doc.get("attributes", {}).items()):
            key = key.strip("/")
            try:
                rules[key] = build_rule(spec, waiter)
            except RuleError as exc:
                raise RuleError("%s: %s: %s" % (path, key, exc))
            attribute = os.path.join(sysdir, key)
            if not os.path.isfile(attribute) or os.path.realpath(attribute) != attribute:
                log.warning("%s: %s is not a regular file reached without symlinks; its rule never applies",
                            path, key)
        return cls(rel, rules)


class HostIndex(object):
    """All host trees below the source, found once at start.

    The walk stops at each host (hosts do not nest) and never enters a
    ``sys/`` directory, so it lists only the directories above the hosts.
    Requests then find their host by dictionary lookups on path prefixes.
    """

    def __init__(self, source, waiter):
        self.source = source
        self.hosts = {}
        for dirpath, dirnames, filenames in os.walk(source):
            rel = os.path.relpath(dirpath, source)
            rel = "" if rel == "." else rel
            if RULES_FILE in filenames and SYSFS_DIR in dirnames:
                self.hosts[rel] = HostTree.load(source, rel, waiter)
                dirnames[:] = []
            elif SYSFS_DIR in dirnames:
                dirnames.remove(SYSFS_DIR)

    def locate(self, rel):
        """``(host, path below its sys/)`` for a source-relative path, or ``(None, None)``."""
        parts = rel.split("/") if rel else []
        for i, part in enumerate(parts):
            if part == SYSFS_DIR:
                host = self.hosts.get("/".join(parts[:i]))
                if host is not None:
                    return host, "/".join(parts[i + 1:])
        return None, None

    def rule_for(self, rel):
        host, below = self.locate(rel)
        return host.rules.get(below) if host is not None else None

    def in_sysfs(self, rel):
        """True for paths strictly below a host's ``sys/``."""
        host, below = self.locate(rel)
        return host is not None and below != ""

    def count_rules(self):
        return sum(len(h.rules) for h in self.hosts.values())


# -- the write log ------------------------------------------------------------

class WriteLog(object):
    """Appends one flushed JSON line per write."""

    def __init__(self, path):
        self._file = open(path, "a")
        self._lock = threading.Lock()

    def record(self, rel, data, result, code, pid=None, fh=None):
        entry = {
            "pid": pid,
            "open": fh,
            "time": time.time(),
            "path": rel,
            "data": data.decode("latin-1"),
            "length": len(data),
            "result": result,
            "errno": code,
            "errno_name": errno.errorcode.get(code) if code else None,
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self):
        with self._lock:
            self._file.close()


# -- open files ----------------------------------------------------------------

class OpenFile(object):
    """An open attribute: what the last read at offset 0 showed (sysfs buffers it per open)."""

    def __init__(self, rel):
        self.rel = rel
        self.content = None


class OpenFiles(object):
    """File handles handed to the kernel."""

    def __init__(self):
        self._files = {}
        self._next = 1
        self._lock = threading.Lock()

    def add(self, rel):
        with self._lock:
            fh, self._next = self._next, self._next + 1
            self._files[fh] = OpenFile(rel)
        return fh

    def get(self, fh):
        handle = self._files.get(fh)
        if handle is None:
            raise refuse(errno.EBADF)
        return handle

    def drop(self, fh):
        with self._lock:
            self._files.pop(fh, None)


# -- the file system -------------------------------------------------------------

class SysfsEmulator(mfusepy.Operations):
    """Read-only mirror of the source; rule files answer writes like drivers."""

    use_ns = True

    def __init__(self, source, index, write_log, stop, mountpoint=None):
        self.source = os.path.abspath(source)
        self.index = index
        self.write_log = write_log
        self.stop = stop
        self.mountpoint = mountpoint
        self.files = OpenFiles()

    # paths

    @staticmethod
    def rel(path):
        return path.lstrip("/")

    def real(self, path):
        return os.path.join(self.source, self.rel(path))

    # life cycle

    def init(self, path):
        if self.mountpoint:
            Watchdog(self.mountpoint, self.stop, current_session()).start()

    def destroy(self, path):
        self.stop.set()

    # reading the tree

    def getattr(self, path, fh=None):
        st = os.lstat(self.real(path))
        size = st.st_size
        if stat.S_ISREG(st.st_mode) and self.index.in_sysfs(self.rel(path)):
            size = PAGE_SIZE
        return {
            "st_mode": st.st_mode, "st_nlink": st.st_nlink, "st_uid": st.st_uid, "st_gid": st.st_gid,
            "st_size": size, "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }

    def readdir(self, path, fh):
        """Names with their file type, so ``scandir`` users need no extra ``stat``."""
        entries = [(".", stat.S_IFDIR, 0), ("..", stat.S_IFDIR, 0)]
        with os.scandir(self.real(path)) as it:
            for entry in it:
                entries.append((entry.name, file_type(entry), 0))
        return entries

    def readlink(self, path):
        return os.readlink(self.real(path))

    def access(self, path, amode):
        os.lstat(self.real(path))
        return 0

    def statfs(self, path):
        return {"f_bsize": PAGE_SIZE, "f_frsize": PAGE_SIZE, "f_namemax": 255}

    # attributes

    def open(self, path, flags):
        if not stat.S_ISREG(os.lstat(self.real(path)).st_mode):
            raise refuse(errno.EISDIR)
        return self.files.add(self.rel(path))

    def release(self, path, fh):
        self.files.drop(fh)
        return 0

    def read(self, path, size, offset, fh):
        handle = self.files.get(fh)
        if offset == 0 or handle.content is None:
            handle.content = self.show(handle.rel)
        return handle.content[offset:offset + size]

    def show(self, rel):
        """What reading the attribute returns: the rule's answer or the file's content."""
        rule = self.index.rule_for(rel)
        if rule is not None:
            return rule.read()
        with open(os.path.join(self.source, rel), "rb") as f:
            return f.read()

    def write(self, path, data, offset, fh):
        """One whole attribute store (sysfs ignores the offset), logged either way."""
        rel = self.rel(path)
        pid = mfusepy.fuse_get_context()[2]  # the process the kernel says wrote
        try:
            result = self.store(rel, data)
        except OSError as exc:
            self.write_log.record(rel, data, None, exc.errno, pid, fh)
            raise
        self.write_log.record(rel, data, result, None, pid, fh)
        return result

    def store(self, rel, data):
        if len(data) > PAGE_SIZE:
            raise refuse(errno.EINVAL)
        rule = self.index.rule_for(rel)
        if rule is None:
            raise refuse(errno.EACCES)
        return rule.write(data)

    def truncate(self, path, length, fh=None):
        """Accepted and ignored, as sysfs ignores O_TRUNC on attributes."""
        if stat.S_ISDIR(os.lstat(self.real(path)).st_mode):
            raise refuse(errno.EISDIR)
        return 0

    # changes to the tree are refused, as sysfs refuses them

    def _refuse(self, *args, **kwargs):
        raise refuse(errno.EPERM)

    mkdir = rmdir = unlink = rename = symlink = link = mknod = _refuse
    chmod = chown = utimens = setxattr = removexattr = _refuse

    def create(self, path, mode, fi=None):
        raise refuse(errno.EPERM)


def file_type(entry):
    """The ``S_IFMT`` bits of a ``DirEntry`` from readdir's d_type; 0 (unknown) for odd types."""
    if entry.is_symlink():
        return stat.S_IFLNK
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return 0


# -- shutdown ----------------------------------------------------------------------

def current_session():
    """A callable telling whether libfuse's session has been told to exit (SIGINT/SIGTERM).

    Must be called from inside a FUSE request (e.g. ``init``).
    """
    lib = mfusepy._libfuse
    lib.fuse_get_session.restype = mfusepy.ctypes.c_void_p
    lib.fuse_get_session.argtypes = [mfusepy.ctypes.c_void_p]
    lib.fuse_session_exited.argtypes = [mfusepy.ctypes.c_void_p]
    session = lib.fuse_get_session(lib.fuse_get_context().contents.fuse)
    return lambda: bool(lib.fuse_session_exited(session))


def request_interrupted():
    """True when the FUSE request served by this thread was interrupted (writer got a signal)."""
    return bool(mfusepy._libfuse.fuse_interrupted())


def mounted(mountpoint):
    """Whether ``mountpoint`` is in this process's mount table (without touching the mount)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if unescape_mount_field(line.split()[4]) == mountpoint:
                return True
    return False


def unescape_mount_field(field):
    """Undo the octal escapes (``\\040`` for a space) of /proc mount tables."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class Watchdog(threading.Thread):
    """Sets ``stop`` once the mount is gone or libfuse is asked to exit.

    Blocked ``hang`` writes keep a worker busy and the file open; this lets
    them return (EIO) so a lazy unmount or a signal can finish the process.
    """

    INTERVAL = 0.2

    def __init__(self, mountpoint, stop, session_exited):
        super(Watchdog, self).__init__(name="watchdog", daemon=True)
        self.mountpoint = mountpoint
        self.stop = stop
        self.session_exited = session_exited

    def run(self):
        while not self.stop.wait(self.INTERVAL):
            if self.session_exited() or not mounted(self.mountpoint):
                self.stop.set()


# -- command line --------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("source", help="directory holding host trees (<host>/sys + <host>/rules.json)")
    parser.add_argument("mountpoint", help="existing empty directory to mount on")
    parser.add_argument("--log", required=True, help="file to append one JSON line per write to")
    parser.add_argument("--foreground", action="store_true",
                        help="accepted for clarity: the emulator always stays in the foreground")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output on stderr")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING,
                        format="sysfs_emulator: %(levelname)s: %(message)s")
    source = os.path.abspath(args.source)
    mountpoint = os.path.realpath(args.mountpoint)
    stop = threading.Event()
    try:
        index = HostIndex(source, Waiter(stop, request_interrupted))
    except (OSError, ValueError) as exc:
        print("sysfs_emulator: %s" % exc, file=sys.stderr)
        return 2
    write_log = WriteLog(args.log)
    log.info("%d host trees, %d rules", len(index.hosts), index.count_rules())
    ops = SysfsEmulator(source, index, write_log, stop, mountpoint)
    # multi-threaded (no "nothreads"): slow and hang rules each hold a worker.
    # libfuse 3.14.0 prints a harmless "Ignoring invalid max threads value".
    try:
        mfusepy.FUSE(ops, mountpoint, foreground=True, direct_io=True, fsname="sysfs-emulator",
                     subtype="sysfs_emulator", debug=args.debug)
    except RuntimeError as exc:
        status = exc.args[0] if exc.args else None
        if status != LOOP_ENDED_BY_SIGNAL:
            print("sysfs_emulator: libfuse failed with status %s" % status, file=sys.stderr)
            return 1
    finally:
        stop.set()
        write_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
