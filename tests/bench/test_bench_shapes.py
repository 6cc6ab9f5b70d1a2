"""Machinery of ``bench/shapes.py`` at 5 hosts: the dense shape with pipelining, the SSH variant.

    .venv/bin/python -m pytest tests/bench/test_bench_shapes.py -q

Nothing here asserts a speed. Each variant runs the floor and the readiness
run once over 5 emulated hosts; the tests check that the ratios and the
per-task comparisons are computed from what was run, that every host's
writes in the emulator's log are the classes it should be asked, and, for
SSH, that the modules really ran through the sshd endpoints.
"""

import collections
import copy
import json
import os
import subprocess

import pytest

from bench import fleet as F
from bench import run as R
from bench import shapes
from bench import sshd as S
from tests.emulator.mount import fuse_unavailable

N = 5
NICE = -5 if os.geteuid() == 0 else 5
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _variant(tmp_path_factory, name, endpoints=2, emulators=1, echo=False, ab_probe=None, emulator_nice=0):
    if fuse_unavailable():
        pytest.skip(fuse_unavailable())
    work = str(tmp_path_factory.mktemp("shapes") / name)
    return shapes.run_variant(name, [N], repeat=1, reports=False, ssh_endpoints=endpoints, workdir=work,
                              log=lambda *a: None, alternate=1, emulators=emulators, echo=echo,
                              ab_probe=ab_probe, emulator_nice=emulator_nice), work


