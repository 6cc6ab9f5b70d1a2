"""report.html with a rolling schedule in real headless Chromium: the verdict and the wave table on
the first screen, the reasons of a failed schedule in view, each wave's folded section, no overflow.

Two pages, from the fleets of ``tests/unit/plugins/plugin_utils/test_rolling_reports.py``: a schedule that is ready (with
the drain plan of one host beside it and what changed since a previous run) and one that is not (a VM must be shut down, room to add on
B). Each is screenshotted as it opens (``tests/output/browser/rolling-ready.png``,
``rolling-failed.png``) and once more through a wrapper page that opens every ``<details>`` and
writes the layout of the wave table, the wave sections and the page width into its own DOM (the
report has no script; the wrapper's runs in the wrapper), screenshotted as ``rolling-*-open.png``.
"""

import json
import os

import pytest

from ansible_collections.vfio.migration.plugins.plugin_utils import _drift as D
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from tests.browser.test_report_html import CHROMIUM, OUT, parse_dom, read_png, rgb, run_chromium
from tests.unit.plugins.plugin_utils.test_rolling_reports import full_case, ready_case

pytestmark = pytest.mark.browser

WINDOW = (1400, 1000)
GENERATED = "2025-06-01T12:00:00Z"
RED, GREEN = rgb("#d64541"), rgb("#2e9d4f")

