# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only access to a sysfs tree: the primitives both modules share.

Everything here reads; nothing writes. A read that fails is returned as data
(errno number, name and what it means) so callers always finish with what
they could read. Only the Python standard library is used, so this runs on
any managed host. ``migration_probe`` needs no more than this module;
``mdev_facts`` builds its inventory on it (``_inventory``). Every module run
compiles what it imports (AnsiballZ ships source, not byte code), so what
the probe does not use lives there.
"""

import errno
import os
import re

from ansible_collections.vfio.migration.plugins.module_utils import _errno
from ansible_collections.vfio.migration.plugins.module_utils import _version

# The two attribute names the proposals define (docs/proposals.md), preferred first (the 2020 v5
# name superseded the 2019 one). These are also the only names the probe
# module ever writes to.
MIGRATION_ATTRIBUTES = ("migration_version", "version")

# PATH_MAX: the proposals cap a migration version string at 4096 bytes.
VERSION_MAX = 4096
# Other attributes are small in a real kernel (one page); read a bounded amount.
ATTR_READ_MAX = 65536

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
PCI_ADDR_RE = re.compile(r"^[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]\Z")


def is_vfio_pci_driver(name):
    """``vfio-pci`` itself or a vendor variant such as ``mlx5_vfio_pci``."""
    if not name:
        return False
    return "vfio_pci" in name.replace("-", "_")


class Sysfs(object):
    """Reads below one sysfs root and collects every problem it meets."""

    def __init__(self, root="/sys"):
        self.root = os.path.abspath(root or "/sys")
        self.problems = []
        self.forget()

    def forget(self):
        """Drop what was learnt about the tree, so the next reads look again."""
        self._real_dirs = {}  # directory -> its os.path.realpath, see realpath()
        self._links = {}  # link -> (target, None) or (None, OSError): each link is read once

    # -- primitives -------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def note(self, exc, path, what):
        rec = _errno.error_record(exc, path)
        rec["what"] = what
        self.problems.append(rec)
        return rec

    def read_raw(self, path, limit=ATTR_READ_MAX):
        """Return ``(bytes, None)`` or ``(None, error_record)``.

        A read that returns less than it was asked for is the end of the file:
        an attribute (sysfs, procfs) gives its whole content to one read, so
        each attribute costs one ``read`` and not a second one that finds EOF.
        """
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                chunks = []
                left = limit + 1
                while left > 0:
                    want = min(left, 65536)
                    chunk = os.read(fd, want)
                    chunks.append(chunk)
                    left -= len(chunk)
                    if len(chunk) < want:
                        break
                return b"".join(chunks), None
            finally:
                os.close(fd)
        except OSError as exc:
            return None, _errno.error_record(exc, path)

    def read_text(self, path, limit=ATTR_READ_MAX, quiet_missing=True, missing=None):
        """Read a text attribute; trailing newlines removed, bounded in size.

        Missing files give ``None`` silently. Given ``missing``, a caller reads an
        optional attribute without a stat first: a missing file (ENOENT, or
        ENOTDIR below a file) gives ``missing``. Any other failure is recorded
        in :attr:`problems` and gives ``None``.
        """
        data, err = self.read_raw(path, limit)
        if err is not None:
            if quiet_missing and (err["errno"] == errno.ENOENT or
                                  missing is not None and err["errno"] == errno.ENOTDIR):
                return missing
            err["what"] = "read"
            self.problems.append(err)
            return None
        truncated = len(data) > limit
        text = data[:limit].decode("utf-8", "replace").rstrip("\n")
        if truncated:
            self.problems.append({"errno": None, "errno_name": None, "path": path, "what": "read",
                                  "message": "attribute longer than %d bytes; truncated" % limit})
        return text

    def read_int(self, path):
        text = self.read_text(path)
        if text is None:
            return None
        try:
            return int(text.strip(), 0)
        except ValueError:
            self.problems.append({"errno": None, "errno_name": None, "path": path, "what": "parse",
                                  "message": "not an integer: %r" % text[:64]})
            return None

    def listdir(self, path, what="list"):
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                self.note(exc, path, what)
            return []

    def readlink(self, path):
        """``os.readlink(path)``, read once per path: the same ``driver`` link is met
        by several readers (identity, VFIO functions, module versions)."""
        known = self._links.get(path)
        if known is None:
            try:
                known = (os.readlink(path), None)
            except OSError as exc:
                known = (None, exc)
            self._links[path] = known
        if known[1] is not None:
            raise known[1]
        return known[0]

    def link_name(self, path):
        """Basename of where a sysfs link points (``driver``, ``iommu_group``)."""
        try:
            return os.path.basename(self.readlink(path).rstrip("/"))
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EINVAL):
                self.note(exc, path, "readlink")
            return None

    def realpath(self, path, _depth=0):
        """``os.path.realpath(path)``, remembering the directories it resolves.

        Thousands of links (``bus/mdev/devices/<uuid>``) point into a few parent
        directories; ``os.path.realpath`` would lstat every component of every
        target again. Here each directory is resolved once with
        ``os.path.realpath`` and kept, and only the last component is followed
        by hand. Relative targets may start with ``..`` (lexically exact, as the
        directory they climb out of is already resolved); any other target falls
        back to ``os.path.realpath``, so the result is always the same.
        """
        parent, name = os.path.split(path)
        if not parent or name in ("", ".", "..") or _depth > 40:
            return os.path.realpath(path)
        real_parent = self._real_dirs.get(parent)
        if real_parent is None:
            real_parent = self._real_dirs[parent] = os.path.realpath(parent)
        full = os.path.join(real_parent, name)
        try:
            target = self.readlink(full)
        except OSError:  # not a link (EINVAL) or absent (ENOENT): realpath keeps the name as it is
            return full
        parts = [p for p in target.split("/") if p not in ("", ".")]
        ups = 0
        while ups < len(parts) and parts[ups] == "..":
            ups += 1
        if os.path.isabs(target) or not parts[ups:] or ".." in parts[ups:]:
            return os.path.realpath(full)
        base = real_parent
        for level in range(ups):  # pylint: disable=unused-variable
            base = os.path.dirname(base)
        return self.realpath(os.path.join(base, *parts[ups:]), _depth + 1)

    def realdir(self, path):
        """Resolve a link such as ``class/mdev_bus/<parent>``; ``None`` if dangling."""
        real = self.realpath(path)
        if not os.path.isdir(real):
            self.problems.append({"errno": errno.ENOENT, "errno_name": "ENOENT", "path": path,
                                  "what": "resolve", "message": "link does not lead to a directory"})
            return None
        return real

    # -- migration attributes ---------------------------------------------

    def read_version(self, path):
        """Read one migration version attribute: ``version_record`` of what the read gave."""
        data, err = self.read_raw(path, VERSION_MAX + 1)
        return version_record(data, err, path)


def version_record(data, err, path):
    """What a read of a migration version attribute says: ``{"version": str|None, "error": record|None}``.

    ``data`` is what the read returned (up to VERSION_MAX + 2 bytes), or
    ``err`` the error record of a read that failed, which is classified
    (``unsupported`` or ``error``); a value that is not ASCII or longer than
    PATH_MAX is refused as the proposals require.
    """
    if err is not None:
        err["means"] = _errno.read_error_means(err["errno"])
        return {"version": None, "error": err}
    problem = _version.version_problem(data.rstrip(b"\n"))
    if problem:
        return {"version": None, "error": {"errno": None, "errno_name": None, "path": path,
                                           "message": problem, "means": _errno.UNSUPPORTED}}
    return {"version": data.rstrip(b"\n").decode("ascii"), "error": None}


def physical_type(fn):
    """The "type" of a physical function (2020 `migration/self` proposal: a signature standing in
    for the mdev type): its PCI vendor and device ids."""
    def hex4(v):
        return (v or "").lower().replace("0x", "").zfill(4)
    return "pci-%s:%s" % (hex4(fn.get("vendor")), hex4(fn.get("device")))