def _head():
    """This checkout's commit, for an A/B of the probe against itself (None outside a git clone)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    # the shape, with pipelining, its hosts shared by two emulator processes (served before the module
    # processes: a negative niceness needs root); the probe also A/B against HEAD's
    return _variant(tmp_path_factory, "dense-f10-pipe", emulators=2, echo=True, ab_probe=_head(), emulator_nice=NICE)


def _sshd_start_problem(tmp_path_factory):
    why = S.unavailable()
    if why:
        return why
    try:
        with S.LoopbackSshd(str(tmp_path_factory.mktemp("sshd-probe")), 1):
            return None
    except (RuntimeError, OSError) as exc:
        return "sshd cannot start or take a key login here: %s" % exc


@pytest.fixture(scope="module")
def over_ssh(tmp_path_factory):
    why = _sshd_start_problem(tmp_path_factory)
    if why:
        pytest.skip(why)
    return _variant(tmp_path_factory, "ssh-f10")  # not pipelined: the modules travel by sftp


def _check_ratios(res, forks, pipelining):
    assert res["forks"] == forks and res["pipelining"] is pipelining
    rec = res["sizes"][0]
    floor, ready = rec["floor"], rec["readiness"]
    assert rec["hosts"] == N
    assert ready["ratio_wall"] == pytest.approx(ready["wall"] / floor["wall"], rel=1e-2)
    # the per-task comparison: first module task with first, second with second
    assert ready["probe_per_ping"] == pytest.approx(ready["probe"] / floor["ping_second"], rel=1e-2)
    assert ready["gather_per_ping"] == pytest.approx(ready["gather"] / floor["ping_first"], rel=1e-2)
    assert ready["ratio_cpu_all"] > 0
    for label in ("floor", "readiness"):
        command = rec["runs"][label][0]["command"]
        assert "ANSIBLE_FORKS=%d" % forks in command
        assert "ANSIBLE_PIPELINING=%d" % int(pipelining) in command
    econ = rec["runs"]["readiness"][0]["probe_economy"]
    assert econ["ok"], econ["mismatches"]
    # 5 hosts on 5 driver versions: a target is asked the 4 types of the 4 other versions, on both parents
    assert econ["max_writes_per_target"] == 4 * 4 * 2
    row = shapes.rows({"x@%d" % N: dict(res, variant="x")})[0]
    assert row["writes_per_target"] == 32 and row["ratio"] == ready["ratio_wall"]
    # the alternating run: gathering, then a ping and the role's own probe step
    alt = rec["alternate"]
    actions = [t["action"] for t in alt["tasks"]]
    assert actions.count("ansible.builtin.ping") == actions.count("vfio.migration.migration_probe") == alt["turns"] == 1
    assert actions.count("vfio.migration.mdev_facts") == 2 and alt["gather_per_ping_wall"] > 0
    assert actions.index("vfio.migration.mdev_facts") < actions.index("ansible.builtin.ping") < \
        actions.index("vfio.migration.migration_probe")
    assert alt["probe_per_ping_wall"] == pytest.approx(alt["probe_wall"] / alt["ping_wall"], rel=1e-2)
    # one turn: its own ratios are the ratios of the medians, and the table shows them turn by turn
    assert alt["pairs_wall"] == [pytest.approx(alt["probe_per_ping_wall"], abs=0.002)]
    assert alt["gather_pairs_wall"] == [pytest.approx(alt["gather_per_ping_wall"], abs=0.002)]
    turn, gather_turn = alt["pairs_wall"][0], alt["gather_pairs_wall"][0]
    assert "| %.2f | **%.2f** | %.2f | %.2f |" % (turn, turn, gather_turn, gather_turn) in shapes.markdown(
        {"x@%d" % N: res})
    return rec


@pytest.mark.emulator
@pytest.mark.ansible
def test_dense_shape_ratios_and_task_comparison(dense):
    res, dummy = dense
    rec = _check_ratios(res, 10, True)
    assert res["shape"] == "dense" and res["connection"] == "local" and res["emulators"] == 2
    # the modules run under the controller: per-task CPU, with and without the emulator's share
    ready = rec["readiness"]
    assert ready["probe_per_ping_cpu"] > 0 and ready["probe_per_ping_cpu_host"] > 0
    tasks = rec["runs"]["readiness"][0]["tasks"]
    probe = [t for t in tasks if t["action"] == "vfio.migration.migration_probe"][0]
    assert probe["emulator_cpu"] > 0  # the writes went through the emulator while the task ran
    if F.WITH_VMS:
        assert rec["vms"] > 0
    # the echo turn: the probe's batch in, stored probe results out, through ansible-core alone
    echo = [t for t in rec["alternate"]["tasks"] if t["action"].endswith("bench_probe_echo")]
    assert len(echo) == 1 and rec["alternate"]["echo_per_ping_wall"] > 0
    command = rec["alternate"]["command"]
    assert command.startswith("ANSIBLE_LIBRARY=bench/library") and " ANSIBLE_ACTION_PLUGINS=bench/action_plugins " in command
    assert res["emulator_nice"] == NICE
    assert "| dense-f10-pipe | local | 10 | yes | 2, nice %+d | %d |" % (NICE, N) in shapes.markdown({"dense-f10-pipe@%d" % N: res})
    # one pair: its own ratio is the ratio of the medians; no table of pairs for a single one
    assert ready["pairs_wall"] == [pytest.approx(ready["ratio_wall"], abs=0.002)]
    row = shapes.rows({"dense-f10-pipe@%d" % N: res})[0]
    assert row["probe_pairs"] == [pytest.approx(ready["probe_per_ping"], abs=0.002)]
    assert row["gather_pairs"] == [pytest.approx(ready["gather_per_ping"], abs=0.002)]
    assert "each pair" not in shapes.markdown({"dense-f10-pipe@%d" % N: res})
    # with --repeat, every pair's own ratio, their median and range
    again = copy.deepcopy(res)
    again["sizes"][0]["readiness"]["pairs_wall"] = [1.34, 1.21, 1.26]
    runs = again["sizes"][0]["runs"]
    runs["floor"], runs["readiness"] = runs["floor"] * 3, [copy.deepcopy(runs["readiness"][0]) for dummy in range(3)]
    for run, ratio in zip(runs["readiness"], (1.10, 1.30, 1.05)):  # each probe against its own pair's ping
        run["task_seconds"]["probe"] = ratio * runs["floor"][0]["task_seconds"]["ping_second"]
    assert "| dense-f10-pipe | %d | 3 | 1.34, 1.21, 1.26 | **1.26** | 1.21 | 1.34 |" % N in shapes.markdown(
        {"dense-f10-pipe@%d" % N: again})
    assert "| 1.10, 1.30, 1.05 | **1.10** |" in shapes.markdown({"dense-f10-pipe@%d" % N: again})
    # the A/B turn: the probe with HEAD's module_utils, under its own name, beside this checkout's
    alt = rec["alternate"]
    if alt.get("ab_probe"):
        ab = [t for t in alt["tasks"] if t["action"].endswith("bench_probe_ab")]
        assert len(ab) == 1 and alt["ab_hosts_written"] == N  # every host: both probes wrote their whole batch
        assert alt["probe_per_ab_wall"] > 0 and len(alt["ab_pairs_wall"]) == 1
        assert "ab-probe/library " in command and "ab-probe ANSIBLE_CALLBACK" in command  # where its code came from
        assert "| dense-f10-pipe | %d | 1 | %s |" % (N, alt["ab_probe"]) in shapes.markdown(
            {"dense-f10-pipe@%d" % N: res})


@pytest.mark.emulator
@pytest.mark.ansible
def test_ssh_variant_runs_every_module_through_sshd(over_ssh):
    res, work = over_ssh
    rec = _check_ratios(res, 10, False)
    assert res["connection"] == "ssh" and res["ssh_endpoints"] == 2
    with open(os.path.join(work, "inventory-%d.json" % N)) as f:
        inv = json.load(f)["all"]
    assert inv["vars"]["ansible_connection"] == "ssh"
    hosts = inv["hosts"]
    # hosts spread over both endpoints, each with a control socket of its own
    assert len(collections.Counter(h["ansible_port"] for h in hosts.values())) == 2
    assert len({h["ansible_control_path"] for h in hosts.values()}) == N
    for label in ("floor", "readiness"):
        run = rec["runs"][label][0]
        # the sessions that ran the modules were the sshd's: their CPU was counted there
        assert run["sshd_cpu"] > 0 and run["ssh_masters_cpu"] > 0
        assert "ANSIBLE_SSH_CONTROL_PATH_DIR=" in run["command"]
    # every run's master connections were closed afterwards
    cpdir = os.path.join(work, "cp")
    assert not [s for d in os.listdir(cpdir) for s in os.listdir(os.path.join(cpdir, d))]


def test_an_ab_run_counts_a_host_short_when_one_probe_did_not_write_its_batch():
    def writes(host, pid, count):
        return [{"path": "%s/sys/x/migration_version" % host, "pid": pid}] * count
    both = writes("a", 1, 48) + writes("a", 2, 48) + writes("b", 3, 32) + writes("b", 4, 32)
    assert R.ab_unwritten(both, 2) == (2, [])
    # host b: the second probe failed on the host and wrote nothing
    assert R.ab_unwritten(writes("a", 1, 48) + writes("a", 2, 48) + writes("b", 3, 32), 2) == (2, ["b"])
    # one pid given out twice on host a still counts its two whole batches
    assert R.ab_unwritten(writes("a", 7, 96) + writes("a", 8, 48), 3) == (1, [])
    assert R.ab_unwritten([], 2) == (0, [])


def test_dense_trees_have_two_parents_six_versions_and_vms(tmp_path):
    dirs = F.build(str(tmp_path / "dense"), 6, shape="dense")
    attrs = {h: R.host_attributes(d) for h, d in dirs.items()}
    classes = set().union(*(a["classes"] for a in attrs.values()))
    assert len(classes) == 4 * 6  # four types at six driver versions
    for a in attrs.values():
        assert sorted(a["offers"]) == ["nvidia-256", "nvidia-257", "nvidia-258", "nvidia-259"]
        assert all(len(parents) == 2 and all(ok for dummy, ok in parents) for parents in a["offers"].values())
    built = F.kinds(str(tmp_path / "dense"))
    if not F.WITH_VMS:
        pytest.skip("tests/fixtures/sysfs_builder.py has no domain(): the trees have no VMs")
    for host, hostdir in dirs.items():
        # one running VM per instance: the live status files name every instance once
        instances = set(os.listdir(os.path.join(hostdir, "sys", "bus", "mdev", "devices")))
        live = os.path.join(hostdir, "root", "run", "libvirt", "qemu")
        used = set()
        for name in os.listdir(live):
            if name.endswith(".xml"):
                with open(os.path.join(live, name)) as f:
                    text = f.read()
                used |= {u for u in instances if u in text}
        assert used == instances and built[host]["vms"] == len(instances)


def test_ssh_inventory_variables_without_sshd(tmp_path):
    ssh = S.LoopbackSshd(str(tmp_path), count=3)
    ssh.ports = [2201, 2202, 2203]
    names = [F.host_name(i) for i in range(7)]
    path = F.write_inventory(str(tmp_path / "inv.json"), names, "/mnt", "/usr/bin/python3",
                             extra_vars=ssh.group_vars(), host_vars=ssh.host_vars({h: i for i, h in enumerate(names)}.get))
    with open(path) as f:
        inv = json.load(f)["all"]
    assert inv["vars"]["ansible_connection"] == "ssh" and inv["vars"]["ansible_python_interpreter"] == "/usr/bin/python3"
    assert [inv["hosts"][h]["ansible_port"] for h in names] == [2201, 2202, 2203, 2201, 2202, 2203, 2201]
    assert inv["hosts"]["bench-00004"]["ansible_control_path"] == "%(directory)s/bench-00004"
    assert inv["hosts"]["bench-00004"]["vfio_migration_sysfs_root"] == "/mnt/bench-00004/sys"
