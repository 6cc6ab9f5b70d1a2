# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet compatibility: from per-host facts and probe results to a matrix and a plan.

Everything here is a pure function of plain data, run on the controller.

Sources are grouped into *classes*: one class per distinct (mdev type,
migration version), or per distinct ``migration/self`` for drivers that publish
the proposal layout. A target is asked once per class, never once per source
host, so the work grows with classes x targets. The matrix keeps verdicts at
that granularity; :func:`expand_cells` spreads them over source hosts, parents
and instances only when a report asks for it.

Host input (one dict per inventory host)::

    {"state": "ok" | "unreachable" | "failed",   # of fact gathering
     "reason": str | None,
     "facts": <ansible_facts.vfio_mdev> | None,
     "probe": <migration_probe result dict> | None}
"""

import functools
import gc
import hashlib
import json

from ansible_collections.vfio.migration.plugins.module_utils import _errno
from ansible_collections.vfio.migration.plugins.module_utils._probe import check_problems, standard_message
from ansible_collections.vfio.migration.plugins.plugin_utils import _compatible as compatible_templates
from ansible_collections.vfio.migration.plugins.plugin_utils import _gates
from ansible_collections.vfio.migration.plugins.plugin_utils import _plan
from ansible_collections.vfio.migration.plugins.plugin_utils import _policy
from ansible_collections.vfio.migration.plugins.plugin_utils._types import (
    Cell, Check, HostInput, Matrix, Plan, SourceRow, TargetChoice, VersionClass, Verdict,
)

SCHEMA_VERSION = 1

# Ranking of statuses when a host pair has several parents: the best first.
STATUS_ORDER = (_errno.COMPATIBLE, _errno.INCOMPATIBLE, _errno.UNSUPPORTED, _errno.MISSING_TYPE, _errno.ERROR, _errno.UNKNOWN)
_RANK = {s: i for i, s in enumerate(STATUS_ORDER)}


def _without_gc(func):
    """Run ``func`` with the cyclic garbage collector paused.

    The matrix functions build hundreds of thousands of small acyclic dicts and
    tuples; each collection pass would walk the whole growing matrix again, so
    pausing it halves their time at 10,000 hosts. Reference counting still frees
    everything; the collector resumes (if it was on) when the call returns.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()
    return wrapper


def best_status(statuses):
    """The most useful status among parents: compatible wins, unknown loses."""
    return min(statuses, key=lambda s: _RANK.get(s, len(_RANK)), default=_errno.UNKNOWN)


# -- sources and classes ------------------------------------------------------

def _layout_key(self_block):
    return "self:" + json.dumps(self_block, sort_keys=True, separators=(",", ":"))


def source_entries(host: str, facts: dict) -> list[SourceRow]:
    """Every migratable unit a host could send: (type, parent) rows with their instances.

    Yields dicts ``{host, parent, mdev_type, kind, key, version, self, devices,
    available_instances, supported, reason}``, where ``key`` identifies the class
    (``None`` when the source cannot migrate: ``reason`` says why).
    """
    rows = []
    all_devices = facts.get("devices") or {}
    for parent, p in sorted((facts.get("parents") or {}).items()):
        for type_id, t in sorted((p.get("types") or {}).items()):
            mig = t.get("migration") or {}
            base = {"host": host, "parent": parent, "mdev_type": type_id, "kind": "mdev",
                    "available_instances": t.get("available_instances"), "type_name": t.get("name"),
                    "driver_version": p.get("driver_version")}
            devices = list(t.get("devices") or [])
            by_version = {}
            # instances whose device-level version differs form their own class
            for uuid in devices:
                dmig = (all_devices.get(uuid) or {}).get("migration") or {}
                if dmig.get("supported") and dmig.get("version") and dmig.get("version") != mig.get("version"):
                    by_version.setdefault(dmig["version"], []).append(uuid)
            if by_version:
                own = set(u for us in by_version.values() for u in us)
                devices = [u for u in devices if u not in own]
            row = dict(base, devices=devices)
            row.update(_class_of(mig))
            rows.append(row)
            for version, uuids in sorted(by_version.items()):
                rows.append(dict(base, devices=uuids, key="v:%s\x00%s" % (type_id, version), version=version,
                                 self=None, supported=True, reason=None))
    for bdf, fn in sorted((facts.get("physical") or {}).items()):
        mig = fn.get("migration") or {}
        cls = _class_of(mig)
        if fn.get("driver") == _gates.PLAIN_VFIO_PCI:
            cls = {"key": None, "version": None, "self": None, "supported": False, "no_attribute": False,
                   "reason": "bound to plain vfio-pci, which has no migration driver", "source_status": _errno.UNSUPPORTED,
                   "reason_evidence": "vfio"}
        rows.append(dict({"host": host, "parent": bdf, "mdev_type": fn.get("type"), "kind": "physical",
                          "available_instances": 1, "devices": [bdf], "type_name": None,
                          "driver_version": fn.get("driver_version")}, **cls))
    rows.extend(vgpu_entries(host, facts))
    return rows


