# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drain plan in VMs: which VM goes where, with the room the target really has.

An operator drains VMs, not devices. A running (or paused) VM of a drained
host moves live as one unit: every VFIO device it owns lands on one target
host, each on a parent whose verdict for the device's class is ``compatible``
and that still has room for the device's type once the VMs placed before it
are counted. Shut-off VMs move cold (no device state travels) and are listed
apart; instances no VM uses are not demand.

Room (:func:`host_room`) is what the target can give, per parent:

* free pre-created instances (no domain names them) are used first: they cost
  nothing that is not already spent;
* what a parent can still create is re-derived after each placement. The
  drivers couple their types: GVT-g's types share one aperture budget, the
  mtty sample's share 24 ports, heterogeneous vGPU shares the framebuffer.
  Each published ``available_instances`` a(T) is read as "T takes 1/a(T) of
  what is left"; after placements have used a share u of it, T can still have
  floor(a(T) x (1 - u)) instances. That is exact for GVT-g and mtty and never
  more than a framebuffer budget allows (the driver rounds down);
* NVIDIA time-sliced vGPU keeps one type per GPU: once a GPU holds (or is
  planned to hold) instances of one type, no other type fits there, unless
  the GPU already holds two types (heterogeneous mode);
* a free vGPU VF (vendor VFIO, no mdev) is one slot for any one type it can
  take, with the same one-type-per-GPU rule over its physical function;
* a VFIO PCI function is one slot while no domain names it.

A source instance UUID that already exists on a target blocks that target
for the VM (a migration keeps the UUID), unless it is a free instance of the
device's type on a compatible parent: then the plan uses that very instance.
"""

from fractions import Fraction

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.plugin_utils._types import Matrix, Placement, Plan, SourceRow, Verdict

LIVE_STATES = ("running", "paused")
COLD_STATES = ("shutoff", "shut off", "crashed")
EXCLUSIVE_DRIVERS = ("nvidia",)
# QEMU was not asked (nothing to ask, or no way to ask): the domain's own evidence decides.
_NOT_ASKED = ("not running", "not asked", "virsh is not installed")


# -- host side: the VMs and the room, from one host's facts -----------------------

def _domain_users(vms):
    """``(mdev uuids, pci addresses)`` any domain of the host names, whatever its state."""
    mdevs, pci = set(), set()
    for vm in vms.values():
        mdevs.update(m.get("uuid") for m in vm.get("mdevs") or [])
        pci.update(p.get("address") for p in vm.get("pci") or [])
    return mdevs, pci


def _p2p_missing(facts, vm):
    """Types of the VM's mdevs whose kernel migration capability lacks P2P (checked ones only)."""
    out = []
    for m in vm.get("mdevs") or []:
        p = (facts.get("parents") or {}).get(m.get("parent")) or {}
        cap = ((p.get("types") or {}).get(m.get("mdev_type")) or {}).get("vfio_migration") or {}
        if cap.get("migratable") and "P2P" not in (cap.get("flags") or []):
            out.append(m.get("mdev_type"))
    return sorted(set(out))


def _qemu_view(facts, vm, devices):
    """What QEMU says (or, when it was not asked, what the domain shows) about a live migration now.

    ``{"status": "ok" | "blocked" | "unknown", "reasons": [...], "asked": bool}``.
    """
    q = vm.get("qemu") or {}
    if q.get("asked") and q.get("blocked") is not None:
        return {"status": "blocked" if q["blocked"] else "ok", "asked": True,
                "reasons": ["QEMU: %s" % r for r in q.get("reasons") or []]}
    message = q.get("message") or ""
    if vm.get("state") in LIVE_STATES and message and not message.startswith(_NOT_ASKED):
        return {"status": "unknown", "asked": True, "reasons": ["QEMU did not answer: %s" % message]}
    reasons = []
    if vm.get("viommu"):
        reasons.append("domain has a vIOMMU (<iommu>): QEMU blocks migration of VFIO devices behind one")
    if len(devices) > 1:
        lacking = _p2p_missing(facts, vm)
        if lacking:
            reasons.append("%d VFIO devices and %s lacks P2P: QEMU blocks migration of several devices "
                           "unless each supports P2P" % (len(devices), ", ".join(lacking)))
    return {"status": "blocked" if reasons else "ok", "asked": False, "reasons": reasons}


