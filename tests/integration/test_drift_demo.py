"""Drift, check mode and the terminal summary on the demo fleet, end to end.

Two demo-style readiness runs into one report directory; between them one host
(gpu-a2) gets another NVIDIA driver in the emulator (branch 3.0 instead of 2.4
on both its GPUs). The cells expected to change are computed here from the
emulator's rules of both runs, parent pair by parent pair, independently of
the collection; ``changes.json`` must list exactly those, and the driver
versions of exactly that host. Then a ``--check`` run and the precheck: the
summary says what ran and what the plan is. Screenshots of the demo report
and of the precheck's summary go to ``tests/output/browser/``.
"""

import html
import json
import os
import re
import shutil

import pytest

from demo import fleet
from demo.run_demo import run
from tests.ansible_runner import community_collections
from tests.browser.test_report_html import CHROMIUM, OUT, read_png, rgb, run_chromium
from tests.emulator.mount import fuse_unavailable
from tests.fixtures import sysfs_builder as B
from tests.integration.test_demo_readiness import ORDER, answer, type_rules

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

UPGRADED_DRIVER = "570.124.03"


def gpu_a2_upgraded(t):
    """gpu-a2 after a driver upgrade: branch 3.0 on both GPUs."""
    B.nvidia_vgpu(t, "0000:3b:00.0", major=3, minor=0, driver_version=UPGRADED_DRIVER)
    B.nvidia_vgpu(t, "0000:d8:00.0", major=3, minor=0, driver_version=UPGRADED_DRIVER, numa_node=1)


def parent_cells(build_dir):
    """``{(source, source parent, type, target, target parent): status}`` from the emulator's rules."""
    rules = {h: json.loads(open(os.path.join(build_dir, "hosts", h, "rules.json")).read())["attributes"]
             for h in fleet.HOSTS}
    by_host = {h: type_rules(r) for h, r in rules.items()}
    cells = {}
    for src, types in by_host.items():
        for mdev_type, src_parents in types.items():
            for sp, sspec in src_parents.items():
                for tgt, ttypes in by_host.items():
                    if tgt == src:
                        continue
                    for tp, tspec in ttypes.get(mdev_type, {}).items():
                        status = answer(sspec, tspec)
                        cells[(src, sp.rsplit("/", 1)[-1], mdev_type, tgt, tp.rsplit("/", 1)[-1])] = status
    assert set(cells.values()) <= set(ORDER)
    return cells


def summary_lines(stdout, task="Summarise"):
    """The debug msg list of the summary task, as printed by the default callback."""
    block = stdout[stdout.rindex("TASK [vfio.migration.matrix : %s" % task):]
    body = block[block.index('"msg": ['):block.index("]\n}")]
    return [json.loads(line.strip().rstrip(",")) for line in body.splitlines()[1:] if line.strip()]


def assert_demo_verdict(lines):
    """The demo's drain in VMs: cad-render and one H200 VM placed; the other H200 VM finds h200-2 full
    (one free VF) and vdi-secure is blocked by its vIOMMU."""
    assert lines[0] == "NOT READY: draining gpu-a1, h200-1, igd-1 - 2 of 4 VMs would be stranded"
    assert "Plan: 2 placed, 2 stranded, 0 cold (VMs)" in lines
    i = lines.index("Stranded:")
    stranded = sorted(line for line in lines[i + 1:i + 3])
    assert re.fullmatch(r"  llm-[ab] NVIDIA H200X-1-18C on h200-1: every compatible target is full: "
                        r"h200-2/0000:41:00\.0", stranded[0]), stranded
    assert stranded[1].startswith("  vdi-secure i915-GVTg_V5_4 on igd-1: ") and "vIOMMU" in stranded[1]


def shoot_text(lines, name):
    """The summary as an operator's terminal shows it, screenshotted through Chromium."""
    page = os.path.join(OUT, name + ".html")
    with open(page, "w", encoding="utf-8") as f:
        f.write("<!DOCTYPE html><meta charset='utf-8'><body style='margin:0;background:#1e1e1e'>"
                "<pre style='color:#e6e6e6;font:14px/1.4 DejaVu Sans Mono,monospace;padding:14px;"
                "white-space:pre-wrap'>%s</pre>" % html.escape("\n".join(lines)))
    run_chromium("file://" + page, os.path.join(OUT, name + ".png"), (1400, 420))