def vgpu_entries(host: str, facts: dict) -> list[SourceRow]:
    """Vendor-VFIO vGPUs: each PF's VFs with a vGPU type set, grouped by type name."""
    groups = {}
    for vf, v in sorted(((facts.get("vendor_vgpu") or {}).get("vfs") or {}).items()):
        if v.get("current"):
            name = v["current"].get("name") or "vgpu-%s" % v["current"].get("id")
            g = groups.setdefault((v.get("physfn") or vf, name), {"driver_version": v.get("driver_version"),
                                                                  "devices": []})
            g["devices"].append(vf)
    return [{"host": host, "parent": pf, "mdev_type": name, "kind": "vgpu", "available_instances": None,
             "devices": g["devices"], "type_name": name, "driver_version": g["driver_version"],
             "key": None, "version": None, "self": None, "supported": False, "no_attribute": True,
             "reason": "vendor-VFIO vGPU: the driver offers no migration compatibility attribute",
             "source_status": _errno.UNSUPPORTED}
            for (pf, name), g in sorted(groups.items())]


def _class_of(mig):
    if mig.get("supported") and mig.get("version"):
        return {"key": None, "version": mig["version"], "self": None, "supported": True, "reason": None}
    if mig.get("supported") and mig.get("self") is not None:
        return {"key": _layout_key(mig["self"]), "version": None, "self": mig["self"], "supported": True,
                "reason": None}
    err = mig.get("error") or {}
    if mig.get("attribute") is None and not err:
        return {"key": None, "version": None, "self": None, "supported": False, "no_attribute": True,
                "reason": "source has no migration attribute: it does not support migration",
                "source_status": _errno.UNSUPPORTED}
    reason = "reading the source's %s failed: %s%s" % (
        mig.get("attribute") or "migration attribute", err.get("message") or "unknown error",
        " (%s)" % err["errno_name"] if err.get("errno_name") else "")
    status = _errno.ERROR if mig.get("supported") is None and err else _errno.UNSUPPORTED
    return {"key": None, "version": None, "self": None, "supported": False, "no_attribute": False,
            "reason": reason, "source_status": status}


def _stack(facts):
    stack = facts.get("stack") or {}
    return {"kernel": stack.get("kernel"), "qemu": stack.get("qemu"), "libvirt": stack.get("libvirt")}


def class_id(key):
    """A class id that depends only on what the class is (stable across calls and runs)."""
    kind = {"v": "v", "p": "p", "s": "l"}[key[0]]
    return "%s%s" % (kind, hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:10])


