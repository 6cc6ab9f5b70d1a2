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


def check(policy, source, target):
    """Apply the policy to one source and one target side.

    Each side is ``{"type_name", "driver_version", "stack": {kernel, qemu, libvirt}}``.
    Returns ``(status, message)``: ``compatible``, ``incompatible`` (with every
    mismatch named) or ``unknown`` (a fact the policy needs was not found).
    """
    mismatches, missing = [], []
    sname, tname = source.get("type_name"), target.get("type_name")
    if sname and tname and sname != tname:
        mismatches.append("type name differs: target %r, source %r" % (tname, sname))
    sdrv, tdrv = source.get("driver_version"), target.get("driver_version")
    mode = policy["driver_version"]
    if mode != "any" or policy["driver_version_min"] or policy["driver_version_max"]:
        for side, v in (("source", sdrv), ("target", tdrv)):
            if not v:
                missing.append("driver version not known on %s" % side)
    if sdrv and tdrv:
        if mode == "equal" and sdrv != tdrv:
            mismatches.append("target driver %s, source %s" % (tdrv, sdrv))
        elif mode == "branch" and version_key(sdrv)[:1] != version_key(tdrv)[:1]:
            mismatches.append("target driver branch %s, source %s" % (tdrv, sdrv))
    for side, v in (("source", sdrv), ("target", tdrv)):
        if not v:
            continue
        if policy["driver_version_min"] and _cmp(v, policy["driver_version_min"]) < 0:
            mismatches.append("%s driver %s < %s" % (side, v, policy["driver_version_min"]))
        if policy["driver_version_max"] and _cmp(v, policy["driver_version_max"]) > 0:
            mismatches.append("%s driver %s > %s" % (side, v, policy["driver_version_max"]))
    for key, label in STACK_LABELS:
        need = policy["min_%s" % key]
        if not need:
            continue
        for side, stack in (("source", source.get("stack") or {}), ("target", target.get("stack") or {})):
            have = stack.get(key)
            if not have:
                missing.append("%s version not known on %s" % (label, side))
            elif _cmp(have, need) < 0:
                mismatches.append("%s %s < %s on %s" % (label, ".".join(map(str, version_key(have))), need, side))
    if mismatches:
        return "incompatible", "policy: " + "; ".join(mismatches)
    if missing:
        return "unknown", "policy cannot decide: " + "; ".join(missing)
    return "compatible", "policy: same type, driver %s on both%s" % (
        tdrv or "unchecked", ", stack minimums met" if any(policy["min_%s" % k] for k, label in STACK_LABELS) else "")
