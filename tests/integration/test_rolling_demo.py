"""The rolling maintenance playbook end to end on the emulated demo fleet (``make demo``'s hosts).

``vfio.migration.rolling`` gathers, probes, builds the matrix and plans the waves, writes the
reports with the schedule (``matrix.json``'s ``schedule``, ``report.html``'s wave table, opened in
headless Chromium where it is installed), ``schedule.json`` and ``schedule.md``, and prints the
summary. Two runs:

- five hosts upgraded to NVIDIA 550.90.07, two at a time. h200-1 cannot be drained now (the
  precheck's plan in the same run strands both its VMs: h200-2 has no room for them and h200-3's
  550.54.14 fails the ``equal`` driver policy); upgraded first, h200-3 runs 550.90.07 and the policy
  evaluated on that version accepts them. The exact solver finds that order.
- the whole fleet: not ready, and the schedule says who must be shut down and why, which host cannot
  be planned, and the room that would help.
"""

import json
import os
import re

import pytest

from demo.run_demo import run
from tests.browser.test_report_html import CHROMIUM, read_png, rgb, run_chromium
from tests.conftest import REPO
from tests.emulator.mount import fuse_unavailable

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

UPGRADE = ["gpu-a1", "gpu-a2", "gpu-slow", "h200-1", "h200-3"]


def rolling(base, extra):
    report = base / "report"
    proc = run(playbook="vfio.migration.rolling",
               args=["-e", "vfio_migration_report_dir=%s" % report, "-e", "vfio_migration_report_timestamp=false",
                     "-e", json.dumps(extra)], build_dir=str(base / "build"), capture=True)
    schedule = json.loads((report / "schedule.json").read_text()) if (report / "schedule.json").exists() else None
    return proc, schedule, report


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory):
    return rolling(tmp_path_factory.mktemp("rolling"), {
        "vfio_migration_rolling_hosts": UPGRADE, "vfio_migration_rolling_max_wave": 2,
        "vfio_migration_rolling_after": {"drivers": {"nvidia": "550.90.07"}}})


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return rolling(tmp_path_factory.mktemp("rolling-all"), {})


def live_vms(matrix, host):
    """Running or paused VMs with VFIO devices (the ones a wave must move or shut down)."""
    return sorted(vm["name"] for vm in matrix["hosts"][host].get("vms") or []
                  if vm["state"] in ("running", "paused") and vm["devices"])


def check_waves(schedule, matrix):
    """Every host once; every live VM of a drained host (where it is at that wave) placed or shut down."""
    where = {(h, name): h for h in matrix["hosts"] for name in live_vms(matrix, h)}
    seen = []
    for w in schedule["waves"]:
        assert len(w["hosts"]) <= schedule["max_wave"] and not set(w["hosts"]) & set(seen)
        seen += w["hosts"]
        on = sorted(k for k, h in where.items() if h in w["hosts"])
        handled = sorted([(p["origin_host"], p["vm"]) for p in w["placements"]] +
                         [(s.get("origin_host", s["source_host"]), s["vm"]) for s in w["stopped"] + w["blocked"]])
        assert handled == on
        for p in w["placements"]:
            assert p["target_host"] not in w["hosts"] and p["source_host"] == where[(p["origin_host"], p["vm"])]
            pools = matrix["hosts"][p["target_host"]]["room"]["pools"]
            assert all(d["target_parent"] in pools for d in p["target_devices"])
            where[(p["origin_host"], p["vm"])] = p["target_host"]
    assert sorted(seen) == sorted(h for h in schedule["hosts"] if h not in [u["host"] for u in schedule["unknown_hosts"]])


def test_the_upgrade_goes_through_h200_3_first_on_the_policy_of_its_new_driver(upgrade):
    proc, s, report = upgrade
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    matrix = json.loads((report / "matrix.json").read_text())
    # draining h200-1 now (the inventory's drain plan, the precheck's answer): h200-2 (mixed-size
    # mode) has room for one of its two VMs, the other is stranded
    stranded = {x["vm"]: x["cause"] for x in matrix["plan"]["stranded"] if x["source_host"] == "h200-1"}
    assert stranded == {"llm-b": "full"}
    assert s["ready"] and s["solver"]["used"] == "exact" and s["solver"]["complete"]
    assert s["hosts"] == UPGRADE and s["max_wave"] == 2 and len(s["waves"]) == 3
    check_waves(s, matrix)
    waves = {h: w["wave"] for w in s["waves"] for h in w["hosts"]}
    assert waves["h200-3"] < waves["h200-1"]
    last = next(w for w in s["waves"] if "h200-1" in w["hosts"])
    assert sorted((p["vm"], p["target_host"]) for p in last["placements"]) == [("llm-a", "h200-3"), ("llm-b", "h200-3")]
    for p in last["placements"]:
        (d,) = p["target_devices"]
        assert (d["basis"], d["action"]) == ("policy", "assign")
        assert d["evidence"] == "compatible - policy: same type, driver 550.90.07 on both"
    (cad,) = [p for w in s["waves"] for p in w["placements"] if p["vm"] == "cad-render"]
    assert len(cad["target_devices"]) == 2 and len({cad["target_host"]}) == 1
    assert last["after"]["h200-1"]["drivers"] == {"0000:41:00.0": "550.90.07"}
    # the files and the terminal
    md = (report / "schedule.md").read_text()
    assert "| %d | h200-1 | llm-a: h200-1 &rarr; h200-3<br>llm-b: h200-1 &rarr; h200-3 |" % last["wave"] in md
    assert "READY: 5 hosts in 3 waves (at most 2 a wave), 3 live migrations of 3 VMs" in proc.stdout
    assert "Wave %d: h200-1 - 2 VMs move" % last["wave"] in proc.stdout
    assert "Schedule written to %s/schedule.json (schedule.md beside it)" % report in proc.stdout


