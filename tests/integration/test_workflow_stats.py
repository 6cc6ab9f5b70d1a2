"""What an AWX/AAP workflow's next node gets: the demo precheck's outcome through set_stats.

The precheck runs over the demo fleet; ``set_stats`` data is what AWX stores as the
job's artifacts. ansible-core's default callback prints the same data under
``CUSTOM STATS`` (``RUN:``, the stats of the whole run) with ANSIBLE_SHOW_CUSTOM_STATS.
Both tests keep what they read in tests/output/workflow/ (``set_stats.json``, the
junit XML): the artifacts docs/awx.md shows.
"""

import json
import os
import shutil
import xml.etree.ElementTree as ET

import pytest

from demo.run_demo import run
from tests.conftest import REPO
from tests.emulator.mount import fuse_unavailable

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

OUTPUT = os.path.join(REPO, "tests", "output", "workflow")


def keep(name, text):
    os.makedirs(OUTPUT, exist_ok=True)
    with open(os.path.join(OUTPUT, name), "w") as f:
        f.write(text)


def test_precheck_publishes_its_outcome_as_workflow_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_SHOW_CUSTOM_STATS", "true")
    report = tmp_path / "report"
    args = ["-e", "vfio_migration_report_dir=%s" % report, "-e", "vfio_migration_report_timestamp=false"]
    proc = run("vfio.migration.precheck", args=args, build_dir=str(tmp_path / "build"), capture=True)
    assert proc.returncode != 0  # the demo's drain strands two VMs: the precheck fails
    stats = proc.stdout.split("CUSTOM STATS:", 1)[1].split("\tRUN: ", 1)[1].strip()
    out = json.loads(stats)
    result = out["vfio_migration_result"]
    assert result["ready"] is False and result["drain_hosts"] == ["gpu-a1", "h200-1", "igd-1"]
    assert result["unknown_hosts"] == []
    stranded = {s["vm"]: s for s in result["stranded"]}
    (full,) = set(stranded) & {"llm-a", "llm-b"}  # h200-2 has one free VF for h200-1's two VMs
    assert sorted(stranded) == sorted([full, "vdi-secure"])
    assert stranded[full]["reason"].startswith("every compatible target is full: h200-2/0000:41:00.0")
    assert stranded["vdi-secure"]["cause"] == "blocked"
    assert sorted(p["target_host"] for p in result["placed"] if p["source_host"] == "h200-1") == ["h200-2"]
    # one entry per VM: cad-render runs two vGPUs
    assert [(p["vm"], p["vm_uuid"]) for p in result["placed"] if p["vm"] == "cad-render"] == [
        ("cad-render", "d3f1a7c2-0001-4e5b-9a10-00000000c001")]
    assert sorted(p["vm"] for p in result["placed"]) == sorted(["cad-render", ({"llm-a", "llm-b"} - {full}).pop()])
    assert [h["host"] for h in result["hosts_not_asked"]] == ["offline"]
    assert result["report_dir"] == str(report)
    # docs/awx.md shows this artifact: the same fields
    with open(os.path.join(REPO, "docs", "awx.md")) as f:
        shown = json.loads(f.read().split("```json\n", 1)[1].split("\n```", 1)[0])["vfio_migration_result"]
    assert set(shown) == set(result)
    for key in ("placed", "stranded"):
        assert [set(i) for i in shown[key]] == [set(i) for i in result[key]], key
    # the counts are the ones matrix.json holds
    summary = json.loads((report / "matrix.json").read_text())["summary"]
    assert result["status_counts"] == summary["status_counts"]
    assert result["evidence_counts"] == summary["evidence_counts"]
    keep("set_stats.json", json.dumps(out, indent=1, sort_keys=True) + "\n")


def test_precheck_under_junit_gives_one_case_per_item_and_unasked_host(tmp_path, monkeypatch):
    junit = tmp_path / "junit"
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "ansible.builtin.junit")
    monkeypatch.setenv("JUNIT_OUTPUT_DIR", str(junit))
    monkeypatch.setenv("JUNIT_HIDE_TASK_ARGUMENTS", "true")
    args = ["-e", "vfio_migration_report_dir=%s" % (tmp_path / "report"), "-e", "vfio_migration_precheck_cases=true"]
    proc = run("vfio.migration.precheck", args=args, build_dir=str(tmp_path / "build"), capture=True)
    assert proc.returncode != 0
    (xml_file,) = list(junit.glob("*.xml"))
    os.makedirs(OUTPUT, exist_ok=True)
    shutil.copy(xml_file, os.path.join(OUTPUT, "junit-precheck.xml"))
    cases = {}
    for tc in ET.parse(xml_file).getroot().iter("testcase"):
        if tc.get("classname", "").split(":")[0].endswith("precheck/tasks/case.yml"):
            name = tc.get("name").split(": ", 1)[1]  # "[host] host: vfio.migration.precheck : <case>"
            name = name.split(" : ", 1)[-1]
            bad = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
            cases[name] = None if bad is None else bad.get("message")
    placed = sorted(n for n, why in cases.items() if why is None)
    # one case per VM: of h200-1's two, one fits h200-2's free VF and the other finds it full
    (llm,) = [vm for vm in ("llm-a", "llm-b") if "%s NVIDIA H200X-1-18C on h200-1: placed" % vm in placed]
    full = "llm-b" if llm == "llm-a" else "llm-a"
    assert placed == sorted(["cad-render nvidia-257 on gpu-a1: placed",
                             "%s NVIDIA H200X-1-18C on h200-1: placed" % llm])
    failed = {n: why for n, why in cases.items() if why is not None}
    assert set(failed) == {"%s NVIDIA H200X-1-18C on h200-1: stranded" % full,
                           "vdi-secure i915-GVTg_V5_4 on igd-1: stranded", "host offline: could not be asked"}
    assert "every compatible target is full: h200-2/0000:41:00.0" in failed[
        "%s NVIDIA H200X-1-18C on h200-1: stranded" % full]
    assert "vIOMMU" in failed["vdi-secure i915-GVTg_V5_4 on igd-1: stranded"]
    assert "unreachable" in failed["host offline: could not be asked"]
