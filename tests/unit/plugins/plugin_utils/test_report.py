"""Reports of the fleet matrix (plugin_utils._report and the report_* filters)."""

import csv
import io
import json
import os
import re
import subprocess
from html.parser import HTMLParser

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.filter import report as F
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from ansible_collections.vfio.migration.plugins.plugin_utils import _views as V
from tests.browser.report_fixture import (EVIL_HOST, EVIL_MESSAGE, EVIL_PARENT, EVIL_TYPE, EXPECTED_ALPHA,
                                          all_status_matrix, all_status_plan)
from tests.conftest import COLLECTIONS, REPO, ansible_bin
from tests.synthetic import facts, fleet, ok, probe_all

U1, U2, U3 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
              "33333333-3333-4333-8333-333333333333")
STAMP = "2025-06-01T12:00:00Z"


def small_hosts(order=1):
    """Four hosts: a (nv-1 1.2, two instances), b (nv-1 1.3), c (nv-1 2.0 and gvt-4), down.

    ``order=-1`` builds every dict in reverse insertion order, to prove no output depends on it.
    """
    def rev(d):
        items = list(d.items())
        return dict(items[::order])

    hosts = rev({
        "a": ok(facts(rev({"gpu0": {"nv-1": ("p-1.2", 3, [U1, U2])}}))),
        "b": ok(facts(rev({"gpu0": {"nv-1": ("p-1.3", 1, [])}}))),
        "c": ok(facts(rev({"gpu0": {"nv-1": ("p-2.0", 8, [U3])}, "igd": {"gvt-4": ("q-1.0", 2, [])}}))),
        "down": {"state": "unreachable", "reason": "ssh: connection refused", "facts": None, "probe": None},
    })
    return probe_all(hosts, M.probe_batches(hosts))


def small_matrix(order=1):
    return M.compat_matrix(small_hosts(order))


# Best status per (type, source host, target host) in small_matrix.
SMALL_EXPECTED = {
    ("nv-1", "a", "a"): "self", ("nv-1", "a", "b"): "compatible", ("nv-1", "a", "c"): "incompatible",
    ("nv-1", "a", "down"): "unknown",
    ("nv-1", "b", "a"): "incompatible", ("nv-1", "b", "b"): "self", ("nv-1", "b", "c"): "incompatible",
    ("nv-1", "b", "down"): "unknown",
    ("nv-1", "c", "a"): "incompatible", ("nv-1", "c", "b"): "incompatible", ("nv-1", "c", "c"): "self",
    ("nv-1", "c", "down"): "unknown",
    ("gvt-4", "c", "a"): "missing_type", ("gvt-4", "c", "b"): "missing_type", ("gvt-4", "c", "c"): "self",
    ("gvt-4", "c", "down"): "unknown",
}


class CellParser(HTMLParser):
    """Collects grid cells (elements with data-status inside a grid) and every start tag seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cells, self.tags, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if "data-status" in a and "cell" in (a.get("class") or "").split():
            self._open = dict(a, label="")
            self.cells.append(self._open)

    def handle_endtag(self, tag):
        if tag == "td":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["label"] += data


def parse_cells(page):
    p = CellParser()
    p.feed(page)
    p.close()
    return p


def grid_map(page):
    return {(c["data-type"], c["data-source"], c["data-target"]): c for c in parse_cells(page).cells}


def reorder(value):
    """The same data with every dict's insertion order reversed."""
    if isinstance(value, dict):
        return {k: reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reorder(v) for v in value]
    return value


# -- HTML --------------------------------------------------------------------------

def test_html_cells_carry_the_best_status_per_host_pair():
    cells = grid_map(R.render_html(small_matrix()))
    assert {k: c["data-status"] for k, c in cells.items()} == SMALL_EXPECTED
    for (mdev_type, src, dst), c in cells.items():
        status = SMALL_EXPECTED[(mdev_type, src, dst)]
        assert c["label"] == R.STATUS_LABELS[status]
        assert "st-%s" % status in c["class"].split()
        assert c["title"].startswith("%s -> %s (%s)" % (src, dst, mdev_type))
    assert cells[("nv-1", "a", "b")]["data-evidence"] == "driver"
    assert cells[("nv-1", "a", "down")]["data-evidence"] == "none"
    assert "connection refused" in cells[("nv-1", "a", "down")]["title"]
    assert "EPROTO" in cells[("nv-1", "a", "c")]["title"]  # errno of the refusing write


