"""The HTML report in real headless Chromium: layout, escaping and the colours on screen.

Two Chromium runs, both also dumping the DOM after load:

1. ``report.html`` itself, screenshotted (``tests/output/browser/report.png``)
   at 1400x1000 for people to look at;
2. ``probe.html``, a wrapper that shows the same report in a full-window
   ``<iframe>`` and, once it has loaded, writes every grid cell's computed
   style and position into its own DOM. The report itself has no script;
   the wrapper's runs in the wrapper. The wrapper's screenshot then lets the
   test read the real pixels of each cell at the position Chromium laid it out.
"""

import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser

import pytest

from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from ansible_collections.vfio.migration.plugins.plugin_utils import _views as V
from tests.browser.report_fixture import (EVIL_HOST, EVIL_MESSAGE, EVIL_TYPE, EXPECTED_ALPHA, all_status_matrix,
                                          all_status_plan)
from tests.conftest import REPO

pytestmark = pytest.mark.browser

OUT = os.path.join(REPO, "tests", "output", "browser")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1400, 1000)
PROBE_WINDOW = (1400, 1400)
GENERATED = "2025-06-01T12:00:00Z"

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--force-color-profile=srgb", "--hide-scrollbars")

PROBE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>probe</title>
<style>html,body{margin:0;padding:0}iframe{display:block;border:0;width:100vw;height:100vh}</style></head>
<body><iframe id="report" src="report.html"></iframe><pre id="probe">pending</pre>
<script>
document.getElementById("report").addEventListener("load", function () {
  var out = document.getElementById("probe");
  try {
    var doc = this.contentDocument, win = this.contentWindow;
    // the per-type grids are collapsed <details>: open them all and bring them to the top of the frame
    var sections = doc.querySelectorAll("details");
    Array.prototype.forEach.call(sections, function (d) { d.open = true; });
    var overview = Array.prototype.map.call(doc.querySelectorAll("td.ocell[data-status]"), function (td) {
      var st = win.getComputedStyle(td);
      return {source: td.dataset.overviewSource, target: td.dataset.overviewTarget, status: td.dataset.status,
              background: st.backgroundColor, label: td.textContent};
    });
    doc.getElementById("types").scrollIntoView();
    var cells = Array.prototype.map.call(doc.querySelectorAll("td.cell[data-status]"), function (td) {
      var st = win.getComputedStyle(td), r = td.getBoundingClientRect();
      return {source: td.dataset.source, target: td.dataset.target, type: td.dataset.type,
              status: td.dataset.status, evidence: td.dataset.evidence, label: td.textContent,
              background: st.backgroundColor, image: st.backgroundImage, outline: st.outlineStyle,
              left: r.left, top: r.top, width: r.width, height: r.height};
    });
    out.textContent = JSON.stringify({cells: cells, overview: overview, details: sections.length,
                                      scripts: doc.querySelectorAll("script").length,
                                      images: doc.querySelectorAll("img").length, title: doc.title});
  } catch (e) {
    out.textContent = "ERROR " + e;
  }
});
</script></body></html>
"""


def run_chromium(url, screenshot, window, *extra):
    """One headless run: screenshot to ``screenshot`` and return the DOM after load."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [CHROMIUM, *CHROMIUM_FLAGS, "--user-data-dir=%s" % profile, "--window-size=%d,%d" % window, *extra,
               "--screenshot=%s" % screenshot, "--dump-dom", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _unfilter(filt, line, prev, bpp):
    """Undo one PNG scanline filter in place (``line`` and ``prev`` are bytearrays)."""
    n = len(line)
    if filt == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif filt == 2:
        line[:] = bytes((x + y) & 0xFF for x, y in zip(line, prev))
    elif filt == 3:
        for i in range(n):
            line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 0xFF
    elif filt == 4:
        for i in range(n):
            a, b = (line[i - bpp], prev[i - bpp]) if i >= bpp else (0, 0)
            up = prev[i]
            p = a + up - b
            pa, pb, pc = abs(p - a), abs(p - up), abs(p - b)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else b)) & 0xFF


