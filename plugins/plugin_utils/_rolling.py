# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A rolling maintenance: waves of hosts drained together, so that every host is upgraded once and no
running VM is ever stranded.

The drain plan (:mod:`_plan`) answers "can these hosts be drained now?". A fleet-wide upgrade asks
"in which order can every host be drained and upgraded, a few at a time?". Compatibility is
asymmetric (a newer driver accepts an older source, not the reverse), so the order matters: VMs flow
from old hosts to upgraded ones and may not be able to come back.

The model, wave after wave:

* a wave drains a set of hosts at once: every running (or paused) VM on them moves live, whole, to a
  host outside the wave, on parents whose verdict for the device is ``compatible`` and with room,
  counted with the drain plan's pools (:class:`_plan._Pool`: free pre-created instances, coupled
  budgets, one type per NVIDIA GPU, a vGPU VF as one slot);
* a VM placed in wave k lives on its target from then on (it takes that room) and moves again in a
  later wave if its new host is drained then; its devices then answer as that host's devices do
  (their class is the class of the target's parent and type);
* the room a VM leaves behind stays a free instance of its type (the conservative reading: a driver
  gives the same budget back, and nothing more);
* after its wave a host is upgraded: it is a target for later waves with its new versions. VMs on an
  upgraded host never move again (each host is in exactly one wave), so sources are always hosts as
  they are now, and only the target side of a verdict ever changes;
* shut-off VMs stay where they are, off; VMs that cannot move live at all (QEMU blocks them, a device
  cannot migrate) must be shut down for their host's wave (``must_stop``).

A verdict towards an upgraded target comes from evidence (:class:`_Compat`):

* policy classes: the policy evaluated on the target's new driver version and stack;
* driver classes: when the target's driver is not changed, its recorded answer; when another host
  runs the new driver version now, that host's recorded answer (the probe asked it about this very
  version); otherwise the stated assumption (``assume``), and the schedule says it rests on it;
* then the gates of both sides, with the target's new stack (the policy's minimums) and the
  capability answers the hosts gave.

