# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports of the fleet matrix: JSON, CSV, Markdown and a self-contained HTML page.

Every renderer is a pure function of ``(matrix, plan, generated)``: the matrix
from :func:`_matrix.compat_matrix`, an optional plan from
:func:`_matrix.drain_plan` and an optional ISO 8601 timestamp string.
``generated`` is the only thing that may differ between two runs over the
same facts; everything else is sorted, so the same inputs give the same bytes.

Strings in the matrix come from sysfs and from the inventory, so every
renderer treats them as hostile: HTML escapes them (text and attributes),
Markdown escapes table and inline syntax, CSV defuses spreadsheet formulas.

JSON report (``render_json``, schema version 1; ``docs/matrix-schema.md``)::

    {"schema_version": 1,
     "generated": str | null,              # the only field that varies between runs
     "hosts": {name: {"state", "reason", "probed"}},
     "classes": [{"id", "mdev_type", "kind", "version", "self", "sources", ...}],  # by type, version
     "cells": [cell] | null,               # null when there are more than cell_limit
     "cells_omitted": int,                 # 0, or the number of cells left out
     "verdicts": null | [{"class", "target_host", "status", "evidence", "parents": [verdict]}],
     "sources": null | [{"host", "parent", "mdev_type", "kind", "version", "devices",
                         "available_instances", "supported", "reason", "source_status", "class"}],
     "summary": {"cells", "status_counts", "evidence_counts", "host_count", "host_states",
                 "hosts_by_state", "class_count", "ready"},
     "plan": <drain_plan> | null,
     "policy": <the policy the matrix applied> | null}

``verdicts`` and ``sources`` are filled only when ``cells`` is omitted: the
class x target verdicts plus the source rows hold everything the cells would.
A cell is one element of :func:`_matrix.expand_cells` (``source_host``,
``source_parent``, ``mdev_type``, ``source_kind``, ``source_version``,
``source_devices``, ``class``, ``target_host``, ``target_parent``, ``status``,
``evidence``, ``errno``, ``errno_name``, ``message``,
``target_available_instances``, ``layout``), sorted by source host, source
parent, type, target host and target parent.
"""

import csv
import html
import io
import json
import re

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M

REPORT_SCHEMA_VERSION = 1
DEFAULT_CELL_LIMIT = 200000
# More hosts than this and a host x host grid is no longer readable: summarise per class.
GRID_LIMIT = 150
# At most this many parent-pair lines in one grid cell's tooltip.
TITLE_LINES = 12

SELF = "self"
EVIDENCES = ("driver", "policy", "none")
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

_CSV_COLUMNS = ("source_host", "source_parent", "mdev_type", "source_kind", "source_version", "source_devices",
                "class", "target_host", "target_parent", "status", "evidence", "errno", "errno_name", "message",
                "target_available_instances", "layout")
# The CSV above the cell limit: one row per verdict (class x target parent).
_CSV_VERDICT_COLUMNS = ("class", "mdev_type", "source_kind", "source_version", "source_host_count", "target_host",
                        "target_parent", "status", "evidence", "errno", "errno_name", "message",
                        "target_available_instances", "layout")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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
    """Order of class ids: ``c2`` before ``c10``; other ids (content hashes) after, by name."""
    cid = _text(cid)
    if re.match(r"^c[0-9]+$", cid):
        return (0, int(cid[1:]), "")
    return (1, 0, cid)


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
    for kind in ("driver", "policy"):
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


def _too_big(matrix):
    return len(matrix["hosts"]) > GRID_LIMIT


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


# -- JSON --------------------------------------------------------------------------

def _check_cell_limit(cell_limit):
    if isinstance(cell_limit, bool) or not isinstance(cell_limit, int) or cell_limit < 0:
        raise ValueError("cell_limit must be a non-negative integer, not %r" % (cell_limit,))


def render_json(matrix, plan=None, generated=None, cell_limit=DEFAULT_CELL_LIMIT):
    """The matrix as a JSON document (schema in the module docstring and ``docs/matrix-schema.md``).

    Above ``cell_limit`` cells, ``cells`` is null, ``cells_omitted`` says how many
    there were, and ``verdicts`` plus ``sources`` keep every verdict.
    """
    plan = _plan_or_none(plan)
    check_inputs(matrix, plan, generated)
    _check_cell_limit(cell_limit)
    summ = summary(matrix, plan)
    doc = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated": generated,
        "hosts": matrix["hosts"],
        "classes": sorted_classes(matrix),
        "summary": summ,
        "plan": plan,
        "policy": matrix.get("policy"),
    }
    if summ["cells"] <= cell_limit:
        doc.update(cells=sorted_cells(matrix), cells_omitted=0, verdicts=None, sources=None)
    else:
        doc.update(cells=None, cells_omitted=summ["cells"], verdicts=compact_verdicts(matrix),
                   sources=source_rows(matrix))
    return json.dumps(doc, sort_keys=True, indent=1) + "\n"


# -- CSV ---------------------------------------------------------------------------

def _csv_value(value):
    """A cell value as CSV text; strings that a spreadsheet would run as a formula get a leading quote."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = " ".join(_text(v) for v in value)
    if isinstance(value, str):
        value = _text(value)
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    return str(value)