def _vm_devices(facts, vm):
    """The VM's VFIO devices as the plan moves them: ``{id, kind, mdev_type, parent, problem}``."""
    physical = facts.get("physical") or {}
    vfs = (facts.get("vendor_vgpu") or {}).get("vfs") or {}
    out = []
    for m in vm.get("mdevs") or []:
        problem = None if m.get("present") else "instance %s is not on the host (the domain names it)" % m["uuid"]
        out.append({"id": m["uuid"], "kind": "mdev", "mdev_type": m.get("mdev_type"), "parent": m.get("parent"),
                    "problem": problem})
    for p in vm.get("pci") or []:
        addr = p.get("address")
        vf = vfs.get(addr)
        if addr in physical:
            out.append({"id": addr, "kind": "physical", "mdev_type": physical[addr].get("type"), "parent": addr,
                        "problem": None})
        elif vf is not None and vf.get("current"):
            name = vf["current"].get("name") or "vgpu-%s" % vf["current"].get("id")
            out.append({"id": addr, "kind": "vgpu", "mdev_type": name, "parent": vf.get("physfn") or addr,
                        "problem": None})
        else:
            out.append({"id": addr, "kind": "pci", "mdev_type": None, "parent": None,
                        "problem": "PCI device %s is not a VFIO function the host reports (driver %s)" % (
                            addr, p.get("driver") or "unknown")})
    return out


def host_vms(facts: dict) -> list[dict]:
    """The host's VMs as the plan needs them (sorted by name)."""
    out = []
    for name, vm in sorted((facts.get("vms") or {}).items()):
        devices = _vm_devices(facts, vm)
        out.append({"name": vm.get("name") or name, "uuid": vm.get("uuid"), "state": vm.get("state"),
                    "persistent": vm.get("persistent"), "devices": devices,
                    "qemu": _qemu_view(facts, vm, devices) if vm.get("state") in LIVE_STATES else None,
                    "differences": list(vm.get("differences") or [])})
    return out


def _mode(driver, in_use_types, offered=()):
    """``one-type`` for an NVIDIA time-sliced GPU, unless it shows mixed-size (heterogeneous) mode:
    two types in use, or one in use while the driver still offers another."""
    if driver not in EXCLUSIVE_DRIVERS or len(in_use_types) >= 2:
        return "shared"
    if in_use_types and set(offered) - set(in_use_types):
        return "shared"
    return "one-type"


