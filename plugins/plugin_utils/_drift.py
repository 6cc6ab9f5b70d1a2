# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What changed since the previous run: ``changes.json``.

:func:`matrix_changes` compares the previous run's ``matrix.json`` (parsed,
in either of its forms: ``cells``, or ``verdicts`` plus ``sources`` above the
cell limit) with this run's matrix, plan and host versions. Both sides are
first brought to one shape: source rows by (host, parent, type) and verdicts
per class and target host, so the comparison costs classes x targets plus the
changed cells, never every cell of a large fleet.

A cell is (source host, source parent, type, target host, target parent). It
*changed* when its status or its evidence differs; the entry keeps both
sides' status, evidence, errno, message and reasons. Cells of hosts that
appeared or vanished are not listed one by one: the host is.

Changes document (``schema_version`` 1)::

    {"schema_version": 1,
     "previous": {"generated": str | null, "hosts": int} | null,   # null: no previous run
     "count": int,                                    # every change below, cells counted one by one
     "hosts": {"appeared": [str], "vanished": [str],
               "state_changed": [{"host", "before", "after", "reason"}]},
     "sources": {"appeared": [row key], "vanished": [row key]},
     "cells": [{"source_host", "source_parent", "mdev_type", "target_host", "target_parent",
                "before": side | null, "after": side | null}],
     "cells_changed": int, "cells_omitted": int,      # entries beyond cell_limit are counted, not listed
     "plan": {"newly_stranded": [item], "newly_placeable": [item], "appeared": [item], "vanished": [item],
              "retargeted": [item]},                 # placed in both runs, onto another host now
     "versions": [{"host", "what", "before", "after"}]}

``side`` is ``{status, evidence, errno_name, message, reasons, source_version}``;
a plan ``item`` is ``{key, source_host, device, mdev_type, before, after, reason}``
where ``before``/``after`` are ``placed``, ``stranded``, ``cold`` or null; a ``retargeted``
item also has ``before_target`` and ``after_target`` (the target hosts of the two plans).
"""

import json

from ansible_collections.vfio.migration.plugins.plugin_utils._views import _key, _text

CHANGES_SCHEMA_VERSION = 1
DEFAULT_CHANGE_LIMIT = 10000
STACK_PARTS = ("kernel", "qemu", "libvirt")
PLAN_LISTS = (("placements", "placed"), ("stranded", "stranded"), ("cold", "cold"))


# -- host versions ------------------------------------------------------------------

def host_versions(hosts):
    """``{host: {kernel, qemu, libvirt, drivers: {parent: version}}}`` from host inputs.

    ``hosts`` maps names to ``{"state", "facts"}`` (what the matrix is built
    from). Hosts without facts are left out: nothing is known about them.
    """
    out = {}
    for name in sorted(hosts):
        facts = (hosts[name] or {}).get("facts")
        if not isinstance(facts, dict):
            continue
        stack = facts.get("stack") or {}
        drivers = {}
        for parent, p in (facts.get("parents") or {}).items():
            drivers[parent] = (p or {}).get("driver_version")
        for bdf, fn in (facts.get("physical") or {}).items():
            drivers[bdf] = (fn or {}).get("driver_version")
        for vf, v in ((facts.get("vendor_vgpu") or {}).get("vfs") or {}).items():
            drivers[(v or {}).get("physfn") or vf] = (v or {}).get("driver_version")
        entry = {part: stack.get(part) for part in STACK_PARTS}
        entry["drivers"] = {k: drivers[k] for k in sorted(drivers)}
        out[name] = entry
    return out


def _version_changes(before, after):
    out = []
    if not isinstance(before, dict) or not isinstance(after, dict):
        return out
    for host in sorted(set(before) & set(after)):
        b, a = before[host] or {}, after[host] or {}
        for part in STACK_PARTS:
            if b.get(part) != a.get(part):
                out.append({"host": host, "what": part, "before": b.get(part), "after": a.get(part)})
        bd, ad = b.get("drivers") or {}, a.get("drivers") or {}
        for parent in sorted(set(bd) | set(ad)):
            if bd.get(parent) != ad.get(parent):
                out.append({"host": host, "what": "driver %s" % parent, "before": bd.get(parent),
                            "after": ad.get(parent)})
    return out


# -- one shape for both sides -------------------------------------------------------

class _Side(object):
    """Source rows and class verdicts of one run, keyed for comparison."""

    def __init__(self, hosts, rows, verdicts):
        self.hosts = hosts          # {name: {state, reason, ...}}
        self.verdicts = verdicts    # {class: {target: [verdict with "parent"]}}
        self.rows = {}              # {(host, parent, type, disambiguator): row}
        seen = {}
        for row in rows:
            base = (row.get("host"), row.get("parent"), row.get("mdev_type"))
            seen[base] = seen.get(base, 0) + 1
        for row in rows:
            base = (row.get("host"), row.get("parent"), row.get("mdev_type"))
            extra = row.get("version") if seen[base] > 1 else None
            self.rows[base + (extra,)] = row

    def verdicts_of(self, row, target):
        """The row's verdicts on ``target`` as ``{parent: verdict}``."""
        if row.get("class") is None:
            return {None: {"status": row.get("source_status") or "unsupported",
                           "evidence": "driver" if (row.get("source_status") or "unsupported") == "unsupported"
                           else "none", "message": row.get("reason"), "errno_name": None}}
        return {v.get("parent"): v for v in self.verdicts.get(row["class"], {}).get(target) or []}

    def class_key(self, row):
        if row.get("class") is None:
            return ("none", row.get("source_status"), row.get("reason"))
        return ("class", row["class"])


