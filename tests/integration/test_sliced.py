"""Sliced runs (AWX job slicing, --limit batches, several controllers) give the one-run matrix.

An emulated fleet (bench/fleet.py) is checked once with vfio.migration.readiness,
then in the two-phase mode: vfio.migration.gather for each of 4 slices, then
vfio.migration.probe for each slice, then vfio.migration.report once, with
Ansible's own fact cache in between - the jsonfile plugin, and community.general's
redis plugin against a real Redis server on loopback. Every matrix.json must be
the one-run matrix.json, byte for byte (timestamps off), the drain plan of four
hosts (one in each slice) and the VMs it places or strands included.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from bench import fleet as F
from tests.ansible_runner import community_collections
from tests.conftest import REPO, ansible_bin
from tests.emulator.mount import EmulatorMount, fuse_unavailable

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

# 80 hosts keep the suite short; BENCHMARKS.md section 7 times it at VFIO_SLICED_HOSTS=200
HOSTS = int(os.environ.get("VFIO_SLICED_HOSTS", "80"))
SLICES = 4
BUILD = os.path.join(REPO, "build", "sliced")


def drained(hosts):
    """One host to drain in each slice (slice i is ``hosts[i::SLICES]``): indices 0, 21, 42, 63 of 80."""
    step = len(hosts) // SLICES
    return [hosts[k * step + k] for k in range(SLICES)]


def playbook(inventory, name, env, *args):
    cmd = [ansible_bin("ansible-playbook"), "-i", inventory, name] + list(args)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("sliced")
    hosts = sorted(F.build(os.path.join(BUILD, "hosts"), HOSTS))
    mnt = base / "mnt"
    with EmulatorMount(os.path.join(BUILD, "hosts"), str(mnt), str(base / "writes.log")):
        inv = F.write_inventory(str(base / "inventory.json"), hosts, str(mnt), sys.executable,
                                drain=drained(hosts),
                                extra_vars={"vfio_migration_report_timestamp": False,
                                            "vfio_migration_summary": False})
        env = dict(os.environ, ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_FORKS="10")
        t0 = time.monotonic()
        playbook(inv, "vfio.migration.readiness", env, "-e", "vfio_migration_report_dir=%s" % (base / "one"))
        yield {"base": base, "inventory": inv, "hosts": hosts, "env": env, "writes": base / "writes.log",
               "one": (base / "one" / "matrix.json").read_text(), "one_seconds": time.monotonic() - t0}


def sliced(fleet, cache_env, name):
    """Run the two phases in SLICES slices as AWX job slicing splits an inventory; the report's matrix.json."""
    env = dict(fleet["env"], **cache_env)
    hosts = fleet["hosts"]
    slices = [",".join(hosts[i::SLICES]) for i in range(SLICES)]
    report = fleet["base"] / name
    t0 = time.monotonic()
    for part in slices:
        playbook(fleet["inventory"], "vfio.migration.gather", env, "--limit", part)
    for part in slices:
        playbook(fleet["inventory"], "vfio.migration.probe", env, "--limit", part)
    playbook(fleet["inventory"], "vfio.migration.report", env, "-e", "vfio_migration_report_dir=%s" % report)
    return (report / "matrix.json").read_text(), time.monotonic() - t0