def host_room(facts: dict) -> dict:
    """``{"pools": {parent: pool}, "instances": {uuid: holder}}``: what a host can take.

    A pool is ``{kind, mode, available: {type: n}, free: {type: [device ids]},
    in_use_types: [type]}``; ``available`` is what the parent can still create
    (for vGPU VFs: nothing, every slot is a free VF under ``free``).
    ``instances`` names who holds every mdev UUID on the host (a VM, or
    ``None`` for a free one) so collisions can be told.
    """
    vms = facts.get("vms") or {}
    used_mdevs, used_pci = _domain_users(vms)
    holder = {}
    for name, vm in vms.items():
        for m in vm.get("mdevs") or []:
            holder[m.get("uuid")] = vm.get("name") or name
    pools, instances = {}, {}
    devices = facts.get("devices") or {}
    for parent, p in sorted((facts.get("parents") or {}).items()):
        in_use = sorted(set(d.get("mdev_type") for d in devices.values() if d.get("parent") == parent))
        offered = [t for t, spec in (p.get("types") or {}).items() if (spec.get("available_instances") or 0) > 0]
        pool = {"kind": "mdev", "driver": p.get("driver"), "mode": _mode(p.get("driver"), in_use, offered),
                "available": {}, "free": {}, "in_use_types": in_use}
        for type_id, t in sorted((p.get("types") or {}).items()):
            pool["available"][type_id] = max(0, t.get("available_instances") or 0)
        pools[parent] = pool
    # without libvirt nobody can tell a free instance from one a VM uses: none counts as room
    known = bool((facts.get("libvirt") or {}).get("present"))
    for uuid, d in sorted(devices.items()):
        instances[uuid] = {"vm": holder.get(uuid), "mdev_type": d.get("mdev_type"), "parent": d.get("parent")}
        if known and uuid not in used_mdevs and d.get("parent") in pools:
            pools[d["parent"]]["free"].setdefault(d.get("mdev_type"), []).append(uuid)
    for bdf, fn in sorted((facts.get("physical") or {}).items()):
        free = bdf not in used_pci and not (fn.get("vfio_migration") or {}).get("in_use")
        pools[bdf] = {"kind": "physical", "driver": fn.get("driver"), "mode": "shared", "available": {},
                      "free": {fn.get("type"): [bdf]} if free else {}, "in_use_types": [] if free else [fn.get("type")]}
    by_pf = {}
    for vf, v in sorted(((facts.get("vendor_vgpu") or {}).get("vfs") or {}).items()):
        by_pf.setdefault(v.get("physfn") or vf, []).append((vf, v))
    for pf, vfs in sorted(by_pf.items()):
        current = sorted(set((v["current"].get("name") or "vgpu-%s" % v["current"].get("id"))
                             for _vf, v in vfs if v.get("current")))
        offered = set(t["name"] for _vf, v in vfs if not v.get("current") for t in v.get("creatable") or [])
        pool = {"kind": "vgpu", "driver": vfs[0][1].get("driver"), "in_use_types": current,
                "mode": "shared" if len(current) >= 2 or (current and offered - set(current)) else "one-type",
                "available": {}, "free": {}}
        for vf, v in vfs:
            if v.get("current") or vf in used_pci:
                continue
            for t in v.get("creatable") or []:
                pool["free"].setdefault(t["name"], []).append(vf)
        pools[pf] = pool
    return {"pools": pools, "instances": instances}


# -- the room a plan takes: one pool per target parent ------------------------------

class _Pool(object):
    """One target parent during planning: what it can still give, type by type."""

    __slots__ = ("kind", "mode", "available", "free", "types", "used", "taken")

    def __init__(self, spec):
        self.kind, self.mode = spec["kind"], spec["mode"]
        self.available = dict(spec.get("available") or {})
        self.free = {t: list(ids) for t, ids in (spec.get("free") or {}).items()}
        self.types = set(spec.get("in_use_types") or [])
        self.used = Fraction(0)
        self.taken = set()  # vGPU VFs given out (a VF is listed once per type it could take)

    def _creatable(self, mdev_type):
        a = self.available.get(mdev_type) or 0
        return int(a * (1 - self.used)) if a else 0

    def _type_fits(self, mdev_type):
        return self.mode != "one-type" or not self.types or self.types == {mdev_type}

    def _free_ids(self, mdev_type):
        if self.kind == "vgpu":  # a VF is one slot whatever type it could take
            return [vf for vf in self.free.get(mdev_type) or [] if vf not in self.taken]
        return self.free.get(mdev_type) or []

    def keeps(self, mdev_type):
        """Whether what is left of ``mdev_type`` here is what must stay free (nothing, for one plan)."""
        return True

    def room(self, mdev_type):
        """How many more devices of ``mdev_type`` this parent takes now."""
        if not self._type_fits(mdev_type):
            return 0
        if self.kind == "mdev" and self.free.get(mdev_type):
            return len(self.free[mdev_type]) + self._creatable(mdev_type)
        if self.kind == "mdev":
            return self._creatable(mdev_type)
        return len(self._free_ids(mdev_type))

    def take(self, mdev_type, want=None):
        """Take one slot; ``(action, device id)``: ``use`` a free instance, ``create`` one, ``assign`` a function."""
        self.types.add(mdev_type)
        ids = self._free_ids(mdev_type)
        if self.kind == "mdev":
            if want is not None and want in ids:
                ids.remove(want)
                return "use", want
            if ids:
                return "use", ids.pop(0)
            self.used += Fraction(1, self.available[mdev_type])
            return "create", None
        vf = ids[0]
        if self.kind == "vgpu":
            self.taken.add(vf)
        else:
            ids.pop(0)
        return "assign", vf

    def state(self):
        return (self.used, set(self.types), {t: list(ids) for t, ids in self.free.items()}, set(self.taken))

    def restore(self, state):
        self.used, self.types = state[0], set(state[1])
        self.free, self.taken = {t: list(i) for t, i in state[2].items()}, set(state[3])