PROBE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>probe</title>
<style>html,body{margin:0;padding:0}iframe{display:block;border:0;width:100vw;height:100vh}</style></head>
<body><iframe id="report" src="%s"></iframe><pre id="probe">pending</pre>
<script>
document.getElementById("report").addEventListener("load", function () {
  var out = document.getElementById("probe");
  try {
    var doc = this.contentDocument, win = this.contentWindow;
    function box(el) { var r = el.getBoundingClientRect(); return {left: r.left, top: r.top, right: r.right,
                                                                    bottom: r.bottom, height: r.height}; }
    var closed = Array.prototype.map.call(doc.querySelectorAll("details[data-wave-section]"), box);
    Array.prototype.forEach.call(doc.querySelectorAll("details"), function (d) { d.open = true; });
    var rows = Array.prototype.map.call(doc.querySelectorAll("table#waves tr[data-wave]"), function (tr) {
      return {wave: tr.dataset.wave, box: box(tr), cells: tr.cells.length};
    });
    var sections = Array.prototype.map.call(doc.querySelectorAll("details[data-wave-section]"), function (d) {
      return {wave: d.dataset.waveSection, box: box(d), tables: d.querySelectorAll("table").length};
    });
    var why = doc.getElementById("rolling-why");
    out.textContent = JSON.stringify({
      rows: rows, sections: sections, closed: closed,
      page_width: doc.documentElement.scrollWidth, window_width: win.innerWidth,
      why: why ? {border: win.getComputedStyle(why).borderLeftColor, box: box(why)} : null,
      badge: win.getComputedStyle(doc.querySelector("#rolling-badge .badge")).backgroundColor,
      scripts: doc.querySelectorAll("script").length});
  } catch (e) {
    out.textContent = "ERROR " + e;
  }
});
</script></body></html>
"""


def _page(name, matrix, plan, schedule, changes=None):
    path = os.path.join(OUT, "rolling-%s.html" % name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(R.render_html(matrix, plan, GENERATED, changes, schedule=schedule))
    probe = os.path.join(OUT, "rolling-%s-probe.html" % name)
    with open(probe, "w", encoding="utf-8") as f:
        f.write(PROBE_PAGE % os.path.basename(path))
    dom = run_chromium("file://" + path, os.path.join(OUT, "rolling-%s.png" % name), WINDOW)
    probe_dom = run_chromium("file://" + probe, os.path.join(OUT, "rolling-%s-open.png" % name), (1400, 1600),
                             "--allow-file-access-from-files")
    text = parse_dom(probe_dom).probe
    assert text and not text.startswith(("ERROR", "pending")), text
    return {"dom": dom, "probe": json.loads(text), "png": os.path.join(OUT, "rolling-%s.png" % name)}


@pytest.fixture(scope="module")
def pages():
    if not CHROMIUM:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    os.makedirs(OUT, exist_ok=True)
    m, s = ready_case()
    fm, fs = full_case()
    plan = M.drain_plan(m, ["A"])
    previous = json.loads(R.render_json(m, plan, "2025-05-31T12:00:00Z"))
    previous["hosts"]["C"]["state"] = "unreachable"  # yesterday C could not be asked
    changes = D.matrix_changes(previous, m, plan)
    return {"ready": dict(_page("ready", m, plan, s, changes), schedule=s),
            "failed": dict(_page("failed", fm, None, fs), schedule=fs)}


def _colours(png):
    width, height, rows = read_png(png)
    assert (width, height) == WINDOW
    return {px for row in rows[::3] for px in row[::3]}


def test_the_verdict_and_the_whole_wave_table_are_on_the_first_screen(pages):
    page = pages["ready"]
    probe = page["probe"]
    assert probe["scripts"] == 0 and "<script" not in page["dom"]
    assert probe["badge"] == "rgb(%d, %d, %d)" % GREEN
    assert GREEN in _colours(page["png"]) and RED in _colours(page["png"])  # the schedule's READY, the plan's NOT
    assert [r["wave"] for r in probe["rows"]] == ["1", "2", "3"]
    assert all(r["cells"] == 7 and r["box"]["bottom"] < WINDOW[1] for r in probe["rows"]), probe["rows"]


def test_a_failed_schedule_shows_why_before_anything_else(pages):
    page = pages["failed"]
    probe = page["probe"]
    assert probe["badge"] == "rgb(%d, %d, %d)" % RED
    assert probe["why"]["border"] == "rgb(%d, %d, %d)" % RED and probe["why"]["box"]["top"] < WINDOW[1] / 2
    colours = _colours(page["png"])
    assert RED in colours  # the NOT READY badge and the border of the reasons
    assert "VMs to shut down or move cold (1)" in page["dom"] and "Or add room, so they move live (1)" in page["dom"]


def test_each_wave_folds_and_opens_and_nothing_overflows_the_window(pages):
    for name, page in pages.items():
        probe = page["probe"]
        waves = [w["wave"] for w in page["schedule"]["waves"]]
        assert [s["wave"] for s in probe["sections"]] == [str(w) for w in waves], name
        for closed, opened in zip(probe["closed"], probe["sections"]):
            assert closed["height"] < 40 < opened["box"]["height"], (name, closed, opened)  # folded, then open
            assert opened["tables"] >= 1
        # the widest table (device UUIDs, evidence) wraps inside the window: no sideways scrolling
        assert probe["page_width"] <= probe["window_width"], (name, probe["page_width"])


def test_the_decision_comes_first_with_a_schedule_as_without(pages):
    """With a schedule the decision section still comes before the overview and the grids: the schedule's
    verdict, the drain plan's, what changed, hosts not asked, the waves, then the drain plan itself."""
    ready = pages["ready"]["dom"]
    order = [ready.index(x) for x in (
        'id="decision"', 'id="rolling-badge"', 'id="plan-badge"', 'id="changes"', 'id="unasked"', 'id="rolling"',
        'id="waves"', 'id="wave-1"', 'id="drain-plan"', 'id="stranded"', 'id="placements"', 'id="overview"',
        'id="types"', "<h2>Legend")]
    assert order == sorted(order)
    assert "host C: unreachable -&gt; ok" in ready[ready.index('id="changes"'):ready.index('id="unasked"')]
    failed = pages["failed"]["dom"]  # a schedule and no plan: the schedule's verdict is the page's
    order = [failed.index(x) for x in ('id="decision"', 'id="rolling-badge"', 'id="unasked"', 'id="rolling"',
                                       'id="rolling-why"', 'id="waves"', 'id="overview"', 'id="types"', "<h2>Legend")]
    assert order == sorted(order) and 'id="plan-badge"' not in failed