def build_classes(hosts: dict[str, HostInput],
                  policy: dict | None = None) -> tuple[dict[str, VersionClass], list[SourceRow]]:
    """Group every source row into classes. Returns ``(classes, rows)``.

    ``classes`` maps class id -> ``{id, check, mdev_type, version, self, kind,
    evidence, source_gate, sources}``. A class is what a target's verdict
    depends on: the version the driver is asked about (``check`` names the
    probe check, shared by classes with one version) and the source side's
    gates (:mod:`_gates`: stack minimums, the kernel's migration capability).
    Sources the driver cannot be asked about (no attribute at all, vendor-VFIO
    vGPUs) form ``policy`` classes when ``policy`` is enabled, keyed by what
    the policy looks at; other unsupported sources get no class (their rows
    carry ``reason``).
    """
    policy = _policy.normalize(policy)
    gates = _gates.Gates(policy)
    classes, rows, ids = {}, [], {}
    for host in sorted(hosts):
        h = hosts[host]
        if h.get("state") != "ok" or not h.get("facts"):
            continue
        facts = h["facts"]
        stack = _stack(facts)
        stack_gate = gates.stack(facts, "source")
        for row in source_entries(host, facts):
            row["class"] = None
            if row["supported"]:
                base, evidence = row["key"] or "v:%s\x00%s" % (row["mdev_type"], row["version"]), "driver"
            elif policy["enabled"] and row.get("no_attribute"):
                side = {"type_name": row.get("type_name"), "driver_version": row.get("driver_version"),
                        "stack": stack}
                base, evidence = "p:" + json.dumps([row["kind"], row["mdev_type"], side], sort_keys=True), "policy"
            else:
                rows.append(row)
                continue
            gate = stack_gate + gates.capability(facts, row["kind"], row["parent"], row["mdev_type"], "source")
            key = base + ("\x00gate:" + json.dumps(_gates.key(gate)) if gate else "")
            if key not in ids:
                ids[key] = class_id(key)
                classes[ids[key]] = {"id": ids[key], "check": class_id(base), "mdev_type": row["mdev_type"],
                                     "version": row["version"], "self": row["self"], "kind": row["kind"],
                                     "evidence": evidence, "source_gate": gate, "sources": []}
                if evidence == "policy":
                    classes[ids[key]]["policy_source"] = side
            row["class"] = ids[key]
            classes[ids[key]]["sources"].append(row["host"])
            rows.append(row)
    for c in classes.values():
        c["sources"] = sorted(set(c["sources"]))
    return classes, rows


def offered_types(facts: dict) -> dict[str, dict[str, dict]]:
    """What a host offers as a target: ``{type: {parent: {available, type_name, driver_version}}}``.

    Vendor-VFIO vGPU types count the PF's free VFs (no type set) that can take them.
    """
    out = {}
    for parent, p in (facts.get("parents") or {}).items():
        for type_id, t in (p.get("types") or {}).items():
            out.setdefault(type_id, {})[parent] = {"available": t.get("available_instances"),
                                                   "type_name": t.get("name"),
                                                   "driver_version": p.get("driver_version")}
    for bdf, fn in (facts.get("physical") or {}).items():
        out.setdefault(fn.get("type"), {})[bdf] = {"available": 1, "type_name": None,
                                                   "driver_version": fn.get("driver_version")}
    for vf, v in ((facts.get("vendor_vgpu") or {}).get("vfs") or {}).items():
        if v.get("current"):
            continue
        for t in v.get("creatable") or []:
            slot = out.setdefault(t["name"], {}).setdefault(v.get("physfn") or vf, {
                "available": 0, "type_name": t["name"], "driver_version": v.get("driver_version")})
            slot["available"] += 1
    return out


def probe_refusal(c: VersionClass) -> str | None:
    """Why the probe would refuse to write this class's version (None when it would write it).

    The probe refuses a whole batch if one check is bad, so such a class is
    left out of every batch and judged ``error`` instead (one hostile source
    must not blank a target's other verdicts).
    """
    problems = check_problems({"id": c["check"], "mdev_type": c["mdev_type"], "version": c["version"]})
    return "; ".join(problems) or None


def checks(classes: dict[str, VersionClass]) -> dict[str, tuple[Check, set[str]]]:
    """The probe checks behind ``classes``: ``{check id: (check, its sources)}``.

    Classes that differ only in their source side's gates share one check: a
    target is asked once per (type, version), never once per class or host.
    """
    out = {}
    for c in classes.values():
        if c["version"] is None or c["evidence"] != "driver":
            continue
        got = out.get(c["check"])
        if got is None:
            got = out[c["check"]] = ({"id": c["check"], "mdev_type": c["mdev_type"], "version": c["version"]}, set())
        got[1].update(c["sources"])
    return out