# -- the plan -----------------------------------------------------------------------

def _source_index(matrix: Matrix, drain: set[str]) -> dict[tuple[str, str], SourceRow]:
    """``{(host, device id): source row}`` for the drained hosts."""
    index = {}
    for row in matrix["sources"]:
        if row["host"] in drain:
            for dev in row["devices"]:
                index[(row["host"], dev)] = row
    return index


def _compatible_parents(matrix: Matrix, row: SourceRow | None, target: str) -> tuple[list[str], Verdict | None]:
    """Parents of ``target`` whose verdict for the row is compatible, and the best other verdict."""
    if row is None or row.get("class") is None:
        return [], None
    vs = matrix["verdicts"][row["class"]].get(target) or []
    ok = [v["parent"] for v in vs if v["status"] == E.COMPATIBLE]
    if ok or not vs:
        return ok, None
    rank = {s: i for i, s in enumerate((E.INCOMPATIBLE, E.UNSUPPORTED, E.MISSING_TYPE, E.ERROR, E.UNKNOWN))}
    return [], min(vs, key=lambda v: rank.get(v["status"], len(rank)))


def _verdict_words(v: Verdict) -> str:
    words = v["status"] + (" (%s)" % v["errno_name"] if v.get("errno_name") else "")
    return words + (" - %s" % v["message"] if v.get("message") else "")


def use_held(held, d, parents):
    """A device whose UUID already exists on the target (``held``, from ``room.instances``).

    ``(parents, want, None)`` when that is a free instance of the device's type on a compatible
    parent: the plan uses that very instance. Otherwise ``(None, None, reason)``: a migration keeps
    the UUID, so the target cannot take the device.
    """
    if held["vm"] is None and held["mdev_type"] == d["mdev_type"] and held["parent"] in parents:
        return [held["parent"]], d["id"], None
    who = "VM %s" % held["vm"] if held["vm"] else "a stale %s instance" % held["mdev_type"]
    return None, None, "instance UUID %s already exists there (%s)" % (d["id"], who)


def collision(vm_name, source_host, uuid, target, held):
    """One ``plan.collisions`` entry."""
    return {"uuid": uuid, "vm": vm_name, "source_host": source_host, "target_host": target,
            "held_by": held["vm"], "mdev_type": held["mdev_type"]}


def _device_label(d):
    return "%s %s" % (d.get("mdev_type") or d["kind"], d["id"])


