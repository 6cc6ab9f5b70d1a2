# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Views of the fleet matrix that every report shares: checks, counts, summaries and grids.

Pure functions of the matrix from :func:`_matrix.compat_matrix` (and an
optional plan from :func:`_matrix.drain_plan`). They shape data; the
renderers (``_report.py`` for JSON, CSV and Markdown, ``_html.py`` for the
page, ``_summary.py`` for the terminal) turn it into text. Strings in the
matrix come from sysfs and the inventory: :func:`_text` shows control
characters as ``\\xNN`` and every renderer escapes for its own format.
"""

import re

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M

REPORT_SCHEMA_VERSION = 1
# Above this many source x target cells, matrix.json and matrix.csv keep one verdict per class and
# target parent: every cell costs about 600 bytes of JSON (20,000 cells: 12 MB).
DEFAULT_CELL_LIMIT = 20000
# More hosts than this and a host x host grid is no longer readable: summarise per class.
GRID_LIMIT = 150
# More cells than this in the per-type grids (each with its parents' lines) and the page is too heavy
# to open: summarise per class. 100 hosts offering four vGPU types each make 40,000 (a 37 MB page).
GRID_CELL_LIMIT = 10000
# At most this many parent-pair lines in one grid cell's tooltip.
TITLE_LINES = 12

SELF = "self"
# What a verdict rests on: the driver's attribute, the kernel's VFIO migration capability,
# QEMU's own blockers, the operator's policy (rules and stack minimums), or nothing.
EVIDENCES = ("driver", "vfio", "qemu", "policy", "none")
POLICY_SUFFIX = "*"

STATUS_LABELS = {
    E.COMPATIBLE: "OK",
    E.INCOMPATIBLE: "NO",
    E.UNSUPPORTED: "UNSUP",
    E.MISSING_TYPE: "NOTYPE",
    E.ERROR: "ERR",
    E.UNKNOWN: "?",
    SELF: "self",
}

# Background colour of a grid cell per status (CSS hex); the browser test reads them back.
STATUS_COLOURS = {
    E.COMPATIBLE: "#2e9d4f",
    E.INCOMPATIBLE: "#d64541",
    E.UNSUPPORTED: "#8a8f98",
    E.MISSING_TYPE: "#d8dbe0",
    E.ERROR: "#f08c00",
    E.UNKNOWN: "#7fa7d9",
    SELF: "#f3f4f6",
}

# Text colour on each background, chosen for contrast.
_TEXT_COLOURS = {
    E.COMPATIBLE: "#ffffff",
    E.INCOMPATIBLE: "#ffffff",
    E.UNSUPPORTED: "#ffffff",
    E.MISSING_TYPE: "#3d444d",
    E.ERROR: "#1f2328",
    E.UNKNOWN: "#102a43",
    SELF: "#8c959f",
}

STATUS_MEANINGS = {
    E.COMPATIBLE: "the target accepted the source's version: the instance can migrate there",
    E.INCOMPATIBLE: "the target refused a source of the same type",
    E.UNSUPPORTED: "one side cannot migrate this device (attribute missing, ENODEV, EOPNOTSUPP)",
    E.MISSING_TYPE: "the target has no parent offering this type",
    E.ERROR: "could not ask (EACCES, EPERM, EIO, time-out, refused input); not a refusal",
    E.UNKNOWN: "never asked: the host was unreachable or not probed",
    SELF: "same host: no migration",
}


# -- validation ------------------------------------------------------------------

def check_inputs(matrix, plan=None, generated=None):
    """Raise ``ValueError`` unless the inputs are a matrix, a plan (or None) and a string (or None)."""
    if not isinstance(matrix, dict) or matrix.get("schema_version") != M.SCHEMA_VERSION:
        raise ValueError("expected the output of vfio.migration.compat_matrix (schema_version %d)"
                         % M.SCHEMA_VERSION)
    for key, kind in (("hosts", dict), ("classes", dict), ("sources", list), ("verdicts", dict)):
        if not isinstance(matrix.get(key), kind):
            raise ValueError("the matrix has no %s %s: expected the output of vfio.migration.compat_matrix"
                             % (kind.__name__, key))
    if plan is not None:
        if not isinstance(plan, dict) or not all(k in plan for k in ("ready", "placements", "stranded")):
            raise ValueError("plan must be the output of vfio.migration.drain_plan or null")
    if generated is not None and not isinstance(generated, str):
        raise ValueError("generated must be an ISO 8601 timestamp string or null, not %s"
                         % type(generated).__name__)


def _plan_or_none(plan):
    """An empty plan means no plan."""
    return plan or None


# -- shared data shaping -----------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _text(value):
    """A value as display text: None is empty; control characters (terminal
    escapes from hostile sysfs strings) are shown as ``\\xNN``, never passed on."""
    if value is None:
        return ""
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group(0)), str(value))


def _key(value):
    """Sort key that orders None first and never compares str with int."""
    return (value is not None, _text(value))


def _class_key(cid):
    """Order of class ids: by name (they are content hashes, :func:`_matrix.class_id`)."""
    return _text(cid)


def _cell_key(cell):
    return (_key(cell["source_host"]), _key(cell["source_parent"]), _key(cell["mdev_type"]),
            _key(cell["target_host"]), _key(cell["target_parent"]), _key(cell["source_version"]),
            _class_key(cell["class"]), tuple(_text(d) for d in cell["source_devices"] or ()))


def _status_token(status):
    """The status as a CSS class token: known statuses only."""
    return status if status in STATUS_LABELS else E.UNKNOWN


def _iter_pairs(matrix):
    """Every (source row, target host, verdict) a cell stands for, without building the cells."""
    targets = sorted(matrix["hosts"])
    for row in matrix["sources"]:
        for target in targets:
            for verdict in M.pair_status(matrix, row, target):
                yield row, target, verdict


def sorted_cells(matrix):
    """:func:`_matrix.expand_cells`, sorted by source host, parent, type, target host and parent."""
    return sorted(M.expand_cells(matrix), key=_cell_key)


def _class_order(c):
    """Classes by type, then version, then id."""
    return (_key(c.get("mdev_type")), _key(c.get("version")), _class_key(c.get("id")))


def sorted_classes(matrix):
    """The classes as a list ordered by type, version and id."""
    return [dict(c) for c in sorted(matrix["classes"].values(), key=_class_order)]


def _tally(counts, verdicts, sign=1):
    for v in verdicts:
        key = (v["status"], v["evidence"])
        counts[key] = counts.get(key, 0) + sign


def cell_counts(matrix):
    """``{(status, evidence): cells}`` over every cell, counted per class rather than per cell.

    A source row with a class has its class's verdicts on every target but its
    own host, so each class is tallied once over all targets and a row costs
    one subtraction: classes x targets + rows, not rows x targets (35 million
    pairs at 10,000 hosts). A row without a class has one verdict per other host.
    """
    hosts = matrix["hosts"]
    per_class = {}
    counts = {}
    for row in matrix["sources"]:
        if row["class"] is None:
            others = len(hosts) - (row["host"] in hosts)
            for v in M.pair_status(matrix, row, None):  # the same verdict towards every other host
                key = (v["status"], v["evidence"])
                counts[key] = counts.get(key, 0) + others
            continue
        per = matrix["verdicts"][row["class"]]
        if row["class"] not in per_class:
            total = per_class[row["class"]] = {}
            for target, verdicts in per.items():
                if target in hosts:
                    _tally(total, verdicts)
        for key, n in per_class[row["class"]].items():
            counts[key] = counts.get(key, 0) + n
        if row["host"] in per and row["host"] in hosts:
            _tally(counts, per[row["host"]], -1)
    return {key: n for key, n in counts.items() if n}


def summary(matrix, plan=None):
    """Counts by status and evidence over the cells, hosts by state, readiness of the plan."""
    status_counts = dict.fromkeys(E.STATUSES, 0)
    evidence_counts = dict.fromkeys(EVIDENCES, 0)
    total = 0
    for (status, evidence), n in cell_counts(matrix).items():
        total += n
        status_counts[status] = status_counts.get(status, 0) + n
        evidence_counts[evidence] = evidence_counts.get(evidence, 0) + n
    by_state = {}
    for name in sorted(matrix["hosts"]):
        by_state.setdefault(_text(matrix["hosts"][name].get("state")), []).append(name)
    return {
        "cells": total,
        "status_counts": status_counts,
        "evidence_counts": evidence_counts,
        "host_count": len(matrix["hosts"]),
        "host_states": {state: len(names) for state, names in by_state.items()},
        "hosts_by_state": by_state,
        "class_count": len(matrix["classes"]),
        "ready": None if plan is None else bool(plan.get("ready")),
    }


def _evidence_of(verdicts):
    """Evidence of an aggregate: driver if any verdict of the best status was driver-verified."""
    kinds = {v.get("evidence") for v in verdicts}
    for kind in ("driver", "vfio", "qemu", "policy"):
        if kind in kinds:
            return kind
    return "none"


def _best(verdicts):
    """``(status, evidence)`` of the best verdict among ``verdicts`` (unknown when empty)."""
    status = M.best_status([v["status"] for v in verdicts])
    return status, _evidence_of([v for v in verdicts if v["status"] == status])


def compact_verdicts(matrix):
    """Class x target verdicts as a flat sorted list, with the best status over the target's parents."""
    out = []
    order = {c["id"]: i for i, c in enumerate(sorted_classes(matrix))}
    for cid in sorted(matrix["verdicts"], key=lambda cid: (order.get(cid, len(order)), _class_key(cid))):
        per = matrix["verdicts"][cid]
        for target in sorted(per):
            status, evidence = _best(per[target])
            parents = sorted((dict(v) for v in per[target]), key=lambda v: _key(v.get("parent")))
            out.append({"class": cid, "target_host": target, "status": status, "evidence": evidence,
                        "parents": parents})
    return out