@_without_gc
def probe_batches(hosts: dict[str, HostInput]) -> dict[str, list[Check]]:
    """One batch of checks per reachable target: every version check whose type it offers.

    A check whose only source is the target itself is left out (a host does not
    migrate to itself). Layout classes need no write and are left out too, and
    so are versions the probe would refuse (see :func:`probe_refusal`). The
    check dicts are shared between batches; nothing changes them.
    """
    by_type = {}
    for cid, (check, sources) in sorted(checks(build_classes(hosts)[0]).items(),
                                        key=lambda kv: (kv[1][0]["version"], kv[0])):
        if not check_problems(check):
            solo = next(iter(sources)) if len(sources) == 1 else None
            by_type.setdefault(check["mdev_type"], []).append((check, solo))
    order = sorted(by_type)
    batches = {}
    for host in sorted(hosts):
        h = hosts[host]
        if h.get("state") != "ok" or not h.get("facts"):
            continue
        offered = offered_types(h["facts"])
        batches[host] = [check for mdev_type in order if mdev_type in offered
                         for check, solo in by_type[mdev_type] if solo != host]
    return batches


# -- verdicts -------------------------------------------------------------------

def _verdict(parent, status, message=None, errno=None, errno_name=None, evidence="none", available=None,
             reasons=None) -> Verdict:
    """One cell's verdict. ``reasons`` lists every piece of evidence that applies (see ``_gates``)."""
    if reasons is None:
        reason = {"evidence": evidence, "status": status, "message": message}
        if errno_name:
            reason["errno_name"] = errno_name
        reasons = [reason]
    return {"parent": parent, "status": status, "message": message, "errno": errno, "errno_name": errno_name,
            "evidence": evidence, "available_instances": available, "reasons": list(reasons)}


def _layout_verdicts(c, facts, offered, shared):
    """Match a source's ``migration/self`` against each target parent's ``compatible``."""
    out = []
    for parent in sorted(offered):
        avail = offered[parent]["available"]
        t = ((facts.get("parents") or {}).get(parent) or {}).get("types", {}).get(c["mdev_type"]) or {}
        compat = (t.get("migration") or {}).get("compatible")
        if compat is None:
            out.append(shared.verdict(parent, _errno.UNSUPPORTED, "target publishes no migration/compatible for this type",
                                      evidence="driver", available=avail))
            continue
        try:
            m = compatible_templates.compatible_match(c["self"], compat)
        except ValueError as exc:
            out.append(shared.verdict(parent, _errno.ERROR, "target's migration/compatible is malformed: %s" % exc,
                                      available=avail))
            continue
        if m["match"]:
            out.append(shared.verdict(parent, _errno.COMPATIBLE, "source migration/self matches compatible block %s"
                                      % m["block"], evidence="driver", available=avail))
        else:
            out.append(shared.verdict(parent, _errno.INCOMPATIBLE, "; ".join(m["reasons"]) or "no compatible block matches",
                                      evidence="driver", available=avail))
    return out


def _policy_verdicts(c, offered, policy, shared):
    """Apply the operator's policy (type and driver) to each target parent offering the type."""
    out = []
    for parent in sorted(offered):
        o = offered[parent]
        target = {"type_name": o["type_name"], "driver_version": o["driver_version"]}
        try:
            status, message = _policy.check(policy, c["policy_source"], target)
        except _policy.PolicyError as exc:
            status, message = _errno.ERROR, "policy cannot be applied: %s" % exc
        out.append(shared.verdict(parent, status, message, evidence="policy", available=o["available"]))
    return out


_DRIVER_EVIDENCE = frozenset((_errno.COMPATIBLE, _errno.INCOMPATIBLE, _errno.UNSUPPORTED, _errno.MISSING_TYPE))
_STATUSES = frozenset(_errno.STATUSES)


def timed_out(what, result):
    """The reason a task that hit its time limit gives (its registered result has ``timedout``)."""
    period = result["timedout"].get("period") if isinstance(result.get("timedout"), dict) else None
    return "%s did not finish within %s: a driver or file that never answers?" % (
        what, "%s s" % period if period is not None else "its time limit")


def _probe_unusable(probe):
    """Why a target's probe result cannot be used (None when it can)."""
    if isinstance(probe, dict) and "timedout" in probe:
        return timed_out("the probe", probe)
    if not probe or probe.get("failed") or probe.get("skipped") or "results" not in probe:
        return (probe or {}).get("msg") or ("probe skipped" if (probe or {}).get("skipped") else "not probed")
    return None