def side_from_matrix(matrix):
    """This run: the matrix from ``compat_matrix`` as it is."""
    return _Side(matrix["hosts"], matrix["sources"], matrix["verdicts"])


def side_from_report(doc):
    """The previous run: a parsed ``matrix.json`` (cells, or the compact form)."""
    if not isinstance(doc, dict) or doc.get("schema_version") != 1 or not isinstance(doc.get("hosts"), dict):
        raise ValueError("the previous matrix must be a matrix.json of schema_version 1")
    if doc.get("cells") is None:
        verdicts = {}
        for v in doc.get("verdicts") or []:
            verdicts.setdefault(v["class"], {})[v["target_host"]] = v.get("parents") or []
        return _Side(doc["hosts"], doc.get("sources") or [], verdicts)
    rows, verdicts = {}, {}
    for c in doc["cells"]:
        key = (c["source_host"], c["source_parent"], c["mdev_type"], c.get("source_version"), c.get("class"))
        if key not in rows:
            rows[key] = {"host": c["source_host"], "parent": c["source_parent"], "mdev_type": c["mdev_type"],
                         "version": c.get("source_version"), "class": c.get("class"),
                         "source_status": None if c.get("class") else c["status"],
                         "reason": None if c.get("class") else c.get("message")}
        if c.get("class"):
            per = verdicts.setdefault(c["class"], {}).setdefault(c["target_host"], {})
            per.setdefault(c.get("target_parent"), {
                "parent": c.get("target_parent"), "status": c["status"], "evidence": c.get("evidence"),
                "errno": c.get("errno"), "errno_name": c.get("errno_name"), "message": c.get("message"),
                "reasons": c.get("reasons")})
    verdicts = {cid: {t: list(p.values()) for t, p in per.items()} for cid, per in verdicts.items()}
    return _Side(doc["hosts"], list(rows.values()), verdicts)


# -- comparison ---------------------------------------------------------------------

def _side_view(row, verdict):
    if verdict is None:
        return None
    return {"status": verdict.get("status"), "evidence": verdict.get("evidence"),
            "errno_name": verdict.get("errno_name"), "message": verdict.get("message"),
            "reasons": verdict.get("reasons"), "source_version": row.get("version")}


def _target_diffs(prev, cur, prow, crow, targets):
    """``{target: [(parent, before verdict, after verdict)]}`` for one pair of rows' classes."""
    out = {}
    for target in targets:
        before, after = prev.verdicts_of(prow, target), cur.verdicts_of(crow, target)
        got = []
        for parent in sorted(set(before) | set(after), key=_key):
            b, a = before.get(parent), after.get(parent)
            if (b or {}).get("status") != (a or {}).get("status") or \
                    (b or {}).get("evidence") != (a or {}).get("evidence"):
                got.append((parent, b, a))
        if got:
            out[target] = got
    return out


def _cell_changes(prev, cur, limit):
    targets = sorted(set(prev.hosts) & set(cur.hosts))
    common_hosts = set(targets)
    cells, total, cache = [], 0, {}
    appeared = [k for k in cur.rows if k not in prev.rows and k[0] in common_hosts]
    vanished = [k for k in prev.rows if k not in cur.rows and k[0] in common_hosts]
    for key in sorted(set(prev.rows) & set(cur.rows), key=lambda k: tuple(_key(x) for x in k)):
        prow, crow = prev.rows[key], cur.rows[key]
        pair = (prev.class_key(prow), cur.class_key(crow))
        if pair not in cache:
            cache[pair] = _target_diffs(prev, cur, prow, crow, targets)
        for target, diffs in sorted(cache[pair].items()):
            if target == key[0]:
                continue
            for parent, b, a in diffs:
                total += 1
                if len(cells) < limit:
                    cells.append({"source_host": key[0], "source_parent": key[1], "mdev_type": key[2],
                                  "target_host": target, "target_parent": parent,
                                  "before": _side_view(prow, b), "after": _side_view(crow, a)})

    def rowkey(k):
        return {"host": k[0], "parent": k[1], "mdev_type": k[2], "version": k[3]}
    return (cells, total, [rowkey(k) for k in sorted(appeared, key=lambda k: tuple(_key(x) for x in k))],
            [rowkey(k) for k in sorted(vanished, key=lambda k: tuple(_key(x) for x in k))])