def test_html_best_status_over_parents_and_every_status():
    cells = grid_map(R.render_html(all_status_matrix()))
    got = {dst: (c["data-status"], c["data-evidence"]) for (t, src, dst), c in cells.items()
           if t == "nv-1" and src == "alpha" and dst != "alpha"}
    assert got == EXPECTED_ALPHA
    # beta has gpu0 (1.3, takes 1.2) and gpu1 (1.1, refuses): both parents are in the title
    title = cells[("nv-1", "alpha", "beta")]["title"]
    assert "gpu0 -> gpu0: compatible" in title and "gpu0 -> gpu1: incompatible" in title
    assert cells[("nv-1", "alpha", "alpha")]["data-status"] == "self"


def test_policy_evidence_looks_different():
    cells = grid_map(R.render_html(all_status_matrix()))
    policy, driver = cells[("nv-1", "alpha", "eta")], cells[("nv-1", "alpha", "beta")]
    assert policy["data-status"] == driver["data-status"] == "compatible"
    assert policy["label"] == "OK" + R.POLICY_SUFFIX and driver["label"] == "OK"
    assert "ev-policy" in policy["class"].split() and "ev-driver" in driver["class"].split()
    assert "not driver-verified" in policy["title"]


def test_html_escapes_hostile_strings_everywhere():
    matrix, = [all_status_matrix()]
    page = R.render_html(matrix, all_status_plan(matrix), generated="<i>now</i>")
    parsed = parse_cells(page)
    # nothing from the matrix became an element: only the report's own tags
    assert not {"script", "img", "i", "iframe", "object", "embed", "link"} & set(parsed.tags)
    assert "<script" not in page and "<img" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "alert(&#x27;m&#x27;)" in page and "&amp; &quot;quoted&quot;" in page
    # attributes round-trip to the original strings
    cells = grid_map(page)
    assert (EVIL_TYPE, EVIL_HOST, "alpha") in cells
    assert cells[("nv-1", EVIL_HOST, "alpha")]["data-source"] == EVIL_HOST
    assert EVIL_PARENT in cells[("nv-1", "alpha", EVIL_HOST)]["title"]
    assert EVIL_MESSAGE in cells[("nv-1", "gamma", EVIL_HOST)]["title"]


def test_html_is_self_contained():
    lowered = R.render_html(small_matrix(), M.drain_plan(small_matrix(), ["a"])).lower()
    for needle in ("http:", "https:", "//", "src=", "href=", "<link", "@import", "url(", "<script", "@font-face"):
        assert needle not in lowered, needle
    assert "default-src 'none'" in lowered
    parsed = parse_cells(R.render_html(all_status_matrix()))
    assert set(parsed.tags) <= {"html", "head", "meta", "title", "style", "body", "header", "main", "h1", "h2", "h3",
                                "span", "p", "b", "code", "div", "dl", "dt", "dd", "table", "thead", "tbody", "tr",
                                "th", "td", "ul", "li", "section", "details", "summary", "br"}


def test_html_plan_badge_placements_and_stranded():
    matrix = all_status_matrix()
    plan = all_status_plan(matrix)
    page = R.render_html(matrix, plan)
    assert 'data-ready="false"' in page and "NOT READY" in page
    assert U1 in page and U2 in page  # placed
    assert U3 in page and "no compatible target outside the drain set" in page  # stranded, with why
    ready = R.render_html(matrix, M.drain_plan(matrix, ["eta"]))  # eta holds no instance
    assert 'data-ready="true"' in ready and ">READY<" in ready
    assert "NO DRAIN PLANNED" in R.render_html(matrix)


def test_html_host_table_shows_state_and_reason():
    page = R.render_html(small_matrix())
    assert "unreachable" in page and "ssh: connection refused" in page


