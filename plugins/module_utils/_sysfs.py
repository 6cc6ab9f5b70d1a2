# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only view of the sysfs parts that matter for VFIO live migration.

Everything here reads; nothing writes. A read that fails is returned as data
(errno number, name and what it means) so discovery always finishes with what
it could read. Only the Python standard library is used, so this runs on any
managed host.

Layout read (relative to ``sysfs_root``, ``/sys`` on a real host)::

    class/mdev_bus/<parent>                      -> link into devices/...
    <parent>/mdev_supported_types/<type>/{name,description,device_api,
        available_instances,devices/,migration_version,version,migration/}
    bus/mdev/devices/<uuid>                      -> <parent>/<uuid>
    <parent>/<uuid>/{mdev_type ->, iommu_group ->, driver ->,
        migration_version, migration/{self,compatible}}
    bus/pci/devices/<bdf>  bound to vfio-pci or a vfio-pci variant driver
"""

import errno
import os
import re

from ansible_collections.vfio.migration.plugins.module_utils import _errno
from ansible_collections.vfio.migration.plugins.module_utils import _version

SCHEMA_VERSION = 1

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
        self._module_versions = {}  # where a driver link leads -> its module's version

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

    def read_text(self, path, limit=ATTR_READ_MAX, quiet_missing=True):
        """Read a text attribute; trailing newlines removed, bounded in size.

        Missing files give ``None`` silently (optional attributes); any other
        failure is recorded in :attr:`problems` and gives ``None``.
        """
        data, err = self.read_raw(path, limit)
        if err is not None:
            if not (quiet_missing and err["errno"] == errno.ENOENT):
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
        """Read one migration version attribute.

        Returns ``{"version": str|None, "error": record|None}``. A read that
        fails is classified (``unsupported`` or ``error``); a value that is
        not ASCII or longer than PATH_MAX is refused as the proposals require.
        """
        data, err = self.read_raw(path, VERSION_MAX + 1)
        if err is not None:
            err["means"] = _errno.read_error_means(err["errno"])
            return {"version": None, "error": err}
        problem = _version.version_problem(data.rstrip(b"\n"))
        if problem:
            return {"version": None, "error": {"errno": None, "errno_name": None, "path": path,
                                               "message": problem, "means": _errno.UNSUPPORTED}}
        return {"version": data.rstrip(b"\n").decode("ascii"), "error": None}

    def read_layout(self, migration_dir):
        """Read the proposed ``migration/self`` and ``migration/compatible``.

        Each may be a multi-line ``key=value`` file or a directory with one
        file per key (both layouts of the 2020 `migration/self` proposal, docs/proposals.md). ``compatible`` may hold
        several blocks separated by blank lines.
        """
        out = {"self": None, "compatible": None, "error": None}
        for part in ("self", "compatible"):
            p = os.path.join(migration_dir, part)
            if os.path.isdir(p):
                block = {}
                for key in self.listdir(p):
                    val = self.read_text(os.path.join(p, key), quiet_missing=False)
                    if val is not None:
                        block[key] = val.strip()
                text = "\n".join("%s=%s" % kv for kv in sorted(block.items()))
            elif os.path.lexists(p):
                data, err = self.read_raw(p)
                if err is not None:
                    err["means"] = _errno.read_error_means(err["errno"])
                    out["error"] = err
                    continue
                text = data.decode("utf-8", "replace")
            else:
                continue
            try:
                blocks = _version.parse_kv_blocks(text)
            except ValueError as exc:
                out["error"] = {"errno": None, "errno_name": None, "path": p,
                                "message": str(exc), "means": _errno.UNSUPPORTED}
                continue
            if part == "self":
                out["self"] = blocks[0] if blocks else {}
            else:
                out["compatible"] = blocks
        return out

    def migration(self, dirpath, names=MIGRATION_ATTRIBUTES):
        """Summarise every migration attribute found in ``dirpath``.

        ``supported`` is True when a version could be read, False when the
        attribute is absent or its read says "cannot migrate", and None when
        the read failed for a reason that tells nothing (EACCES, EIO...).
        """
        attributes = {}
        for name in names:
            p = os.path.join(dirpath, name)
            if os.path.lexists(p):
                attributes[name] = dict(self.read_version(p), path=p)
        rec = {"attribute": None, "path": None, "supported": False, "version": None,
               "error": None, "attributes": attributes, "self": None, "compatible": None}
        mdir = os.path.join(dirpath, "migration")
        if os.path.isdir(mdir):
            layout = self.read_layout(mdir)
            rec["self"], rec["compatible"] = layout["self"], layout["compatible"]
            if layout["error"] and not attributes:
                rec["error"] = layout["error"]
        for name in names:
            a = attributes.get(name)
            if a is None:
                continue
            rec["attribute"], rec["path"] = name, a["path"]
            if a["error"] is None:
                rec.update(supported=True, version=a["version"], error=None)
                return rec
            rec["error"] = a["error"]
            rec["supported"] = None if a["error"]["means"] == _errno.ERROR else False
        if rec["attribute"] is None and rec["self"] is not None:
            rec.update(attribute="migration/self", path=os.path.join(mdir, "self"),
                       supported=True, error=None)
        elif rec["attribute"] is None and rec["error"] is not None:
            rec["supported"] = None if rec["error"]["means"] == _errno.ERROR else False
        return rec

    # -- identity ---------------------------------------------------------

    def module_version(self, devdir, driver):
        """Version of the module behind ``driver`` (``module/version``), read once per driver."""
        try:
            bound = os.path.normpath(os.path.join(devdir, self.readlink(os.path.join(devdir, "driver"))))
        except OSError:
            bound = None  # no driver link: only the driver's name leads to a module
        key = (bound, driver)
        if key not in self._module_versions:
            self._module_versions[key] = self._read_module_version(devdir, driver)
        return self._module_versions[key]

    def _read_module_version(self, devdir, driver):
        for p in (os.path.join(devdir, "driver", "module", "version"),
                  self.path("module", driver or "", "version") if driver else None,
                  self.path("module", (driver or "").replace("-", "_"), "version") if driver else None):
            if p and os.path.exists(p):
                v = self.read_text(p)
                if v:
                    return v.strip()
        return None

    def identity(self, devdir):
        """PCI ids, driver, module version, NUMA node of a device directory."""
        ident = {"path": devdir, "bus": self.link_name(os.path.join(devdir, "subsystem"))}
        for key in ("vendor", "device", "subsystem_vendor", "subsystem_device", "class", "revision"):
            p = os.path.join(devdir, key)
            if os.path.exists(p):
                ident[key] = (self.read_text(p) or "").strip() or None
        driver = self.link_name(os.path.join(devdir, "driver"))
        ident["driver"] = driver
        ident["driver_version"] = self.module_version(devdir, driver)
        numa = os.path.join(devdir, "numa_node")
        ident["numa_node"] = self.read_int(numa) if os.path.exists(numa) else None
        if ident["bus"] == "css" or os.path.exists(os.path.join(devdir, "type")) and ident["bus"] != "pci":
            st = os.path.join(devdir, "type")
            if os.path.exists(st):
                ident["subchannel_type"] = (self.read_text(st) or "").strip() or None
        group = self.link_name(os.path.join(devdir, "iommu_group"))
        if group is not None:
            ident["iommu_group"] = group
        return ident

    # -- enumeration ------------------------------------------------------

    def mdev_type(self, typedir):
        t = {}
        for key in ("name", "description", "device_api"):
            p = os.path.join(typedir, key)
            t[key] = self.read_text(p) if os.path.exists(p) else None
        t["available_instances"] = self.read_int(os.path.join(typedir, "available_instances"))
        t["devices"] = [d for d in self.listdir(os.path.join(typedir, "devices")) if UUID_RE.match(d)]
        t["migration"] = self.migration(typedir)
        return t

    def mdev_parents(self):
        parents = {}
        for name in self.listdir(self.path("class", "mdev_bus"), "list mdev parents"):
            devdir = self.realdir(self.path("class", "mdev_bus", name))
            if devdir is None:
                continue
            parent = self.identity(devdir)
            types = {}
            tdir = os.path.join(devdir, "mdev_supported_types")
            for type_id in self.listdir(tdir, "list mdev types"):
                typedir = os.path.join(tdir, type_id)
                if os.path.isdir(typedir):
                    types[type_id] = self.mdev_type(typedir)
            parent["types"] = types
            parents[name] = parent
        return parents

    def mdev_devices(self):
        devices = {}
        for uuid in self.listdir(self.path("bus", "mdev", "devices"), "list mdev devices"):
            devdir = self.realdir(self.path("bus", "mdev", "devices", uuid))
            if devdir is None:
                continue
            dev = {
                "path": devdir,
                "parent": os.path.basename(os.path.dirname(devdir)),
                "mdev_type": self.link_name(os.path.join(devdir, "mdev_type")),
                "iommu_group": self.link_name(os.path.join(devdir, "iommu_group")),
                "driver": self.link_name(os.path.join(devdir, "driver")),
                "migration": self.migration(devdir, names=("migration_version",)),
            }
            devices[uuid] = dev
        return devices

    def physical_functions(self):
        """VFIO PCI functions: bound to vfio-pci or a vfio-pci variant driver."""
        funcs = {}
        base = self.path("bus", "pci", "devices")
        for bdf in self.listdir(base, "list pci devices"):
            link = os.path.join(base, bdf)
            driver = self.link_name(os.path.join(link, "driver"))
            if not is_vfio_pci_driver(driver):
                continue
            devdir = self.realdir(link)
            if devdir is None:
                continue
            fn = self.identity(devdir)
            fn["type"] = physical_type(fn)
            fn["migration"] = self.migration(devdir, names=("migration_version",))
            funcs[bdf] = fn
        return funcs


# Vendor-VFIO vGPUs (NVIDIA vGPU 17+): no mdev; each SR-IOV VF lists the vGPU
# types it can take in nvidia/creatable_vgpu_types ("ID : NAME" lines) and
# holds its type id in nvidia/current_vgpu_type (0 = none).
_VGPU_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*$")


def parse_vgpu_types(text):
    """``creatable_vgpu_types`` text -> ``[{"id": int, "name": str}]`` (header lines skipped)."""
    out = []
    for line in (text or "").splitlines():
        m = _VGPU_LINE.match(line)
        if m and m.group(2):
            out.append({"id": int(m.group(1)), "name": m.group(2)})
    return out


def vendor_vgpus(fs):
    """PFs with their VFs, and each VF's creatable and current vGPU type."""
    pfs, vfs = {}, {}
    base = fs.path("bus", "pci", "devices")
    for bdf in fs.listdir(base, "list pci devices"):
        devdir = os.path.join(base, bdf)
        vdir = os.path.join(devdir, "nvidia")
        if os.path.isfile(os.path.join(vdir, "creatable_vgpu_types")):
            creatable = parse_vgpu_types(fs.read_text(os.path.join(vdir, "creatable_vgpu_types")))
            current_id = fs.read_int(os.path.join(vdir, "current_vgpu_type"))
            names = dict((t["id"], t["name"]) for t in creatable)
            current = None
            if current_id:
                current = {"id": current_id, "name": names.get(current_id)}
            driver = fs.link_name(os.path.join(devdir, "driver"))
            vfs[bdf] = {"physfn": fs.link_name(os.path.join(devdir, "physfn")), "creatable": creatable,
                        "current": current, "driver": driver,
                        "driver_version": fs.module_version(fs.realpath(devdir), driver)}
        elif os.path.exists(os.path.join(devdir, "sriov_totalvfs")):
            virtfns = [n for n in fs.listdir(devdir) if n.startswith("virtfn")]
            if not virtfns:
                continue
            ident = fs.identity(fs.realpath(devdir))
            ident["sriov_totalvfs"] = fs.read_int(os.path.join(devdir, "sriov_totalvfs"))
            ident["sriov_numvfs"] = fs.read_int(os.path.join(devdir, "sriov_numvfs"))
            ident["vfs"] = sorted((fs.link_name(os.path.join(devdir, n)) for n in virtfns),
                                  key=lambda v: v or "")
            pfs[bdf] = ident
    # only PFs whose VFs speak the vendor-VFIO vGPU interface
    pfs = dict((k, v) for k, v in pfs.items() if any(vf in vfs for vf in v["vfs"]))
    return {"pfs": pfs, "vfs": vfs}