class _Planner(object):
    def __init__(self, matrix, drain):
        self.matrix, self.drain = matrix, drain
        hosts = matrix["hosts"]
        self.targets = [t for t in sorted(hosts) if t not in drain]
        self.usable = [t for t in self.targets if hosts[t].get("state") == "ok" and hosts[t].get("room")]
        self.pools = {t: {p: _Pool(spec) for p, spec in hosts[t]["room"]["pools"].items()} for t in self.usable}
        self.instances = {t: hosts[t]["room"].get("instances") or {} for t in self.usable}
        self.index = _source_index(matrix, drain)
        self.collisions = []

    # per VM and target: what each device may use, or why the target cannot take the VM
    def options(self, vm, devices, target):
        """``(per-device candidate parents, None)`` or ``(None, reason)`` for one target."""
        per_device = []
        for d in devices:
            held = self.instances[target].get(d["id"]) if d["kind"] == "mdev" else None
            if held is not None and not (held["vm"] is None and held["mdev_type"] == d["mdev_type"]):
                self.collisions.append(collision(vm.get("name"), vm["host"], d["id"], target, held))
        for d in devices:
            parents, best = _compatible_parents(self.matrix, d["row"], target)
            if not parents:
                why = _verdict_words(best) if best else "offers no %s" % (d.get("mdev_type") or "such device")
                return None, why if len(devices) == 1 else "%s: %s" % (_device_label(d), why)
            want = None
            if d["kind"] == "mdev":
                held = self.instances[target].get(d["id"])
                if held is not None:
                    parents, want, reason = use_held(held, d, parents)
                    if reason:
                        if held["vm"] is None and held["mdev_type"] == d["mdev_type"]:  # free, wrong parent
                            self.collisions.append(collision(vm.get("name"), vm["host"], d["id"], target, held))
                        return None, reason
            per_device.append((d, parents, want))
        return per_device, None

    def fit(self, target, per_device):
        """Assign every device a parent with room (small search); the pools keep the result or stay as they were."""
        pools = self.pools[target]
        order = sorted(per_device, key=lambda x: (len(x[1]), x[0]["id"]))
        saved = {p: pools[p].state() for _d, ps, _w in order for p in ps if p in pools}
        chosen = []

        def place(i):
            if i == len(order):  # the VM's last device may eat room an earlier one of another type left
                return all(pools[p].keeps(d["mdev_type"]) for d, p, _a, _v, _r in chosen)
            d, parents, want = order[i]
            for p in sorted((p for p in parents if p in pools), key=lambda p: (-pools[p].room(d["mdev_type"]), p)):
                if pools[p].room(d["mdev_type"]) <= 0:
                    continue
                before = pools[p].state()
                action, dev = pools[p].take(d["mdev_type"], want)
                chosen.append((d, p, action, dev, pools[p].room(d["mdev_type"])))
                if place(i + 1):
                    return True
                chosen.pop()
                pools[p].restore(before)
            return False

        if place(0):  # the room each parent has left once the whole VM is on it
            return [(d, p, action, dev, pools[p].room(d["mdev_type"])) for d, p, action, dev, _r in chosen]
        for p, st in saved.items():
            pools[p].restore(st)
        return None

    def full_reason(self, per_device, target):
        pools = self.pools[target]
        parts = []
        for d, parents, _w in per_device:
            rooms = ["%s %d" % (p, pools[p].room(d["mdev_type"]) if p in pools else 0) for p in parents]
            parts.append("%s: room left %s" % (_device_label(d), ", ".join(rooms)))
        return "no room for every device at once (%s)" % "; ".join(parts)

    def room_score(self, target, per_device):
        """The room a target has left for a VM: over its devices, over their compatible parents."""
        pools = self.pools[target]
        return sum(pools[p].room(d["mdev_type"]) for d, parents, _w in per_device for p in parents if p in pools)


def _item(vm: dict, devices: list[dict]) -> dict:
    types = sorted(set(d.get("mdev_type") or d["kind"] for d in devices))
    if vm.get("device"):  # an instance planned on its own (no libvirt on its host)
        return {"vm": None, "vm_uuid": None, "device": vm["device"], "state": None, "source_host": vm["host"],
                "mdev_type": types[0], "source_parent": devices[0].get("parent"),
                "source_version": (devices[0].get("row") or {}).get("version"),
                "devices": _item_devices(devices)}
    return {"vm": vm["name"], "vm_uuid": vm.get("uuid"), "state": vm.get("state"), "source_host": vm["host"],
            "mdev_type": ", ".join(types),
            "source_parent": ", ".join(sorted(set(d.get("parent") or "-" for d in devices))),
            "devices": _item_devices(devices)}


def _item_devices(devices):
    return [{"id": d["id"], "kind": d["kind"], "mdev_type": d.get("mdev_type"), "source_parent": d.get("parent"),
             "source_version": (d.get("row") or {}).get("version"), "class": (d.get("row") or {}).get("class")}
            for d in devices]