def cell_count(matrix):
    """How many cells :func:`_matrix.expand_cells` would make, without making them."""
    return sum(cell_counts(matrix).values())


def verdict_rows(matrix):
    """One row per class x target host x target parent (what was asked), in report order."""
    classes = matrix["classes"]
    for v in compact_verdicts(matrix):
        c = classes.get(v["class"]) or {}
        layout = c.get("evidence") == "driver" and c.get("version") is None
        for p in v["parents"]:
            yield {"class": v["class"], "mdev_type": c.get("mdev_type"), "source_kind": c.get("kind"),
                   "source_version": c.get("version"), "source_host_count": len(c.get("sources") or ()),
                   "target_host": v["target_host"], "target_parent": p.get("parent"), "status": p["status"],
                   "evidence": p.get("evidence"), "errno": p.get("errno"), "errno_name": p.get("errno_name"),
                   "message": p.get("message"), "target_available_instances": p.get("available_instances"),
                   "layout": layout}


def render_csv(matrix, cell_limit=DEFAULT_CELL_LIMIT):
    """One row per cell (sorted like the JSON cells) under a header row; devices joined with spaces.

    Above ``cell_limit`` cells (sources x targets grows with the square of the
    fleet), one row per verdict instead (:func:`verdict_rows`): the header then
    starts with ``class``, and which hosts are in a class is in the JSON report.
    """
    check_inputs(matrix)
    _check_cell_limit(cell_limit)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if cell_count(matrix) <= cell_limit:
        columns, rows = _CSV_COLUMNS, sorted_cells(matrix)
    else:
        columns, rows = _CSV_VERDICT_COLUMNS, verdict_rows(matrix)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row[col]) for col in columns])
    return buf.getvalue()