class _Shared(object):
    """One object per distinct verdict and per distinct verdict list.

    A fleet has few distinct verdicts (a handful of parents, statuses and free
    counts), so 10,000 targets x 32 classes need a few thousand dicts, not
    320,000. Nothing changes a verdict once made: plans and reports build new
    dicts from them.
    """

    def __init__(self):
        self.made = {}  # (parent, status, message, errno, errno_name, evidence, available) -> verdict
        self._lists = {}
        self._gated = {}  # (id of a verdict list, gate key per parent) -> gated list

    def verdict(self, parent, status, message=None, errno=None, errno_name=None, evidence="none", available=None):
        key = (parent, status, message, errno, errno_name, evidence, available)
        v = self.made.get(key)
        if v is None:
            v = self.made[key] = _verdict(*key)
        return v

    def verdicts(self, items):
        key = tuple(map(id, items))
        got = self._lists.get(key)
        if got is None:
            got = self._lists[key] = items
        return got

    def per_parent(self, offered, status, message, evidence="none"):
        return self.verdicts([self.verdict(p, status, message, evidence=evidence, available=offered[p]["available"])
                              for p in sorted(offered)])

    def gated(self, verdicts, gates_of):
        """``verdicts`` with each parent's gates applied (``gates_of(parent)`` -> reasons)."""
        gates = [gates_of(v["parent"]) if v["parent"] is not None else [] for v in verdicts]
        if not any(gates):
            return verdicts
        key = (id(verdicts), tuple(_gates.key(g) for g in gates))
        got = self._gated.get(key)
        if got is None:
            out = []
            for v, g in zip(verdicts, gates):
                if not g:
                    out.append(v)
                    continue
                status, evidence, message, reasons = _gates.apply(v, g)
                out.append(_verdict(v["parent"], status, message, v["errno"], v["errno_name"], evidence,
                                    v["available_instances"], reasons))
            got = self._gated[key] = self.verdicts(out)
        return got


def _probed_verdicts(results, offered, type_of, shared):
    """``{check id: [verdict per parent]}`` from one target's probe results.

    ``offered`` is the target's :func:`offered_types`, ``type_of`` maps check ids to types.
    """
    by_id, made = {}, shared.made
    for r in results:
        status = r.get("status")
        if status not in _STATUSES:
            status = _errno.ERROR
        parent = r.get("parent")
        slot = (offered.get(type_of.get(r.get("id"))) or {}).get(parent)
        # a compact result (migration_probe compact=true) leaves out the message the status and errno tell
        message = r["message"] if "message" in r else standard_message(status, r.get("errno_name"))
        key = (parent, status, message, r.get("errno"), r.get("errno_name"),
               "driver" if status in _DRIVER_EVIDENCE else "none", slot["available"] if slot else None)
        v = made.get(key)  # inline of shared.verdict: this loop runs once per probe answer
        if v is None:
            v = made[key] = _verdict(*key)
        by_id.setdefault(r.get("id"), []).append(v)
    for cid, vs in by_id.items():
        if len(vs) > 1:
            vs.sort(key=lambda v: v["parent"] or "")
        by_id[cid] = shared.verdicts(vs)
    return by_id