def source_rows(matrix):
    """The matrix's source rows, sorted, without the internal class ``key``; ``source_status`` always set."""
    rows = []
    for row in matrix["sources"]:
        out = {k: v for k, v in row.items() if k != "key"}
        for field in ("host", "parent", "mdev_type", "kind", "version", "devices", "class", "reason"):
            out.setdefault(field, None)
        out["source_status"] = None if row.get("class") else row.get("source_status", E.UNSUPPORTED)
        rows.append(out)
    return sorted(rows, key=lambda r: (_key(r["host"]), _key(r["parent"]), _key(r["mdev_type"]),
                                       _key(r["version"]), _class_key(r["class"])))


def _detail_line(row, verdict):
    """One tooltip/detail line: which parents, what happened."""
    parts = ["%s -> %s: %s" % (_text(row["parent"]) or "?", _text(verdict["parent"]) or "-", verdict["status"])]
    if verdict.get("evidence") and verdict["evidence"] != "none":
        parts.append("(%s)" % verdict["evidence"])
    if row.get("version"):
        parts.append("version %s" % row["version"])
    if verdict.get("errno_name") or verdict.get("errno") is not None:
        parts.append("errno %s" % (verdict.get("errno_name") or verdict.get("errno")))
    if verdict.get("message"):
        parts.append("- %s" % verdict["message"])
    return " ".join(_text(p) for p in parts)