# -- Markdown ----------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")
_MD_LONE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(value):
    """Text safe in a Markdown table cell: no HTML, no code spans, links, emphasis or cell breaks."""
    text = html.escape(_text(value), quote=False)
    text = re.sub(r"[\r\n]+", " ", text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_LONE_UNDERSCORE.sub(r"\\_", text)


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _md_class_summary(matrix):
    rows = []
    for c in class_summary(matrix):
        rows.append([md_escape(c["class"]), md_escape(c["mdev_type"]),
                     md_escape(_basis_text(c["basis"]) or c["version"]), str(c["sources"])]
                    + [str(c["targets"].get(s, 0)) for s in E.STATUSES])
    return _md_table(["class", "type", "version", "sources"] + [STATUS_LABELS[s] for s in E.STATUSES], rows)


def render_markdown(matrix, plan=None, generated=None):
    """Summary, a host x host table of the best status per type, host states and the drain plan."""
    plan = _plan_or_none(plan)
    check_inputs(matrix, plan, generated)
    summ = summary(matrix, plan)
    out = ["# VFIO migration compatibility", ""]
    if generated:
        out += ["Generated: %s" % md_escape(generated), ""]
    out += ["## Summary", "",
            "%d hosts (%s), %d version classes, %d cells." % (
                summ["host_count"],
                ", ".join("%s: %d" % (md_escape(s), n) for s, n in sorted(summ["host_states"].items())) or "none",
                summ["class_count"], summ["cells"]), ""]
    if plan is not None:
        out += ["Drain plan: **%s**" % ("READY" if plan.get("ready") else "NOT READY"), ""]
    out += _md_table(["status", "label", "cells", "meaning"],
                     [[s, STATUS_LABELS[s], str(summ["status_counts"].get(s, 0)), STATUS_MEANINGS[s]]
                      for s in E.STATUSES])
    out += ["", "Labels ending in `%s` rest on policy rules, not on the driver's answer." % POLICY_SUFFIX, ""]

    out += ["## Best status per type (rows: source host, columns: target host)", ""]
    if _too_big(matrix):
        out += ["%d hosts are too many for host x host tables; target hosts per class and status:"
                % len(matrix["hosts"]), ""]
        out += _md_class_summary(matrix) + [""]
    else:
        targets = sorted(matrix["hosts"])
        for mdev_type, sources, cells in type_grids(matrix):
            out += ["### %s" % (md_escape(mdev_type) or "(no type)"), ""]
            rows = [[md_escape(src)] + [md_escape(_label(cells[(src, t)]["status"], cells[(src, t)]["evidence"]))
                                        for t in targets] for src in sources]
            out += _md_table(["source \\\\ target"] + [md_escape(t) for t in targets], rows) + [""]

    out += ["## Hosts", ""]
    out += _md_table(["host", "state", "probed", "reason"],
                     [[md_escape(name), md_escape(h.get("state")), "yes" if h.get("probed") else "no",
                       md_escape(h.get("reason"))] for name, h in sorted(matrix["hosts"].items())]) + [""]

    out += ["## Drain plan", ""]
    if plan is None:
        out += ["No drain plan was requested.", ""]
    else:
        out += _md_plan(plan)
    return "\n".join(out).rstrip("\n") + "\n"


def _md_plan(plan):
    out = ["**%s** - draining %s" % ("READY" if plan.get("ready") else "NOT READY",
                                     ", ".join(md_escape(h) for h in plan.get("drain_hosts") or []) or "nothing"), ""]
    if plan.get("unknown_hosts"):
        out += ["Not in the inventory: %s" % ", ".join(md_escape(h) for h in plan["unknown_hosts"]), ""]
    out += ["### Placements", ""]
    if plan.get("placements"):
        out += _md_table(["device", "type", "source", "target", "free after"],
                         [[md_escape(p.get("device")), md_escape(p.get("mdev_type")),
                           "%s / %s" % (md_escape(p.get("source_host")), md_escape(p.get("source_parent"))),
                           "%s / %s" % (md_escape(p.get("target_host")), md_escape(p.get("target_parent"))),
                           md_escape(p.get("target_free_after"))] for p in plan["placements"]]) + [""]
    else:
        out += ["None.", ""]
    out += ["### Stranded", ""]
    if plan.get("stranded"):
        rows = []
        for s in plan["stranded"]:
            why = md_escape(s.get("reason"))
            if s.get("details"):
                why += "<br>" + "<br>".join(md_escape(d) for d in s["details"])
            rows.append([md_escape(s.get("device")) or "(whole host)", md_escape(s.get("mdev_type")),
                         "%s / %s" % (md_escape(s.get("source_host")), md_escape(s.get("source_parent"))), why])
        out += _md_table(["device", "type", "source", "reason"], rows) + [""]
    else:
        out += ["None.", ""]
    return out


# -- HTML --------------------------------------------------------------------------

def esc(value):
    """Escape any value for HTML text and attribute values (None is empty)."""
    return html.escape(_text(value), quote=True)


def _attrs(**attrs):
    """`` name="value"`` pairs, escaped, in name order (``data_x`` becomes ``data-x``)."""
    return "".join(' %s="%s"' % (name.replace("_", "-"), esc(value)) for name, value in sorted(attrs.items()))


def _el(tag, content="", **attrs):
    """An element with escaped attributes around already-safe ``content``."""
    return "<%s%s>%s</%s>" % (tag, _attrs(**attrs), content, tag)


def _css():
    """The page's style sheet: status colours from STATUS_COLOURS."""
    rules = [
        ":root{color-scheme:light}",
        "body{margin:0;background:#fff;color:#1f2328;"
        "font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}",
        "header{padding:14px 24px;background:#24292f;color:#fff;display:flex;align-items:center;gap:24px}",
        "header h1{font-size:20px;margin:0}header .meta{color:#c9d1d9;font-size:13px}",
        "main{padding:8px 24px 32px}",
        "h2{font-size:17px;margin:22px 0 8px;padding-bottom:3px;border-bottom:1px solid #d0d7de}",
        "h3{font-size:15px;margin:16px 0 4px}",
        "p.note{color:#57606a;margin:4px 0 8px}",
        "code{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px;background:#f6f8fa;"
        "padding:1px 4px;border-radius:3px}",
        "table.data{border-collapse:collapse;margin:4px 0 8px}",
        "table.data th,table.data td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}",
        "table.data th{background:#f6f8fa}",
        "table.data td.num{text-align:right}",
        "table.data ul{margin:2px 0;padding-left:18px}",
        "table.grid{border-collapse:separate;border-spacing:2px;margin:4px 0 10px}",
        "table.grid th{font-size:12px;font-weight:600;padding:2px 5px;white-space:nowrap}",
        "table.grid th.src{text-align:right}",
        "table.grid th.tgt{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;"
        "vertical-align:bottom;max-height:120px;overflow:hidden;text-overflow:ellipsis}",
        "table.grid th.corner{font-weight:400;color:#57606a;vertical-align:bottom;text-align:right}",
        "th.down{color:#b42318}",
        ".cell,.swatch{min-width:52px;height:26px;padding:0 4px;text-align:center;border-radius:3px;"
        "font:600 12px/26px ui-monospace,'DejaVu Sans Mono',monospace;box-sizing:border-box}",
        ".swatch{display:inline-block;vertical-align:middle}",
        ".ev-policy{background-image:repeating-linear-gradient(-45deg,rgba(0,0,0,.22) 0 3px,transparent 3px 7px);"
        "outline:2px dashed #1f2328;outline-offset:-3px}",
        ".st-unknown{background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.5) 0 4px,"
        "transparent 4px 8px)}",
        ".st-self{font-weight:400}",
        ".chips{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0}",
        ".chip{display:flex;align-items:center;gap:6px;border:1px solid #d0d7de;border-radius:6px;padding:4px 8px}",
        ".chip b{font-size:16px}",
        "dl.legend{display:grid;grid-template-columns:repeat(2,max-content minmax(0,560px));gap:4px 12px;"
        "align-items:center;margin:6px 0}",
        "dl.legend dt,dl.legend dd{margin:0}",
        ".badge{display:inline-block;padding:10px 26px;border-radius:8px;color:#fff;"
        "font:700 30px/1 system-ui,'DejaVu Sans',sans-serif;letter-spacing:.06em}",
        ".badge.small{font-size:15px;padding:5px 12px}",
        ".badge.ready{background:#2e9d4f}.badge.not-ready{background:#d64541}",
        ".state-ok{color:#1a7f37;font-weight:600}.state-bad{color:#b42318;font-weight:600}",
    ]
    for status, colour in sorted(STATUS_COLOURS.items()):
        rules.append(".st-%s{background-color:%s;color:%s}" % (status, colour, _TEXT_COLOURS[status]))
    return "\n".join(rules)


def _swatch(status, evidence="none"):
    """A legend sample: looks like a grid cell but carries no data attributes."""
    classes = "swatch st-%s ev-%s" % (_status_token(status), evidence)
    return _el("span", esc(_label(status, evidence)), **{"class": classes, "aria_hidden": "true"})


def _html_version(c):
    """A class's version as HTML: the version in code, or what stands in for it."""
    basis = _basis_text(class_basis(c))
    return esc(basis) if basis else _el("code", esc(c["version"]))


def _grid_cell(src, target, mdev_type, cell):
    status, evidence = cell["status"], cell["evidence"]
    details = cell["details"]
    if len(details) > TITLE_LINES:
        details = details[:TITLE_LINES] + ["... %d more" % (len(details) - TITLE_LINES)]
    title = "%s -> %s (%s): %s%s\n%s" % (
        _text(src), _text(target), _text(mdev_type), status,
        " (policy, not driver-verified)" if evidence == "policy" else "", "\n".join(details))
    return _el("td", esc(_label(status, evidence)), **{
        "class": "cell st-%s ev-%s" % (_status_token(status), evidence if evidence in EVIDENCES else "none"),
        "data_source": src, "data_target": target, "data_type": mdev_type, "data_status": status,
        "data_evidence": evidence, "title": title})


def _html_grid(matrix, mdev_type, sources, cells):
    targets = sorted(matrix["hosts"])
    head = [_el("th", "source \\ target", **{"class": "corner"})]
    for t in targets:
        h = matrix["hosts"][t]
        down = h.get("state") != "ok"
        head.append(_el("th", esc(t), **{"class": "tgt down" if down else "tgt", "scope": "col",
                                         "title": "%s: %s%s" % (_text(t), _text(h.get("state")),
                                                                " - %s" % h["reason"] if h.get("reason") else "")}))
    rows = ["<thead><tr>%s</tr></thead>" % "".join(head), "<tbody>"]
    for src in sources:
        tds = [_grid_cell(src, t, mdev_type, cells[(src, t)]) for t in targets]
        rows.append("<tr>%s%s</tr>" % (_el("th", esc(src), **{"class": "src", "scope": "row"}), "".join(tds)))
    rows.append("</tbody>")
    classes = [c for c in sorted_classes(matrix) if c["mdev_type"] == mdev_type]
    note = "; ".join("%s %s on %s" % (esc(c["id"]), _html_version(c), esc(", ".join(c["sources"])))
                     for c in classes) or "no source can migrate this type"
    return "\n".join([_el("h3", "Type " + _el("code", esc(mdev_type) or "(none)"),
                          **{"data_grid_type": mdev_type}),
                      _el("p", "Classes: " + note, **{"class": "note"}),
                      _el("table", "\n".join(rows), **{"class": "grid", "data_type": mdev_type})])


def _html_class_summary(matrix):
    head = "".join(_el("th", h) for h in ("class", "type", "version", "sources")) + "".join(
        _el("th", _swatch(s) + " " + esc(s)) for s in E.STATUSES)
    rows = []
    for c in class_summary(matrix):
        basis = _basis_text(c["basis"])
        version = esc(basis) if basis else _el("code", esc(c["version"]))
        counts = "".join(_el("td", str(c["targets"].get(s, 0)), **{"class": "num", "data_status": s,
                                                                   "data_class": c["class"]})
                         for s in E.STATUSES)
        rows.append("<tr>%s%s%s%s%s</tr>" % (
            _el("td", esc(c["class"])), _el("td", _el("code", esc(c["mdev_type"]))), _el("td", version),
            _el("td", str(c["sources"]), **{"class": "num"}), counts))
    return "\n".join([
        _el("p", "%d hosts are more than a %d x %d grid can show; instead, how many target hosts end in each "
                 "status for each version class (best over the target's parents)."
            % (len(matrix["hosts"]), GRID_LIMIT, GRID_LIMIT), **{"class": "note"}),
        _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, "\n".join(rows)),
            **{"class": "data summary"})])


