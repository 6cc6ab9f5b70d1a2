"""Smoke test of the bench machinery at a tiny size (speed is measured, never asserted).

    .venv/bin/python -m pytest tests/bench -q

Runs the fleet part over 5 emulated hosts (floor, readiness and the counting
runs), the controller part on a small synthetic fleet and the discovery part
on a small tree, and checks the mechanics: ratios are computed, every host's
writes in the emulator log equal its expected classes, module invocations per
host are at most two, and mdevctl and gather() see the same instances.
"""

import os
import shutil

import pytest

from bench import controller, discovery, run
from tests.emulator.mount import fuse_unavailable

N = 5


@pytest.fixture(scope="module")
def fleet_result(tmp_path_factory):
    if fuse_unavailable():
        pytest.skip(fuse_unavailable())
    work = str(tmp_path_factory.mktemp("bench"))
    return run.fleet_part([N], forks=5, reports=False, repeat=1, workdir=work, count_sizes=[N], log=lambda *a: None)


@pytest.mark.emulator
@pytest.mark.ansible
def test_fleet_ratio_is_computed(fleet_result):
    rec = fleet_result["sizes"][0]
    assert rec["hosts"] == N
    for label in ("floor", "readiness"):
        assert rec[label]["wall"] > 0 and rec[label]["cpu"] > 0
    r = rec["readiness"]
    assert r["ratio_wall"] == pytest.approx(r["wall"] / rec["floor"]["wall"], rel=1e-2)
    assert r["per_host_ms"] > 0
    run_ = rec["runs"]["readiness"][0]
    assert any("Gather VFIO" in t["name"] for t in run_["tasks"])
    assert "ansible-playbook" in run_["command"] and "vfio.migration.readiness" in run_["command"]
    assert "| %d |" % N in run.markdown({"machine": run.machine(), "fleet": fleet_result})


@pytest.mark.emulator
@pytest.mark.ansible
def test_probe_economy_writes_equal_classes(fleet_result):
    econ = fleet_result["sizes"][0]["runs"]["readiness"][0]["probe_economy"]
    assert econ["ok"], econ["mismatches"]
    assert econ["total"]["writes"] == econ["total"]["expected_writes"] > 0
    for host, row in econ["rows"].items():
        # one write per class (per parent offering the type), never one per source host
        assert row["distinct_written"] == row["classes"], host
        assert row["writes"] == row["expected_writes"], host


@pytest.mark.emulator
@pytest.mark.ansible
def test_module_invocations_per_host(fleet_result):
    count = fleet_result["sizes"][0]["count"]
    assert count["floor"]["max"] == 2 and count["floor"]["mean"] == 2
    assert count["readiness"]["max"] == 2
    assert set(count["readiness"]["by_action"]) <= {"vfio.migration.mdev_facts", "vfio.migration.migration_probe"}
    assert count["readiness"]["by_action"]["vfio.migration.mdev_facts"] == N
    assert count["readiness"]["probe_economy_ok"]


def test_probe_economy_counts_per_host_tree(tmp_path):
    """The write-log check alone, on hand-made logs: per class passes, per source host fails."""
    from bench import fleet as F
    dirs = F.build(str(tmp_path / "fleet"), 12)
    attrs = {h: run.host_attributes(d) for h, d in dirs.items()}
    sources = {}
    for h, a in attrs.items():
        for c in a["classes"]:
            sources.setdefault(c, set()).add(h)

    def rel(host, mdev_type, parent):
        # the attribute path as the emulator logs it (host/sys/...)
        for key in run._rules(dirs[host]):
            parts = key.split("/")
            if mdev_type in parts and parent in parts:
                return "%s/sys/%s" % (host, key)
        raise AssertionError((host, mdev_type, parent))

    per_class, per_source = [], []
    for h, a in attrs.items():
        for c, srcs in sources.items():
            if c[0] not in a["offers"] or srcs == {h}:
                continue
            for parent, readable in a["offers"][c[0]]:
                if readable:
                    per_class.append({"path": rel(h, c[0], parent), "data": c[1] + "\n"})
                    per_source.extend({"path": rel(h, c[0], parent), "data": c[1] + "\n"} for dummy in srcs - {h})
    good = run.probe_economy(dirs, per_class)
    assert good["ok"] and good["total"]["writes"] == good["total"]["expected_writes"] > 0
    assert good["total"]["per_source_host_writes"] == len(per_source)
    if len(per_source) > len(per_class):
        assert not run.probe_economy(dirs, per_source)["ok"]


def test_controller_one_counts_classes():
    r = controller.one(60, 2, 3, drain=2, targets_calls=3)
    assert 2 <= r["classes"] <= 2 * 3
    # one verdict list per class and target (a class is not asked of its only source)
    assert r["classes"] * 59 <= r["verdict_lists"] <= r["classes"] * 60
    assert r["batch_checks"] <= r["classes"] * 60
    assert r["total_s"] > 0 and r["maxrss_mib"] > 0 and r["ns_per_class_target"] > 0