Two solvers: an exact one (every wave order and grouping, every placement of the wave's VMs, the
fewest VMs to stop, then the fewest waves; a budget of search nodes bounds it) for small fleets, and
a greedy one that scales (the lightest host that can be drained now first, VMs to upgraded or
never-drained hosts first, each to the target with the most room).
"""

import heapq
import itertools
import json
import math
import time

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.plugin_utils import _gates as G
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _plan as PLAN
from ansible_collections.vfio.migration.plugins.plugin_utils import _policy as P

SCHEMA_VERSION = 1
STACK = ("kernel", "qemu", "libvirt")
SPEC_KEYS = ("driver_version", "drivers") + STACK
RULES = {
    "newer_accepts_older": "a newer driver accepts older sources of the same type, as the vendors document",
    "same_branch": "a newer driver of the same branch (first version component) accepts older sources of the "
                   "same type",
    "none": None,
}
SOLVERS = ("auto", "exact", "greedy")
DEFAULT_EXACT_MAX_HOSTS = 8
DEFAULT_EXACT_BUDGET = 50000
_CARRY = object()  # a stack version not known now: the gate the matrix found is carried
_LABELS = dict(P.STACK_LABELS)


class RollingError(ValueError):
    """The inputs of a rolling schedule cannot be used as given."""


class _Budget(Exception):
    """The exact search used its budget of nodes."""


# -- inputs -------------------------------------------------------------------------------

def _version(text, what):
    try:
        P.version_key(text)
    except P.PolicyError:
        raise RollingError("%s: not a version: %r" % (what, text))
    return str(text)


def _spec(raw, what):
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RollingError("%s must be a dict of versions" % what)
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise RollingError("%s: unknown keys %s (known: %s)" % (what, ", ".join(unknown), ", ".join(SPEC_KEYS)))
    out = {}
    for key in ("driver_version",) + STACK:
        if raw.get(key) not in (None, ""):
            out[key] = _version(raw[key], "%s.%s" % (what, key))
    drivers = raw.get("drivers") or {}
    if not isinstance(drivers, dict):
        raise RollingError("%s.drivers must map driver names to versions" % what)
    if drivers:
        out["drivers"] = {str(n): _version(v, "%s.drivers.%s" % (what, n)) for n, v in sorted(drivers.items())}
    return out


def after_specs(after, hosts):
    """``{host: {driver_version, drivers, kernel, qemu, libvirt}}`` for every host to upgrade.

    ``after`` gives the versions for every host at its top level and per host under ``hosts``
    (which win, key by key; ``drivers`` merge by driver name).
    """
    after = after or {}
    if not isinstance(after, dict):
        raise RollingError("after must be a dict")
    per = after.get("hosts") or {}
    if not isinstance(per, dict):
        raise RollingError("after.hosts must map host names to versions")
    base = _spec({k: v for k, v in after.items() if k != "hosts"}, "after")
    stray = sorted(set(per) - set(hosts))
    if stray:
        raise RollingError("after.hosts names hosts that are not upgraded: %s" % ", ".join(stray))
    out = {}
    for host in hosts:
        spec = dict(base, drivers=dict(base.get("drivers") or {}))
        own = _spec(per.get(host), "after.hosts.%s" % host)
        spec["drivers"].update(own.pop("drivers", {}))
        spec.update(own)
        if not spec["drivers"]:
            del spec["drivers"]
        out[host] = spec
    return out


def wave_size(max_wave, count):
    """The largest wave: an int, or ``"N%"`` of the hosts to upgrade (at least one host)."""
    if isinstance(max_wave, str) and max_wave.strip().endswith("%"):
        try:
            share = float(max_wave.strip()[:-1])
        except ValueError:
            raise RollingError("max_wave: not a number of hosts or a percentage: %r" % max_wave)
        if not 0 < share <= 100:
            raise RollingError("max_wave: a percentage must be above 0 and at most 100, not %r" % max_wave)
        return max(1, int(count * share / 100))
    try:
        if isinstance(max_wave, bool):
            raise TypeError
        n = int(max_wave)
    except (TypeError, ValueError):
        raise RollingError("max_wave: not a number of hosts or a percentage: %r" % (max_wave,))
    if n < 1:
        raise RollingError("max_wave must be at least 1, not %r" % (max_wave,))
    return n


def _cmp(a, b):
    ka, kb = P.version_key(a), P.version_key(b)
    n = max(len(ka), len(kb))
    ka, kb = ka + (0,) * (n - len(ka)), kb + (0,) * (n - len(kb))
    return (ka > kb) - (ka < kb)


# -- versions now and after the upgrade ---------------------------------------------------

class _Versions(object):
    """Each host's driver version per parent and its stack, now and after its upgrade.

    Now: from ``host_versions`` (:func:`_drift.host_versions`), else the matrix's source rows. A stack
    version that is not known now is ``_CARRY``: the gate the matrix found for it stands.
    """

    def __init__(self, matrix, host_versions, after):
        self.hv = host_versions or {}
        self.after = after
        self.rows = {}
        for row in matrix["sources"]:
            if row.get("driver_version"):
                self.rows.setdefault((row["host"], row["parent"]), row["driver_version"])
        self.names = {}
        for host, h in matrix["hosts"].items():
            for parent, pool in ((h.get("room") or {}).get("pools") or {}).items():
                self.names[(host, parent)] = pool.get("driver")

    def driver_name(self, host, parent):
        return self.names.get((host, parent))

    def driver(self, host, parent, new=False):
        now = ((self.hv.get(host) or {}).get("drivers") or {}).get(parent) or self.rows.get((host, parent))
        if not new:
            return now
        spec = self.after.get(host) or {}
        return (spec.get("drivers") or {}).get(self.driver_name(host, parent)) or spec.get("driver_version") or now

    def stack(self, host, new=False):
        hv = self.hv.get(host)
        out = {part: (hv.get(part) if hv is not None else _CARRY) for part in STACK}
        if new:
            spec = self.after.get(host) or {}
            out.update((part, spec[part]) for part in STACK if spec.get(part))
        return out

    def after_of(self, host, parents):
        """What the host runs after its upgrade: its drivers per parent and its stack (for the schedule)."""
        stack = self.stack(host, True)
        out = {part: (None if v is _CARRY else v) for part, v in stack.items()}
        out["drivers"] = {p: self.driver(host, p, True) for p in sorted(parents)}
        return out


# -- compatibility towards targets as they are now or after their upgrade -------------------

class _Src(object):
    """A device as a source: its class (or why it cannot migrate), type, host, parent and driver version."""

    __slots__ = ("key", "cls", "cid", "kind", "mdev_type", "host", "parent", "driver_version", "reason")

    def __init__(self, key, cls, cid, kind, mdev_type, host, parent, driver_version, reason=None):
        self.key, self.cls, self.cid, self.kind, self.mdev_type = key, cls, cid, kind, mdev_type
        self.host, self.parent, self.driver_version, self.reason = host, parent, driver_version, reason


def _base_reason(v):
    """The verdict's own answer without the gates: the driver's (or the probe's) reason."""
    for r in v.get("reasons") or ():
        if r.get("evidence") in ("driver", "none"):
            return dict(r)
    return {"evidence": v.get("evidence"), "status": v["status"], "message": v.get("message")}


def _words(status, message=None, errno_name=None):
    words = status + (" (%s)" % errno_name if errno_name else "")
    return words + (" - %s" % message if message else "")


class _Compat(object):
    """Which parents of a target accept a source device, with the evidence each answer rests on.

    ``new`` (a set the fleet shares) names the upgraded hosts. Answers are cached per source class
    and target state.
    """

    def __init__(self, matrix, versions, new, assume):
        self.matrix, self.versions, self.new, self.rule = matrix, versions, new, RULES[assume]
        self.assume_mode = assume
        self.policy = P.normalize(matrix.get("policy"))
        self.classes, self.verdicts = matrix["classes"], matrix["verdicts"]
        self.hosts = matrix["hosts"]
        self.site = {}
        self.by_check, self.by_type = {}, {}
        for row in matrix["sources"]:
            self.site.setdefault((row["host"], row["parent"], row["mdev_type"]), row)
        for cid, c in sorted(self.classes.items()):
            if c.get("check"):
                self.by_check.setdefault(c["check"], []).append(cid)
            self.by_type.setdefault(c["mdev_type"], []).append(cid)
        self.refs = None
        self._srcs, self._cache, self._old, self._reach = {}, {}, {}, {}
        self._tstack, self._tvfio, self._offered = {}, {}, {}

    # the source side -------------------------------------------------------------------
    def source(self, host, device, row=None):
        """A device of a VM on ``host`` as a source (``row``: its own source row, for devices never moved)."""
        if row is None:
            row = self.site.get((host, device.get("parent"), device.get("mdev_type")))
        if row is not None:
            key = ("row", row["host"], row["parent"], row["mdev_type"], row.get("version"), row.get("class"))
            src = self._srcs.get(key)
            if src is None:
                cid = row.get("class")
                dv = row.get("driver_version") or self.versions.driver(row["host"], row["parent"])
                # one class can hold hosts whose drivers differ but publish one version: the assumption compares
                # driver versions, so they are told apart
                src = self._srcs[key] = _Src((cid, dv) if cid else key, self.classes.get(cid), cid, row["kind"],
                                             row["mdev_type"], row["host"], row["parent"], dv,
                                             None if cid else row.get("reason") or "cannot migrate")
            return src
        if device.get("kind") == "vgpu":
            return self._vgpu_source(host, device)
        return _Src(("none", host, device.get("parent"), device.get("mdev_type")), None, None, device.get("kind"),
                    device.get("mdev_type"), host, device.get("parent"), None,
                    "the matrix has no source row for %s on %s" % (device.get("mdev_type"), device.get("parent")))

    def _vgpu_source(self, host, device):
        """A vGPU VF given a type on ``host`` by a move: the policy class its host's facts would give it."""
        t, parent = device["mdev_type"], device["parent"]
        key = ("vgpu", host, parent, t)
        src = self._srcs.get(key)
        if src is not None:
            return src
        dv = self.versions.driver(host, parent)
        if not self.policy["enabled"]:
            src = _Src(key, None, None, "vgpu", t, host, parent, dv,
                       "vendor-VFIO vGPU: the driver offers no migration compatibility attribute")
        else:
            stack = {part: (None if v is _CARRY else v) for part, v in self.versions.stack(host).items()}
            side = {"type_name": t, "driver_version": dv, "stack": stack}
            base = "p:" + json.dumps(["vgpu", t, side], sort_keys=True)
            gate = P.stack_check(self.policy, stack, "source")
            cid = M.class_id(base + ("\x00gate:" + json.dumps(G.key(gate)) if gate else ""))
            cls = self.classes.get(cid) or {"id": None, "mdev_type": t, "kind": "vgpu", "version": None,
                                            "evidence": "policy", "policy_source": side, "source_gate": gate,
                                            "check": None}
            src = _Src(cid if cid in self.classes else key, cls, cid if cid in self.classes else None, "vgpu", t,
                       host, parent, dv)
        self._srcs[key] = src
        return src

    # the target side ---------------------------------------------------------------------
    def offered(self, target, mdev_type):
        key = (target, mdev_type)
        got = self._offered.get(key)
        if got is None:
            pools = (self.hosts[target].get("room") or {}).get("pools") or {}
            got = self._offered[key] = [p for p, s in sorted(pools.items())
                                        if mdev_type in (s.get("available") or {}) or mdev_type in (s.get("free") or {})
                                        or mdev_type in (s.get("in_use_types") or [])]
        return got

    def _target_reasons(self, target):
        """The target-side stack gates the matrix found for ``target`` (by label), for versions not known now."""
        got = self._tstack.get(target)
        if got is None:
            got = {}
            # the stack gates are the same for every parent and class of a target: one verdict shows them
            v = next((v for cid in self.classes for v in self.verdicts[cid].get(target) or ()
                      if v.get("parent") is not None), None)
            for r in (v or {}).get("reasons") or ():
                msg = r.get("message") or ""
                if r.get("evidence") == "policy" and msg.endswith(" on target"):
                    for part, label in P.STACK_LABELS:
                        if msg.startswith(label + " "):
                            got.setdefault(part, []).append(dict(r))
            self._tstack[target] = got
        return got

    def _vfio_reasons(self, target, parent, mdev_type):
        """The target's own capability gates (the kernel's answer) for a type on a parent, from the matrix."""
        key = (target, mdev_type)
        got = self._tvfio.get(key)
        if got is None:
            got = {}
            for cid in self.by_type.get(mdev_type) or ():
                vs = self.verdicts[cid].get(target)
                if not vs:
                    continue
                for v in vs:
                    got[v.get("parent")] = [dict(r) for r in v.get("reasons") or ()
                                            if r.get("evidence") == "vfio" and str(r.get("message")).startswith("target")]
                break
            self._tvfio[key] = got
        return got.get(parent) or []

    def target_gates(self, target, parent, mdev_type, new):
        out = []
        stack = self.versions.stack(target, new)
        for part in STACK:
            need = self.policy["min_%s" % part]
            if not need:
                continue
            value = stack[part]
            if value is _CARRY:
                out.extend(self._target_reasons(target).get(part) or [])
            else:
                one = dict(self.policy, min_kernel=None, min_qemu=None, min_libvirt=None)
                one["min_%s" % part] = need
                out.extend(P.stack_check(one, {part: value}, "target"))
        return out + self._vfio_reasons(target, parent, mdev_type)

    # recorded answers and references -------------------------------------------------------
    def recorded(self, src, host, parent):
        """The base answer (no gates) the matrix has for this source's version on ``host``/``parent``."""
        cids = [src.cid] if src.cid else []
        check = (src.cls or {}).get("check")
        if check:
            cids += [c for c in self.by_check.get(check) or () if c != src.cid]
        for cid in cids:
            vs = self.verdicts[cid].get(host)
            if vs:
                for v in vs:
                    if v.get("parent") == parent:
                        return _base_reason(v)
                return None
        return None

    def references(self, target, parent, mdev_type, driver_version):
        """Hosts other than ``target`` whose parent of the same driver runs ``driver_version`` with the type now."""
        if self.refs is None:
            self.refs = {}
            for row in self.matrix["sources"]:
                name = self.versions.driver_name(row["host"], row["parent"])
                dv = self.versions.driver(row["host"], row["parent"])
                if dv and self.hosts.get(row["host"], {}).get("state") == "ok":
                    self.refs.setdefault((row["mdev_type"], name, dv), []).append((row["host"], row["parent"]))
        name = self.versions.driver_name(target, parent)
        return [r for r in self.refs.get((mdev_type, name, driver_version)) or () if r[0] != target]

    def _assume(self, src, dv):
        base = {"evidence": "assumed"}
        if self.rule is None:
            base.update(status=E.UNKNOWN, message="no host runs driver %s now, so nothing says what it will accept, and "
                                                  "assumptions are off" % dv)
            return base, {"kind": "none"}
        sdv = src.driver_version
        if not sdv or not dv:
            base.update(status=E.UNKNOWN, message="assumption not applicable: driver version not known on %s"
                        % ("source" if not sdv else "target"))
            return base, {"kind": "none"}
        try:
            newer = _cmp(dv, sdv) >= 0
            branch = P.version_key(dv)[:1] == P.version_key(sdv)[:1]
        except P.PolicyError as exc:
            base.update(status=E.UNKNOWN, message="assumption not applicable: %s" % exc)
            return base, {"kind": "none"}
        if newer and (branch or self.assume_mode != "same_branch"):
            base.update(status=E.COMPATIBLE, message="assumed: %s (target driver %s after the upgrade, source %s)"
                        % (self.rule, dv, sdv))
            return base, {"kind": "assumed", "rule": self.rule, "source_driver": sdv, "target_driver": dv}
        why = "a driver is not assumed to accept a newer source" if not newer else "another branch"
        base.update(status=E.INCOMPATIBLE, message="assumed not: %s (target driver %s after the upgrade, source %s)"
                    % (why, dv, sdv))
        return base, {"kind": "assumed-not", "rule": self.rule, "source_driver": sdv, "target_driver": dv}

    def _cell(self, src, target, parent, new):
        """``(status, message, basis)`` for a source on one target parent, the target now or after its upgrade."""
        cls = src.cls
        dv = self.versions.driver(target, parent, new)
        if cls.get("evidence") == "policy":
            row = self.site.get((target, parent, src.mdev_type)) or {}
            side = {"type_name": row.get("type_name") or (src.mdev_type if src.kind == "vgpu" else None),
                    "driver_version": dv}
            try:
                status, message = P.check(self.policy, cls["policy_source"], side)
            except P.PolicyError as exc:
                status, message = E.ERROR, "policy cannot be applied: %s" % exc
            base = {"evidence": "policy", "status": status, "message": message}
            basis = {"kind": "policy", "target_driver": dv}
        elif not new or dv == self.versions.driver(target, parent):
            base = self.recorded(src, target, parent) or {
                "evidence": "none", "status": E.UNKNOWN, "message": "the matrix has no answer of %s/%s" % (target, parent)}
            basis = {"kind": "matrix" if not new else "driver unchanged"}
        else:
            base = basis = None
            for ref_host, ref_parent in self.references(target, parent, src.mdev_type, dv):
                got = self.recorded(src, ref_host, ref_parent)
                if got is not None and got["status"] not in (E.UNKNOWN, E.ERROR):  # not asked is no evidence
                    base = dict(got, message="%s runs %s %s now and answered: %s" % (
                        ref_host, self.versions.driver_name(target, parent) or "the driver", dv,
                        _words(got["status"], got.get("message"), got.get("errno_name"))))
                    basis = {"kind": "reference", "host": ref_host, "parent": ref_parent, "target_driver": dv}
                    break
            if base is None:
                now = self.recorded(src, target, parent)
                if now is not None and now["status"] in (E.UNSUPPORTED, E.MISSING_TYPE):
                    base, basis = now, {"kind": "driver unchanged"}  # an upgrade is not assumed to add migration
                else:
                    base, basis = self._assume(src, dv)
        gates = list(cls.get("source_gate") or ()) + self.target_gates(target, parent, src.mdev_type, new)
        if not gates:
            return base["status"], _words(base["status"], base.get("message"), base.get("errno_name")), basis
        status, _evidence, message, _reasons = G.apply({"status": base["status"], "evidence": base.get("evidence"),
                                                        "reasons": [base]}, gates)
        return status, _words(status, message), basis

    def parents(self, src, target, new=None):
        """``(compatible [(parent, basis)], why not)`` for ``target`` in its state now (upgraded or not), or in
        the state ``new`` says."""
        if new is None:
            new = target in self.new
        key = (src.key, target, new)
        got = self._cache.get(key)
        if got is not None:
            return got
        if src.cls is None:
            got = ([], src.reason)
        elif not new and src.cid is not None:
            vs = self.verdicts[src.cid].get(target) or []
            ok = [(v["parent"], {"kind": "matrix"}) for v in vs if v["status"] == E.COMPATIBLE]
            why = None
            if not ok:
                _p, best = PLAN._compatible_parents(self.matrix, {"class": src.cid}, target)
                why = PLAN._verdict_words(best) if best else "offers no %s" % src.mdev_type
            got = (ok, why)
        else:
            ok, whys = [], []
            for parent in self.offered(target, src.mdev_type):
                status, words, basis = self._cell(src, target, parent, new)
                if status == E.COMPATIBLE:
                    ok.append((parent, dict(basis, words=words)))
                else:
                    whys.append((parent, words))
            why = None
            if not ok:
                why = ("; ".join("%s: %s" % w for w in whys) if len(whys) > 1 else whys[0][1]) if whys else \
                    "offers no %s" % src.mdev_type
            got = (ok, why)
        self._cache[key] = got
        return got

    def old_targets(self, src):
        """Hosts whose verdict (as they are now) accepts the source on some parent."""
        got = self._old.get(src.key)
        if got is None:
            if src.cls is None:
                got = frozenset()
            elif src.cid is not None:
                got = frozenset(t for t, vs in self.verdicts[src.cid].items()
                                if any(v["status"] == E.COMPATIBLE for v in vs))
            else:
                got = frozenset(t for t in self.hosts if t != src.host and self.hosts[t].get("state") == "ok"
                                and self.parents(src, t, False)[0])
            self._old[src.key] = got
        return got

    def reach(self, src, upgradable):
        """Hosts that accept the source in some state: as they are now, or (``upgradable`` ones) upgraded."""
        got = self._reach.get(src.key)
        if got is None:
            got = set(self.old_targets(src))
            if src.cls is not None:
                got.update(t for t in upgradable if t not in got and t != src.host and self.parents(src, t, True)[0])
            got = self._reach[src.key] = frozenset(got)
        return got


# -- the fleet as waves change it ---------------------------------------------------------

class _Pool(PLAN._Pool):
    """A target parent over many waves: devices come back when VMs leave, and a share may be kept free."""

    __slots__ = ("floor",)

    def __init__(self, spec):
        super(_Pool, self).__init__(spec)
        self.floor = None

    def room(self, mdev_type):
        got = super(_Pool, self).room(mdev_type)
        if self.floor:
            return max(0, got - self.floor.get(mdev_type, 0))
        return got

    def keeps(self, mdev_type):
        return not self.floor or super(_Pool, self).room(mdev_type) >= self.floor.get(mdev_type, 0)

    def _creatable(self, mdev_type):
        # _plan._Pool's floor(a x (1 - used)) in integers: the exact search asks it on every node
        a = self.available.get(mdev_type) or 0
        if not a or not self.used:
            return a
        return max(0, a * (self.used.denominator - self.used.numerator) // self.used.denominator)

    def offered(self):
        return set(self.available) | set(self.free) | set(self.types)

    def keep(self, share):
        """Keep ``share`` of what the parent can take of each type now free until the next call.

        Per type placed: once a VM is placed, each type it placed keeps that share of the type's own room
        (also when one of its devices of another type used a budget the type shares). Room other types
        share with it (a budget, an NVIDIA GPU's one type) is not held back for them: on an empty GPU that
        would forbid every type.
        """
        self.floor = None
        if share:
            self.floor = {t: int(math.ceil(share * super(_Pool, self).room(t))) for t in self.offered()}

    def release(self, mdev_type, device):
        """A VM's device leaves: it stays a free instance (function, VF) of its type here."""
        self.types.add(mdev_type)
        if self.kind == "vgpu" and device in self.taken:
            self.taken.discard(device)
            return
        ids = self.free.setdefault(mdev_type, [])
        if device not in ids:
            ids.append(device)


class _Vm(object):
    __slots__ = ("key", "name", "uuid", "state", "origin", "host", "devices", "item", "moves")

    def __init__(self, key, name, uuid, state, origin, devices, item):
        self.key, self.name, self.uuid, self.state, self.origin = key, name, uuid, state, origin
        self.host, self.devices, self.item, self.moves = origin, devices, item, 0


class _Fleet(object):
    """Pools, instances and VM locations, with a journal so that any change can be undone."""

    def __init__(self, matrix, compat):
        hosts = matrix["hosts"]
        self.compat = compat
        self.usable = set(h for h in hosts if hosts[h].get("state") == "ok" and hosts[h].get("room"))
        self.pools = {h: {p: _Pool(s) for p, s in hosts[h]["room"]["pools"].items()} for h in self.usable}
        self.instances = {h: {u: dict(i) for u, i in (hosts[h]["room"].get("instances") or {}).items()}
                          for h in self.usable}
        self.vms, self.on, self.ndev, self.journal = {}, {}, {}, []
        self.new = compat.new
        self.new_order = []  # upgraded hosts in wave order (the greedy only adds to it)
        self._room = {}  # host -> {type: room over its parents}; dropped when the host's pools change
        self._index = {}  # type -> ({host: room}, {room: set(hosts)}): hosts by their room for the type
        self._dirty = set()  # hosts whose pools changed since the indexes were refreshed

    def add(self, vm):
        self.vms[vm.key] = vm
        self.on.setdefault(vm.host, []).append(vm.key)
        self.ndev[vm.host] = self.ndev.get(vm.host, 0) + len(vm.devices)

    def upgrade(self, hosts):
        for h in sorted(hosts):
            if h not in self.new:
                self.new.add(h)
                self.new_order.append(h)

    def _changed(self, host):
        self._room.pop(host, None)
        self._dirty.add(host)

    def by_room(self, mdev_type):
        """``{room: set(hosts)}`` of the usable hosts offering the type, refreshed for hosts that changed."""
        index = self._index.get(mdev_type)
        if index is None:
            rooms, buckets = {}, {}
            for host, pools in self.pools.items():
                if any(mdev_type in pool.offered() for pool in pools.values()):
                    r = rooms[host] = self.type_room(host, (mdev_type,))
                    buckets.setdefault(r, set()).add(host)
            index = self._index[mdev_type] = (rooms, buckets)
        if self._dirty:
            for host in self._dirty:
                for t, (rooms, buckets) in self._index.items():
                    if host in rooms:
                        buckets[rooms[host]].discard(host)
                        r = rooms[host] = self.type_room(host, (t,))
                        buckets.setdefault(r, set()).add(host)
            self._dirty = set()
        return index[1]

    def type_room(self, host, types):
        """What ``host`` can still take of ``types`` over all its parents: an order for trying targets."""
        got = self._room.get(host)
        if got is None:
            got = self._room[host] = {}
        total = 0
        for t in types:
            r = got.get(t)
            if r is None:
                r = got[t] = sum(pool.room(t) for pool in self.pools[host].values())
            total += r
        return total

    def mark(self):
        return len(self.journal)

    def undo(self, mark):
        while len(self.journal) > mark:
            entry = self.journal.pop()
            kind = entry[0]
            if kind == "pool":
                entry[1].restore(entry[2])
                self._changed(entry[3])
            elif kind == "inst":
                _k, host, uuid, before = entry
                if before is None:
                    self.instances[host].pop(uuid, None)
                else:
                    self.instances[host][uuid] = before
            elif kind == "vm":
                _k, vm, host, devices, moves = entry
                self.on[vm.host].remove(vm.key)
                self.ndev[vm.host] -= len(vm.devices)
                self.on.setdefault(host, []).append(vm.key)
                self.ndev[host] = self.ndev.get(host, 0) + len(devices)
                vm.host, vm.devices, vm.moves = host, devices, moves

    def save_pools(self, host, parents):
        pools = self.pools[host]
        self._changed(host)
        for p in set(parents):
            if p in pools:
                self.journal.append(("pool", pools[p], pools[p].state(), host))

    def _inst(self, host, uuid, value):
        self.journal.append(("inst", host, uuid, self.instances[host].get(uuid)))
        self.instances[host][uuid] = value

    def move(self, vm, target, chosen):
        """Apply a placement found by ``fit`` (the target's pools already took it): the VM now lives there."""
        source = vm.host
        self.journal.append(("vm", vm, source, vm.devices, vm.moves))
        by_id = {c[0]["id"]: c for c in chosen}
        devices = []
        if source in self.pools:
            self.save_pools(source, [d["parent"] for d in vm.devices])
        for d in vm.devices:
            if source in self.pools and d.get("parent") in self.pools[source]:
                self.pools[source][d["parent"]].release(d["mdev_type"], d["id"])
            if d["kind"] == "mdev" and source in self.instances and d["id"] in self.instances[source]:
                self._inst(source, d["id"], dict(self.instances[source][d["id"]], vm=None))
            _d, parent, action, dev, _left = by_id[d["id"]]
            new_id = dev if dev is not None else d["id"]
            if d["kind"] == "mdev":
                self._inst(target, new_id, {"vm": vm.name or new_id, "mdev_type": d["mdev_type"], "parent": parent})
            moved = {"id": new_id, "kind": d["kind"], "mdev_type": d["mdev_type"], "parent": parent}
            moved["src"] = self.compat.source(target, moved)  # it answers as the target's devices do
            devices.append(moved)
        self.on[source].remove(vm.key)
        self.ndev[source] -= len(vm.devices)
        self.on.setdefault(target, []).append(vm.key)
        self.ndev[target] = self.ndev.get(target, 0) + len(devices)
        self._changed(target)
        vm.host, vm.devices, vm.moves = target, devices, vm.moves + 1

    def keep(self, share):
        """Floors for a wave: ``share`` of what each parent can take at the wave's start stays free."""
        if not share:
            return
        self._room, self._index = {}, {}
        for pools in self.pools.values():
            for pool in pools.values():
                pool.keep(share)

    def floors(self):
        return [(pool, pool.floor) for pools in self.pools.values() for pool in pools.values()]

    def set_floors(self, floors):
        self._room, self._index = {}, {}
        for pool, floor in floors:
            pool.floor = floor

    def locations(self):
        return tuple(sorted((vm.key, vm.host, tuple((d["id"], d["parent"]) for d in vm.devices))
                            for vm in self.vms.values()))


class _WavePlanner(PLAN._Planner):
    """The drain planner's fitting (every device of a VM on one target, coupled room) over the fleet's pools,
    with the compatibility of :class:`_Compat` (targets as they are in this wave)."""

    def __init__(self, matrix, compat, fleet):  # pylint: disable=super-init-not-called
        # not _Planner's: the pools, instances and targets are the fleet's, and change wave by wave
        self.matrix, self.compat, self.fleet = matrix, compat, fleet
        self.drain = set()
        self.pools, self.instances = fleet.pools, fleet.instances
        self.collisions = []

    def options(self, vm, devices, target):
        """``(per-device candidate parents, None)`` or ``(None, reason)`` for one target."""
        per_device = []
        for d in devices:
            ok, why = self.compat.parents(d["src"], target)
            if not ok:
                return None, why if len(devices) == 1 else "%s: %s" % (PLAN._device_label(d), why)
            parents, want = [p for p, _b in ok], None
            if d["kind"] == "mdev":
                held = self.instances[target].get(d["id"])
                if held is not None:
                    parents, want, reason = PLAN.use_held(held, d, parents)
                    if reason:
                        self.collisions.append(PLAN.collision(vm.name, vm.host, d["id"], target, held))
                        return None, reason
            per_device.append((d, parents, want))
        return per_device, None


# -- the schedule -------------------------------------------------------------------------

class _Demand(object):
    """What :func:`_plan._demand` needs of a planner: the source rows of the hosts."""

    def __init__(self, matrix, hosts):
        self.index = PLAN._source_index(matrix, set(hosts))


def _types(devices):
    return ", ".join(sorted(set(d.get("mdev_type") or d["kind"] for d in devices)))


class Scheduler(object):
    """One rolling schedule: inputs checked, the fleet built, a solver run, the result assembled."""

    def __init__(self, matrix, hosts=None, max_wave=1, keep_free=0.0, stay_up=(), after=None, host_versions=None,
                 solver="auto", assume="newer_accepts_older", exact_max_hosts=DEFAULT_EXACT_MAX_HOSTS,
                 exact_budget=DEFAULT_EXACT_BUDGET):
        if solver not in SOLVERS:
            raise RollingError("solver must be one of %s, not %r" % (", ".join(SOLVERS), solver))
        if assume not in RULES:
            raise RollingError("assume must be one of %s, not %r" % (", ".join(sorted(RULES)), assume))
        try:
            keep_free = float(keep_free or 0)
        except (TypeError, ValueError):
            raise RollingError("keep_free must be a share between 0 and 1, not %r" % (keep_free,))
        if not 0 <= keep_free < 1:
            raise RollingError("keep_free must be a share from 0 up to (not including) 1, not %r" % (keep_free,))
        self.matrix = matrix
        all_hosts = sorted(matrix["hosts"])
        self.stay_up = sorted(set(stay_up or ()))
        if hosts:
            both = sorted(set(hosts) & set(self.stay_up))
            if both:
                raise RollingError("hosts both to upgrade and to stay up: %s" % ", ".join(both))
            requested = sorted(set(hosts))
        else:
            requested = [h for h in all_hosts if h not in set(self.stay_up)]
        self.requested = requested
        self.unknown = []
        for h in requested:
            if h not in matrix["hosts"]:
                self.unknown.append({"host": h, "reason": "not in the inventory (not in the matrix)"})
            elif matrix["hosts"][h].get("state") != "ok":
                st = matrix["hosts"][h]
                self.unknown.append({"host": h, "reason": "%s%s: its VMs are not known" % (
                    st.get("state") or "unknown", " - %s" % st["reason"] if st.get("reason") else "")})
        bad = set(u["host"] for u in self.unknown)
        self.todo = [h for h in requested if h not in bad]
        self.max_wave = wave_size(max_wave, max(1, len(requested)))
        self.keep_free = keep_free
        self.after = after_specs(after, requested)
        self.solver, self.assume = solver, assume
        self.exact_max_hosts, self.exact_budget = int(exact_max_hosts), int(exact_budget)
        self.versions = _Versions(matrix, host_versions, self.after)
        self.collisions = []
        self.host_versions_given = bool(host_versions)

    # -- set-up ------------------------------------------------------------------------------
    def _fresh(self):
        self.compat = _Compat(self.matrix, self.versions, set(), self.assume)
        self.fleet = _Fleet(self.matrix, self.compat)
        self.planner = _WavePlanner(self.matrix, self.compat, self.fleet)
        self.planner.collisions = self.collisions
        self.todo_set = set(self.todo)
        live, cold, stranded, other = PLAN._demand(_Demand(self.matrix, self.todo), self.matrix, set(self.todo))
        self.forced = {}  # host -> VMs that cannot move live at all
        for s in stranded:
            self.forced.setdefault(s["source_host"], []).append(dict(s, origin_host=s["source_host"]))
        self.cold = cold
        self.no_vfio = other
        for vm, devices, item in live:
            key = (vm["host"], vm.get("name") or vm.get("device"))
            devs = [{"id": d["id"], "kind": d["kind"], "mdev_type": d.get("mdev_type"), "parent": d.get("parent"),
                     "src": self.compat.source(vm["host"], d, d.get("row"))} for d in devices]
            self.fleet.add(_Vm(key, vm.get("name"), vm.get("uuid"), vm.get("state"), vm["host"], devs, item))
        self.monotone, self._newsets = False, {}

    @staticmethod
    def _devices(vm):
        return vm.devices

    # -- placing one VM --------------------------------------------------------------------
    def _candidates(self, vm, devices, down):
        """Targets that accept every device of the VM (ignoring room), as they are in this wave (a set)."""
        cands = None
        for d in devices:
            src = d["src"]
            if src.cls is None:
                return set()
            hosts = self.compat.old_targets(src) - self.fleet.new
            hosts |= self._new_targets(src)
            cands = hosts if cands is None else cands & hosts
            if not cands:
                return set()
        return ((cands & self.fleet.usable) - down) - {vm.host}

    def _new_targets(self, src):
        """Upgraded hosts that accept the source; in the greedy, grown wave by wave as hosts are upgraded."""
        if not self.monotone:
            return set(t for t in self.fleet.new if self.compat.parents(src, t)[0])
        seen, got = self._newsets.get(src.key, (0, set()))
        order = self.fleet.new_order
        if seen < len(order):
            got = got | set(t for t in order[seen:] if self.compat.parents(src, t)[0])
            self._newsets[src.key] = (len(order), got)
        return got

    def _tier(self, target):
        """Upgraded hosts and hosts never drained first: a VM placed there does not move again."""
        return 1 if target in self.todo_set and target not in self.fleet.new else 0

    def _options(self, vm, devices, down):
        """``[(target, per_device)]`` in the order a VM tries them, and why the others cannot take it."""
        opts, why = [], []
        for t in sorted(self._candidates(vm, devices, down)):
            per, reason = self.planner.options(vm, devices, t)
            if per is None:
                why.append("%s: %s" % (t, reason))
            else:
                opts.append((t, per))
        opts.sort(key=lambda o: (self._tier(o[0]), -self.planner.room_score(o[0], o[1]), o[0]))
        return opts, why

    def _try(self, vm, devices, target, per):
        """Place the VM on ``target`` if it fits; the fleet changes (journaled) and the record is returned."""
        mark = self.fleet.mark()
        self.fleet.save_pools(target, [p for _d, ps, _w in per for p in ps])
        chosen = self.planner.fit(target, per)
        if chosen is None:
            self.fleet.undo(mark)
            return None
        record = self._record(vm, devices, target, chosen)
        self.fleet.move(vm, target, chosen)
        return record

    def _record(self, vm, devices, target, chosen):
        by_id = {c[0]["id"]: c for c in chosen}
        out, kinds = [], set()
        for d in devices:
            _d, parent, action, dev, left = by_id[d["id"]]
            basis = dict(self.compat.parents(d["src"], target)[0])[parent]
            kinds.add(basis["kind"])
            kept = (self.fleet.pools[target][parent].floor or {}).get(d["mdev_type"], 0)
            entry = {"source": d["id"], "device": dev if dev is not None else d["id"], "action": action,
                     "target_parent": parent, "mdev_type": d["mdev_type"],
                     "uuid_changes": action == "use" and dev != d["id"], "room_after": left + kept,
                     "basis": basis["kind"]}
            if basis.get("words"):
                entry["evidence"] = basis["words"]
            if basis["kind"] == "reference":
                entry["reference"] = "%s/%s" % (basis["host"], basis["parent"])
            if basis["kind"] == "assumed":
                entry["assumption"] = {"rule": basis["rule"], "source_driver": basis["source_driver"],
                                       "target_driver": basis["target_driver"]}
            out.append(entry)
        return {"vm": vm.name, "vm_uuid": vm.uuid, "device": None if vm.name else vm.key[1],
                "source_host": vm.host, "origin_host": vm.origin, "move": vm.moves + 1, "mdev_type": _types(devices),
                "devices": [{"id": d["id"], "kind": d["kind"], "mdev_type": d["mdev_type"],
                             "source_parent": d.get("parent"), "class": d["src"].cid} for d in devices],
                "target_host": target, "target_parents": sorted(set(x["target_parent"] for x in out)),
                "target_devices": out, "basis": sorted(kinds)}

    def _stop(self, vm, devices, wave_hosts, limit=20):
        """A VM that cannot move live in this wave: it is shut down (or moved cold) and stays on its host."""
        accept = sorted(self._candidates(vm, devices, wave_hosts))
        details = []
        for t in accept[:limit]:
            per, reason = self.planner.options(vm, devices, t)
            details.append("%s: %s" % (t, self.planner.full_reason(per, t) if per is not None else reason))
        if accept:
            cause = "full"
            reason = "every host that accepts it is full in this wave: %s%s" % (
                ", ".join(accept[:limit]), " and %d more" % (len(accept) - limit) if len(accept) > limit else "")
            if len(accept) > limit:
                details.append("... and %d more hosts that accept it, full" % (len(accept) - limit))
        else:
            cause, reason = "incompatible", "no host outside the wave accepts it"
        details += self._refusals(vm, devices, wave_hosts, limit)
        return {"vm": vm.name, "vm_uuid": vm.uuid, "device": None if vm.name else vm.key[1],
                "source_host": vm.host, "origin_host": vm.origin, "mdev_type": _types(devices),
                "devices": [{"id": d["id"], "kind": d["kind"], "mdev_type": d["mdev_type"],
                             "source_parent": d.get("parent")} for d in devices],
                "cause": cause, "reason": reason, "details": details, "targets": accept,
                "needs": self._needs(devices), "wave_hosts": sorted(wave_hosts)}

    def _refusals(self, vm, devices, down, limit=20):
        """Why hosts up in this wave refuse the VM (for a VM that must stop): the first ``limit``, then a count."""
        accept = self._candidates(vm, devices, down)
        hosts = sorted(self.fleet.usable - accept - set(down) - {vm.host})
        out = []
        for t in hosts[:limit]:
            for d in devices:
                ok, why = self.compat.parents(d["src"], t)
                if not ok:
                    out.append("%s: %s" % (t, why if len(devices) == 1 else "%s: %s" % (PLAN._device_label(d), why)))
                    break
        if len(hosts) > limit:
            out.append("... and %d more hosts that do not accept it" % (len(hosts) - limit))
        unusable = sorted(h for h, st in self.matrix["hosts"].items() if h not in self.fleet.usable and h not in down)
        out += ["%s: unknown - host %s" % (h, self.matrix["hosts"][h].get("state")) for h in unusable[:limit]]
        return out

    @staticmethod
    def _needs(devices):
        out = {}
        for d in devices:
            out[d["mdev_type"]] = out.get(d["mdev_type"], 0) + 1
        return out

    def _wave_vms(self, wave):
        vms = [self.fleet.vms[k] for h in sorted(wave) for k in self.fleet.on.get(h, ())]
        return vms

    # -- greedy ----------------------------------------------------------------------------
    def _best(self, cands, types):
        """The first of ``cands`` in (tier, most room for the type, name) order, from the room buckets; None
        when none has room for it."""
        buckets = self.fleet.by_room(types[0])
        cands = set(cands)
        later = cands & (self.todo_set - self.fleet.new)
        for group in (cands - later, later):
            for r in sorted(buckets, reverse=True):
                if r <= 0:
                    break
                hit = buckets[r] & group
                if hit:
                    return min(hit)
        return None

    def _first_fit(self, vm, devices, targets):
        for t in targets:
            per, _reason = self.planner.options(vm, devices, t)
            if per is not None:
                record = self._try(vm, devices, t, per)
                if record is not None:
                    return record
        return None

    def _load(self, host):
        return (len(self.fleet.on.get(host, ())), self.fleet.ndev.get(host, 0), host)

    def _place_host(self, host, down, stops):
        """Place the host's VMs (hardest first); ``stops``: a VM that fits nowhere is shut down instead of failing."""
        vms = []
        for vm in self._wave_vms([host]):
            devices = self._devices(vm)
            cands = self._candidates(vm, devices, down)
            vms.append((len(cands), -len(devices), vm.name or "", vm, devices, cands))
        vms.sort(key=lambda x: x[:3])
        placed, stopped = [], []
        for _n, _d, _name, vm, devices, cands in vms:
            record = self._place_vm(vm, devices, cands)
            if record is not None:
                placed.append(record)
                continue
            if not stops:
                return None, [vm]
            stopped.append(self._stop(vm, devices, down))
        return placed, stopped

    def _place_vm(self, vm, devices, cands):
        """First fit: upgraded and never-drained hosts first, the most room for the VM's types first."""
        if not cands:
            return None
        types = [d["mdev_type"] for d in devices]
        need = self._needs(devices)

        def rank(t):
            return (self._tier(t), -self.fleet.type_room(t, types), t)

        # placing earlier VMs changed room: rank now; the best first, the others only if it does not fit
        best = self._best(cands, types) if len(need) == 1 else min(cands, key=rank)
        record = self._first_fit(vm, devices, [best] if best is not None else [])
        if record is None:
            # only hosts with room for every type the VM needs (over all their parents) can take it
            rest = [t for t in cands if t != best and all(self.fleet.type_room(t, (ty,)) >= n for ty, n in need.items())]
            record = self._first_fit(vm, devices, sorted(rest, key=rank))
        return record

    def _blocked_alone(self, vm, host):
        """True when the VM fits nowhere even with every other host up: until a host upgraded later accepts it
        (room only grows where VMs leave, verdicts only change where hosts are upgraded), its host cannot be
        drained with every VM live."""
        mark = self.fleet.mark()
        devices = self._devices(vm)
        record = self._place_vm(vm, devices, self._candidates(vm, devices, {host}))
        self.fleet.undo(mark)
        return record is None

    def _lightest(self, heap):
        """Hosts still to drain, the lightest first (a lazy heap: a host's load only grows while it waits)."""
        while heap:
            load, host = heapq.heappop(heap)
            now = self._load(host)
            if now != load:
                heapq.heappush(heap, (now, host))
                continue
            yield host

    def greedy(self):
        """Wave after wave: the lightest hosts that can be drained now, up to the wave size; when none can,
        the lightest one with its VMs that fit nowhere shut down.

        A host whose VM fits nowhere even with every other host up is *blocked* (kept out of the heap) until a
        later wave upgrades a host that accepts that VM: room only grows on drained hosts and verdicts only
        change on upgraded ones, so nothing else can unblock it (with ``keep_free`` the kept share follows each
        wave's room, so blocked hosts are tried again every wave). Each wave so tries each host at most once.
        """
        self.monotone = True
        heap = [(self._load(h), h) for h in self.todo]
        heapq.heapify(heap)
        blocked, waves = {}, []  # host -> the VM that fits nowhere
        while heap or blocked:
            k = min(self.max_wave, len(heap) + len(blocked))
            self.fleet.keep(self.keep_free)
            members, placed, received, tried = [], [], set(), []
            # the k lightest are kept out of this wave's targets: they are likely to join it
            down_all = set(h for _l, h in heapq.nsmallest(k, heap))
            tentative = set(down_all)
            for host in self._lightest(heap):
                tried.append(host)
                if host not in tentative and host in received:
                    continue
                down = down_all | set(members) | {host}
                mark = self.fleet.mark()
                got, failed = self._place_host(host, down, stops=False)
                if got is None:
                    self.fleet.undo(mark)
                    down_all.discard(host)  # not in this wave: a target again for the hosts after it
                    if self._blocked_alone(failed[0], host):
                        blocked[host] = failed[0].key
                        tried.pop()
                    continue
                members.append(host)
                down_all.add(host)
                placed += got
                received.update(p["target_host"] for p in got)
                if len(members) >= k:
                    break
            stopped = []
            if not members:
                # none can go with every VM live: one that could go alone (kept out by this wave's others), else
                # the lightest blocked host, with the VMs that fit nowhere shut down
                pool = tried or sorted(blocked)
                host = min(pool, key=self._load)
                blocked.pop(host, None)
                if host in tried:
                    tried.remove(host)
                placed, stopped = self._place_host(host, {host}, stops=True)
                members = [host]
            for host in tried:
                if host not in members:
                    heapq.heappush(heap, (self._load(host), host))
            waves.append(self._wave(members, placed, stopped))
            self.fleet.upgrade(members)
            self.fleet.journal = []
            for host, key in sorted(blocked.items()):
                vm = self.fleet.vms[key]
                # with a share kept free, the floor follows each wave's room: what is usable can grow anywhere
                if self.keep_free or any(t != host and all(self.compat.parents(d["src"], t)[0] for d in vm.devices)
                                         for t in members):
                    del blocked[host]  # an upgraded host accepts it now: worth trying again
                    heapq.heappush(heap, (self._load(host), host))
        return waves

    def _wave(self, members, placed, stopped):
        members = sorted(members)
        forced = [dict(s) for h in members for s in self.forced.get(h, ())]
        cold = [item for vm, _devs, item in self.cold if vm["host"] in set(members)]
        # in the order planned: with coupled room, the order to run the migrations in
        return {"hosts": members, "placements": list(placed),
                "stopped": stopped, "blocked": forced, "stays_off": cold,
                "after": {h: self.versions.after_of(h, self.fleet.pools.get(h, {}).keys()) for h in members}}

    # -- exact -----------------------------------------------------------------------------
    def exact(self, bound):
        """The fewest VMs to stop, then the fewest waves, over every wave order, grouping and placement.

        ``bound`` is a schedule already found (the greedy's): each search asks for one strictly better
        (fewer stops, then as many stops in fewer waves) until none exists. Searches share one memo of
        states that failed with (waves left, stops left), which also fail with fewer of either.
        """
        hosts = frozenset(self.todo)
        self.failed = {}
        best = bound
        stops = self._stops(best) - 1
        while stops >= 0:
            found = self._search(hosts, len(hosts), stops)
            if found is None:
                break
            best = self._best_found = found
            stops = self._stops(best) - 1
        if self.max_wave > 1:
            waves = len(best) - 1
            while waves >= int(math.ceil(len(hosts) / float(self.max_wave))):
                found = self._search(hosts, waves, self._stops(best))
                if found is None:
                    break
                best = self._best_found = found
                waves = len(best) - 1
        return best

    @staticmethod
    def _stops(waves):
        return sum(len(w["stopped"]) for w in waves)

    def _search(self, hosts, waves, stops):
        self._refresh()
        return self._dfs(hosts, waves, stops)

    def _refresh(self):
        failed, nodes = self.failed, self.nodes
        self._fresh()
        self.failed, self.nodes = failed, nodes

    def _hopeless(self, remaining):
        """VMs on hosts still to drain that no host accepts in any state: each must stop when its host goes."""
        count = 0
        for h in remaining:
            for k in self.fleet.on.get(h, ()):
                vm = self.fleet.vms[k]
                reach = None
                for d in vm.devices:
                    r = self.compat.reach(d["src"], self.todo_set)
                    reach = r if reach is None else reach & r
                if not (reach or set()) - {vm.host}:
                    count += 1
        return count

    def _subsets(self, remaining):
        order = sorted(remaining, key=self._load)
        for size in range(min(self.max_wave, len(order)), 0, -1):
            yield from itertools.combinations(order, size)

    def _dfs(self, remaining, waves_left, stops_left):
        if not remaining:
            return []
        if waves_left * self.max_wave < len(remaining):
            return None
        key = (remaining, self.fleet.locations())
        for w, s in self.failed.get(key, ()):
            if waves_left <= w and stops_left <= s:
                return None
        self._tick()
        if self._hopeless(remaining) > stops_left:
            self.failed.setdefault(key, []).append((waves_left, stops_left))
            return None
        for wave in self._subsets(remaining):
            self.fleet.keep(self.keep_free)
            floors = self.fleet.floors() if self.keep_free else None
            for placed, stopped in self._wave_placements(wave, stops_left):
                mark = self.fleet.mark()
                self.fleet.new.update(wave)
                rest = self._dfs(remaining - set(wave), waves_left - 1, stops_left - len(stopped))
                if rest is not None:
                    # found: back to the end of this wave (later waves undone), to say why each stop is needed
                    self.fleet.undo(mark)
                    self.fleet.new.difference_update(remaining)
                    if floors is not None:
                        self.fleet.set_floors(floors)
                    stops = [self._stop(vm, devices, down)
                             for vm, devices, down in stopped]
                    return [self._wave(list(wave), placed, stops)] + rest
                self.fleet.new.difference_update(wave)
                if floors is not None:
                    self.fleet.set_floors(floors)  # the deeper waves set their own
        self.failed.setdefault(key, []).append((waves_left, stops_left))
        return None

    def _tick(self):
        self.nodes += 1
        if self.nodes > self.exact_budget:
            raise _Budget()

    def _wave_placements(self, wave, stops_left):
        """Every placement of the wave's VMs (and, within ``stops_left``, VMs shut down instead), one at a time."""
        down = set(wave)
        vms = []
        for vm in self._wave_vms(wave):
            devices = self._devices(vm)
            vms.append((len(self._candidates(vm, devices, down)), -len(devices), vm.host, vm.name or "", vm))
        vms.sort(key=lambda x: x[:4])
        vms = [x[-1] for x in vms]
        placed, stopped = [], []

        def rec(i, stops):
            if i == len(vms):
                yield list(placed), list(stopped)
                return
            vm = vms[i]
            devices = self._devices(vm)
            opts, why = self._options(vm, devices, down)
            for t, per in opts:
                self._tick()
                mark = self.fleet.mark()
                record = self._try(vm, devices, t, per)
                if record is None:
                    continue
                placed.append(record)
                yield from rec(i + 1, stops)
                placed.pop()
                self.fleet.undo(mark)
            if stops > 0:
                stopped.append((vm, devices, down))  # why: worked out for the schedule returned only
                yield from rec(i + 1, stops - 1)
                stopped.pop()

        return rec(0, stops_left)

    # -- run -------------------------------------------------------------------------------
    def run(self):
        start = time.time()
        self._fresh()
        n = len(self.todo)
        waves = self.greedy()
        solver = {"requested": self.solver, "used": "greedy"}
        if self.solver == "greedy":
            solver["why"] = "asked for"
        elif self.solver == "auto" and n > self.exact_max_hosts:
            solver["why"] = "%d hosts to upgrade, more than %d: the exact search would not scale" % (
                n, self.exact_max_hosts)
        else:
            self.nodes, self._best_found = 0, None
            try:
                waves = self.exact(waves)
                solver.update(used="exact", complete=True, why="asked for" if self.solver == "exact" else
                              "%d hosts to upgrade, at most %d" % (n, self.exact_max_hosts))
                solver["improved"] = self._best_found is not None
            except _Budget:
                solver.update(complete=False, why="the exact search stopped at its budget of %d nodes: the greedy's "
                                                  "schedule, not proven the fewest stops and waves" % self.exact_budget)
                solver["improved"] = self._best_found is not None
                if self._best_found is not None:
                    waves = self._best_found
                    solver["why"] = ("the exact search stopped at its budget of %d nodes: the best schedule it had "
                                     "found, not proven the fewest stops and waves" % self.exact_budget)
                    solver["used"] = "exact"
            solver["nodes"] = self.nodes
        solver["seconds"] = round(time.time() - start, 3)
        return self._result(waves, solver)

    def _result(self, waves, solver):
        moves, moved, twice = 0, set(), set()
        assumptions = {}
        must_stop, capacity = [], []
        for i, w in enumerate(waves, 1):
            w["wave"] = i
            for p in w["placements"]:
                moves += 1
                key = (p["origin_host"], p["vm"] or p["device"])
                (twice if key in moved else moved).add(key)
                for d in p["target_devices"]:
                    if d["basis"] == "assumed":
                        a = d["assumption"]
                        a = assumptions.setdefault(
                            (d["mdev_type"], a["source_driver"], p["target_host"], d["target_parent"]),
                            {"mdev_type": d["mdev_type"], "source_driver": a["source_driver"],
                             "target_host": p["target_host"], "target_parent": d["target_parent"],
                             "target_driver": a["target_driver"], "assumption": "assumed: %s" % a["rule"],
                             "waves": [], "vms": []})
                        if i not in a["waves"]:
                            a["waves"].append(i)
                        a["vms"].append(p["vm"] or p["device"])
            for s in w["blocked"]:
                must_stop.append(dict(s, wave=i))
            for s in w["stopped"]:
                must_stop.append(dict(s, wave=i))
                if s["cause"] == "full":
                    capacity.append({"wave": i, "vm": s["vm"] or s["device"], "source_host": s["source_host"],
                                     "needs": s["needs"], "hosts": s["targets"]})
            w["moves"] = len(w["placements"])
        assumed = [dict(a, vms=sorted(set(a["vms"]))) for _k, a in sorted(assumptions.items())]
        covered = [h for w in waves for h in w["hosts"]]
        ready = not self.unknown and not must_stop and sorted(covered) == sorted(self.todo)
        result = {
            "schema_version": SCHEMA_VERSION, "ready": ready, "hosts": self.requested, "stay_up": self.stay_up,
            "unknown_hosts": self.unknown, "max_wave": self.max_wave, "keep_free": self.keep_free,
            "assume": self.assume, "after": self.after, "solver": solver, "waves": waves,
            "moves": moves, "vms_moved": len(moved), "vms_moved_twice": len(twice),
            "must_stop": must_stop, "capacity": capacity, "assumptions": assumed,
            "rests_on_assumptions": bool(assumed),
            "collisions": sorted({(c["uuid"], c["target_host"]): c for c in self.collisions}.values(),
                                 key=lambda c: (c["source_host"], c["vm"] or "", c["target_host"])),
            "no_vfio": len(self.no_vfio),
            "host_versions_given": self.host_versions_given,
        }
        result["why"] = why_lines(result)
        return result


def why_lines(schedule):
    """Why the schedule is not ready, in the operator's terms (empty when it is)."""
    lines = []
    for u in schedule["unknown_hosts"]:
        lines.append("%s cannot be planned: %s" % (u["host"], u["reason"]))
    for s in schedule["must_stop"]:
        what = "VM %s" % s["vm"] if s.get("vm") else "instance %s" % s.get("device")
        reason = s.get("reason") or "; ".join(s.get("reasons") or []) or s.get("cause")
        lines.append("%s on %s must be shut down or moved cold for wave %d: %s"
                     % (what, s["source_host"], s["wave"], reason))
    for c in schedule["capacity"]:
        needs = ", ".join("%d x %s" % (n, t) for t, n in sorted(c["needs"].items()))
        hosts = ", ".join(c["hosts"][:10]) + (" and %d more" % (len(c["hosts"]) - 10) if len(c["hosts"]) > 10 else "")
        lines.append("or add room for %s (VM %s) in wave %d on one of: %s" % (needs, c["vm"], c["wave"], hosts))
    return lines


def rolling_schedule(matrix, **kwargs):
    """The schedule (see ``docs/rolling.md``); ``kwargs`` are :class:`Scheduler`'s."""
    return Scheduler(matrix, **kwargs).run()


# -- for people: the wave table and the terminal summary -------------------------------------

def _hosts_text(hosts):
    return ", ".join(hosts) if hosts else "-"


def _what(item):
    return "VM %s" % item["vm"] if item.get("vm") else "instance %s" % item.get("device")


def headline(schedule):
    """The verdict line: READY or NOT READY, hosts, waves, moves, and which solver ran."""
    waves = schedule["waves"]
    hosts = sum(len(w["hosts"]) for w in waves)
    solver = schedule["solver"]
    how = "solver %s (%s%s)" % (solver["used"], solver["why"],
                                "" if solver.get("complete", True) else "; not proven")
    moves = "%d live migration%s of %d VM%s (%d moved twice or more)" % (
        schedule["moves"], "" if schedule["moves"] == 1 else "s", schedule["vms_moved"],
        "" if schedule["vms_moved"] == 1 else "s", schedule["vms_moved_twice"])
    body = "%d host%s in %d wave%s (at most %d a wave), %s - %s" % (
        hosts, "" if hosts == 1 else "s", len(waves), "" if len(waves) == 1 else "s", schedule["max_wave"], moves,
        how)
    if schedule["ready"]:
        return "READY: " + body
    parts = []
    if schedule["must_stop"]:
        n = len(schedule["must_stop"])
        parts.append("%d VM%s must be shut down or moved cold" % (n, "" if n == 1 else "s"))
    if schedule["unknown_hosts"]:
        n = len(schedule["unknown_hosts"])
        parts.append("%d host%s cannot be planned" % (n, "" if n == 1 else "s"))
    return "NOT READY: %s; %s" % ("; ".join(parts), body)


def _assumption_line(schedule):
    rules = sorted(set(a["assumption"] for a in schedule["assumptions"]))
    n = len(schedule["assumptions"])
    return "Rests on %d assumption%s (per target parent, in the schedule): %s" % (
        n, "" if n == 1 else "s", "; ".join(rules))


def summary_lines(schedule, report_dir=None, written=False, check_mode=False, max_lines=10):
    """The terminal summary: verdict, assumptions, one line per wave, why not ready, where the files are."""
    from ansible_collections.vfio.migration.plugins.plugin_utils._views import _text
    cap = max(1, int(max_lines))

    def capped(lines, what):
        return lines if len(lines) <= cap else lines[:cap] + ["  ... and %d more %s" % (len(lines) - cap, what)]

    out = [headline(schedule)]
    if schedule["rests_on_assumptions"]:
        out.append(_assumption_line(schedule))
    waves = []
    for w in schedule["waves"]:
        extra = ""
        if w["stopped"] or w["blocked"]:
            n = len(w["stopped"]) + len(w["blocked"])
            extra = ", %d VM%s shut down" % (n, "" if n == 1 else "s")
        one = w["moves"] == 1
        waves.append("  Wave %d: %s - %d VM%s move%s%s"
                     % (w["wave"], _hosts_text(w["hosts"]), w["moves"], "" if one else "s", "s" if one else "", extra))
    out += ["Waves:"] + capped(waves, "waves")
    if schedule["why"]:
        out += ["Why not ready:"] + capped(["  " + line for line in schedule["why"]], "reasons")
    if report_dir:
        verb = "would go to" if check_mode or not written else "written to"
        out.append("Schedule %s %s/schedule.json (schedule.md beside it)" % (verb, report_dir))
    return [" ".join(_text(line).split()) if not line.startswith("  ") else "  " + " ".join(_text(line).split())
            for line in out]


def check_schedule(schedule):
    """Raise ``ValueError`` unless ``schedule`` is the output of :func:`rolling_schedule`."""
    if not isinstance(schedule, dict) or schedule.get("schema_version") != SCHEMA_VERSION or \
            not isinstance(schedule.get("waves"), list):
        raise ValueError("schedule must be the output of vfio.migration.rolling_schedule (schema_version %d) or null"
                         % SCHEMA_VERSION)
    for key in ("ready", "solver", "must_stop", "capacity", "assumptions", "unknown_hosts", "why"):
        if key not in schedule:
            raise ValueError("the schedule has no %s: expected the output of vfio.migration.rolling_schedule" % key)


def for_report(schedule):
    """The schedule as ``matrix.json`` keeps it: without ``generated`` and the solver's ``seconds``.

    The time the solver took varies from run to run; ``matrix.json`` gives the same bytes for the same
    facts (``generated`` aside), so it is left out there (``schedule.json`` has it).
    """
    out = {k: v for k, v in schedule.items() if k != "generated"}
    out["solver"] = {k: v for k, v in (schedule.get("solver") or {}).items() if k != "seconds"}
    return out


def wave_assumptions(schedule, wave):
    """The assumptions (per target parent) that placements of wave number ``wave`` rest on."""
    return [a for a in schedule.get("assumptions") or [] if wave in (a.get("waves") or [])]


def markdown_sections(schedule, level=2):
    """The Markdown of a schedule below its title: why not ready, the wave table, the placements, the
    assumptions, the VMs to shut down, the room to add and the hosts that cannot be planned; headings at
    ``level``. ``schedule.md`` and the matrix role's ``matrix.md`` share it."""
    from ansible_collections.vfio.migration.plugins.plugin_utils._report import md_escape as e
    head = "#" * level + " "

    def table(header, rows):
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
            ["| " + " | ".join(r) + " |" for r in rows] + [""]

    out = ["**%s**" % e(headline(schedule)), ""]
    if schedule["rests_on_assumptions"]:
        out += [e(_assumption_line(schedule)), ""]
    if schedule["why"]:
        out += [head + "Why not ready", ""] + ["- %s" % e(line) for line in schedule["why"]] + [""]
    rows = []
    for w in schedule["waves"]:
        moved = "<br>".join("%s: %s &rarr; %s" % (e(p["vm"] or p["device"]), e(p["source_host"]), e(p["target_host"]))
                            for p in w["placements"]) or "-"
        down = "<br>".join(e(_what(s)) for s in w["blocked"] + w["stopped"]) or "-"
        off = "<br>".join(e(c.get("vm") or c.get("device")) for c in w["stays_off"]) or "-"
        after = "<br>".join("%s: %s" % (e(h), e(_after_text(a))) for h, a in sorted(w["after"].items()))
        rows.append([str(w["wave"]), e(_hosts_text(w["hosts"])), moved, down, off, after or "-"])
    out += [head + "Waves", ""] + table(["wave", "hosts drained together", "VMs moved (from &rarr; to)",
                                         "shut down for the wave", "shut off (stay)", "after the upgrade"], rows)
    rows = []
    for w in schedule["waves"]:
        for p in w["placements"]:
            devs = "<br>".join("%s %s &rarr; %s %s (%s; %s)" % (
                e(d["mdev_type"]), e(d["source"]), e(d["target_parent"]), e(d["device"]), e(d["action"]),
                e(d["basis"] + (" " + d["reference"] if d.get("reference") else ""))) for d in p["target_devices"])
            rows.append([str(w["wave"]), e(p["vm"] or p["device"]), e(p["source_host"]), e(p["target_host"]), devs])
    if rows:
        header = ["wave", "VM", "from", "to", "devices (source &rarr; target, action; basis)"]
        out += [head + "Placements", ""] + table(header, rows)
    if schedule["assumptions"]:
        rows = [[e(a["mdev_type"]), e(a["source_driver"]), e("%s/%s" % (a["target_host"], a["target_parent"])),
                 e(a["target_driver"]), e(", ".join(str(x) for x in a["waves"])), e(", ".join(a["vms"])),
                 e(a["assumption"])] for a in schedule["assumptions"]]
        out += [head + "Assumptions", ""] + table(["type", "source driver", "target", "target driver after", "waves",
                                                   "VMs", "assumption"], rows)
    if schedule["must_stop"]:
        rows = [[str(s["wave"]), e(_what(s)), e(s["source_host"]), e(s.get("cause")),
                 e(s.get("reason") or "; ".join(s.get("reasons") or []))] for s in schedule["must_stop"]]
        header = ["wave", "VM", "on", "cause", "why"]
        out += [head + "VMs that must be shut down or moved cold", ""] + table(header, rows)
    if schedule["capacity"]:
        rows = [[str(c["wave"]), e(c["vm"]), e(", ".join("%d x %s" % (n, t) for t, n in sorted(c["needs"].items()))),
                 e(", ".join(c["hosts"]))] for c in schedule["capacity"]]
        out += [head + "Room that would let them move live", ""] + table(["wave", "VM", "needs", "on one of"], rows)
    if schedule["unknown_hosts"]:
        rows = [[e(u["host"]), e(u["reason"])] for u in schedule["unknown_hosts"]]
        out += [head + "Hosts that cannot be planned", ""] + table(["host", "why"], rows)
    return out


def render_markdown(schedule, generated=None):
    """``schedule.md``: the verdict, why not, the wave table, every placement, the assumptions, the capacity."""
    from ansible_collections.vfio.migration.plugins.plugin_utils._report import md_escape as e
    out = ["# Rolling maintenance schedule", ""]
    if generated:
        out += ["Generated: %s" % e(generated), ""]
    out += markdown_sections(schedule, 2)
    return "\n".join(out).rstrip("\n") + "\n"


def _after_text(after):
    drivers = sorted(set(v for v in (after.get("drivers") or {}).values() if v))
    parts = ["driver %s" % ", ".join(drivers)] if drivers else []
    parts += ["%s %s" % (_LABELS[p], after[p]) for p in STACK if after.get(p)]
    return "; ".join(parts) or "versions not known"
