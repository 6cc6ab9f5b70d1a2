"""Run the sysfs emulator for a test or the demo.

    from tests.emulator.mount import EmulatorMount

    with EmulatorMount(source, mountpoint, log) as emu:
        ...  # write below mountpoint/<host>/sys/...
        emu.writes()  # parsed write log

Only the standard library is imported here; the emulator itself (and
``mfusepy``) runs in a child process started with the current interpreter.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

EMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sysfs_emulator.py")


def fuse_unavailable():
    """Why the emulator cannot run here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent"
    if not (shutil.which("fusermount3") or os.geteuid() == 0):
        return "neither fusermount3 nor root to unmount"
    return None


def is_mounted(path):
    """Whether ``path`` is a mount point in /proc/self/mountinfo (also when the daemon died)."""
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return os.path.ismount(path)
    for line in lines:
        field = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if field == path:
            return True
    return False


def unmount(mountpoint, lazy=False):
    """``fusermount3 -u`` (``-z`` when lazy), or ``umount`` without fusermount3; True on success."""
    if shutil.which("fusermount3"):
        cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mountpoint]
    else:
        cmd = ["umount"] + (["-l"] if lazy else []) + [mountpoint]
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0


def read_write_log(path):
    """The emulator's write log as a list of dicts (a torn last line is skipped)."""
    entries = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    entries.append(json.loads(line))
    except FileNotFoundError:
        pass
    return entries


class EmulatorMount(object):
    """Context manager: the emulator serving ``source`` on ``mountpoint``.

    Entering starts ``sysfs_emulator.py`` and waits (up to ``timeout``
    seconds) until the mount answers; leaving unmounts (lazily if busy) and
    stops the process. ``stderr`` is passed to the child (default: inherit).
    ``nice``: the process's niceness change (negative needs root), set before it
    starts so every FUSE worker thread has it.
    """

    def __init__(self, source, mountpoint, log, timeout=10.0, stderr=None, extra_args=(), nice=0):
        self.source = os.path.abspath(source)
        self.mountpoint = os.path.abspath(mountpoint)
        self.log = os.path.abspath(log)
        self.timeout = timeout
        self.stderr = stderr
        self.extra_args = list(extra_args)
        self.nice = nice
        self.proc = None

    @property
    def command(self):
        return [sys.executable, EMULATOR, self.source, self.mountpoint, "--log", self.log,
                "--foreground"] + self.extra_args

    def start(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        if is_mounted(self.mountpoint):
            raise RuntimeError("%s is already a mount point" % self.mountpoint)
        nice = self.nice
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stderr=self.stderr,
                                     preexec_fn=(lambda: os.nice(nice)) if nice else None)
        deadline = time.monotonic() + self.timeout
        while not os.path.ismount(self.mountpoint):
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError("sysfs emulator exited with %d before mounting %s" % (code, self.mountpoint))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sysfs emulator did not mount %s within %.0fs" % (self.mountpoint, self.timeout))
            time.sleep(0.05)
        return self

    def stop(self, timeout=5.0):
        """Unmount and end the process; returns its exit code."""
        if self.proc is None:
            return None
        if is_mounted(self.mountpoint) and not unmount(self.mountpoint):
            unmount(self.mountpoint, lazy=True)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            if is_mounted(self.mountpoint):
                unmount(self.mountpoint, lazy=True)
            return code

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def path(self, *parts):
        """A path below the mount point."""
        return os.path.join(self.mountpoint, *parts)

    def writes(self, path=None):
        """Parsed log lines, optionally only those for one source-relative ``path``."""
        entries = read_write_log(self.log)
        if path is not None:
            entries = [e for e in entries if e["path"] == path]
        return entries

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
