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
     "policy": <the policy the matrix applied> | null,
     "host_versions": {host: {"kernel", "qemu", "libvirt", "drivers": {parent: version}}} | null,
     "schedule": <rolling_schedule, solver seconds left out>}   # only when a schedule was computed

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

# The views and the HTML page live beside this file; their names stay importable from here.
# pylint: disable=unused-import
from ansible_collections.vfio.migration.plugins.module_utils import _errno as E  # noqa: F401
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M  # noqa: F401
from ansible_collections.vfio.migration.plugins.plugin_utils import _rolling as ROLLING
from ansible_collections.vfio.migration.plugins.plugin_utils._views import (  # noqa: F401
    DEFAULT_CELL_LIMIT, EVIDENCES, GRID_CELL_LIMIT, GRID_LIMIT, POLICY_SUFFIX, REPORT_SCHEMA_VERSION, SELF,
    STATUS_COLOURS, STATUS_LABELS, STATUS_MEANINGS, TITLE_LINES, _basis_text, _best, _class_key, _iter_pairs, _key,
    _label, _plan_or_none, _text, _too_big, cell_counts, check_inputs, class_basis, class_summary, compact_verdicts,
    grid_cells, sorted_cells, sorted_classes, source_rows, summary, too_big_note, type_grids)
from ansible_collections.vfio.migration.plugins.plugin_utils._html import esc, render_html  # noqa: F401


_CSV_COLUMNS = ("source_host", "source_parent", "mdev_type", "source_kind", "source_version", "source_devices",
                "class", "target_host", "target_parent", "status", "evidence", "errno", "errno_name", "message",
                "target_available_instances", "layout")
# The CSV above the cell limit: one row per verdict (class x target parent).
_CSV_VERDICT_COLUMNS = ("class", "mdev_type", "source_kind", "source_version", "source_host_count", "target_host",
                        "target_parent", "status", "evidence", "errno", "errno_name", "message",
                        "target_available_instances", "layout")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# -- JSON --------------------------------------------------------------------------

def _check_cell_limit(cell_limit):
    if isinstance(cell_limit, bool) or not isinstance(cell_limit, int) or cell_limit < 0:
        raise ValueError("cell_limit must be a non-negative integer, not %r" % (cell_limit,))


def _check_host_versions(host_versions):
    if host_versions is None:
        return
    if not isinstance(host_versions, dict) or not all(isinstance(v, dict) for v in host_versions.values()):
        raise ValueError("host_versions must be the output of vfio.migration.host_versions or null")


def check_schedule(schedule):
    """Raise ``ValueError`` unless ``schedule`` is a rolling schedule or None."""
    if schedule is not None:
        ROLLING.check_schedule(schedule)


def render_json(matrix, plan=None, generated=None, cell_limit=DEFAULT_CELL_LIMIT, host_versions=None,
                schedule=None):
    """The matrix as a JSON document (schema in the module docstring and ``docs/matrix-schema.md``).

    Above ``cell_limit`` cells, ``cells`` is null, ``cells_omitted`` says how many
    there were, and ``verdicts`` plus ``sources`` keep every verdict.
    ``host_versions`` (``_drift.host_versions``: each host's kernel, QEMU,
    libvirt and driver version per parent) is kept for the next run's
    comparison; null when not given. ``schedule`` (``vfio.migration.rolling_schedule``) is kept as the
    key ``schedule``, without the solver's ``seconds``; without a schedule there is no such key.
    """
    plan = _plan_or_none(plan)
    check_inputs(matrix, plan, generated)
    _check_cell_limit(cell_limit)
    _check_host_versions(host_versions)
    check_schedule(schedule)
    summ = summary(matrix, plan)
    doc = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated": generated,
        "hosts": matrix["hosts"],
        "classes": sorted_classes(matrix),
        "summary": summ,
        "plan": plan,
        "policy": matrix.get("policy"),
        "host_versions": host_versions,
    }
    if schedule is not None:
        doc["schedule"] = ROLLING.for_report(schedule)
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


