# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's VMs as libvirt's QEMU driver keeps them, read without asking the daemon.

libvirt writes every domain it manages to disk: the persistent definition
under ``/etc/libvirt/qemu/<name>.xml`` and, while the domain runs, its live
status under ``/run/libvirt/qemu/<name>.xml`` (a ``<domstatus state=...>``
wrapping the live ``<domain>``). Both are read here with the standard
library's XML parser; nothing is started, asked or changed. A host without
libvirt has no VMs and says so.

What a VM record holds::

    {"name", "uuid", "state": "running" | "paused" | "shutoff" | ...,   # libvirt's words
     "persistent": bool, "mdevs": [{"uuid", "model", "alias"}],
     "pci": [{"address", "managed"}], "viommu": bool,
     "differences": [str]}     # live vs persistent VFIO devices

The mdev records are completed with type and parent from discovery by the
caller (the facts know every instance).
"""

import json
import os
import re
import xml.etree.ElementTree as ET

QEMU_STATE_DIRS = (("etc", "libvirt", "qemu"), ("run", "libvirt", "qemu"))
# A status or definition file is small; refuse absurd ones rather than read them whole.
XML_MAX = 4 * 1024 * 1024
_HEX = re.compile(r"^(0x)?[0-9a-fA-F]+\Z")


def _read_bytes(path, limit):
    """At most ``limit`` + 1 bytes of a file, read with one open and no buffering layer."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_xml(path, problems):
    try:
        data = _read_bytes(path, XML_MAX)
        if len(data) > XML_MAX:
            problems.append({"path": path, "what": "libvirt domain XML", "message": "larger than %d bytes" % XML_MAX})
            return None
        return ET.fromstring(data)
    except (OSError, IOError) as exc:
        problems.append({"path": path, "what": "libvirt domain XML", "errno": getattr(exc, "errno", None),
                         "message": getattr(exc, "strerror", None) or str(exc)})
    except ET.ParseError as exc:
        problems.append({"path": path, "what": "libvirt domain XML", "message": "not XML: %s" % exc})
    return None


def _pci_address(addr):
    parts = [addr.get(k) for k in ("domain", "bus", "slot", "function")]
    if not all(p and _HEX.match(p) for p in parts):
        return None
    dom, bus, slot, fn = (int(p, 16) for p in parts)
    return "%04x:%02x:%02x.%x" % (dom, bus, slot, fn)


def domain_devices(domain):
    """The VFIO devices of a ``<domain>`` element, and whether it has a vIOMMU."""
    mdevs, pci = [], []
    devices = domain.find("devices")
    if devices is not None:
        for hd in devices.findall("hostdev"):
            if hd.get("mode", "subsystem") != "subsystem":
                continue
            addr = hd.find("source/address")
            alias = hd.find("alias")
            if hd.get("type") == "mdev" and addr is not None and addr.get("uuid"):
                mdevs.append({"uuid": addr.get("uuid").lower(), "model": hd.get("model"),
                              "alias": alias.get("name") if alias is not None else None})
            elif hd.get("type") == "pci" and addr is not None:
                bdf = _pci_address(addr)
                if bdf:
                    pci.append({"address": bdf, "managed": hd.get("managed") == "yes"})
    viommu = devices is not None and devices.find("iommu") is not None
    return {"mdevs": mdevs, "pci": pci, "viommu": viommu}


def _domain_of(root):
    """``(domain element, state)`` of a status file or a definition."""
    if root.tag == "domstatus":
        return root.find("domain"), root.get("state") or "unknown"
    if root.tag == "domain":
        return root, None
    return None, None


def _record(domain):
    name = (domain.findtext("name") or "").strip()
    uuid = (domain.findtext("uuid") or "").strip().lower()
    rec = {"name": name, "uuid": uuid or None}
    rec.update(domain_devices(domain))
    return rec


def _vfio_set(rec):
    return sorted(["mdev:%s" % m["uuid"] for m in rec["mdevs"]] + ["pci:%s" % p["address"] for p in rec["pci"]])


def domains(host_root="/"):
    """``{"libvirt": bool, "vms": {name: record}, "errors": [...]}`` from libvirt's QEMU state files."""
    problems = []
    found = {}
    dirs = [os.path.join(host_root, *parts) for parts in QEMU_STATE_DIRS]
    present = [d for d in dirs if os.path.isdir(d)]
    for d in present:
        try:
            names = sorted(n for n in os.listdir(d) if n.endswith(".xml"))
        except OSError as exc:
            problems.append({"path": d, "what": "list libvirt domains", "errno": exc.errno,
                             "message": exc.strerror})
            continue
        live = d.endswith(os.path.join("run", "libvirt", "qemu"))
        for fname in names:
            root = _read_xml(os.path.join(d, fname), problems)
            if root is None:
                continue
            domain, state = _domain_of(root)
            if domain is None:
                continue
            rec = _record(domain)
            if not rec["name"]:
                continue
            slot = found.setdefault(rec["name"], {})
            slot["live" if live else "persistent"] = (rec, state)
    vms = {}
    for name, got in sorted(found.items()):
        live, persistent = got.get("live"), got.get("persistent")
        rec = dict((live or persistent)[0])
        rec["state"] = live[1] if live else "shutoff"
        rec["persistent"] = persistent is not None
        rec["differences"] = []
        if live and persistent and _vfio_set(live[0]) != _vfio_set(persistent[0]):
            rec["differences"].append("live VFIO devices %s differ from the persistent definition's %s" % (
                ", ".join(_vfio_set(live[0])) or "none", ", ".join(_vfio_set(persistent[0])) or "none"))
        vms[name] = rec
    return {"libvirt": bool(present), "vms": vms, "errors": problems}


def qemu_blockers(name, run):
    """QEMU's own answer to "can this running VM migrate now?" (QMP ``query-migrate``).

    ``run(argv)`` runs a command with a time limit and returns ``(rc, out, err)``.
    Returns ``{"asked": bool, "blocked": bool | None, "reasons": [str], "message": str | None}``.
    libvirt notes the use of ``qemu-monitor-command`` as a ``custom-monitor``
    taint on the domain; ``query-migrate`` itself changes nothing.
    """
    try:
        rc, out, err = run(["virsh", "--quiet", "qemu-monitor-command", name, '{"execute":"query-migrate"}'])
    except Exception as exc:  # pylint: disable=broad-except
        return {"asked": False, "blocked": None, "reasons": [], "message": "virsh failed: %s" % exc}
    if rc is None:
        return {"asked": False, "blocked": None, "reasons": [], "message": err or "virsh is not installed"}
    if rc != 0:
        return {"asked": False, "blocked": None, "reasons": [],
                "message": "virsh qemu-monitor-command failed (rc %s): %s" % (rc, (err or out or "").strip()[:400])}
    try:
        answer = json.loads(out)
    except ValueError:
        return {"asked": False, "blocked": None, "reasons": [], "message": "QEMU's answer is not JSON"}
    ret = answer.get("return") if isinstance(answer, dict) else None
    if not isinstance(ret, dict):
        return {"asked": True, "blocked": None, "reasons": [], "message": "QEMU's answer has no return value"}
    reasons = [str(r) for r in ret.get("blocked-reasons") or [] if r]
    return {"asked": True, "blocked": bool(reasons), "reasons": reasons, "message": None}