def test_html_big_fleet_gets_a_class_summary_not_a_grid():
    hosts = fleet(R.GRID_LIMIT + 1, n_types=1, versions_per_type=2)
    matrix = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)))
    page = R.render_html(matrix)
    assert not parse_cells(page).cells
    note = "%d hosts (%d source x target cells in the per-type grids) are more than host x host grids can show" % (
        R.GRID_LIMIT + 1, (R.GRID_LIMIT + 1) ** 2)
    assert note in page
    assert page.count(' data-class="') == len(matrix["classes"]) * len(R.E.STATUSES)
    md = R.render_markdown(matrix)
    assert note in md
    assert all("| %s |" % cid in md for cid in matrix["classes"])


@pytest.mark.parametrize("n_hosts, n_types, grids", [
    (50, 4, True),     # 4 types x 50 sources x 50 hosts = 10,000 cells: the limit itself
    (51, 4, False),    # 10,404
    (100, 1, True),    # 10,000
    (101, 1, False),   # 10,201
])
def test_html_and_markdown_grids_end_at_the_grid_cell_limit(n_hosts, n_types, grids):
    """Below 150 hosts the grids still end when their cells (each type's source hosts x every host, each cell
    with its parents' lines) would make a page too heavy to open."""
    hosts = fleet(n_hosts, n_types=n_types, versions_per_type=2, instances=0)
    matrix = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)))
    assert R.grid_cells(matrix) == n_types * n_hosts * n_hosts
    page = R.render_html(matrix)
    md = R.render_markdown(matrix)
    assert bool(parse_cells(page).cells) is grids
    assert (" cells in the per-type grids) are more than host x host grids can show (at most %d hosts and %d "
            "cells)" % (R.GRID_LIMIT, R.GRID_CELL_LIMIT) in page) is not grids
    assert ("### vendor-0" in md) is grids
    assert ("target hosts per class and status" in md) is not grids


# -- determinism -------------------------------------------------------------------

RENDERERS = {
    "json": R.render_json,
    "csv": lambda m, p, g: R.render_csv(m),
    "markdown": R.render_markdown,
    "html": R.render_html,
}


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_same_inputs_same_bytes(fmt):
    render = RENDERERS[fmt]
    m1, m2 = small_matrix(), small_matrix(order=-1)
    plan1, plan2 = M.drain_plan(m1, ["a"]), M.drain_plan(m2, ["a"])
    first = render(m1, plan1, STAMP)
    assert render(m1, plan1, STAMP) == first
    assert render(m2, plan2, STAMP) == first  # hosts, parents and types given in another order
    assert render(reorder(m1), reorder(plan1), STAMP) == first  # every dict of the matrix reordered
    hostile = all_status_matrix()
    assert render(reorder(hostile), None, STAMP) == render(hostile, None, STAMP)


@pytest.mark.parametrize("fmt", ["json", "markdown", "html"])
def test_only_generated_varies(fmt):
    m = small_matrix()
    a = RENDERERS[fmt](m, None, "2025-01-01T00:00:00Z").splitlines()
    b = RENDERERS[fmt](m, None, "2031-12-31T23:59:59Z").splitlines()
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b) and len(diff) == 1
    assert "2025-01-01T00:00:00Z" in diff[0][0] and "2031-12-31T23:59:59Z" in diff[0][1]
    assert "2025" not in RENDERERS[fmt](m, None, None)


# -- JSON --------------------------------------------------------------------------