def plan_item_key(item):
    """What identifies a plan item across runs: a VM (``vm_uuid``, ``vm``) or a host's device."""
    if item.get("vm_uuid") or item.get("vm"):
        return "vm:%s" % (item.get("vm_uuid") or item.get("vm"))
    return "%s/%s" % (_text(item.get("source_host")), _text(item.get("device")) or "(whole host)")


def _plan_items(plan):
    out = {}
    for field, state in PLAN_LISTS:
        for item in (plan or {}).get(field) or []:
            out[plan_item_key(item)] = (state, item)
    return out


def _plan_changes(before, after):
    prev, cur = _plan_items(before), _plan_items(after)
    out = {"newly_stranded": [], "newly_placeable": [], "appeared": [], "vanished": [], "retargeted": []}
    for key in sorted(set(prev) | set(cur)):
        b, a = prev.get(key, (None, None)), cur.get(key, (None, None))
        moved = b[0] == a[0] == "placed" and b[1].get("target_host") != a[1].get("target_host")
        if b[0] == a[0] and not moved:
            continue
        item = a[1] or b[1]
        entry = {"key": key, "source_host": item.get("source_host"), "device": item.get("device"),
                 "vm": item.get("vm"), "mdev_type": item.get("mdev_type"), "before": b[0], "after": a[0],
                 "reason": (a[1] or {}).get("reason") if a[0] == "stranded" else None}
        if moved:
            entry.update(before_target=b[1].get("target_host"), after_target=a[1].get("target_host"))
            out["retargeted"].append(entry)
        elif a[0] == "stranded":
            out["newly_stranded" if b[0] else "appeared"].append(entry)
        elif b[0] == "stranded" and a[0] == "placed":
            out["newly_placeable"].append(entry)
        elif b[0] is None:
            out["appeared"].append(entry)
        elif a[0] is None:
            out["vanished"].append(entry)
        else:
            out["newly_placeable" if a[0] == "placed" else "appeared"].append(entry)
    return out


def _host_changes(prev_hosts, cur_hosts):
    out = {"appeared": sorted(set(cur_hosts) - set(prev_hosts)),
           "vanished": sorted(set(prev_hosts) - set(cur_hosts)), "state_changed": []}
    for host in sorted(set(prev_hosts) & set(cur_hosts)):
        b, a = (prev_hosts[host] or {}).get("state"), (cur_hosts[host] or {}).get("state")
        if b != a:
            out["state_changed"].append({"host": host, "before": b, "after": a,
                                         "reason": (cur_hosts[host] or {}).get("reason")})
    return out


def load_previous(previous):
    """The previous ``matrix.json`` as a dict: given parsed, as JSON text, or null/empty for none."""
    if previous is None or previous == "" or previous == {}:
        return None
    if isinstance(previous, (str, bytes)):
        try:
            previous = json.loads(previous)
        except ValueError as exc:
            raise ValueError("the previous matrix is not JSON: %s" % exc) from exc
    if not isinstance(previous, dict):
        raise ValueError("the previous matrix must be a matrix.json document, not %s" % type(previous).__name__)
    return previous


def matrix_changes(previous, matrix, plan=None, versions=None, limit=DEFAULT_CHANGE_LIMIT):
    """Differences between a previous ``matrix.json`` and this run (the document in the module docstring)."""
    previous = load_previous(previous)
    empty = {"schema_version": CHANGES_SCHEMA_VERSION, "previous": None, "count": 0,
             "hosts": {"appeared": [], "vanished": [], "state_changed": []},
             "sources": {"appeared": [], "vanished": []}, "cells": [], "cells_changed": 0, "cells_omitted": 0,
             "plan": {"newly_stranded": [], "newly_placeable": [], "appeared": [], "vanished": [],
                      "retargeted": []},
             "versions": []}
    if previous is None:
        return empty
    prev = side_from_report(previous)
    cur = side_from_matrix(matrix)
    cells, total, rows_in, rows_out = _cell_changes(prev, cur, limit)
    out = dict(empty, previous={"generated": previous.get("generated"), "hosts": len(previous["hosts"])})
    out.update(hosts=_host_changes(previous["hosts"], matrix["hosts"]),
               sources={"appeared": rows_in, "vanished": rows_out}, cells=cells, cells_changed=total,
               cells_omitted=total - len(cells), plan=_plan_changes(previous.get("plan"), plan),
               versions=_version_changes(previous.get("host_versions"), versions))
    out["count"] = (total + sum(len(v) for v in out["hosts"].values()) + len(rows_in) + len(rows_out)
                    + sum(len(v) for v in out["plan"].values()) + len(out["versions"]))
    return out


def render_changes(changes):
    """``changes.json``: sorted keys, indent 1, a final newline."""
    return json.dumps(changes, sort_keys=True, indent=1) + "\n"
