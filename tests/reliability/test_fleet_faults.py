"""Faults across the fleet: unreachable, permission denied, EIO, a hung driver, a host dying mid-run.

``playbooks/readiness.yml`` and ``playbooks/precheck.yml`` run over an
emulated inventory (``fleets.FAULT_HOSTS`` plus an unreachable host). None of
the faulty targets may ever be called ``compatible`` or ``incompatible``: the
matrix says ``error`` or ``unknown`` with the reason, and the precheck fails
naming each instance and why. Two controls (``good`` accepts, ``refuse``
refuses) show that real verdicts still come through.

The precheck run repeats the readiness run over the same inventory: apart from
the plan, its reports must be identical (``test_atomic_reports`` checks re-runs
with timestamps, the Molecule idempotence steps re-runs without).
"""

import copy
import json
import os
import re
import sys

import pytest

from tests.ansible_runner import playbook, write_inventory
from tests.conftest import REPO
from tests.emulator.mount import EmulatorMount, fuse_unavailable
from tests.reliability import fleets as F

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

REPORTS = ("matrix.json", "matrix.csv", "matrix.md", "report.html")
READINESS = os.path.join(REPO, "playbooks", "readiness.yml")
PRECHECK = os.path.join(REPO, "playbooks", "precheck.yml")
# what each faulty target must say, as (status, errno name, words in the message)
FAULT_VERDICTS = {
    "eacces": ("error", "EACCES", "could not ask the target"),
    "eio": ("error", "EIO", "could not ask the target"),
    "hang": ("error", "ETIMEDOUT", "no answer from the driver within the time limit"),
    "crash": ("unknown", None, "target not probed"),
    "wedged": ("unknown", None, "fact gathering did not finish within %d s" % F.WEDGED_FACTS_TIMEOUT),
    "stuck": ("unknown", None, "the probe did not finish within %d s" % F.STUCK_PROBE_TIMEOUT),
    "offline": ("unknown", None, "unreachable"),
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    F.fault_fleet(str(base / "src"))
    mnt = base / "mnt"
    hosts = {name: {"vfio_migration_sysfs_root": str(mnt / name / "sys"),
                    "vfio_migration_host_root": str(mnt / name / "root")} for name in sorted(F.FAULT_HOSTS)}
    hosts["crash"]["ansible_python_interpreter"] = F.killed_python(str(base / "python-killed"), sys.executable)
    hosts["stuck"]["ansible_python_interpreter"] = F.stuck_python(str(base / "python-stuck"), sys.executable)
    # each host's task time limits: the wedged and the stuck host's are short, so they are reached
    hosts["wedged"]["vfio_migration_facts_timeout"] = F.WEDGED_FACTS_TIMEOUT
    hosts["stuck"]["vfio_migration_probe_task_timeout"] = F.STUCK_PROBE_TIMEOUT
    hosts["offline"] = dict(F.UNREACHABLE_VARS)
    inv = write_inventory(str(base / "hosts.json"), hosts, {
        "vfio_migration_allow_non_sysfs": True, "vfio_migration_use_udev": False,
        "vfio_migration_probe_timeout": 1, "vfio_migration_report_timestamp": False})
    with EmulatorMount(str(base / "src"), str(mnt), str(base / "writes.log")) as emu:
        yield {"inv": inv, "emu": emu, "base": base}


def run(fleet, play, report_dir, **extra):
    # forks for every host at once: the unreachable host, the hung write and the killed probe overlap
    return playbook(fleet["inv"], play, dict({"vfio_migration_report_dir": str(report_dir)}, **extra),
                    env={"ANSIBLE_FORKS": "10"})


@pytest.fixture(scope="module")
def readiness(fleet):
    report = fleet["base"] / "report-a"
    proc = run(fleet, READINESS, report)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return {"proc": proc, "report": report, "matrix": json.loads((report / "matrix.json").read_text())}


def src_cells(matrix):
    """``{target: cell}`` for the source's nvidia-257 vGPUs (one parent per target)."""
    out = {}
    for c in matrix["cells"]:
        if c["source_host"] == "src" and c["mdev_type"] == "nvidia-257":
            assert c["target_host"] not in out, c
            out[c["target_host"]] = c
    return out


def test_controls_still_give_real_verdicts(readiness):
    cells = src_cells(readiness["matrix"])
    assert (cells["good"]["status"], cells["good"]["evidence"]) == ("compatible", "driver")
    assert (cells["refuse"]["status"], cells["refuse"]["errno_name"]) == ("incompatible", "EPROTO")


@pytest.mark.parametrize("target", sorted(FAULT_VERDICTS))
def test_a_faulty_target_is_error_or_unknown_with_the_reason(readiness, target):
    status, errno_name, words = FAULT_VERDICTS[target]
    cell = src_cells(readiness["matrix"])[target]
    assert (cell["status"], cell["errno_name"]) == (status, errno_name), cell
    assert words in cell["message"], cell
    # and from every source, never a verdict it could not have
    for c in readiness["matrix"]["cells"]:
        if c["target_host"] == target:
            assert c["status"] in ("error", "unknown") and c["message"], c


def test_host_table_says_what_happened(readiness):
    hosts = readiness["matrix"]["hosts"]
    assert hosts["offline"]["state"] == "unreachable" and hosts["offline"]["reason"]
    assert (hosts["crash"]["state"], hosts["crash"]["probed"]) == ("ok", False)
    assert all(hosts[h]["probed"] for h in ("good", "refuse", "eacces", "eio", "hang"))
    # a host whose gathering or probe hit its time limit is given up on, with the reason, not waited for
    assert (hosts["wedged"]["state"], hosts["wedged"]["probed"]) == ("failed", False)
    assert hosts["wedged"]["reason"].startswith("fact gathering did not finish within %d s" % F.WEDGED_FACTS_TIMEOUT)
    assert (hosts["stuck"]["state"], hosts["stuck"]["probed"]) == ("ok", False)


def test_the_hung_write_was_abandoned_and_nothing_else_written(fleet, readiness):
    for w in fleet["emu"].writes():
        assert os.path.basename(w["path"]) in F.ALLOWED_ATTRIBUTES, w
    hung = [w for w in fleet["emu"].writes() if w["path"].startswith("hang/")]
    assert hung and all(w["errno_name"] == "EINTR" for w in hung)  # the probe killed the writer
    assert not [w for w in fleet["emu"].writes() if w["path"].startswith(("crash/", "wedged/", "stuck/"))]


@pytest.fixture(scope="module")
def precheck(fleet, readiness):
    report = fleet["base"] / "report-precheck"
    proc = run(fleet, PRECHECK, report, vfio_migration_drain_hosts=["src", "good"])
    return {"proc": proc, "report": report, "matrix": json.loads((report / "matrix.json").read_text())}


def test_precheck_fails_and_names_each_instance_and_reason(precheck):
    assert precheck["proc"].returncode != 0
    out = precheck["proc"].stdout
    assert "Maintenance precheck failed: instances with nowhere to go" in out
    for uuid in F.SRC_UUIDS:
        assert "nvidia-257 %s on src/0000:3b:00.0: no compatible target outside the drain set" % uuid in out
    for target, (status, errno_name, words) in FAULT_VERDICTS.items():
        errno_part = " \\(%s\\)" % errno_name if errno_name else ""
        assert re.search(r"%s: %s%s - [^\"]*%s" % (target, status, errno_part, re.escape(words)), out), target
    plan = precheck["matrix"]["plan"]
    assert plan["ready"] is False and plan["placements"] == []
    assert sorted(s["device"] for s in plan["stranded"]) == sorted(F.SRC_UUIDS)
    for s in plan["stranded"]:
        lines = {d.split(":")[0]: d for d in s["details"]}
        for target, verdict in FAULT_VERDICTS.items():
            assert lines[target].startswith("%s: %s" % (target, verdict[0])), lines[target]
        assert lines["refuse"].startswith("refuse: incompatible (EPROTO)")


def test_rerun_gives_identical_reports(readiness, precheck):
    """The precheck's run repeats the readiness run over the same inventory; only its plan is new."""
    assert (precheck["report"] / "matrix.csv").read_bytes() == (readiness["report"] / "matrix.csv").read_bytes()
    first, second = copy.deepcopy(readiness["matrix"]), copy.deepcopy(precheck["matrix"])
    assert first.pop("plan") is None and second.pop("plan")["ready"] is False
    assert second.pop("summary") == dict(first.pop("summary"), ready=False)
    assert second == first