def _html_summary(summ):
    chips = []
    for s in E.STATUSES:
        chips.append(_el("div", _swatch(s) + _el("b", str(summ["status_counts"].get(s, 0))) + " " + esc(s),
                         **{"class": "chip"}))
    states = ", ".join("%s: %d" % (esc(s), n) for s, n in sorted(summ["host_states"].items())) or "none"
    return "\n".join([
        _el("h2", "Summary"),
        _el("p", "%d hosts (%s), %d version classes, %d source x target cells (by parent)."
            % (summ["host_count"], states, summ["class_count"], summ["cells"])),
        _el("div", "".join(chips), **{"class": "chips"}),
    ])


def _html_legend():
    items = []
    for s in E.STATUSES + (SELF,):
        items.append(_el("dt", _swatch(s)) + _el("dd", _el("b", esc(s)) + ": " + esc(STATUS_MEANINGS[s])))
    items.append(_el("dt", _swatch(E.COMPATIBLE, "policy")) + _el(
        "dd", _el("b", "policy evidence") + ": hatched with a dashed outline and a trailing %s - the verdict rests "
        "on policy rules (same type, driver versions), not on the driver's own answer" % esc(POLICY_SUFFIX)))
    return "\n".join([
        _el("h2", "Legend"),
        _el("p", "Each grid cell is the best status over the source's and the target's parents for one source "
                 "host, type and target host. Hover a cell for the parents, errno and message.",
            **{"class": "note"}),
        _el("dl", "\n".join(items), **{"class": "legend"})])