def test_json_schema():
    m = small_matrix()
    plan = M.drain_plan(m, ["a"])
    text = R.render_json(m, plan, STAMP)
    assert text.endswith("}\n") and text.startswith('{\n "cells"')  # sorted keys, indent 1
    doc = json.loads(text)
    assert set(doc) == {"schema_version", "generated", "hosts", "classes", "cells", "cells_omitted", "verdicts",
                        "sources", "summary", "plan", "policy", "host_versions"}
    assert doc["schema_version"] == 1 and doc["generated"] == STAMP
    assert doc["hosts"]["down"] == {"state": "unreachable", "reason": "ssh: connection refused", "probed": False}
    assert [(c["mdev_type"], c["version"]) for c in doc["classes"]] == [
        ("gvt-4", "q-1.0"), ("nv-1", "p-1.2"), ("nv-1", "p-1.3"), ("nv-1", "p-2.0")]
    assert {c["id"] for c in doc["classes"]} == set(m["classes"])
    assert doc["cells_omitted"] == 0 and doc["verdicts"] is None and doc["sources"] is None
    assert len(doc["cells"]) == len(M.expand_cells(m))
    assert set(doc["cells"][0]) - {"reasons"} == {
        "source_host", "source_parent", "mdev_type", "source_kind", "source_version", "source_devices", "class",
        "target_host", "target_parent", "status", "evidence", "errno", "errno_name", "message",
        "target_available_instances", "layout"}
    keys = [(c["source_host"], c["source_parent"], c["mdev_type"], c["target_host"], c["target_parent"] or "")
            for c in doc["cells"]]
    assert keys == sorted(keys)
    s = doc["summary"]
    assert set(s) == {"cells", "status_counts", "evidence_counts", "host_count", "host_states", "hosts_by_state",
                      "class_count", "ready"}
    assert s["cells"] == len(doc["cells"]) == sum(s["status_counts"].values()) == sum(s["evidence_counts"].values())
    assert set(s["status_counts"]) == set(R.E.STATUSES)
    assert s["host_states"] == {"ok": 3, "unreachable": 1}
    assert s["hosts_by_state"] == {"ok": ["a", "b", "c"], "unreachable": ["down"]}
    assert s["ready"] is plan["ready"] is False
    assert doc["plan"] == json.loads(json.dumps(plan))
    assert json.loads(R.render_json(m))["plan"] is None


def _rebuild_cells(doc):
    """Cells from the compact form: every source row x its class's verdicts or its own status."""
    per = {(v["class"], v["target_host"]): v["parents"] for v in doc["verdicts"]}
    out = []
    for row in doc["sources"]:
        for target in sorted(doc["hosts"]):
            if target == row["host"]:
                continue
            if row["class"] is None:
                verdicts = [{"parent": None, "status": row["source_status"], "message": row["reason"]}]
            else:
                verdicts = per.get((row["class"], target), [])
            out.extend((row["host"], row["parent"], row["mdev_type"], row["version"], target, v["parent"],
                        v["status"], v.get("errno_name"), v["message"]) for v in verdicts)
    return sorted(out, key=repr)


def _brute_counts(matrix):
    counts = {}
    for dummy, target, v in R._iter_pairs(matrix):
        counts[(v["status"], v["evidence"])] = counts.get((v["status"], v["evidence"]), 0) + 1
    return counts


def test_cell_counts_per_class_equal_counting_every_cell():
    hosts = fleet(30, 3, 3, seed=4)
    probe_all(hosts, M.probe_batches(hosts))
    hosts["gone"] = {"state": "unreachable", "reason": "ssh: no route", "probe": None, "facts": None}
    del hosts["host00007"]["probe"]  # a target never probed: its verdicts are unknown
    big = M.compat_matrix(hosts)
    for m in (small_matrix(), all_status_matrix(), big):
        counts = R.cell_counts(m)
        assert counts == _brute_counts(m) and all(counts.values())
        assert R.cell_count(m) == len(M.expand_cells(m)) == R.summary(m)["cells"]
    assert len({status for status, dummy in R.cell_counts(big)}) >= 3


def test_json_cell_limit_keeps_everything_in_compact_form():
    m = all_status_matrix()
    full = json.loads(R.render_json(m, cell_limit=10 ** 6))
    n = len(full["cells"])
    assert json.loads(R.render_json(m, cell_limit=n))["cells_omitted"] == 0
    compact = json.loads(R.render_json(m, cell_limit=n - 1))
    assert compact["cells"] is None and compact["cells_omitted"] == n
    assert compact["summary"] == full["summary"] and compact["classes"] == full["classes"]
    assert len(compact["verdicts"]) == sum(len(per) for per in m["verdicts"].values())
    assert all(set(v) == {"class", "target_host", "status", "evidence", "parents"} for v in compact["verdicts"])
    assert all("key" not in r and "source_status" in r for r in compact["sources"])
    expected = sorted(((c["source_host"], c["source_parent"], c["mdev_type"], c["source_version"], c["target_host"],
                        c["target_parent"], c["status"], c["errno_name"], c["message"]) for c in full["cells"]),
                      key=repr)
    assert _rebuild_cells(compact) == expected