@pytest.mark.mdevctl
def test_discovery_ratio_is_computed(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mdevctl") or not shutil.which("unshare"):
        pytest.skip("needs root, mdevctl and unshare")
    res = discovery.run(repeat=1, scale=(2, 3, 2), dest=str(tmp_path))
    assert res["mdevctl_listed"] == res["gather_devices"] == 12
    assert res["gather_types"] == 6
    assert res["ratio_gather_to_mdevctl"] > 0 and res["ratio_module_to_mdevctl"] > 0


@pytest.mark.emulator
@pytest.mark.ansible
@pytest.mark.parametrize("pipelining", [False, True], ids=["files", "pipelining"])
def test_process_cpu_names_every_process_kind(tmp_path, pipelining):
    """bench/process_cpu.py at 3 hosts: every module run and every worker records itself, by task
    (pipelined, a module's payload comes on stdin: its imports name it)."""
    if fuse_unavailable():
        pytest.skip(fuse_unavailable())
    from bench import process_cpu
    runs = process_cpu.measure(3, 3, str(tmp_path), pipelining=pipelining)
    floor, ready = runs["floor"]["rows"], runs["readiness"]["rows"]
    assert floor[("module", "ping")]["processes"] == 6 and floor[("main", "")]["processes"] == 1
    assert ready[("module", "mdev_facts")]["processes"] == 3
    assert ready[("module", "migration_probe")]["processes"] == 3
    assert ready[("other", "child of migration_probe")]["processes"] == 3  # one writer per batch, on its own line
    gather = [r for (k, n), r in ready.items() if k == "worker" and "Gather" in n]
    assert gather and gather[0]["processes"] == 3 and gather[0]["cpu"] > 0
    text = process_cpu.report(runs, 3, 3)
    assert "module: mdev_facts" in text and "Main process" in text


@pytest.mark.emulator
@pytest.mark.ansible
def test_process_cpu_times_the_main_process_per_task(tmp_path):
    """bench/process_cpu.py --results at 3 hosts: get_vars and the callbacks' copies, per task, from the wrapper."""
    if fuse_unavailable():
        pytest.skip(fuse_unavailable())
    from bench import process_cpu
    runs = process_cpu.measure(3, 3, str(tmp_path), results=True)
    floor, ready = runs["floor"]["main_results"], runs["readiness"]["main_results"]
    assert floor["get_vars"]["First no-op module task"][0] == 3
    probe = next(t for t in ready["callback copy"] if t.endswith("in one batch"))
    assert ready["callback copy"][probe][0] == 3 and ready["get_vars"][probe][0] == 3
    matrix = next(t for t in ready["callback copy"] if t.endswith("compatibility matrix"))
    assert ready["callback copy"][matrix][0] == 1  # run_once: one result
    assert runs["readiness"]["rows"][("module", "mdev_facts")]["processes"] == 3  # the CPU log still works
    text = process_cpu.results_table(runs)
    assert "| readiness | get_vars |" in text and "| floor | get_vars | First no-op module task |" in text


@pytest.mark.ansible
def test_template_cost_times_the_roles_own_templates():
    """bench/template_cost.py reads the probe's and gathering's templates from the roles, and times each case."""
    from bench import template_cost
    # option_vars and batches_var: the only template left in either task is its time limit
    assert template_cost.PROBE_ARGS == [template_cost.PROBE_TIMEOUT]
    assert template_cost.GATHER_ARGS == [template_cost.GATHER_TIMEOUT]
    assert template_cost.PROBE_WHEN is None  # an empty batch is skipped by the action, not by a conditional
    assert len(template_cost.GATHER_BEFORE) == len(template_cost.GATHER_OPTIONS) - 1
    res = template_cost.measure(repeat=2)
    assert set(res) == {label for label, dummy, dummy2 in template_cost.CASES}
    assert all(ms > 0 for ms in res.values())
    assert "| probe: as the role has it (its time limit) |" in template_cost.markdown(res, 2)


def test_stdin_script_runs_scripts_of_the_asked_size_both_ways(tmp_path):
    """bench/stdin_script.py: each script is exactly its size and runs (exit 0) from a file and from stdin."""
    import subprocess
    import sys
    from bench import stdin_script
    for size in (1000, 20000):
        source = stdin_script.script(size)
        assert len(source.encode()) == size
        path = tmp_path / "s.py"
        path.write_text(source)
        assert subprocess.run([sys.executable, str(path)], check=False).returncode == 0
        with open(path) as f:
            assert subprocess.run([sys.executable], stdin=f, check=False).returncode == 0
    res = stdin_script.measure({"small": 20000}, sys.executable, 2)
    assert res["small"]["bytes"] == 20000 and res["small"]["file_ms"] > 0 and res["small"]["stdin_ms"] > 0
    assert "| small | 20,000 |" in stdin_script.markdown(res, sys.executable, 2)