def render_markdown(matrix, plan=None, generated=None, schedule=None):
    """Summary, a host x host table of the best status per type, host states, the drain plan and the
    rolling maintenance schedule (its wave table, placements, assumptions and why not ready) when given."""
    plan = _plan_or_none(plan)
    check_inputs(matrix, plan, generated)
    check_schedule(schedule)
    summ = summary(matrix, plan)
    out = ["# VFIO migration compatibility", ""]
    if generated:
        out += ["Generated: %s" % md_escape(generated), ""]
    out += ["## Summary", "",
            "%d hosts (%s), %d version classes, %d cells." % (
                summ["host_count"],
                ", ".join("%s: %d" % (md_escape(s), n) for s, n in sorted(summ["host_states"].items())) or "none",
                summ["class_count"], summ["cells"]), ""]
    if schedule is not None:
        out += ["Rolling maintenance: **%s** (waves below)" % ("READY" if schedule["ready"] else "NOT READY"), ""]
    if plan is not None:
        out += ["Drain plan: **%s**" % ("READY" if plan.get("ready") else "NOT READY"), ""]
    out += _md_table(["status", "label", "cells", "meaning"],
                     [[s, STATUS_LABELS[s], str(summ["status_counts"].get(s, 0)), STATUS_MEANINGS[s]]
                      for s in E.STATUSES])
    out += ["", "Labels ending in `%s` rest on policy rules, not on the driver's answer." % POLICY_SUFFIX, ""]

    out += ["## Best status per type (rows: source host, columns: target host)", ""]
    if _too_big(matrix):
        out += ["%s; target hosts per class and status:" % too_big_note(matrix), ""]
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
    if schedule is not None:
        out += ["## Rolling maintenance schedule", ""] + ROLLING.markdown_sections(schedule, 3)
    return "\n".join(out).rstrip("\n") + "\n"


def _md_moves(item):
    if item.get("vm"):
        return md_escape(item["vm"])
    return md_escape(item.get("device")) or "(whole host)"


def _md_devices(item):
    devs = item.get("devices") or [] if item.get("vm") else []
    return "<br>".join("%s %s" % (md_escape(d.get("mdev_type") or d.get("kind")), md_escape(d.get("id")))
                       for d in devs) or md_escape(item.get("mdev_type"))


def _md_target_devices(p):
    return "<br>".join("%s: %s %s" % (md_escape(d.get("target_parent")), md_escape(d.get("action")),
                                      md_escape(d.get("device")))
                       for d in p.get("target_devices") or []) or md_escape(p.get("target_parent"))


def _md_plan(plan):
    out = ["**%s** - draining %s" % ("READY" if plan.get("ready") else "NOT READY",
                                     ", ".join(md_escape(h) for h in plan.get("drain_hosts") or []) or "nothing"), ""]
    if plan.get("unknown_hosts"):
        out += ["Not in the inventory: %s" % ", ".join(md_escape(h) for h in plan["unknown_hosts"]), ""]
    out += ["### Stranded", ""]
    if plan.get("stranded"):
        rows = []
        for s in plan["stranded"]:
            why = "<br>".join(md_escape(r) for r in s.get("reasons") or [s.get("reason")])
            if s.get("details"):
                why += "<br>" + "<br>".join(md_escape(d) for d in s["details"])
            rows.append([_md_moves(s), _md_devices(s), md_escape(s.get("source_host")), md_escape(s.get("cause")),
                         why])
        out += _md_table(["moves", "devices", "source", "cause", "reason"], rows) + [""]
    else:
        out += ["None.", ""]
    out += ["### Placements", ""]
    if plan.get("placements"):
        out += _md_table(["moves", "devices", "source", "target", "target devices", "room after"],
                         [[_md_moves(p), _md_devices(p), md_escape(p.get("source_host")),
                           md_escape(p.get("target_host")), _md_target_devices(p),
                           md_escape(p.get("target_free_after"))] for p in plan["placements"]]) + [""]
    else:
        out += ["None.", ""]
    if plan.get("cold"):
        out += ["### Cold moves", ""]
        out += _md_table(["moves", "devices", "source", "possible targets"],
                         [[_md_moves(c), _md_devices(c), md_escape(c.get("source_host")),
                           md_escape(", ".join(c.get("target_hosts") or [])) or "none"] for c in plan["cold"]]) + [""]
    if plan.get("collisions"):
        out += ["### Instance UUIDs already on a target", ""]
        out += _md_table(["UUID", "VM", "source", "target", "held by"],
                         [[md_escape(c.get("uuid")), md_escape(c.get("vm")), md_escape(c.get("source_host")),
                           md_escape(c.get("target_host")), md_escape(c.get("held_by") or "stale instance")]
                          for c in plan["collisions"]]) + [""]
    return out