@pytest.fixture(scope="module")
def drift(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("drift")
    report = base / "report"
    args = ["-e", "vfio_migration_report_dir=%s" % report, "-e", "vfio_migration_report_timestamp=false"]
    first = run(args=args, build_dir=str(base / "one"), capture=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    first_matrix = (report / "matrix.json").read_text()
    mp = pytest.MonkeyPatch()
    request.addfinalizer(mp.undo)
    mp.setitem(fleet.HOSTS, "gpu-a2", gpu_a2_upgraded)
    second = run(args=args, build_dir=str(base / "two"), capture=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    return {"base": base, "report": report, "first_matrix": first_matrix, "stdout": second.stdout,
            "before": parent_cells(str(base / "one")), "after": parent_cells(str(base / "two")), "args": args}


def test_exactly_the_affected_cells_are_reported(drift):
    expected = {k: (drift["before"][k], drift["after"][k]) for k in drift["before"]
                if k in drift["after"] and drift["before"][k] != drift["after"][k]}
    assert expected and all("gpu-a2" in (k[0], k[3]) for k in expected)  # the oracle sees a real change
    changes = json.loads((drift["report"] / "changes.json").read_text())
    got = {(c["source_host"], c["source_parent"], c["mdev_type"], c["target_host"], c["target_parent"]):
           (c["before"]["status"], c["after"]["status"]) for c in changes["cells"]}
    assert got == expected
    assert changes["cells_changed"] == len(expected) and changes["cells_omitted"] == 0
    for c in changes["cells"]:
        for side in (c["before"], c["after"]):
            assert side["evidence"] == "driver" and side["message"]  # both evidences and messages
    assert changes["versions"] == [
        {"host": "gpu-a2", "what": "driver 0000:3b:00.0", "before": "550.90.07", "after": UPGRADED_DRIVER},
        {"host": "gpu-a2", "what": "driver 0000:d8:00.0", "before": "550.90.07", "after": UPGRADED_DRIVER}]
    assert changes["hosts"] == {"appeared": [], "vanished": [], "state_changed": []}
    # the previous run's matrix.json was kept
    assert (drift["report"] / "matrix.previous.json").read_text() == drift["first_matrix"]
    plan_before = json.loads(drift["first_matrix"])["plan"]
    plan_after = json.loads((drift["report"] / "matrix.json").read_text())["plan"]
    assert sorted(i["vm"] for i in changes["plan"]["newly_stranded"]) == sorted(
        {s["vm"] for s in plan_after["stranded"]} - {s["vm"] for s in plan_before["stranded"]})
    assert sorted(i["vm"] for i in changes["plan"]["newly_placeable"]) == sorted(
        {s["vm"] for s in plan_before["stranded"]} - {s["vm"] for s in plan_after["stranded"]})
    # The VMs, from the emulator's rules: the one drained VM gpu-a2 could take (cad-render, two nvidia-257 on
    # gpu-a1) loses gpu-a2 but keeps gpu-slow, so no VM becomes stranded or placeable, appears or vanishes:
    # cad-render goes to gpu-slow instead of gpu-a2, which changes.json lists as retargeted.
    before, after = drift["before"], drift["after"]

    def takes(cells, target):
        return any(v == "compatible" for k, v in cells.items()
                   if k[0] == "gpu-a1" and k[2] == "nvidia-257" and k[3] == target)
    assert takes(before, "gpu-a2") and not takes(after, "gpu-a2")
    assert takes(before, "gpu-slow") and takes(after, "gpu-slow")
    retargeted = changes["plan"].pop("retargeted")
    assert changes["plan"] == {"newly_stranded": [], "newly_placeable": [], "appeared": [], "vanished": []}

    def placed(plan):
        return sorted((p["vm"], p["target_host"]) for p in plan["placements"])
    assert ("cad-render", "gpu-a2") in placed(plan_before) and ("cad-render", "gpu-slow") in placed(plan_after)
    assert [vm for vm, _t in placed(plan_after)] == [vm for vm, _t in placed(plan_before)]
    moved = {vm: (b, a) for (vm, b), (_vm, a) in zip(placed(plan_before), placed(plan_after)) if a != b}
    assert {i["vm"]: (i["before_target"], i["after_target"]) for i in retargeted} == moved
    assert moved["cad-render"] == ("gpu-a2", "gpu-slow")
    assert sorted(s["vm"] for s in plan_after["stranded"]) == sorted(s["vm"] for s in plan_before["stranded"])


def test_changes_in_the_summary_and_at_the_top_of_the_page(drift):
    changes = json.loads((drift["report"] / "changes.json").read_text())
    lines = summary_lines(drift["stdout"])
    head = "Changes since the previous run: %d (%d cells)" % (changes["count"], changes["cells_changed"])
    i = lines.index(head)
    listed = [line for line in lines[i + 1:] if line.startswith("  ")]
    assert listed[:2] == ["  gpu-a2 driver 0000:3b:00.0: 550.90.07 -> %s" % UPGRADED_DRIVER,
                          "  gpu-a2 driver 0000:d8:00.0: 550.90.07 -> %s" % UPGRADED_DRIVER]
    assert len(listed) == 11 and listed[-1] == "  ... and %d more (changes.json)" % (changes["count"] - 10)
    page = (drift["report"] / "report.html").read_text()
    assert page.index('id="changes"') < page.index('id="unasked"') < page.index('id="overview"')
    assert "gpu-a2 driver 0000:3b:00.0: 550.90.07 -&gt; %s" % UPGRADED_DRIVER in page
    if CHROMIUM:
        os.makedirs(OUT, exist_ok=True)
        shot = os.path.join(OUT, "demo-drift-report.png")
        run_chromium("file://%s" % (drift["report"] / "report.html"), shot, (1400, 1000))
        width, height, rows = read_png(shot)
        assert rgb("#d64541") in {px for row in rows[::3] for px in row[::3]}  # NOT READY on the first screen
        shutil.copy(str(drift["report"] / "report.html"), os.path.join(OUT, "demo-drift-report.html"))


def test_check_mode_gathers_and_probes_but_writes_nothing(drift):
    before = {p.name: p.read_bytes() for p in drift["report"].iterdir()}
    proc = run(args=drift["args"] + ["--check"], build_dir=str(drift["base"] / "three"), capture=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in drift["report"].iterdir()} == before  # nothing written or rotated
    lines = summary_lines(proc.stdout)
    matrix = json.loads(before["matrix.json"])
    probed = sum(1 for h in matrix["hosts"].values() if h["probed"])
    ok = sum(1 for h in matrix["hosts"].values() if h["state"] == "ok")
    assert probed > 5
    assert ("Ran in check mode: facts from %d of %d hosts, probe answered by %d, matrix and plan, reports not "
            "written (check mode)" % (ok, len(matrix["hosts"]), probed)) in lines
    assert lines[-1] == "Reports would go to %s" % drift["report"]
    # the fleet is as in the last run (gpu-a2 still upgraded): its matrix.json would be byte-identical
    assert "Changes: none - matrix.json is byte-identical to the last run's (changes.json keeps the comparison " \
        "before it)" in lines


def test_precheck_summary_comes_before_its_verdict(tmp_path):
    report = tmp_path / "report"
    proc = run("vfio.migration.precheck", args=["-e", "vfio_migration_report_dir=%s" % report],
               build_dir=str(tmp_path / "build"), capture=True)
    assert proc.returncode != 0  # one of h200-1's VMs has nowhere to go, igd-1's is blocked
    out = proc.stdout
    assert "\x1b[" not in out  # the default callback: no colour codes when the output is not a terminal
    blocks = [b.split("\nTASK [", 1)[0] for b in out.split("TASK [vfio.migration.matrix : Summarise")[1:]]
    assert [('"msg": [' in b) for b in blocks] == [False, True]  # the matrix role's own is off (skipped)
    assert out.index("Summarise") < out.index("Maintenance precheck failed")
    lines = summary_lines(out)
    assert_demo_verdict(lines)
    assert any(re.match(r"  offline: unreachable - .*Connection refused", line) for line in lines)
    assert "Changes: no previous run to compare with" in lines
    assert lines[-1] == "Reports: %s/report.html (matrix.json, matrix.csv, matrix.md, changes.json beside it)" \
        % report
    if CHROMIUM:
        os.makedirs(OUT, exist_ok=True)
        shoot_text(["TASK [vfio.migration.matrix : Summarise readiness for the operator] ***"] + lines,
                   "demo-precheck-summary")
        run_chromium("file://%s" % (report / "report.html"), os.path.join(OUT, "demo-report.png"), (1400, 1000))


@pytest.mark.parametrize("callback", ["json", "yaml"])
def test_summary_reads_the_same_under_other_callbacks(tmp_path, monkeypatch, callback):
    """The json callback carries the lines as a list; the default callback in yaml format prints them as lines."""
    if callback == "json":  # ansible.posix's, as AWX users and CI pipelines configure it
        monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", community_collections("ansible.posix"))
        monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
    else:
        monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "yaml")
    proc = run(args=["-e", "vfio_migration_report_dir=%s" % (tmp_path / "report")],
               build_dir=str(tmp_path / "build"), capture=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "\x1b[" not in proc.stdout  # no colour codes when the output is not a terminal
    if callback == "json":
        doc = json.loads(proc.stdout)
        task = next(t for play in doc["plays"] for t in play["tasks"]
                    if t["task"]["name"].endswith("Summarise readiness for the operator"))
        lines = [r["msg"] for r in task["hosts"].values() if "msg" in r][0]
        # the matrix reaches the summary and the reports through register, not through the callback's output
        matrix_task = next(t for play in doc["plays"] for t in play["tasks"]
                           if t["task"]["name"].endswith("Assemble the source-to-target compatibility matrix"))
        shown = list(matrix_task["hosts"].values())
        assert len(shown) == 1 and "censored" in shown[0] and "verdicts" not in shown[0], shown
    else:
        block = proc.stdout[proc.stdout.rindex("Summarise readiness for the operator"):]
        lines = [line.strip()[2:] for line in block.split("PLAY RECAP")[0].splitlines()
                 if line.strip().startswith("- ")]
        lines = [line[1:-1] if line[:1] in "'\"" else line for line in lines]
    assert_demo_verdict(lines)