@pytest.mark.parametrize("bad", [-1, "10", 1.5, True, None])
def test_json_cell_limit_must_be_a_count(bad):
    with pytest.raises(ValueError, match="cell_limit"):
        R.render_json(small_matrix(), cell_limit=bad)


# -- CSV ---------------------------------------------------------------------------

def test_csv_one_row_per_cell_with_header():
    m = small_matrix()
    rows = list(csv.reader(io.StringIO(R.render_csv(m))))
    assert rows[0][:3] == ["source_host", "source_parent", "mdev_type"] and len(rows[0]) == 16
    assert len(rows) == 1 + len(M.expand_cells(m))
    a_to_b = [r for r in rows if r[0] == "a" and r[7] == "b"]
    assert a_to_b == [["a", "gpu0", "nv-1", "mdev", "p-1.2", "%s %s" % (U1, U2), a_to_b[0][6], "b", "gpu0",
                       "compatible", "driver", "", "", "", "1", "false"]]
    assert not any(r[0] == r[7] for r in rows[1:])


def test_csv_defuses_spreadsheet_formulas():
    hosts = {
        "=evil": ok(facts({"+gpu": {"@SUM:A1": ("-1.2", 1, ["=1+1"])}})),
        "t": ok(facts({"-gpu": {"@SUM:A1": ("-1.2", 1, [])}})),
    }
    for name, batch in M.probe_batches(hosts).items():
        hosts[name]["probe"] = {"results": [
            {"id": check["id"], "mdev_type": check["mdev_type"], "parent": p, "status": "error", "errno": 13,
             "errno_name": "EACCES", "message": "=HYPERLINK(\"http://x\")"}
            for check in batch for p in hosts[name]["facts"]["parents"]]}
    text = R.render_csv(M.compat_matrix(hosts))
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert rows
    for row in rows:
        for field in row:
            assert not field.startswith(("=", "+", "-", "@")), row
    row = next(r for r in rows if r[0] == "'=evil")
    assert row[1:3] == ["'+gpu", "'@SUM:A1"] and row[4] == "'-1.2" and row[5] == "'=1+1"
    assert row[13] == "'=HYPERLINK(\"http://x\")"


def test_csv_cell_limit_gives_one_row_per_verdict():
    m = all_status_matrix()
    n = R.cell_count(m)
    assert n == len(M.expand_cells(m))
    full = list(csv.reader(io.StringIO(R.render_csv(m, cell_limit=n))))
    assert full[0][0] == "source_host" and len(full) == 1 + n
    rows = list(csv.DictReader(io.StringIO(R.render_csv(m, cell_limit=n - 1))))
    assert list(rows[0])[:5] == ["class", "mdev_type", "source_kind", "source_version", "source_host_count"]
    assert len(rows) == sum(len(vs) for per in m["verdicts"].values() for vs in per.values()) < n
    # with the JSON's source rows, the verdict rows give back every cell of a source with a class
    doc = json.loads(R.render_json(m, cell_limit=0))
    per = {}
    for r in rows:
        assert r["source_host_count"] == str(len(m["classes"][r["class"]]["sources"]))
        per.setdefault((r["class"], r["target_host"]), []).append(
            {"parent": r["target_parent"] or None, "status": r["status"], "errno_name": r["errno_name"] or None,
             "message": r["message"] or None})
    doc["verdicts"] = [{"class": c, "target_host": t, "parents": vs} for (c, t), vs in per.items()]
    doc["sources"] = [row for row in doc["sources"] if row["class"]]
    cells = json.loads(R.render_json(m))["cells"]
    assert _rebuild_cells(doc) == sorted(((c["source_host"], c["source_parent"], c["mdev_type"], c["source_version"],
                                           c["target_host"], c["target_parent"], c["status"], c["errno_name"],
                                           c["message"]) for c in cells if c["class"]), key=repr)
    with pytest.raises(ValueError, match="cell_limit"):
        R.render_csv(m, cell_limit=-1)


# -- Markdown ----------------------------------------------------------------------