def type_grids(matrix):
    """Per mdev type: the source hosts holding/offering it and the best verdict per (source, target) host.

    Returns ``[(mdev_type, sources, {(source, target): {status, evidence, details}})]`` sorted by
    type; a pair on the same host is ``self``.
    """
    grids = {}
    for row, target, verdict in _iter_pairs(matrix):
        grids.setdefault(row["mdev_type"], {}).setdefault((row["host"], target), []).append((row, verdict))
    sources = {}
    for row in matrix["sources"]:
        sources.setdefault(row["mdev_type"], set()).add(row["host"])
    out = []
    for mdev_type in sorted(sources, key=_key):
        pairs = grids.get(mdev_type, {})
        cells = {}
        for src in sorted(sources[mdev_type]):
            for target in sorted(matrix["hosts"]):
                if src == target:
                    cells[(src, target)] = {"status": SELF, "evidence": "none", "details": ["same host"]}
                    continue
                got = pairs.get((src, target), [])
                status, evidence = _best([v for _row, v in got])
                details = sorted(_detail_line(r, v) for r, v in got) or ["no verdict"]
                cells[(src, target)] = {"status": status, "evidence": evidence, "details": details}
        out.append((mdev_type, sorted(sources[mdev_type]), cells))
    return out


def class_summary(matrix):
    """Per class: how many target hosts end in each status (best over their parents)."""
    out = []
    for c in sorted_classes(matrix):
        counts = dict.fromkeys(E.STATUSES, 0)
        for verdicts in matrix["verdicts"].get(c["id"], {}).values():
            status = _best(verdicts)[0]
            counts[status] = counts.get(status, 0) + 1
        out.append({"class": c["id"], "mdev_type": c["mdev_type"], "kind": c.get("kind"),
                    "version": c["version"], "basis": class_basis(c), "sources": len(c["sources"]),
                    "targets": counts})
    return out


