"""The demo readiness run, end to end: the report grid matches the emulator's rules.

``make demo``'s own code runs vfio.migration.readiness over the bundled
inventory (emulated hosts behind the FUSE emulator, one unreachable host).
The expected status of every grid cell is computed here independently, from
the demo's rules.json files and the emulator's rule classes: read the target
attribute, write the source version, and classify the answer.
"""

import errno
import html.parser
import json

import pytest

from demo.fleet import HOSTS, UNREACHABLE
from demo.run_demo import run
from tests.emulator.mount import fuse_unavailable
from tests.emulator.rules import Waiter, build_rule

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

ORDER = ["compatible", "incompatible", "unsupported", "missing_type", "error", "unknown"]
WRITE_ERRNO = {errno.EINVAL: "incompatible", errno.EPROTO: "incompatible", errno.ENODEV: "unsupported",
               errno.EIO: "error", errno.EACCES: "error"}


class Grid(html.parser.HTMLParser):
    """Collects every grid cell's data-* attributes."""

    def __init__(self):
        super().__init__()
        self.cells = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-source" in a and "data-target" in a and "data-type" in a:
            self.cells[(a["data-source"], a["data-type"], a["data-target"])] = (a["data-status"], a.get("data-evidence"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    report = base / "report"
    proc = run(args=["-e", "vfio_migration_report_dir=%s" % report, "-e", "vfio_migration_report_timestamp=false"],
               build_dir=str(base / "build"), capture=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    grid = Grid()
    grid.feed((report / "report.html").read_text())
    rules = {h: json.loads((base / "build" / "hosts" / h / "rules.json").read_text())["attributes"] for h in HOSTS}
    return {"grid": grid.cells, "rules": rules, "report": report, "stdout": proc.stdout}


def type_rules(rules):
    """``{type: {parent_dir: spec}}`` from one host's rules (type-level attributes only)."""
    out = {}
    for path, spec in rules.items():
        parts = path.split("/")
        if "mdev_supported_types" in parts:
            i = parts.index("mdev_supported_types")
            out.setdefault(parts[i + 1], {})["/".join(parts[:i])] = spec
    return out


class Instant(Waiter):
    """The emulator's answers without its waits: a ``slow`` rule answers as its inner rule, at once."""

    def sleep(self, seconds):
        self.check()


def answer(source_spec, target_spec):
    """What the target's driver says to the source's version: one of ORDER."""
    source, target = build_rule(source_spec, Instant()), build_rule(target_spec, Instant())
    try:
        version = source.read()
    except OSError:
        return "unsupported"
    try:
        target.read()
    except OSError as exc:
        return "error" if exc.errno in (errno.EIO, errno.EACCES) else "unsupported"
    try:
        target.write(version)
        return "compatible"
    except OSError as exc:
        return WRITE_ERRNO[exc.errno]


def expected_cells(rules):
    by_host = {h: type_rules(r) for h, r in rules.items()}
    cells = {}
    for src, types in by_host.items():
        for mdev_type, src_parents in types.items():
            for tgt in list(HOSTS) + UNREACHABLE:
                if tgt == src:
                    continue
                if tgt in UNREACHABLE:
                    status = "unknown"
                else:
                    tgt_parents = by_host[tgt].get(mdev_type, {})
                    got = [answer(s, t) for s in src_parents.values() for t in tgt_parents.values()]
                    if not tgt_parents:
                        got = ["missing_type"]
                    status = min(got, key=ORDER.index)
                # a source that cannot migrate says so against every target
                if all(answer(s, s) == "unsupported" for s in src_parents.values()):
                    status = "unsupported"
                cells[(src, mdev_type, tgt)] = status
    return cells


def test_grid_matches_the_emulator_rules_cell_by_cell(demo):
    expected = expected_cells(demo["rules"])
    assert len(expected) > 150
    got = {k: v[0] for k, v in demo["grid"].items() if k in expected}
    assert got == expected
    assert {demo["grid"][k][1] for k in expected if expected[k] in ("compatible", "incompatible")} == {"driver"}


def test_policy_cells_say_they_rest_on_policy(demo):
    g = demo["grid"]
    assert g[("h200-1", "NVIDIA H200X-1-18C", "h200-2")] == ("compatible", "policy")
    assert g[("h200-1", "NVIDIA H200X-1-18C", "h200-3")] == ("incompatible", "policy")
    # QEMU 7.2 on h200-4 is below the policy's minimum: a gate, so unsupported, the policy's own yes kept
    assert g[("h200-1", "NVIDIA H200X-1-18C", "h200-4")] == ("unsupported", "policy")
    matrix = json.loads((demo["report"] / "matrix.json").read_text())
    msgs = {c["target_host"]: c["message"] for c in matrix["cells"]
            if c["source_host"] == "h200-1" and c["target_host"] in ("h200-3", "h200-4")}
    assert msgs == {"h200-3": "policy: target driver 550.54.14, source 550.90.07",
                    "h200-4": "QEMU 7.2 < 8.1 on target; policy: same type, driver 550.90.07 on both"}


def cells_of(demo, **match):
    matrix = json.loads((demo["report"] / "matrix.json").read_text())
    return [c for c in matrix["cells"] if all(c[k] == v for k, v in match.items())]


def test_old_qemu_gates_a_driver_yes(demo):
    """vf-2's mlx5 driver accepts vf-1's 1.0, but vf-2's QEMU 7.2 cannot migrate VFIO devices."""
    (c,) = cells_of(demo, source_host="vf-1", target_host="vf-2", mdev_type="pci-15b3:101e")
    assert (c["status"], c["evidence"], c["errno"]) == ("unsupported", "policy", None)
    assert c["message"] == "QEMU 7.2 < 8.1 on target; target accepted the source version"
    assert c["reasons"] == [
        {"evidence": "policy", "status": "unsupported", "message": "QEMU 7.2 < 8.1 on target"},
        {"evidence": "driver", "status": "compatible", "message": "target accepted the source version"}]
    # the other way the driver refuses (1.1 is newer than 1.0): still a refusal, with the source's QEMU named too
    (back,) = cells_of(demo, source_host="vf-2", target_host="vf-1", mdev_type="pci-15b3:101e")
    assert (back["status"], back["evidence"], back["errno_name"]) == ("incompatible", "driver", "EINVAL")
    assert "QEMU 7.2 < 8.1 on source" in back["message"]


def test_plain_vfio_pci_cannot_migrate(demo):
    cells = cells_of(demo, source_host="vf-1", source_parent="0000:af:00.0")
    assert cells and {(c["status"], c["evidence"], c["message"]) for c in cells} == {
        ("unsupported", "vfio", "bound to plain vfio-pci, which has no migration driver")}
    facts_cap = {c["target_host"] for c in cells}
    assert facts_cap == set(HOSTS) - {"vf-1"} | set(UNREACHABLE)


def test_unreachable_and_faulty_hosts_are_never_verdicts(demo):
    matrix = json.loads((demo["report"] / "matrix.json").read_text())
    assert matrix["hosts"]["offline"]["state"] == "unreachable"
    for c in matrix["cells"]:
        if c["target_host"] == "offline":
            assert c["status"] == ("unknown" if c["class"] else "unsupported") and c["message"]
        if c["target_host"] == "gpu-flaky" and c["source_version"] and c["status"] != "missing_type":
            assert (c["status"], c["errno_name"]) == ("error", "EIO")


def test_demo_plan_places_and_strands_with_reasons(demo):
    """The plan in VMs (demo/fleet.py's table): whole VMs placed, blocked and full ones stranded."""
    plan = json.loads((demo["report"] / "matrix.json").read_text())["plan"]
    assert plan["drain_hosts"] == ["gpu-a1", "h200-1", "igd-1"]
    placed = {p["vm"]: p for p in plan["placements"]}
    stranded = {s["vm"]: s for s in plan["stranded"]}
    # cad-render's two nvidia-257 vGPUs (2.3) go together to one host that accepts 2.3, never to gpu-b1 (3.0)
    # or gpu-flaky (EIO)
    cad = placed["cad-render"]
    assert cad["target_host"] in ("gpu-a2", "gpu-slow")
    assert sorted(d["id"] for d in cad["devices"]) == ["6a0c5e1e-0001-4000-8000-00000000a101",
                                                       "6a0c5e1e-0002-4000-8000-00000000a102"]
    # h200-2 runs mixed-size vGPU: its one free VF still takes H200X-1-18C, so one of h200-1's two VMs goes
    (llm,) = [vm for vm in ("llm-a", "llm-b") if vm in placed]
    assert placed[llm]["target_host"] == "h200-2"
    full = "llm-b" if llm == "llm-a" else "llm-a"
    assert sorted(placed) == sorted(["cad-render", llm])
    assert sorted(stranded) == sorted([full, "vdi-secure"]) and not plan["ready"]
    assert stranded[full]["reason"] == "every compatible target is full: h200-2/0000:41:00.0"
    details = "\n".join(stranded[full]["details"])
    assert "h200-3: incompatible - policy: target driver 550.54.14, source 550.90.07" in details
    assert "h200-4: unsupported - QEMU 7.2 < 8.1 on target; policy: same type, driver 550.90.07 on both" in details
    assert "offline: unknown" in details
    # the vIOMMU VM is blocked by QEMU's rules, whatever the targets offer
    assert stranded["vdi-secure"]["cause"] == "blocked" and "vIOMMU" in stranded["vdi-secure"]["reason"]
    assert plan["cold"] == []
    assert "Reports: %s/report.html" % demo["report"] in demo["stdout"]


def test_reports_are_deterministic(demo, tmp_path):
    report2 = tmp_path / "again"
    proc = run(args=["-e", "vfio_migration_report_dir=%s" % report2, "-e", "vfio_migration_report_timestamp=false"],
               build_dir=str(tmp_path / "build"), capture=True)
    assert proc.returncode == 0
    for name in ("matrix.json", "matrix.csv", "matrix.md", "report.html", "changes.json"):
        assert (report2 / name).read_bytes() == (demo["report"] / name).read_bytes(), name


@pytest.mark.parametrize("matrix_reports", [True, False])
def test_precheck_writes_the_plan_into_the_reports_once(tmp_path, matrix_reports):
    """Same drain set for both roles: the precheck reuses the matrix role's plan. It writes the
    reports only when the matrix role wrote none (run with vfio_migration_reports false)."""
    play = tmp_path / "precheck.yml"
    play.write_text("""
- name: Matrix and precheck with one drain set
  hosts: all
  gather_facts: false
  vars:
    vfio_migration_drain_hosts: [gpu-a1]
    vfio_migration_report_timestamp: false
  roles:
    - role: vfio.migration.facts
    - role: vfio.migration.matrix
      vars:
        vfio_migration_reports: %s
    - role: vfio.migration.precheck
""" % ("true" if matrix_reports else "false"))
    report = tmp_path / "report"
    proc = run(str(play), args=["-e", "vfio_migration_report_dir=%s" % report], build_dir=str(tmp_path / "build"),
               capture=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout
    plan_task = out[out.index("precheck : Plan where every instance"):]
    assert plan_task.split("TASK", 1)[0].count("skipping:") == 1  # the matrix role's plan is reused
    writes = out.count("TASK [vfio.migration.matrix : Write matrix.json")
    precheck_write = out[out.rindex("TASK [vfio.migration.matrix : Write matrix.json"):].split("TASK [", 2)[1]
    assert writes == 2 and ("changed:" in precheck_write) != matrix_reports
    assert sorted(p.name for p in report.iterdir()) == ["changes.json", "matrix.csv", "matrix.json", "matrix.md",
                                                        "report.html"]
    plan = json.loads((report / "matrix.json").read_text())["plan"]
    assert plan["drain_hosts"] == ["gpu-a1"] and plan["ready"]


def _task_output(out, name):
    """What the play printed under the one task whose title contains ``name``."""
    assert out.count(name) == 1, name
    return out[out.index(name):].split("TASK [", 1)[0]


def test_role_arguments_are_checked_once_for_the_play(demo):
    """The playbook leaves out Ansible's per-host argument check; each role checks once."""
    out = demo["stdout"]
    assert "Validating arguments against arg spec" not in out
    for role in ("facts", "matrix"):
        task = _task_output(out, "Check the arguments of vfio.migration.%s (main) once for the play" % role)
        assert task.count("ok: [") == 1, task
    assert _task_output(out, "Check the arguments of vfio.migration.matrix (reports)").count("ok: [") == 1


@pytest.mark.parametrize("bad, message", [
    ("vfio_migration_check_vfio_capability=sometimes", "Validation of arguments failed: "
     "value of vfio_migration_check_vfio_capability must be one of: auto, always, never, got: sometimes"),
    ("vfio_migration_report_cell_limit=many", "Validation of arguments failed"),
    ("vfio_migration_facts_timeout=-1",
     "vfio_migration_facts_timeout must be 0 (no limit) or a number of seconds, not -1; nothing gathered"),
    ("vfio_migration_probe_task_timeout=-5",
     "vfio_migration_probe_task_timeout must be 0 (no limit) or a number of seconds, not -5; nothing probed"),
    ("vfio_migration_probe_timeout=nan",
     "vfio_migration_probe_timeout must be a number of seconds above 0, not nan; nothing probed"),
])
def test_a_bad_role_argument_stops_the_play_before_it_probes_or_writes(tmp_path, bad, message):
    """A facts argument stops the play before the facts are gathered, a matrix argument before the probe."""
    report = tmp_path / "report"
    build = tmp_path / "build"
    proc = run(args=["-e", bad, "-e", "vfio_migration_report_dir=%s" % report], build_dir=str(build), capture=True)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert message in " ".join(out.split()) and bad.split("=")[0] in out
    facts_argument = bad.startswith(("vfio_migration_check_vfio_capability", "vfio_migration_facts_timeout"))
    assert ("TASK [vfio.migration.facts : Gather" in out) == (not facts_argument)
    assert "TASK [vfio.migration.matrix : Ask each target" not in out
    assert not report.exists()
    assert not (build / "writes.log").exists() or (build / "writes.log").read_text() == ""
