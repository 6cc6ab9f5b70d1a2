# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy verdicts for devices whose driver offers no compatibility attribute.

The kernel proposals' ``migration_version`` was never merged, so on today's
fleets the driver usually cannot be asked. What operators rely on instead is a
policy: the same type name on both sides, the same vGPU host driver version
(or one inside a range the operator sets), and a stack new enough for VFIO
device migration. This module states that policy as data, checks it, and says
the exact mismatch. A policy verdict is always marked ``evidence: policy`` and
never stands in for the driver's own answer.
"""

import re

DEFAULT_POLICY = {
    "enabled": True,
    # equal: identical driver versions; branch: same first component (550.x); any: not checked
    "driver_version": "equal",
    # optional inclusive bounds both sides' driver versions must lie in
    "driver_version_min": None,
    "driver_version_max": None,
    # stack minimums on source and target (None: not checked)
    "min_kernel": "5.18",
    "min_qemu": "8.1",
    "min_libvirt": "8.6",
}

STACK_LABELS = (("kernel", "kernel"), ("qemu", "QEMU"), ("libvirt", "libvirt"))
DRIVER_MODES = ("equal", "branch", "any")


class PolicyError(ValueError):
    """The operator's policy cannot be applied as written."""


def version_key(text):
    """``"550.54.14"`` -> ``(550, 54, 14)``; ``"6.1.0-27-amd64"`` -> ``(6, 1, 0)``."""
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(text))
    if not m:
        raise PolicyError("not a version: %r" % (text,))
    return tuple(int(x) for x in m.group(1).split("."))


def _cmp(a, b):
    ka, kb = version_key(a), version_key(b)
    n = max(len(ka), len(kb))
    ka, kb = ka + (0,) * (n - len(ka)), kb + (0,) * (n - len(kb))
    return (ka > kb) - (ka < kb)


def normalize(policy):
    """The policy with defaults filled in, validated."""
    merged = dict(DEFAULT_POLICY)
    if policy:
        if not isinstance(policy, dict):
            raise PolicyError("the policy must be a dict")
        unknown = set(policy) - set(DEFAULT_POLICY)
        if unknown:
            raise PolicyError("unknown policy keys: %s" % ", ".join(sorted(unknown)))
        merged.update(policy)
    if merged["driver_version"] not in DRIVER_MODES:
        raise PolicyError("driver_version must be one of %s" % ", ".join(DRIVER_MODES))
    for key in ("driver_version_min", "driver_version_max", "min_kernel", "min_qemu", "min_libvirt"):
        if merged[key] is not None:
            merged[key] = str(merged[key])
            version_key(merged[key])
    merged["enabled"] = bool(merged["enabled"])
    return merged


def _reason(status, message, evidence="policy"):
    return {"evidence": evidence, "status": status, "message": message}


def type_check(source, target):
    """Type names must match (when both are known): ``[]`` or one ``incompatible`` reason."""
    sname, tname = source.get("type_name"), target.get("type_name")
    if sname and tname and sname != tname:
        return [_reason("incompatible", "type name differs: target %r, source %r" % (tname, sname))]
    return []


def driver_check(policy, source, target):
    """The vGPU host driver versions under the policy's mode and bounds: a list of reasons.

    ``incompatible`` for every mismatch, ``unknown`` for every version the
    policy needs and the facts lack; ``[]`` when the drivers pass.
    """
    out = []
    sdrv, tdrv = source.get("driver_version"), target.get("driver_version")
    mode = policy["driver_version"]
    if mode != "any" or policy["driver_version_min"] or policy["driver_version_max"]:
        for side, v in (("source", sdrv), ("target", tdrv)):
            if not v:
                out.append(_reason("unknown", "driver version not known on %s" % side))
    if sdrv and tdrv:
        if mode == "equal" and sdrv != tdrv:
            out.append(_reason("incompatible", "target driver %s, source %s" % (tdrv, sdrv)))
        elif mode == "branch" and version_key(sdrv)[:1] != version_key(tdrv)[:1]:
            out.append(_reason("incompatible", "target driver branch %s, source %s" % (tdrv, sdrv)))
    for side, v in (("source", sdrv), ("target", tdrv)):
        if not v:
            continue
        if policy["driver_version_min"] and _cmp(v, policy["driver_version_min"]) < 0:
            out.append(_reason("incompatible", "%s driver %s < %s" % (side, v, policy["driver_version_min"])))
        if policy["driver_version_max"] and _cmp(v, policy["driver_version_max"]) > 0:
            out.append(_reason("incompatible", "%s driver %s > %s" % (side, v, policy["driver_version_max"])))
    return out


def stack_check(policy, stack, side):
    """The stack minimums on one side (``source`` or ``target``): a list of reasons.

    A version below its minimum is ``unsupported`` (that side cannot migrate a
    VFIO device at all, whatever the driver says); a version the facts lack is
    ``unknown``. These gate every verdict, driver evidence included.
    """
    out = []
    stack = stack or {}
    for key, label in STACK_LABELS:
        need = policy["min_%s" % key]
        if not need:
            continue
        have = stack.get(key)
        if not have:
            out.append(_reason("unknown", "%s version not known on %s" % (label, side)))
            continue
        try:
            low = _cmp(have, need) < 0
        except PolicyError:
            out.append(_reason("unknown", "%s version %r on %s is not a version" % (label, have, side)))
            continue
        if low:
            out.append(_reason("unsupported", "%s %s < %s on %s"
                               % (label, ".".join(map(str, version_key(have))), need, side)))
    return out


def check(policy, source, target):
    """The policy's own verdict for a source without a driver attribute (type and driver only).

    Each side is ``{"type_name", "driver_version"}``. Returns ``(status, message)``:
    ``compatible``, ``incompatible`` (every mismatch named) or ``unknown`` (a
    fact the policy needs was not found). The stack minimums are not part of
    it: :func:`stack_check` gates every verdict, this one included.
    """
    reasons = type_check(source, target) + driver_check(policy, source, target)
    mismatches = [r["message"] for r in reasons if r["status"] == "incompatible"]
    if mismatches:
        return "incompatible", "policy: " + "; ".join(mismatches)
    missing = [r["message"] for r in reasons if r["status"] == "unknown"]
    if missing:
        return "unknown", "policy cannot decide: " + "; ".join(missing)
    mode = policy["driver_version"]
    sdrv, tdrv = source.get("driver_version"), target.get("driver_version")
    if mode == "equal":
        drivers = "driver %s on both" % tdrv
    elif mode == "branch":
        drivers = "drivers %s and %s on one branch" % (sdrv, tdrv) if sdrv != tdrv else "driver %s on both" % tdrv
    else:
        drivers = "driver versions not compared"
    return "compatible", "policy: same type, %s" % drivers