def _html_hosts(matrix):
    rows = []
    for name, h in sorted(matrix["hosts"].items()):
        state = h.get("state")
        rows.append("<tr>%s%s%s%s</tr>" % (
            _el("td", esc(name)), _el("td", esc(state), **{"class": "state-ok" if state == "ok" else "state-bad"}),
            _el("td", "yes" if h.get("probed") else "no"), _el("td", esc(h.get("reason")))))
    head = "".join(_el("th", h) for h in ("host", "state", "probed", "reason"))
    return "\n".join([_el("h2", "Hosts"),
                      _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, "\n".join(rows)),
                          **{"class": "data hosts"})])


def _html_table(header, rows, cls):
    head = "".join(_el("th", h) for h in header)
    body = "\n".join("<tr>%s</tr>" % "".join(row) for row in rows)
    return _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, body), **{"class": "data " + cls})


def _badge(ready, small=False):
    cls = "badge %s%s" % ("ready" if ready else "not-ready", " small" if small else "")
    return _el("span", "READY" if ready else "NOT READY", **{"class": cls, "data_ready": "true" if ready else "false"})


def _html_plan(plan):
    out = [_el("h2", "Drain plan")]
    if plan is None:
        out.append(_el("p", "No drain plan was requested.", **{"class": "note"}))
        return "\n".join(out)
    placements, stranded = plan.get("placements") or [], plan.get("stranded") or []
    out.append(_el("p", _badge(plan.get("ready")) + " draining %s: %d instance(s) placed, %d stranded." % (
        esc(", ".join(_text(h) for h in plan.get("drain_hosts") or [])) or "nothing", len(placements),
        len(stranded)), **{"id": "plan-badge"}))
    if plan.get("unknown_hosts"):
        out.append(_el("p", "Not in the inventory: " + esc(", ".join(_text(h) for h in plan["unknown_hosts"])),
                       **{"class": "state-bad"}))
    out.append(_el("h3", "Placements"))
    if placements:
        out.append(_html_table(
            ("device", "type", "source host", "source parent", "version", "target host", "target parent",
             "free after"),
            [[_el("td", _el("code", esc(p.get("device")))), _el("td", esc(p.get("mdev_type"))),
              _el("td", esc(p.get("source_host"))), _el("td", esc(p.get("source_parent"))),
              _el("td", esc(p.get("source_version"))), _el("td", esc(p.get("target_host"))),
              _el("td", esc(p.get("target_parent"))), _el("td", esc(p.get("target_free_after")), **{"class": "num"})]
             for p in placements], "placements"))
    else:
        out.append(_el("p", "None.", **{"class": "note"}))
    out.append(_el("h3", "Stranded instances"))
    if stranded:
        rows = []
        for s in stranded:
            details = "".join(_el("li", esc(d)) for d in s.get("details") or [])
            rows.append([_el("td", _el("code", esc(s.get("device"))) if s.get("device") else "(whole host)"),
                         _el("td", esc(s.get("mdev_type"))), _el("td", esc(s.get("source_host"))),
                         _el("td", esc(s.get("source_parent"))),
                         _el("td", esc(s.get("reason")) + (_el("ul", details) if details else ""))])
        out.append(_html_table(("device", "type", "source host", "source parent", "reason"), rows, "stranded"))
    else:
        out.append(_el("p", "None.", **{"class": "note"}))
    return "\n".join(out)