def _md_cells(line):
    """Split a Markdown table row on unescaped pipes."""
    parts, cur, i = [], "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 2
            continue
        if line[i] == "|":
            parts.append(cur)
            cur = ""
        else:
            cur += line[i]
        i += 1
    parts.append(cur)
    return [p.strip() for p in parts[1:-1]]


def test_markdown_grid_and_sections():
    m = small_matrix()
    md = R.render_markdown(m, M.drain_plan(m, ["a"]), STAMP)
    assert md.endswith("\n") and not md.endswith("\n\n")
    lines = md.splitlines()
    assert "Generated: %s" % STAMP in lines and "Drain plan: **NOT READY**" in lines
    nv = lines.index("### nv-1")
    assert _md_cells(lines[nv + 2]) == ["source \\\\ target", "a", "b", "c", "down"]
    assert _md_cells(lines[nv + 4]) == ["a", "self", "OK", "NO", "?"]
    gvt = lines.index("### gvt-4")
    assert _md_cells(lines[gvt + 4]) == ["c", "NOTYPE", "NOTYPE", "self", "?"]
    assert "| down | unreachable | no | ssh: connection refused |" in lines
    assert any(U2 in line and "every compatible target is full: b/gpu0" in line for line in lines)


def test_markdown_escapes_sysfs_strings():
    hosts = small_hosts()
    hosts["x|y`z"] = ok(facts({"<b>gpu</b>": {"nv-1": ("p-1.9", 1, [])}}))
    hosts["x|y`z"]["probe"] = {"results": []}
    hosts["down"]["reason"] = "boom | `rm -rf` <script>alert(1)</script> [link](javascript:x) *bold* _it_"
    md = R.render_markdown(M.compat_matrix(hosts))
    assert "<script>" not in md and "<b>" not in md
    assert "x\\|y\\`z" in md
    row = next(line for line in md.splitlines() if line.startswith("| down |"))
    cells = _md_cells(row)
    assert len(cells) == 4  # the pipe in the reason did not split the cell
    assert cells[3] == ("boom \\| \\`rm -rf\\` &lt;script&gt;alert(1)&lt;/script&gt; \\[link\\](javascript:x) "
                        "\\*bold\\* \\_it\\_")
    header = next(line for line in md.splitlines() if line.startswith("| source"))
    assert len(_md_cells(header)) == 1 + 5
    assert R.md_escape("i915-GVTg_V5_4") == "i915-GVTg_V5_4"  # intraword underscores stay readable
    assert R.md_escape("a\nb\r\nc") == "a b c"


# -- validation and filters --------------------------------------------------------

@pytest.mark.parametrize("render", [R.render_json, R.render_csv, R.render_markdown, R.render_html])
def test_renderers_refuse_what_is_not_a_matrix(render):
    for bad in (None, {}, {"schema_version": 1}, {"schema_version": 2, "hosts": {}}):
        with pytest.raises(ValueError, match="compat_matrix"):
            render(bad)


def test_plan_and_generated_are_checked():
    m = small_matrix()
    with pytest.raises(ValueError, match="drain_plan"):
        R.render_html(m, plan={"placements": []})
    with pytest.raises(ValueError, match="generated"):
        R.render_markdown(m, generated=12345)
    assert R.render_html(m, plan={}) == R.render_html(m)  # an empty plan is no plan


def test_filters_wrap_the_renderers():
    filters = F.FilterModule().filters()
    assert {"host_versions", "matrix_changes", "readiness_summary", "report_csv", "report_html", "report_json",
            "report_markdown"} <= set(filters)
    m = small_matrix()
    plan = M.drain_plan(m, ["a"])
    assert filters["report_json"](m, plan, STAMP) == R.render_json(m, plan, STAMP)
    assert filters["report_json"](m, cell_limit="0") == R.render_json(m, cell_limit=0)
    assert filters["report_csv"](m) == R.render_csv(m)
    assert filters["report_csv"](m, "0") == R.render_csv(m, cell_limit=0)
    assert filters["report_markdown"](m, plan, STAMP) == R.render_markdown(m, plan, STAMP)
    assert filters["report_html"](m, plan, STAMP) == R.render_html(m, plan, STAMP)
    with pytest.raises(AnsibleFilterError, match="report_html: expected the output of vfio.migration.compat_matrix"):
        filters["report_html"]({"hosts": {}})
    with pytest.raises(AnsibleFilterError, match="report_json: cell_limit"):
        filters["report_json"](m, cell_limit="many")
    with pytest.raises(AnsibleFilterError, match="report_csv: cell_limit"):
        filters["report_csv"](m, cell_limit=True)
    with pytest.raises(AnsibleFilterError, match="report_markdown: generated"):
        filters["report_markdown"](m, None, ["not", "a", "string"])


