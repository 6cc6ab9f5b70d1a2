# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host has, read from sysfs for ``mdev_facts``: mdev parents, types and
devices, VFIO PCI functions, vendor-VFIO vGPUs and the host stack.

Layout read (relative to ``sysfs_root``, ``/sys`` on a real host)::

    class/mdev_bus/<parent>                      -> link into devices/...
    <parent>/mdev_supported_types/<type>/{name,description,device_api,
        available_instances,devices/,migration_version,version,migration/}
    bus/mdev/devices/<uuid>                      -> <parent>/<uuid>
    <parent>/<uuid>/{mdev_type ->, iommu_group ->, driver ->,
        migration_version, migration/{self,compatible}}
    bus/pci/devices/<bdf>  bound to vfio-pci or a vfio-pci variant driver

Read-only, standard library only, like ``_sysfs`` whose primitives it uses.
"""

import os
import re

from ansible_collections.vfio.migration.plugins.module_utils import _errno
from ansible_collections.vfio.migration.plugins.module_utils import _version
from ansible_collections.vfio.migration.plugins.module_utils._sysfs import (
    MIGRATION_ATTRIBUTES, UUID_RE, Sysfs, is_vfio_pci_driver, physical_type,
)

SCHEMA_VERSION = 1
# what read_text gives for an attribute that is not there, where absent and unreadable differ
ABSENT = object()


class Inventory(Sysfs):
    """A :class:`Sysfs` reader that enumerates what the host offers and runs."""

    def forget(self):
        super(Inventory, self).forget()
        self._module_versions = {}  # where a driver link leads -> its module's version

    # -- migration attributes ---------------------------------------------

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
            if p:
                v = self.read_text(p)
                if v:
                    return v.strip()
        return None

    def identity(self, devdir):
        """PCI ids, driver, module version, NUMA node of a device directory."""
        ident = {"path": devdir, "bus": self.link_name(os.path.join(devdir, "subsystem"))}
        # each attribute read without a stat first: on a real host one syscall less, through FUSE one round trip
        for key in ("vendor", "device", "subsystem_vendor", "subsystem_device", "class", "revision"):
            text = self.read_text(os.path.join(devdir, key), missing=ABSENT)
            if text is not ABSENT:
                ident[key] = (text or "").strip() or None
        driver = self.link_name(os.path.join(devdir, "driver"))
        ident["driver"] = driver
        ident["driver_version"] = self.module_version(devdir, driver)
        ident["numa_node"] = self.read_int(os.path.join(devdir, "numa_node"))
        if ident["bus"] != "pci":  # a subchannel (css) says its type
            text = self.read_text(os.path.join(devdir, "type"), missing=ABSENT)
            if text is not ABSENT:
                ident["subchannel_type"] = (text or "").strip() or None
        group = self.link_name(os.path.join(devdir, "iommu_group"))
        if group is not None:
            ident["iommu_group"] = group
        return ident

    # -- enumeration ------------------------------------------------------

    def mdev_type(self, typedir):
        t = {}
        for key in ("name", "description", "device_api"):
            t[key] = self.read_text(os.path.join(typedir, key))
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
        text = fs.read_text(os.path.join(vdir, "creatable_vgpu_types"), missing=ABSENT)
        if text is not ABSENT:
            creatable = parse_vgpu_types(text)
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
        with open(status_path, "rb", buffering=0) as f:  # unbuffered: read whole, without probing for a tty
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