def _instance_units(matrix, host):
    """Without libvirt on a host nobody can tell which instances VMs use: each is its own unit."""
    units = []
    for row in matrix["sources"]:
        if row["host"] != host:
            continue
        for dev in row["devices"]:
            units.append({"name": None, "uuid": None, "state": "running", "device": dev,
                          "devices": [{"id": dev, "kind": row["kind"], "mdev_type": row["mdev_type"],
                                       "parent": row["parent"], "problem": None}],
                          "qemu": {"status": "ok", "reasons": []}})
    return units


def _demand(planner, matrix, drain):
    """Split the drained hosts' VMs: live ones to place, cold ones, and ones stranded before any target."""
    live, cold, stranded, other = [], [], [], []
    for host in sorted(drain):
        h = matrix["hosts"][host]
        for vm in h.get("vms") if h.get("libvirt") else _instance_units(matrix, host):
            vm = dict(vm, host=host)
            devices = [dict(d, row=planner.index.get((host, d["id"]))) for d in vm.get("devices") or []]
            if not devices:
                other.append({"vm": vm["name"], "vm_uuid": vm.get("uuid"), "source_host": host,
                              "state": vm.get("state")})
                continue
            item = _item(vm, devices)
            if vm.get("state") in COLD_STATES:
                cold.append((vm, devices, item))
                continue
            if vm.get("state") not in LIVE_STATES:
                stranded.append(dict(item, cause="unknown", evidence=["none"], details=[],
                                     reasons=["state %s: neither live nor cold" % vm.get("state")]))
                continue
            qemu = vm.get("qemu") or {"status": "ok", "reasons": []}
            problems = [d["problem"] for d in devices if d.get("problem")]
            problems += ["%s: %s" % (_device_label(d), d["row"]["reason"]) for d in devices
                         if d.get("row") is not None and d["row"].get("class") is None]
            if qemu["status"] != "ok":
                stranded.append(dict(item, cause="blocked" if qemu["status"] == "blocked" else "unknown",
                                     evidence=["qemu"], reasons=qemu["reasons"] + problems, details=[]))
            elif problems:
                stranded.append(dict(item, cause="unsupported", evidence=["driver"], reasons=problems, details=[]))
            else:
                live.append((vm, devices, item))
    return live, cold, stranded, other