@pytest.fixture(scope="module")
def report_filter_docs():
    """ansible-doc's view of the report filters: their sidecar YAML with the doc fragments merged in."""
    names = ["vfio.migration." + n for n in ("report_json", "report_csv", "report_markdown", "report_html")]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    proc = subprocess.run([ansible_bin("ansible-doc"), "-t", "filter", "--json"] + names, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "WARNING" not in proc.stderr, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.ansible
@pytest.mark.parametrize("name", ["report_json", "report_csv", "report_markdown", "report_html"])
def test_filter_doc_sidecars(report_filter_docs, name):
    with open(os.path.join(REPO, "plugins", "filter", name + ".yml")) as f:
        raw = yaml.safe_load(f)["DOCUMENTATION"]
    assert "vfio.migration.matrix" in raw["extends_documentation_fragment"]  # the shared options come from there
    doc = report_filter_docs["vfio.migration." + name]
    d = doc["doc"]
    assert d["name"] == name and str(d["version_added"]) == "0.1.0" and d["author"]
    assert d["short_description"] and d["description"]
    assert d["options"]["_input"]["required"] is True
    assert doc["examples"].strip() and doc["return"]["_value"]["type"] == "str"
    if name != "report_csv":
        assert {"plan", "generated"} <= set(d["options"])
    if name in ("report_csv", "report_json"):
        assert d["options"]["cell_limit"]["default"] == R.DEFAULT_CELL_LIMIT


@pytest.mark.ansible
def test_ansible_doc_shows_report_html():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    proc = subprocess.run([ansible_bin("ansible-doc"), "-t", "filter", "vfio.migration.report_html"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "as one HTML page with inline CSS" in text and "generated" in text and "_value" in text


def _class_notes(page):
    """The "Classes: ..." note under each type's grid, as text: ``{type: note}``."""
    notes = re.findall(r'data-grid-type="([^"]*)".*?<p class="note">Classes: (.*?)</p>', page, re.S)
    return {mdev_type: re.sub(r"<[^>]+>", "", note) for mdev_type, note in notes}


def _table_rows(page, table_class):
    """The rows of the table of class ``table_class`` as ``{first cell: [other cell texts]}``."""
    table = re.search(r'<table class="%s">(.*?)</table>' % re.escape(table_class), page, re.S).group(1)
    cells = [[re.sub(r"<[^>]+>", "", td) for td in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
             for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    return {c[0]: c[1:] for c in cells if c}


def test_policy_classes_are_named_as_such(monkeypatch):
    """A class without a version says what its verdicts rest on, in every report, never an empty version.

    The policy class (no driver attribute) and a migration/self layout class read differently, and a
    version class still shows its version.
    """
    m = small_matrix()
    gvt = next(c for c in m["classes"].values() if c["mdev_type"] == "gvt-4")
    nv12 = next(c for c in m["classes"].values() if c["version"] == "p-1.2")
    gvt.update(version=None, evidence="policy")
    nv12.update(version=None, self={"v": "1.2"})  # a driver class matched through migration/self
    assert (R.class_basis(gvt), R.class_basis(nv12)) == ("policy", "layout")

    page = R.render_html(m)
    notes = _class_notes(page)
    assert notes["gvt-4"] == "%s policy (no driver attribute) on c" % gvt["id"]
    assert notes["nv-1"].startswith("%s migration/self layout on a; " % nv12["id"])
    assert "p-1.3 on b" in notes["nv-1"]  # version classes keep their version
    assert "<code></code>" not in page and "<code>None</code>" not in page

    monkeypatch.setattr(V, "GRID_LIMIT", 2)  # the per-class summary instead of grids
    assert len(m["hosts"]) > V.GRID_LIMIT and V.grid_cells(m) <= V.GRID_CELL_LIMIT
    page = R.render_html(m)
    for table, columns in (("data summary", ["type", "version", "sources"]),
                           ("data classes", ["type", "kind", "version", "source hosts"])):
        rows = _table_rows(page, table)
        named = {cid: dict(zip(columns, rows[cid])) for cid in (gvt["id"], nv12["id"])}
        assert named[gvt["id"]]["version"] == "policy (no driver attribute)", table
        assert named[nv12["id"]]["version"] == "migration/self layout", table
        assert rows[next(c["id"] for c in m["classes"].values() if c["version"] == "p-1.3")][
            columns.index("version")] == "p-1.3"
    markdown = R.render_markdown(m).splitlines()
    assert "| %s | gvt-4 | policy (no driver attribute) | 1 |" % gvt["id"] in "\n".join(markdown)
    assert any(line.startswith("| %s | nv-1 | migration/self layout | 1 |" % nv12["id"]) for line in markdown)


@pytest.mark.ansible
def test_report_filters_in_ansible_read_the_matrix_as_data(tmp_path):
    """Through ansible-playbook, the filters give the renderers' bytes, and a template in data stays text.

    The matrix comes from a vars file, whose strings Ansible trusts as templates:
    read element by element, ``{{ 6 * 7 }}`` would turn into 42 on the way in.
    """
    m = small_matrix()
    per = next(iter(m["verdicts"].values()))
    next(iter(per.values()))[0]["message"] = "{{ 6 * 7 }}"
    plan = M.drain_plan(m, ["a"])
    (tmp_path / "vars.json").write_text(json.dumps({"matrix": m, "plan": plan}))
    (tmp_path / "play.yml").write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: vars.json
    - ansible.builtin.copy:
        dest: "{{ playbook_dir }}/out.{{ item.key }}"
        content: "{{ item.value }}"
        mode: "0644"
      loop: "{{ {'json': matrix | vfio.migration.report_json(plan, none, 0),
                 'csv': matrix | vfio.migration.report_csv(0),
                 'md': matrix | vfio.migration.report_markdown(plan),
                 'html': matrix | vfio.migration.report_html(plan)} | dict2items }}"
""")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    proc = subprocess.run([ansible_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", "play.yml"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    expected = {"json": R.render_json(m, plan, None, 0), "csv": R.render_csv(m, 0),
                "md": R.render_markdown(m, plan), "html": R.render_html(m, plan)}
    assert "{{ 6 * 7 }}" in expected["json"] and "{{ 6 * 7 }}" in expected["csv"]
    for fmt, text in expected.items():
        assert (tmp_path / ("out." + fmt)).read_text() == text, fmt


def test_report_json_documents_the_class_order_it_writes():
    """Defect: report_json.yml said classes are sorted by id; they are sorted by type, version, id."""
    with open(os.path.join(os.path.dirname(R.__file__), "..", "filter", "report_json.yml")) as f:
        doc = yaml.safe_load(f)
    text = " ".join(doc["DOCUMENTATION"]["description"])
    assert "C(classes) (sorted by type, version and id)" in text
    m = small_matrix()
    classes = json.loads(R.render_json(m, None, None))["classes"]
    assert [(c["mdev_type"], c["version"], c["id"]) for c in classes] == sorted(
        (c["mdev_type"], c["version"], c["id"]) for c in classes)


def test_class_ids_are_content_hashes_listed_by_name():
    """Class ids are content hashes (never ``c<N>`` counters), so the views order equal classes by id as text."""
    for m in (small_matrix(), all_status_matrix()):
        assert m["classes"] and all(re.fullmatch(r"[vpl][0-9a-f]{10}", cid) for cid in m["classes"])
    m = small_matrix()
    for c in m["classes"].values():
        c.update(mdev_type="t", version="1")  # only the id tells them apart now
    assert [c["id"] for c in V.sorted_classes(m)] == sorted(m["classes"])
    assert V._class_key("c10") < V._class_key("c2")  # text order: the old counter ids get no reading of their own