def grid_cells(matrix):
    """How many cells the per-type grids would have: each type's source hosts x every host."""
    sources = {}
    for row in matrix["sources"]:
        sources.setdefault(row["mdev_type"], set()).add(row["host"])
    return sum(len(hosts) for hosts in sources.values()) * len(matrix["hosts"])


def _too_big(matrix):
    return len(matrix["hosts"]) > GRID_LIMIT or grid_cells(matrix) > GRID_CELL_LIMIT


def too_big_note(matrix):
    """Why the reports summarise per class instead of drawing grids (for the notes above the summaries)."""
    return ("%d hosts (%d source x target cells in the per-type grids) are more than host x host grids can "
            "show (at most %d hosts and %d cells)" % (len(matrix["hosts"]), grid_cells(matrix), GRID_LIMIT,
                                                      GRID_CELL_LIMIT))


def class_basis(c):
    """What a class's verdicts rest on: ``version``, ``layout`` (migration/self) or ``policy``."""
    if c.get("version") is not None:
        return "version"
    if c.get("evidence") == "policy":
        return "policy"
    return "layout"


_BASIS_TEXT = {"policy": "policy (no driver attribute)", "layout": "migration/self layout"}


def _basis_text(basis):
    """How a class without a version is shown to people; None for a version class."""
    return _BASIS_TEXT.get(basis)


def _label(status, evidence):
    label = STATUS_LABELS.get(status, "?")
    return label + POLICY_SUFFIX if evidence == "policy" else label


# -- the decision: hosts that could not be asked, host x host overview -------------

def unasked_hosts(matrix):
    """``[(host, state, reason)]`` for every host whose facts could not be gathered (state not ``ok``)."""
    return [(name, _text(h.get("state")) or E.UNKNOWN, _text(h.get("reason")))
            for name, h in sorted(matrix["hosts"].items()) if h.get("state") != "ok"]


def _row_verdicts(matrix, row, target):
    """A source row's verdicts on ``target`` without the own-host rule (the caller skips self)."""
    if row["class"] is None:
        return M.pair_status(matrix, dict(row, host=None), target)
    return matrix["verdicts"].get(row["class"], {}).get(target) or []


def _shared_best(per_type):
    """Best ``(status, evidence)`` over the types both sides have (not ``missing_type``)."""
    shared = [v for v in per_type.values() if v[0] != E.MISSING_TYPE]
    if not shared:
        return (E.MISSING_TYPE, "none") if per_type else (E.UNKNOWN, "none")
    status = M.best_status([s for s, _ev in shared])
    return status, _evidence_of([{"evidence": ev} for s, ev in shared if s == status])