def drain_plan(matrix: Matrix, drain_hosts) -> Plan:
    """Place every VM of the drained hosts, as a whole, on a compatible target with room.

    Returns ``{drain_hosts, unknown_hosts, ready, placements, stranded, cold,
    collisions, no_vfio, free_instances}`` (see ``docs/matrix-schema.md``).
    VMs with the fewest possible targets go first, then the larger ones; each
    goes to the possible target with the most room left for its types.
    """
    drain = set(drain_hosts or ())
    unknown = sorted(drain - set(matrix["hosts"]))
    drain -= set(unknown)
    planner = _Planner(matrix, drain)
    stranded = []
    for host in sorted(drain):
        state = matrix["hosts"][host]
        if state.get("state") != "ok":
            stranded.append({"vm": None, "vm_uuid": None, "source_host": host, "devices": [], "mdev_type": None,
                             "source_parent": None, "cause": "unknown", "evidence": ["none"], "details": [],
                             "reasons": ["host %s: %s" % (state.get("state"), state.get("reason") or "no facts")]})
    live, cold_vms, early, no_vfio = _demand(planner, matrix, drain)
    stranded += early
    unusable = ["%s: unknown - host %s%s" % (t, matrix["hosts"][t].get("state"),
                                             ": %s" % matrix["hosts"][t]["reason"] if matrix["hosts"][t].get("reason")
                                             else "") for t in planner.targets if t not in planner.usable]
    candidates = []
    for vm, devices, item in live:
        opts, why = {}, []
        for t in planner.usable:
            o, reason = planner.options(vm, devices, t)
            if o is None:
                why.append("%s: %s" % (t, reason))
            else:
                opts[t] = o
        candidates.append((vm, devices, item, opts, why))
    candidates.sort(key=lambda c: (len(c[3]), -len(c[1]), c[0]["host"], c[0]["name"]))
    placements: list[Placement] = []
    for vm, devices, item, opts, why in candidates:
        done = None
        for t in sorted(opts, key=lambda t: (-planner.room_score(t, opts[t]), t)):
            chosen = planner.fit(t, opts[t])
            if chosen is not None:
                done = (t, chosen)
                break
        if done is None:
            details = why + ["%s: %s" % (t, planner.full_reason(opts[t], t)) for t in sorted(opts)] + unusable
            full = sorted(set("%s/%s" % (t, p) for t, o in opts.items() for _d, ps, _w in o for p in ps))
            reason = ("every compatible target is full: %s" % ", ".join(full) if opts else
                      "no compatible target outside the drain set")
            stranded.append(dict(item, cause="full" if opts else "incompatible", evidence=["driver"],
                                 reasons=[reason], reason=reason, details=sorted(details)))
            continue
        t, chosen = done
        by_id = {c[0]["id"]: c for c in chosen}
        targets = []
        for d in devices:
            _d, parent, action, dev, left = by_id[d["id"]]
            targets.append({"source": d["id"], "device": dev if dev is not None else d["id"], "action": action,
                            "target_parent": parent, "mdev_type": d.get("mdev_type"),
                            "uuid_changes": action == "use" and dev != d["id"], "room_after": left})
        placements.append(dict(item, target_host=t, target_parents=sorted(set(x["target_parent"] for x in targets)),
                               target_devices=targets, target_parent=", ".join(sorted(set(x["target_parent"]
                                                                                          for x in targets))),
                               target_free_after=min(x["room_after"] for x in targets)))
    cold = [dict(item, reason="%s: moves cold (no device state travels); its types must exist on the target "
                 "when it starts" % vm.get("state"),
                 target_hosts=[t for t in planner.usable if planner.options(vm, devices, t)[0] is not None])
            for vm, devices, item in cold_vms]
    for s in stranded:
        s.setdefault("reason", (s.get("reasons") or [None])[0])
    free = [{"source_host": h, "device": u, "mdev_type": i["mdev_type"], "source_parent": i["parent"]}
            for h in sorted(drain) if matrix["hosts"][h].get("libvirt")
            for u, i in sorted(((matrix["hosts"][h].get("room") or {}).get("instances") or {}).items())
            if i["vm"] is None]
    placements.sort(key=lambda p: (p["source_host"], p["vm"] or "", p.get("device") or ""))
    stranded.sort(key=lambda s: (s["source_host"], s["vm"] or "", s.get("device") or ""))
    collisions = sorted({(c["uuid"], c["target_host"]): c for c in planner.collisions}.values(),
                        key=lambda c: (c["source_host"], c["vm"] or "", c["target_host"]))
    return {"drain_hosts": sorted(drain | set(unknown)), "unknown_hosts": unknown,
            "ready": not stranded and not unknown, "placements": placements, "stranded": stranded,
            "cold": cold, "collisions": collisions, "no_vfio": no_vfio, "free_instances": free}


def stranded_message(plan: Plan) -> str:
    """The text a failed precheck shows: every stranded VM and why, target by target."""
    lines = ["%s: not in the inventory" % h for h in plan.get("unknown_hosts") or []]
    for s in plan.get("stranded") or []:
        what = "VM %s on %s" % (s["vm"], s["source_host"]) if s.get("vm") else s.get("source_host")
        if s.get("device"):  # an instance-level item (older plans)
            what = "%s %s on %s/%s" % (s.get("mdev_type"), s["device"], s["source_host"], s.get("source_parent"))
        lines.append("%s: %s" % (what, "; ".join(s.get("reasons") or [s.get("reason") or "stranded"])))
        lines.extend("    %s" % d for d in s.get("details") or [])
    return "\n".join(lines)