def wave_rows(page):
    """``{wave: (hosts, text of the moves cell)}`` from report.html's wave table."""
    table = page[page.index('<table class="data waves" id="waves">'):]
    table = table[:table.index("</table>")]
    rows = {}
    for number, cells in re.findall(r'<tr data-wave="(\d+)">(.*?)</tr>', table, re.S):
        tds = re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
        rows[int(number)] = (tds[1], re.sub(r"<[^>]+>", "", tds[2]))
    return rows


def test_the_reports_carry_the_schedule_and_the_wave_table(upgrade):
    proc, s, report = upgrade
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    matrix = json.loads((report / "matrix.json").read_text())
    # matrix.json keeps the schedule as schedule.json has it, without the time the solver took
    got = matrix["schedule"]
    assert "seconds" not in got["solver"] and "generated" not in got
    assert got["waves"] == s["waves"] and got["ready"] and got["why"] == s["why"]
    assert {k: v for k, v in s["solver"].items() if k != "seconds"} == got["solver"]
    # report.html: the schedule's decision first, a wave table row per wave naming each VM's source and target
    page = (report / "report.html").read_text()
    assert 'data-schedule-ready="true"' in page and "<script" not in page
    assert page.index('id="rolling-badge"') < page.index('id="waves"') < page.index('id="overview"')
    rows = wave_rows(page)
    assert sorted(rows) == [w["wave"] for w in s["waves"]]
    for w in s["waves"]:
        assert rows[w["wave"]][0] == ", ".join(w["hosts"])
        for p in w["placements"]:
            assert "%s: %s \u2192 %s" % (p["vm"], p["source_host"], p["target_host"]) in \
                rows[w["wave"]][1].replace("&rarr;", "\u2192")
        assert 'id="wave-%d"' % w["wave"] in page
    md = (report / "matrix.md").read_text()
    assert "## Rolling maintenance schedule" in md and "### Waves" in md and "Rolling maintenance: **READY**" in md
    # the summary: the schedule first, then the drain plan of the inventory's drain hosts, and the files
    out = proc.stdout
    assert out.index("READY: 5 hosts in 3 waves") < out.index("Drain plan now: NOT READY: draining ")  # the inventory's
    assert "Reports: %s/report.html" % report in out
    if CHROMIUM:  # the page as Chromium lays it out: the wave table is on the first screen, next to the verdict
        out_dir = os.path.join(REPO, "tests", "output", "browser")
        os.makedirs(out_dir, exist_ok=True)
        png = os.path.join(out_dir, "rolling-demo.png")
        dom = run_chromium("file://%s" % (report / "report.html"), png, (1400, 1000))
        assert 'id="waves"' in dom and "<script" not in dom
        width, height, pixels = read_png(png)
        assert (width, height) == (1400, 1000)
        assert rgb("#2e9d4f") in {px for row in pixels[::4] for px in row[::4]}  # the READY badge


def test_the_failed_schedule_says_in_the_report_who_must_stop_and_what_room_would_help(fleet):
    proc, s, report = fleet
    matrix = json.loads((report / "matrix.json").read_text())
    assert matrix["schedule"]["must_stop"] == s["must_stop"] and not matrix["schedule"]["ready"]
    page = (report / "report.html").read_text()
    assert 'data-schedule-ready="false"' in page
    why = page[page.index('id="rolling-why"'):page.index('id="waves"')]
    assert "VMs to shut down or move cold (%d)" % len(s["must_stop"]) in why
    for x in s["must_stop"]:
        assert ">%s" % x["vm"] in why
    assert "Hosts that cannot be planned (1)" in why and "offline" in why
    if s["capacity"]:
        assert "Or add room, so they move live (%d)" % len(s["capacity"]) in why


def test_the_whole_fleet_is_not_ready_and_says_who_must_stop_and_why(fleet):
    proc, s, report = fleet
    assert proc.returncode != 0 and s is not None
    assert "Rolling maintenance not ready: no schedule moves every running VM live" in proc.stdout + proc.stderr
    matrix = json.loads((report / "matrix.json").read_text())
    assert not s["ready"] and s["solver"]["used"] == "greedy" and "more than 8" in s["solver"]["why"]
    assert [u["host"] for u in s["unknown_hosts"]] == ["offline"]
    check_waves(s, matrix)
    stops = {x["vm"]: x for x in s["must_stop"]}
    assert stops["vdi-secure"]["cause"] == "blocked" and "vIOMMU" in stops["vdi-secure"]["reasons"][0]
    assert stops["legacy-nic"]["cause"] == "unsupported"
    # one of a kind: no other host takes an s390 subchannel or a 570 vGPU
    assert stops["zlinux-ccw"]["cause"] == stops["ml-train"]["cause"] == "incompatible"
    assert s["why"][0].startswith("offline cannot be planned: unreachable")
    assert any(line.startswith("VM vdi-secure on igd-1 must be shut down or moved cold for wave ") for line in s["why"])
    assert "NOT READY: %d VMs must be shut down or moved cold; 1 host cannot be planned" % len(stops) in proc.stdout
    assert "cad-render" not in stops  # it moves live (gpu-a2 accepts its 2.3)