class _Target(object):
    """What one target host contributes to every class's verdict, computed once."""

    def __init__(self, name, h, gates, type_of, shared):
        self.name, self.h, self.gate_maker = name, h, gates
        self.ok = h.get("state") == "ok" and bool(h.get("facts"))
        self.offered, self.probed, self.unusable = {}, None, None
        self._gates = {}
        if self.ok:
            facts = h["facts"]
            self.offered = offered_types(facts)
            self.unusable = _probe_unusable(h.get("probe"))
            if not self.unusable:
                self.probed = _probed_verdicts(h["probe"]["results"], self.offered, type_of, shared)
            self.stack_gate = gates.stack(facts, "target")
            # a directory discovery could not list may hold the type: "missing" would be a guess
            self.unlisted = ["%s %s (%s)" % (e.get("what"), e.get("path"), e.get("errno_name") or e.get("message"))
                             for e in facts.get("errors") or [] if str(e.get("what") or "").startswith("list ")]
            self.kinds = {bdf: "physical" for bdf in facts.get("physical") or {}}
            self.kinds.update((p, "mdev") for p in facts.get("parents") or {})

    def gates(self, mdev_type):
        """``parent -> reasons`` for the target side of ``mdev_type``; empty when no gate applies."""
        got = self._gates.get(mdev_type)
        if got is None:
            facts = self.h["facts"]
            per = {}
            for parent in self.offered.get(mdev_type) or {}:
                kind = self.kinds.get(parent, "vgpu")
                per[parent] = self.stack_gate + self.gate_maker.capability(facts, kind, parent, mdev_type, "target")
            got = self._gates[mdev_type] = per if any(per.values()) else {}
        return got


def target_verdicts(c: VersionClass, target: "_Target", shared: "_Shared", policy: dict,
                    refusal: str | None = None) -> list[Verdict]:
    """Verdicts of one target host (a list, one per parent) for one class: the one verdict path.

    ``target`` is a :class:`_Target`. The base verdict comes from the evidence
    the class has (the driver's probe answer, the target's ``migration/compatible``
    or the policy); the gates of both sides (:mod:`_gates`) then apply.
    """
    h = target.h
    if not target.ok:
        why = "target %s: %s" % (h.get("state") or "not gathered", h.get("reason") or "no facts")
        return shared.verdicts([shared.verdict(None, _errno.UNKNOWN, why)])
    offered = target.offered.get(c["mdev_type"])
    if not offered and target.unlisted:
        return shared.verdicts([shared.verdict(None, _errno.ERROR, "target offers no %s that discovery could see, but "
                                               "it could not %s" % (c["mdev_type"], "; ".join(target.unlisted)))])
    if not offered:
        return shared.verdicts([shared.verdict(None, _errno.MISSING_TYPE, "target offers no %s" % c["mdev_type"],
                                               evidence=c.get("evidence", "driver"))])
    if c.get("evidence") == "policy":
        base = shared.verdicts(_policy_verdicts(c, offered, policy, shared))
    elif c["version"] is None:
        base = shared.verdicts(_layout_verdicts(c, h["facts"], offered, shared))
    elif refusal:
        base = shared.per_parent(offered, _errno.ERROR, "not probed: the probe refuses this source version (%s)" % refusal)
    elif target.unusable:
        base = shared.per_parent(offered, _errno.UNKNOWN, "target not probed: %s" % target.unusable)
    else:
        base = target.probed.get(c["check"]) or shared.per_parent(offered, _errno.UNKNOWN,
                                                                  "target not probed for this class")
    per_parent = target.gates(c["mdev_type"])
    source_gate = c.get("source_gate") or []
    if not per_parent and not source_gate:
        return base
    return shared.gated(base, lambda parent: source_gate + per_parent.get(parent, []))


@_without_gc
def compat_matrix(hosts: dict[str, HostInput], policy: dict | None = None) -> Matrix:
    """The fleet matrix: hosts, classes, source rows and class x target verdicts.

    ``policy`` (see ``_policy.DEFAULT_POLICY``) decides sources whose driver
    cannot be asked and sets the stack minimums that gate every verdict;
    ``{"enabled": false}`` leaves attribute-less sources ``unsupported``.
    Identical verdicts (and verdict lists) are one shared object.
    """
    policy = _policy.normalize(policy)
    classes, rows = build_classes(hosts, policy)
    shared = _Shared()
    type_of = {c["check"]: c["mdev_type"] for c in classes.values()}
    order = [(cid, c, c["sources"][0] if len(c["sources"]) == 1 else None,
              probe_refusal(c) if c["version"] is not None and c["evidence"] == "driver" else None)
             for cid, c in classes.items()]
    verdicts = {cid: {} for cid in classes}
    gates = _gates.Gates(policy)
    for name in sorted(hosts):
        target = _Target(name, hosts[name], gates, type_of, shared)
        for cid, c, solo, refusal in order:
            if solo != name:
                verdicts[cid][name] = target_verdicts(c, target, shared, policy, refusal)
    host_table = {}
    for name in sorted(hosts):
        h = hosts[name]
        host_table[name] = {"state": h.get("state") or "unknown", "reason": h.get("reason"),
                            "probed": bool(h.get("probe") and "results" in h["probe"])}
        if h.get("state") == "ok" and h.get("facts"):
            host_table[name].update(libvirt=bool((h["facts"].get("libvirt") or {}).get("present")),
                                    vms=_plan.host_vms(h["facts"]), room=_plan.host_room(h["facts"]))
    return {"schema_version": SCHEMA_VERSION, "hosts": host_table, "classes": classes,
            "sources": rows, "verdicts": verdicts, "policy": policy}


