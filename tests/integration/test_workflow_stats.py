"""What an AWX/AAP workflow's next node gets: the demo precheck's outcome through set_stats.

The precheck runs over the demo fleet; ``set_stats`` data is what AWX stores as the
job's artifacts. ansible-core's default callback prints the same data under
``CUSTOM STATS`` (``RUN:``, the stats of the whole run) with ANSIBLE_SHOW_CUSTOM_STATS.
"""

import json
import xml.etree.ElementTree as ET

import pytest

from demo.run_demo import run
from tests.emulator.mount import fuse_unavailable

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]


def test_precheck_publishes_its_outcome_as_workflow_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_SHOW_CUSTOM_STATS", "true")
    report = tmp_path / "report"
    args = ["-e", "vfio_migration_report_dir=%s" % report, "-e", "vfio_migration_report_timestamp=false"]
    proc = run("vfio.migration.precheck", args=args, build_dir=str(tmp_path / "build"), capture=True)
    assert proc.returncode != 0  # the demo's drain strands one vGPU: the precheck fails
    stats = proc.stdout.split("CUSTOM STATS:", 1)[1].split("\tRUN: ", 1)[1].strip()
    out = json.loads(stats)
    result = out["vfio_migration_result"]
    assert result["ready"] is False and result["drain_hosts"] == ["gpu-a1", "h200-1", "igd-1"]
    assert [s["device"] for s in result["stranded"]] == ["0000:41:00.2"]
    assert result["stranded"][0]["reason"].startswith("every compatible target is full: h200-2/0000:41:00.0")
    assert sorted(p["target_host"] for p in result["placed"] if p["source_host"] == "h200-1") == ["h200-2"]
    assert [h["host"] for h in result["hosts_not_asked"]] == ["offline"]
    assert result["report_dir"] == str(report)
    # the counts are the ones matrix.json holds
    summary = json.loads((report / "matrix.json").read_text())["summary"]
    assert result["status_counts"] == summary["status_counts"]
    assert result["evidence_counts"] == summary["evidence_counts"]
    (tmp_path / "set_stats.json").write_text(json.dumps(out, indent=1, sort_keys=True))


def test_precheck_under_junit_gives_one_case_per_item_and_unasked_host(tmp_path, monkeypatch):
    junit = tmp_path / "junit"
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "ansible.builtin.junit")
    monkeypatch.setenv("JUNIT_OUTPUT_DIR", str(junit))
    monkeypatch.setenv("JUNIT_HIDE_TASK_ARGUMENTS", "true")
    args = ["-e", "vfio_migration_report_dir=%s" % (tmp_path / "report"), "-e", "vfio_migration_precheck_cases=true"]
    proc = run("vfio.migration.precheck", args=args, build_dir=str(tmp_path / "build"), capture=True)
    assert proc.returncode != 0
    (xml_file,) = list(junit.glob("*.xml"))
    cases = {}
    for tc in ET.parse(xml_file).getroot().iter("testcase"):
        if tc.get("classname", "").split(":")[0].endswith("precheck/tasks/case.yml"):
            name = tc.get("name").split(": ", 1)[1]  # "[host] host: vfio.migration.precheck : <case>"
            name = name.split(" : ", 1)[-1]
            bad = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
            cases[name] = None if bad is None else bad.get("message")
    placed = sorted(n for n, why in cases.items() if why is None)
    assert placed == sorted([
        "0000:41:00.1 NVIDIA H200X-1-18C on h200-1: placed",
        "6a0c5e1e-0001-4000-8000-00000000a101 nvidia-257 on gpu-a1: placed",
        "6a0c5e1e-0002-4000-8000-00000000a102 nvidia-257 on gpu-a1: placed",
        "6a0c5e1e-0004-4000-8000-0000000019d1 i915-GVTg_V5_4 on igd-1: placed"])
    failed = {n: why for n, why in cases.items() if why is not None}
    assert set(failed) == {"0000:41:00.2 NVIDIA H200X-1-18C on h200-1: stranded", "host offline: could not be asked"}
    assert "every compatible target is full: h200-2/0000:41:00.0" in failed[
        "0000:41:00.2 NVIDIA H200X-1-18C on h200-1: stranded"]
    assert "unreachable" in failed["host offline: could not be asked"]