def read_png(path):
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG: ``(width, height, rows of (r, g, b))``."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour_type, _compression, _filter, interlace = header
    assert depth == 8 and colour_type in (2, 6) and not interlace, header
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(raw[start], line, prev, bpp)
        rows.append(list(zip(line[0::bpp], line[1::bpp], line[2::bpp])))
        prev = line
    return width, height, rows


def rgb(hex_colour):
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


class DomParser(HTMLParser):
    """Grid cells (with their text), every tag name, and the text of ``<pre id="probe">``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cells, self.tags, self.probe = [], [], None
        self._cell = self._in_probe = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "td" and "data-status" in a and "data-type" in a:
            self._cell = dict(a, label="")
            self.cells.append(self._cell)
        if tag == "pre" and a.get("id") == "probe":
            self._in_probe, self.probe = True, ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        if tag == "pre":
            self._in_probe = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["label"] += data
        if self._in_probe:
            self.probe += data


def parse_dom(text):
    p = DomParser()
    p.feed(text)
    p.close()
    return p


@pytest.fixture(scope="module")
def browser_run():
    """Render the report, run Chromium twice and return everything the tests look at."""
    if not CHROMIUM:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    os.makedirs(OUT, exist_ok=True)
    matrix = all_status_matrix()
    page = R.render_html(matrix, all_status_plan(matrix), GENERATED)
    report = os.path.join(OUT, "report.html")
    with open(report, "w", encoding="utf-8") as f:
        f.write(page)
    with open(os.path.join(OUT, "probe.html"), "w", encoding="utf-8") as f:
        f.write(PROBE_PAGE)
    for name in ("report.png", "probe.png"):
        if os.path.exists(os.path.join(OUT, name)):
            os.remove(os.path.join(OUT, name))
    dom = run_chromium("file://" + report, os.path.join(OUT, "report.png"), WINDOW)
    probe_dom = run_chromium("file://" + os.path.join(OUT, "probe.html"), os.path.join(OUT, "probe.png"),
                             PROBE_WINDOW, "--allow-file-access-from-files")
    with open(os.path.join(OUT, "report.dom.html"), "w", encoding="utf-8") as f:
        f.write(dom)
    probe_text = parse_dom(probe_dom).probe
    assert probe_text and not probe_text.startswith(("ERROR", "pending")), probe_text
    expected = {(t, s, d): c for t, sources, cells in R.type_grids(matrix) for (s, d), c in cells.items()}
    return {"matrix": matrix, "page": page, "dom": dom, "probe": json.loads(probe_text), "expected": expected}


def test_screenshot_is_a_real_picture(browser_run):
    path = os.path.join(OUT, "report.png")
    assert os.path.getsize(path) > 20000
    width, height, rows = read_png(path)
    assert (width, height) == WINDOW
    colours = {px for row in rows[::10] for px in row[::10]}
    assert len(colours) > 20  # text, grids and badges, not a blank page
    for status in ("compatible", "incompatible", "error"):
        assert rgb(R.STATUS_COLOURS[status]) in colours, status  # the overview's colours are on the first screen
    assert (0xd6, 0x45, 0x41) in colours  # the NOT READY badge


def test_decision_comes_first_and_grids_fold(browser_run):
    dom = browser_run["dom"]
    order = [dom.index(x) for x in ('id="decision"', 'id="unasked"', 'id="stranded"', 'id="placements"',
                                    'id="overview"', 'id="types"')]
    assert order == sorted(order)
    matrix = browser_run["matrix"]
    assert browser_run["probe"]["details"] == len(R.type_grids(matrix)) and "<details" in dom
    overview = {(c["source"], c["target"]): c for c in browser_run["probe"]["overview"]}
    sources, targets, cells = V.host_overview(matrix)
    assert set(overview) == set(cells)
    for key, c in overview.items():
        assert c["status"] == cells[key]["status"], key
        r, g, b = rgb(R.STATUS_COLOURS[c["status"]])
        assert c["background"] == "rgb(%d, %d, %d)" % (r, g, b), c


def test_dom_has_every_cell_with_status_and_label(browser_run):
    dom = parse_dom(browser_run["dom"])
    got = {(c["data-type"], c["data-source"], c["data-target"]): c for c in dom.cells}
    expected = browser_run["expected"]
    assert set(got) == set(expected)
    for key, cell in expected.items():
        assert got[key]["data-status"] == cell["status"], key
        assert got[key]["data-evidence"] == cell["evidence"], key
        assert got[key]["label"] == R.STATUS_LABELS[cell["status"]] + ("*" if cell["evidence"] == "policy" else "")
    alpha = {d: (got[("nv-1", "alpha", d)]["data-status"], got[("nv-1", "alpha", d)]["data-evidence"])
             for d in EXPECTED_ALPHA}
    assert alpha == EXPECTED_ALPHA
    assert {c["data-status"] for c in dom.cells} == set(R.STATUS_COLOURS)  # every status and self


def test_hostile_strings_stay_text(browser_run):
    dom_text = browser_run["dom"]
    dom = parse_dom(dom_text)
    assert "script" not in dom.tags and "img" not in dom.tags
    assert browser_run["probe"]["scripts"] == 0 and browser_run["probe"]["images"] == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom_text
    cells = {(c["data-type"], c["data-source"], c["data-target"]): c for c in dom.cells}
    assert (EVIL_TYPE, EVIL_HOST, "alpha") in cells  # attribute values survive the round trip
    assert EVIL_MESSAGE in cells[("nv-1", "gamma", EVIL_HOST)]["title"]


def test_computed_colours_match_status_colours(browser_run):
    cells = browser_run["probe"]["cells"]
    assert len(cells) == len(browser_run["expected"])
    for c in cells:
        r, g, b = rgb(R.STATUS_COLOURS[c["status"]])
        assert c["background"] == "rgb(%d, %d, %d)" % (r, g, b), c
        hatched = c["status"] == "unknown" or c["evidence"] == "policy"
        assert (c["image"] != "none") == hatched, c
        assert (c["outline"] == "dashed") == (c["evidence"] == "policy"), c


def _region(rows, cell):
    """Pixel colours inside a cell, one pixel in from its edges."""
    left, top = int(cell["left"]) + 1, int(cell["top"]) + 1
    right, bottom = int(cell["left"] + cell["width"]) - 2, int(cell["top"] + cell["height"]) - 2
    return [rows[y][x] for y in range(top, bottom + 1) for x in range(left, right + 1)]


def test_colours_really_render_on_screen(browser_run):
    width, height, rows = read_png(os.path.join(OUT, "probe.png"))
    assert (width, height) == PROBE_WINDOW
    visible = [c for c in browser_run["probe"]["cells"]
               if c["left"] >= 0 and c["top"] >= 0 and c["left"] + c["width"] < width and c["top"] + c["height"] < height]
    seen = set()
    for c in visible:
        pixels = _region(rows, c)
        base = rgb(R.STATUS_COLOURS[c["status"]])
        share = pixels.count(base) / len(pixels)
        if c["evidence"] == "policy":
            dark = sum(1 for p in pixels if sum(base) - sum(p) > 60) / len(pixels)
            assert 0.15 < share < 0.7 and dark > 0.2, (c, share, dark)  # hatched and outlined
        elif c["status"] == "unknown":
            others = {p for p in pixels if p != base and pixels.count(p) / len(pixels) > 0.15}
            assert share > 0.2 and others, (c, share)  # hatch of two colours
        else:
            assert share > 0.6, (c, share)  # a plain fill of the status colour, under a short label
        seen.add((c["status"], c["evidence"] == "policy"))
    assert {s for s, policy in seen} == set(R.STATUS_COLOURS)
    assert ("compatible", True) in seen and ("compatible", False) in seen