def pair_status(matrix: Matrix, row: SourceRow, target: str) -> list[Verdict]:
    """Verdicts for one source row on one target host (list, one per parent)."""
    if row["host"] == target:
        return []
    if row["class"] is None:
        status = row.get("source_status", _errno.UNSUPPORTED)
        return [_verdict(None, status, row["reason"], evidence=row.get("reason_evidence") or (
            "driver" if status == _errno.UNSUPPORTED else "none"))]
    per = matrix["verdicts"][row["class"]]
    if target not in per:  # only possible for a class whose sole source is this target
        return []
    return per[target]


@_without_gc
def expand_cells(matrix: Matrix) -> list[Cell]:
    """Cells at report granularity: (source host, parent, type, version, instances) x (target host, parent)."""
    cells = []
    targets = sorted(matrix["hosts"])
    for row in matrix["sources"]:
        c = matrix["classes"].get(row["class"]) if row["class"] else None
        for target in targets:
            for v in pair_status(matrix, row, target):
                cells.append({
                    "source_host": row["host"], "source_parent": row["parent"], "mdev_type": row["mdev_type"],
                    "source_kind": row["kind"], "source_version": row["version"],
                    "source_devices": row["devices"], "class": row["class"],
                    "target_host": target, "target_parent": v["parent"], "status": v["status"],
                    "evidence": v["evidence"], "errno": v["errno"], "errno_name": v["errno_name"],
                    "message": v["message"], "reasons": v.get("reasons") or [],
                    "target_available_instances": v["available_instances"],
                    "layout": c is not None and c.get("evidence") == "driver" and c["version"] is None,
                })
    return cells


# -- targets and plans ------------------------------------------------------------

@_without_gc
def migration_targets(matrix: Matrix, source_host: str, device: str | None = None, mdev_type: str | None = None,
                      exclude=()) -> list[TargetChoice]:
    """Compatible targets for a source host (or one instance), most free capacity first."""
    out = {}
    targets = set(matrix["hosts"]) - set(exclude or ())
    for row in matrix["sources"]:
        if row["host"] != source_host or (device and device not in row["devices"]) or \
                (mdev_type and row["mdev_type"] != mdev_type):
            continue
        for target, v in _compatible(matrix, row, targets):
            key = (target, v["parent"], row["mdev_type"])
            out[key] = {"target_host": target, "target_parent": v["parent"], "mdev_type": row["mdev_type"],
                        "available_instances": v["available_instances"] or 0, "evidence": v["evidence"]}
    return sorted(out.values(), key=lambda t: (-t["available_instances"], t["target_host"], t["target_parent"] or ""))


def _compatible(matrix: Matrix, row: SourceRow, targets: set[str]) -> list[tuple[str, Verdict]]:
    """``(target, verdict)`` for every compatible verdict of a source row on ``targets`` (a set), unordered."""
    if row["class"] is None:
        return []  # a source that cannot migrate has no compatible verdict anywhere
    host = row["host"]
    return [(target, v) for target, vs in matrix["verdicts"][row["class"]].items()
            if target in targets and target != host for v in vs if v["status"] == _errno.COMPATIBLE]


def drain_plan(matrix: Matrix, drain_hosts) -> Plan:
    """The drain plan in VMs (see :mod:`_plan`)."""
    return _plan.drain_plan(matrix, drain_hosts)


def stranded_message(plan: Plan) -> str:
    """The text a failed precheck shows (see :mod:`_plan`)."""
    return _plan.stranded_message(plan)