def _pair_types(matrix, rows, target):
    """``{type: (status, evidence)}``: best verdict per type of ``rows`` (one source host) on ``target``."""
    by_type = {}
    for row in rows:
        by_type.setdefault(row["mdev_type"], []).extend(_row_verdicts(matrix, row, target))
    return {t: _best(vs) for t, vs in by_type.items()}


def _rows_by_host(matrix):
    out = {}
    for row in matrix["sources"]:
        out.setdefault(row["host"], []).append(row)
    return out


def host_overview(matrix):
    """One cell per (source host, target host): the best status over the types both share, with counts.

    Returns ``(sources, targets, cells)``: source hosts (those holding or
    offering a type), every host as a target, and ``{(source, target): {status,
    evidence, shared, compatible, types}}`` where ``shared`` is how many of the
    source's types the target offers (or could not be asked about), ``compatible``
    how many of them are compatible and ``types`` the best verdict per type.
    """
    by_host = _rows_by_host(matrix)
    targets = sorted(matrix["hosts"])
    cells = {}
    for src in sorted(by_host, key=_key):
        for target in targets:
            if src == target:
                cells[(src, target)] = {"status": SELF, "evidence": "none", "shared": 0, "compatible": 0,
                                        "types": {}}
                continue
            per_type = _pair_types(matrix, by_host[src], target)
            status, evidence = _shared_best(per_type)
            cells[(src, target)] = {
                "status": status, "evidence": evidence,
                "shared": sum(1 for s, _ev in per_type.values() if s != E.MISSING_TYPE),
                "compatible": sum(1 for s, _ev in per_type.values() if s == E.COMPATIBLE),
                "types": per_type}
    return sorted(by_host, key=_key), targets, cells


def host_reach(matrix):
    """Per source host: how many target hosts end in each status (best over the types both share).

    The overview for fleets too large for a host x host grid. Hosts with the
    same source rows (types and classes) share the work: each group is judged
    once per target, then each member drops its own host. Sorted by fewest
    compatible targets first, then name.
    """
    targets = sorted(matrix["hosts"])
    groups = {}
    for host, rows in _rows_by_host(matrix).items():
        sig = tuple(sorted((_text(r["mdev_type"]), _text(r["class"]), _text(r.get("source_status")),
                            _text(r.get("reason"))) for r in rows))
        groups.setdefault(sig, []).append((host, rows))
    best_of = {}  # (class, target) -> best status over the target's parents, computed once

    def status_on(row, target):
        if row["class"] is None:
            return M.pair_status(matrix, dict(row, host=None), target)[0]["status"]
        key = (row["class"], target)
        if key not in best_of:
            best_of[key] = M.best_status([v["status"] for v in
                                          matrix["verdicts"].get(row["class"], {}).get(target) or []])
        return best_of[key]

    out = []
    for members in groups.values():
        rows = members[0][1]
        per_target = {}
        for t in targets:
            per_type = {}
            for row in rows:
                per_type.setdefault(row["mdev_type"], []).append(status_on(row, t))
            shared = [M.best_status(v) for v in per_type.values()]
            shared = [x for x in shared if x != E.MISSING_TYPE]
            per_target[t] = M.best_status(shared) if shared else E.MISSING_TYPE
        counts = dict.fromkeys(E.STATUSES, 0)
        for status in per_target.values():
            counts[status] = counts.get(status, 0) + 1
        for host, _rows in members:
            own = dict(counts)
            if host in per_target:
                own[per_target[host]] -= 1
            out.append({"host": host, "targets": own, "types": sorted({_text(r["mdev_type"]) for r in _rows})})
    return sorted(out, key=lambda r: (r["targets"].get(E.COMPATIBLE, 0), _key(r["host"])))