def record(fleet, name, seconds):
    out = os.path.join(REPO, "tests", "output", "sliced.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    data = {}
    if os.path.exists(out):
        with open(out) as f:
            data = json.load(f)
    data.update({"hosts": HOSTS, "slices": SLICES, "one_run_seconds": round(fleet["one_seconds"], 1),
                 name + "_seconds": round(seconds, 1)})
    with open(out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)


def test_sliced_through_the_jsonfile_cache_gives_the_one_run_matrix(fleet):
    cache = fleet["base"] / "jsonfile-cache"
    got, seconds = sliced(fleet, {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
                                  "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
                                  "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400"}, "jsonfile")
    assert len(os.listdir(cache)) == HOSTS  # one cache entry per host, from 4 slices
    assert got == fleet["one"]
    matrix = json.loads(got)
    assert matrix["summary"]["status_counts"]["compatible"] > 0
    # the plan is in the bytes compared: the drained hosts' VMs, each placed, stranded or cold as one item
    plan = matrix["plan"]
    assert plan["drain_hosts"] == sorted(drained(fleet["hosts"]))
    items = plan["placements"] + plan["stranded"] + plan["cold"]
    assert items and all(i["vm"] for i in items if i.get("devices") or i.get("device")), items[:3]
    record(fleet, "jsonfile", seconds)


@pytest.mark.parametrize("phase", ["vfio.migration.gather", "vfio.migration.probe", "vfio.migration.report"])
def test_without_a_fact_cache_every_sliced_phase_refuses_to_start(fleet, phase):
    """With Ansible's in-memory cache a phase would see nothing of the one before: every host unknown."""
    cmd = [ansible_bin("ansible-playbook"), "-i", fleet["inventory"], phase, "--limit", fleet["hosts"][0]]
    env = {k: v for k, v in fleet["env"].items() if not k.startswith("ANSIBLE_CACHE_PLUGIN")}
    before = fleet["writes"].read_text()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode != 0 and "ANSIBLE_CACHE_PLUGIN" in proc.stdout
    assert "TASK [vfio.migration.matrix : Ask each target" not in proc.stdout
    assert fleet["writes"].read_text() == before


@pytest.mark.parametrize("phase, bad, message", [
    ("vfio.migration.probe", {"vfio_migration_probe_timeout": 0},
     "vfio_migration_probe_timeout must be a number of seconds above 0, not 0; nothing probed"),
    ("vfio.migration.probe", {"vfio_migration_allow_non_sysfs": "maybe"}, "Validation of arguments failed"),
    ("vfio.migration.probe", {"vfio_migration_probe_task_timeout": -5},
     "vfio_migration_probe_task_timeout must be 0 (no limit) or a number of seconds, not -5; nothing probed"),
    ("vfio.migration.report", {"vfio_migration_report_formats": ["pdf"]}, "Validation of arguments failed"),
    ("vfio.migration.report", {"vfio_migration_policy": "strict"}, "Validation of arguments failed"),
])
def test_a_bad_argument_stops_a_sliced_phase_as_it_stops_readiness(fleet, tmp_path, phase, bad, message):
    """The sliced probe and report check the matrix role's arguments once, before anything is probed or written."""
    env = dict(fleet["env"], ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "cache"), ANSIBLE_CACHE_PLUGIN_TIMEOUT="86400")
    report = tmp_path / "report"
    cmd = [ansible_bin("ansible-playbook"), "-i", fleet["inventory"], phase, "-e", json.dumps(bad),
           "-e", "vfio_migration_report_dir=%s" % report]
    before = fleet["writes"].read_text()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert message in " ".join(out.split()) and next(iter(bad)) in out
    assert "TASK [vfio.migration.matrix : Ask each target" not in out
    assert "TASK [vfio.migration.matrix : Assemble" not in out
    assert fleet["writes"].read_text() == before and not report.exists()


@pytest.fixture
def redis_server(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make deps installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sliced_through_the_redis_cache_gives_the_one_run_matrix(fleet, redis_server):
    collections = os.pathsep.join([community_collections("community.general"), os.environ["ANSIBLE_COLLECTIONS_PATH"]])
    got, seconds = sliced(fleet, {"ANSIBLE_CACHE_PLUGIN": "community.general.redis",
                                  "ANSIBLE_CACHE_PLUGIN_CONNECTION": "127.0.0.1:%d:0" % redis_server,
                                  "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400",
                                  "ANSIBLE_COLLECTIONS_PATH": collections}, "redis")
    assert got == fleet["one"]
    record(fleet, "redis", seconds)