def _html_classes(matrix):
    rows = []
    for c in sorted_classes(matrix):
        rows.append([_el("td", esc(c["id"])), _el("td", _el("code", esc(c["mdev_type"]))),
                     _el("td", esc(c.get("kind"))), _el("td", _html_version(c)),
                     _el("td", esc(", ".join(c["sources"])))])
    unsupported = [r for r in source_rows(matrix) if r["class"] is None]
    out = [_el("h2", "Version classes"),
           _el("p", "Sources with the same type and version form one class; each target is asked once per class.",
               **{"class": "note"}),
           _html_table(("class", "type", "kind", "version", "source hosts"), rows, "classes")]
    if unsupported:
        out += [_el("h3", "Sources that cannot migrate"),
                _html_table(("host", "parent", "type", "status", "instances", "reason"),
                            [[_el("td", esc(r["host"])), _el("td", esc(r["parent"])), _el("td", esc(r["mdev_type"])),
                              _el("td", esc(r["source_status"])), _el("td", esc(" ".join(r["devices"] or []))),
                              _el("td", esc(r["reason"]))] for r in unsupported], "unsupported")]
    return "\n".join(out)


def render_html(matrix, plan=None, generated=None):
    """A self-contained page (inline CSS, no script, nothing fetched): grids per type, legend, hosts, plan."""
    plan = _plan_or_none(plan)
    check_inputs(matrix, plan, generated)
    summ = summary(matrix, plan)
    meta = "%d hosts, %d classes" % (summ["host_count"], summ["class_count"])
    if generated:
        meta = "generated %s - %s" % (esc(generated), meta)
    header = [_el("h1", "VFIO migration compatibility"), _el("span", meta, **{"class": "meta"})]
    if plan is not None:
        header.append(_badge(plan.get("ready"), small=True))
    if _too_big(matrix):
        grids = [_el("h2", "Target hosts per version class and status"), _html_class_summary(matrix)]
    else:
        grids = [_el("h2", "Best status per type: source host (rows) to target host (columns)")]
        grids.extend(_html_grid(matrix, t, s, c) for t, s, c in type_grids(matrix))
        if len(grids) == 1:
            grids.append(_el("p", "No host offers or holds a migratable device.", **{"class": "note"}))
    body = [
        _el("header", "".join(header)),
        "<main>",
        _html_summary(summ),
        "\n".join(grids),
        _html_legend(),
        _html_plan(plan),
        _html_hosts(matrix),
        _html_classes(matrix),
        "</main>",
    ]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="generator" content="vfio.migration report schema %d">' % REPORT_SCHEMA_VERSION,
        "<title>VFIO migration compatibility</title>",
        "<style>",
        _css(),
        "</style>",
        "</head>",
        "<body>",
        "\n".join(body),
        "</body>",
        "</html>",
    ]) + "\n"
