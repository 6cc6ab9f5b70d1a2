# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discovery as ``mdev_facts`` runs it: sysfs, the host stack, the kernel's migration
capability of free devices and the host's libvirt VMs, in one read-only pass.

Kept apart from ``_sysfs`` so that ``migration_probe``, which needs only the
sysfs primitives, does not ship the VFIO and libvirt readers.
"""

import errno
import os

from ansible_collections.vfio.migration.plugins.module_utils import _libvirt
from ansible_collections.vfio.migration.plugins.module_utils import _vfio
from ansible_collections.vfio.migration.plugins.module_utils._inventory import (
    SCHEMA_VERSION, Inventory, host_stack, vendor_vgpus,
)

# Optional: hwdb vendor and model names of parents (``use_udev``). Hosts without
# pyudev gather everything else; nothing else here needs more than the standard library.
# Imported on first use (5 ms), so a run that adds no udev names does not pay for it.
_NOT_IMPORTED = object()
pyudev = _NOT_IMPORTED


def _pyudev():
    """The ``pyudev`` module, or None where it is not installed."""
    global pyudev  # pylint: disable=global-statement
    if pyudev is _NOT_IMPORTED:
        try:
            import pyudev as module  # pylint: disable=import-outside-toplevel
        except ImportError:
            module = None
        pyudev = module
    return pyudev


PLAIN_VFIO_PCI = "vfio-pci"
# The only tree whose devices are the host's own: udev names and opening VFIO devices apply to it alone.
REAL_SYSFS = "/sys"


def vfio_capabilities(facts, mode, real, dev_root="/dev", proc_root="/proc"):
    """Add ``vfio_migration`` (see ``_vfio``) to every mdev type and VFIO PCI function.

    Devices are opened only on the real sysfs (``real``), never on a test tree,
    and only as ``mode`` allows (``_vfio.MODES``).
    """
    devices = facts.get("devices") or {}
    if not real or mode == "never":
        why = "not checked (check_vfio_capability=never)" if real else "not checked: sysfs_root is not /sys"
        for p in facts["parents"].values():
            for t in p["types"].values():
                t["vfio_migration"] = _vfio.record(False, message=why)
        for fn in facts["physical"].values():
            fn["vfio_migration"] = _plain_vfio_pci(fn) or _vfio.record(False, message=why)
        return
    candidates = {}
    for uuid, d in sorted(devices.items()):
        candidates.setdefault((d.get("parent"), d.get("mdev_type")), []).append(
            (uuid, d.get("iommu_group"), d.get("driver")))
    wants_open = any(_vfio.may_open(mode, drv) for cands in candidates.values() for _u, _g, drv in cands)
    wants_open = wants_open or (mode == "always" and facts["physical"])
    held = _vfio.open_vfio_nodes(proc_root) if wants_open else set()
    for pname, p in facts["parents"].items():
        for type_id, t in p["types"].items():
            t["vfio_migration"] = _vfio.type_capability(candidates.get((pname, type_id), []), mode, dev_root, held)
    for bdf, fn in facts["physical"].items():
        not_opened = "not opened: vfio-pci drivers reset the function on open (check_vfio_capability=always allows it)"
        fn["vfio_migration"] = _plain_vfio_pci(fn) or (
            _vfio.ask_device(dev_root, fn.get("iommu_group"), bdf, held) if mode == "always" else
            _vfio.record(False, device=bdf, message=not_opened))


def _plain_vfio_pci(fn):
    if fn.get("driver") == PLAIN_VFIO_PCI:
        return _vfio.record(False, False, device=None,
                            message="bound to plain vfio-pci, which has no migration driver")
    return None


def host_vms(facts, host_root="/", run_timed=None):
    """The host's libvirt domains with their VFIO devices resolved against discovery.

    ``run_timed`` (optional, real root only) runs a read-only command with a time
    limit; with it, every running VM is asked for QEMU's migration blockers.
    """
    got = _libvirt.domains(host_root)
    devices, physical = facts.get("devices") or {}, facts.get("physical") or {}
    vfs = (facts.get("vendor_vgpu") or {}).get("vfs") or {}
    for vm in got["vms"].values():
        for m in vm["mdevs"]:
            d = devices.get(m["uuid"]) or {}
            m.update(mdev_type=d.get("mdev_type"), parent=d.get("parent"), present=bool(d))
        for p in vm["pci"]:
            fn = physical.get(p["address"]) or {}
            vf = vfs.get(p["address"])
            p.update(driver=fn.get("driver") or (vf or {}).get("driver"), type=fn.get("type"),
                     vgpu=((vf or {}).get("current") or {}).get("name") if vf else None)
        if vm["state"] in ("running", "paused") and run_timed is not None:
            vm["qemu"] = _libvirt.qemu_blockers(vm["name"], run_timed)
        else:
            vm["qemu"] = {"asked": False, "blocked": None, "reasons": [],
                          "message": "not running" if vm["state"] not in ("running", "paused")
                          else "not asked (not the host's real root)"}
    return {"present": got["libvirt"], "vms": got["vms"], "errors": got["errors"],
            "message": None if got["libvirt"] else "no libvirt QEMU state directories: no VMs"}


def add_udev_names(parents, physical):
    """Add hwdb vendor/model names (``udev``) to each parent and function; False when pyudev is absent or fails."""
    udev = _pyudev()
    if udev is None:
        return False
    try:
        context = udev.Context()
    except Exception:  # pylint: disable=broad-except
        return False
    for rec in list(parents.values()) + list(physical.values()):
        try:
            props = udev.Devices.from_sys_path(context, rec["path"]).properties
            rec["udev"] = {
                "vendor_name": props.get("ID_VENDOR_FROM_DATABASE"),
                "model_name": props.get("ID_MODEL_FROM_DATABASE"),
            }
        except Exception:  # pylint: disable=broad-except
            continue
    return True


def gather(root="/sys", use_udev=True, host_root="/", run=None, check_vfio_capability="auto", run_timed=None):
    """Collect ``vfio_mdev`` facts below ``root`` (and the host stack below ``host_root``)."""
    fs = Inventory(root)
    facts = {"schema_version": SCHEMA_VERSION, "sysfs_root": fs.root}
    if not os.path.isdir(fs.root):
        facts.update(parents={}, devices={}, physical={}, udev=False, vendor_vgpu={"pfs": {}, "vfs": {}},
                     stack=host_stack(fs, host_root, run), vms={},
                     libvirt={"present": False, "errors": [], "message": "not read: sysfs_root is missing"},
                     errors=[{"errno": errno.ENOENT, "errno_name": "ENOENT", "path": fs.root,
                              "what": "sysfs_root", "message": "sysfs_root is not a directory"}])
        return facts
    facts["parents"] = fs.mdev_parents()
    facts["devices"] = fs.mdev_devices()
    facts["physical"] = fs.physical_functions()
    facts["vendor_vgpu"] = vendor_vgpus(fs)
    facts["stack"] = host_stack(fs, host_root, run)
    vfio_capabilities(facts, check_vfio_capability, real=fs.root == REAL_SYSFS)
    libvirt = host_vms(facts, host_root, run_timed if os.path.abspath(host_root) == "/" else None)
    facts["vms"], facts["libvirt"] = libvirt.pop("vms"), libvirt
    facts["udev"] = bool(use_udev and fs.root == REAL_SYSFS and add_udev_names(facts["parents"], facts["physical"]))
    facts["errors"] = fs.problems
    return facts
