# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gates: what must hold on each side before any verdict can be ``compatible``.

A driver that accepts a source's version says only that its device state would
load. The migration still fails when either side cannot migrate a VFIO device
at all: a stack below the policy's minimums (kernel, QEMU, libvirt), a device
whose driver offers no VFIO migration (the kernel's ``VFIO_DEVICE_FEATURE
MIGRATION`` answer, read by ``mdev_facts``), or a PCI function bound to plain
``vfio-pci``. Each gate gives *reasons*::

    {"evidence": "policy" | "vfio", "status": "unsupported" | "unknown", "message": str}

and :func:`apply` turns a ``compatible`` verdict into ``unsupported`` (a gate
says no) or ``unknown`` (a gate lacks a fact), keeping the driver's own
answer, errno included, among the cell's reasons.
"""

from ansible_collections.vfio.migration.plugins.module_utils import _errno
from ansible_collections.vfio.migration.plugins.plugin_utils import _policy

PLAIN_VFIO_PCI = "vfio-pci"


def _reason(evidence, status, message):
    return {"evidence": evidence, "status": status, "message": message}


def _what_cannot(cap):
    errno_name = cap.get("errno_name")
    return "the driver offers no VFIO migration (VFIO_DEVICE_FEATURE_MIGRATION: %s)" % (errno_name or "not offered")


class Gates(object):
    """The gates of one matrix build, each computed once per distinct input.

    A fleet has few distinct stacks, and a host's capability answers are read
    once per host: 10,000 hosts cost a few thousand version comparisons, not
    hundreds of thousands.
    """

    def __init__(self, policy):
        self.policy = policy
        self._stacks = {}
        self._parents = {}  # id(facts) -> (facts, {parent: the first negative answer among its types})

    def stack(self, facts, side):
        stack = facts.get("stack") or {}
        key = (stack.get("kernel"), stack.get("qemu"), stack.get("libvirt"), side)
        got = self._stacks.get(key)
        if got is None:
            got = self._stacks[key] = _policy.stack_check(self.policy, stack, side)
        return got

    def _negatives(self, facts):
        got = self._parents.get(id(facts))
        if got is None or got[0] is not facts:
            neg = {}
            for pname, p in (facts.get("parents") or {}).items():
                for type_id, t in sorted((p.get("types") or {}).items()):
                    cap = t.get("vfio_migration") or {}
                    if cap.get("checked") and cap.get("migratable") is False:
                        neg[pname] = (type_id, cap)
                        break
            got = self._parents[id(facts)] = (facts, neg)
        return got[1]

    def capability(self, facts, kind, parent, type_id, side):
        """:func:`capability_reasons`, with the parent-wide answers looked up once per host."""
        if kind == "mdev" and not self._negatives(facts):
            types = (((facts.get("parents") or {}).get(parent) or {}).get("types") or {})
            cap = (types.get(type_id) or {}).get("vfio_migration") or {}
            if not (cap.get("checked") and cap.get("migratable") is False):
                return []
        return capability_reasons(facts, kind, parent, type_id, side)


def capability_reasons(facts, kind, parent, type_id, side):
    """Why the device of ``type_id`` on ``parent`` cannot migrate, from the kernel's answer.

    Uses the type's own answer (a free instance was asked); without one, a free
    instance of another type on the same parent that cannot migrate speaks for
    the parent's driver (mdev drivers set migration support per driver, not
    per type). An answer that could not be had adds no reason: the other
    evidence decides, and the facts say why it was not had.
    """
    if kind == "physical":
        fn = (facts.get("physical") or {}).get(parent) or {}
        if fn.get("driver") == PLAIN_VFIO_PCI:
            return [_reason("vfio", _errno.UNSUPPORTED, "%s function %s is bound to plain vfio-pci, which has no "
                                                        "migration driver" % (side, parent))]
        cap = fn.get("vfio_migration") or {}
        if cap.get("checked") and cap.get("migratable") is False:
            return [_reason("vfio", _errno.UNSUPPORTED, "%s function %s: %s" % (side, parent, _what_cannot(cap)))]
        return []
    if kind != "mdev":
        return []
    types = (((facts.get("parents") or {}).get(parent) or {}).get("types") or {})
    cap = (types.get(type_id) or {}).get("vfio_migration") or {}
    if cap.get("checked"):
        if cap.get("migratable") is False:
            return [_reason("vfio", _errno.UNSUPPORTED, "%s %s on %s: %s (free instance %s)"
                            % (side, type_id, parent, _what_cannot(cap), cap.get("device")))]
        return []
    for other_id, other in sorted(types.items()):
        ocap = other.get("vfio_migration") or {}
        if ocap.get("checked") and ocap.get("migratable") is False:
            return [_reason("vfio", _errno.UNSUPPORTED, "%s %s on %s: no free instance of the type to ask, and a free "
                                                        "%s instance on the same parent says %s"
                            % (side, type_id, parent, other_id, _what_cannot(ocap)))]
    return []


def key(reasons):
    """A hashable form of a list of reasons (for sharing and class keys)."""
    return tuple((r["evidence"], r["status"], r["message"]) for r in reasons)


def apply(verdict, gates):
    """``verdict`` with ``gates`` applied: ``(status, evidence, message, reasons)``.

    An ``unsupported`` gate (a fact: this side cannot migrate a VFIO device)
    makes a ``compatible``, ``unknown`` or ``error`` cell ``unsupported``; an
    ``unknown`` gate (a missing fact) makes a ``compatible`` cell ``unknown``.
    A refusal stays a refusal. Every reason that applies is listed, the
    deciding ones first in ``message``.
    """
    base = verdict["reasons"]
    status, evidence = verdict["status"], verdict["evidence"]
    deciding = []
    for level, lowers in ((_errno.UNSUPPORTED, (_errno.COMPATIBLE, _errno.UNKNOWN, _errno.ERROR)), (_errno.UNKNOWN, (_errno.COMPATIBLE,))):
        if status in lowers:
            deciding = [g for g in gates if g["status"] == level]
            if deciding:
                status, evidence = level, deciding[0]["evidence"]
                break
    others = [r for r in list(base) + list(gates) if r not in deciding]
    message = "; ".join(r["message"] for r in deciding + others if r["message"])
    return status, evidence, message or None, tuple(deciding + others)