# -- host stack -------------------------------------------------------------------

STACK_PACKAGES = {  # what the package databases call the pieces of the stack
    "qemu": ("qemu-system-x86", "qemu-system-x86-64", "qemu-kvm", "qemu-system-arm", "qemu-system-s390x"),
    "libvirt": ("libvirt-daemon", "libvirt-daemon-system", "libvirt0", "libvirt-libs"),
}
STACK_MODULES = ("nvidia", "nvidia_vgpu_vfio", "i915", "kvmgt", "vfio", "vfio_pci", "mdev", "vfio_ccw", "vfio_ap")


def upstream_version(pkg_version):
    """``1:8.2.2+ds-0ubuntu1`` -> ``8.2.2``: the upstream part of a package version."""
    v = pkg_version.split(":", 1)[-1]
    return re.split(r"[+~-]", v, 1)[0] or None


def dpkg_versions(status_path, wanted):
    """Versions of installed packages named in ``wanted`` from a dpkg status file."""
    found = {}
    try:
        with open(status_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return found
    for para in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in para.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") in wanted and "installed" in fields.get("Status", "").split():
            found[fields["Package"]] = fields.get("Version")
    return found


def host_stack(fs, host_root="/", run=None):
    """Kernel release, module versions, QEMU and libvirt versions, read without changing anything.

    ``run`` (optional) runs a read-only command and returns its output; it is
    used only on the real root for hosts without a dpkg database (``rpm -q``).
    """
    stack = {"kernel": None, "qemu": None, "libvirt": None, "modules": {}, "sources": {}}
    rel = os.path.join(host_root, "proc", "sys", "kernel", "osrelease")
    stack["kernel"] = (fs.read_text(rel) or "").strip() or None
    for mod in STACK_MODULES:
        v = fs.read_text(fs.path("module", mod, "version"))
        if v:
            stack["modules"][mod] = v.strip()
    wanted = set(p for names in STACK_PACKAGES.values() for p in names)
    pkgs = dpkg_versions(os.path.join(host_root, "var", "lib", "dpkg", "status"), wanted)
    for part, names in STACK_PACKAGES.items():
        for name in names:
            if pkgs.get(name):
                stack[part] = upstream_version(pkgs[name])
                stack["sources"][part] = "dpkg:%s" % name
                break
        if stack[part] is None and run is not None and os.path.abspath(host_root) == "/":
            for name in names:
                out = run(["rpm", "-q", "--qf", "%{VERSION}", name])
                if out and re.match(r"^\d+(\.\d+)*$", out.strip()):
                    stack[part] = out.strip()
                    stack["sources"][part] = "rpm:%s" % name
                    break
    return stack


def physical_type(fn):
    """The "type" of a physical function (2020 `migration/self` proposal: a signature standing in
    for the mdev type): its PCI vendor and device ids."""
    def hex4(v):
        return (v or "").lower().replace("0x", "").zfill(4)
    return "pci-%s:%s" % (hex4(fn.get("vendor")), hex4(fn.get("device")))
