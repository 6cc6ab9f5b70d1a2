"""The probe's writers: one worker process per batch, replaced only when a write hangs.

The probe core (``Prober``) runs in this process against a target served by
the FUSE emulator. Forks are counted twice, by independent means: the
interpreter's own fork hook (``os.register_at_fork``) counts every
``os.fork()`` this process makes, and the emulator's write log names the
process the kernel says made each write (FUSE's request context). Expected
verdicts come from the emulator's rule classes, never from the probe.
"""

import errno
import json
import os
import resource
import signal
import threading
import time

import pytest

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.module_utils._probe import Prober, _Writers
from tests.ansible_runner import adhoc, write_inventory
from tests.emulator.mount import EmulatorMount, fuse_unavailable
from tests.emulator.rules import build_rule
from tests.fixtures import sysfs_builder as B

pytestmark = [pytest.mark.emulator,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

NV = "000210de-nvidia-257-%s"
GVT_4 = "00028086-193b-i915-GVTg_V5_4"
HANG_PARENT = "0000:af:00.0"


class ForkCounter(object):
    """Every ``os.fork()`` of this process, as the interpreter itself reports it."""

    count = 0

    @classmethod
    def forked(cls):
        cls.count += 1


os.register_at_fork(after_in_parent=ForkCounter.forked)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    base = tmp_path_factory.mktemp("worker")
    t = B.SysfsTree(str(base / "src" / "target"))
    B.intel_gvtg(t, types={"4": B.GVT_TYPES["4"]})
    # one type on two parents whose drivers take older minors (2.3 and 2.1): asymmetric verdicts
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, types={"257": B.NVIDIA_TYPES["257"]})
    B.nvidia_vgpu(t, "0000:5e:00.0", minor=1, types={"257": B.NVIDIA_TYPES["257"]})
    gpu = B.nvidia_vgpu(t, HANG_PARENT, types={"258": B.NVIDIA_TYPES["258"]})
    t.mdev_type(gpu, "odd-hang", "vfio-pci", 1, migration={"rule": "hang", "self": "h-1"})
    t.mdev_type(gpu, "odd-hang2", "vfio-pci", 1, migration={"rule": "hang", "self": "h-2"})
    # a store that hangs holding the lock its show needs: reading the target's own version hangs too
    t.mdev_type(gpu, "odd-hang-show", "vfio-pci", 1, migration={"rule": "hang", "self": "hs-1", "show": True})
    # a driver whose show itself answers ETIMEDOUT, at once
    t.mdev_type(gpu, "odd-timedout", "vfio-pci", 1, migration={"rule": "read_error", "errno": "ETIMEDOUT"})
    # answers after 1.3 s: slower than SLOW_WRITE, well within a 4 s limit
    t.mdev_type(gpu, "odd-slow", "vfio-pci", 1,
                migration={"rule": "slow", "delay": 1.3, "inner": {"rule": "exact", "self": "s-1"}})
    t.save()
    rules = json.loads((base / "src" / "target" / "rules.json").read_text())["attributes"]
    with EmulatorMount(str(base / "src"), str(base / "mnt"), str(base / "writes.log")) as emu:
        yield {"emu": emu, "root": emu.path("target", "sys"), "rules": rules}


def nv_checks(prefix, count):
    """``count`` distinct nvidia-257 classes: 2.0 .. 2.N, some older and some newer than each target."""
    return [{"id": "%s-%d" % (prefix, i), "mdev_type": "nvidia-257", "version": NV % ("2.%d" % i)}
            for i in range(count)]


def run(target, checks, **opts):
    """Run the probe; return ``(results, new write-log entries, forks, seconds)``."""
    before, forks, start = len(target["emu"].writes()), ForkCounter.count, time.monotonic()
    results = Prober(target["root"], allow_non_sysfs=True, **opts).run(checks)
    elapsed = time.monotonic() - start
    return results, target["emu"].writes()[before:], ForkCounter.count - forks, elapsed


def driver_says(target, result, version):
    """What the emulated driver behind ``result['attribute']`` answers to ``version``."""
    spec = target["rules"][os.path.relpath(result["attribute"], target["root"])]
    try:
        build_rule(spec).write((version + "\n").encode("ascii"))
        return ("compatible", None)
    except OSError as exc:
        return (E.write_error_means(exc.errno), E.errno_name(exc.errno))


def assert_true_verdicts(target, results, checks, skip=()):
    versions = {c["id"]: c["version"] for c in checks}
    for r in results:
        if r["id"] in skip:
            continue
        assert (r["status"], r["errno_name"]) == driver_says(target, r, versions[r["id"]]), r


def test_a_batch_of_100_writes_forks_once(target):
    checks = nv_checks("nv", 50)  # 50 classes x 2 parents = 100 writes
    results, writes, forks = run(target, checks, timeout=10)[:3]
    assert len(results) == 100 and len(writes) == 100
    assert forks == 1
    writers = {w["pid"] for w in writes}
    assert len(writers) == 1 and os.getpid() not in writers  # one child wrote them all
    assert_true_verdicts(target, results, checks)
    # the drivers really disagreed: not everything is one status
    assert {r["status"] for r in results} == {"compatible", "incompatible"}
    # each of the two attributes was opened once, and every version written through that open
    opens = {}
    for w in writes:
        opens.setdefault(w["path"], set()).add(w["open"])
    assert len(opens) == 2 and all(len(o) == 1 for o in opens.values())
    assert len(set().union(*opens.values())) == 2


def test_a_batch_puts_the_module_process_to_sleep_once_not_once_per_write(target):
    """The worker is sent the whole batch and answers into a pipe nobody waits on;
    the module process wakes when the worker has run out of jobs. Counted by the
    kernel: this thread's voluntary context switches while 100 writes are made."""
    paths = [os.path.realpath(os.path.join(target["root"], "class", "mdev_bus", parent, "mdev_supported_types",
                                           "nvidia-257", "migration_version"))
             for parent in ("0000:3b:00.0", "0000:5e:00.0")]
    jobs = [(path, NV % ("2.%d" % i)) for i in range(50) for path in paths]
    before, forks = len(target["emu"].writes()), ForkCounter.count
    start = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
    outcomes = _Writers(10, 8).run(jobs)
    sleeps = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - start
    writes = target["emu"].writes()[before:]
    assert sorted(outcomes) == sorted(jobs) and len(writes) == 100 and ForkCounter.count - forks == 1
    assert sleeps <= 8, sleeps  # one per write would be 100
    assert [(w["path"], w["data"]) for w in writes] == [
        (os.path.relpath(path, target["emu"].path()), version + "\n") for path, version in jobs]
    accepted = [job for job, (result, code) in outcomes.items() if code is None]
    assert accepted and all(outcomes[job] == (len(job[1]) + 1, None) for job in accepted)


def test_a_slow_write_keeps_its_verdict_and_the_jobs_behind_it_move_on(target):
    """A read or write older than SLOW_WRITE: the jobs queued behind it are taken back and go to
    another worker; the slow one still answers (no time-out), and nothing is written twice.

    The slow type's own version is read first, slowly: the other reads move to a second worker.
    Its two writes then go one to each worker, both slow, so a third worker takes the rest."""
    checks = [{"id": "slow", "mdev_type": "odd-slow", "version": "s-1"},
              {"id": "slow-no", "mdev_type": "odd-slow", "version": "s-0"}] + nv_checks("behind", 10)
    results, writes, forks, elapsed = run(target, checks, timeout=4)
    status = {r["id"]: (r["status"], r["errno_name"]) for r in results if r["id"].startswith("slow")}
    assert status == {"slow": ("compatible", None), "slow-no": ("incompatible", "EINVAL")}
    assert_true_verdicts(target, results, checks)
    assert len(writes) == 22 and len({(w["path"], w["data"]) for w in writes}) == 22  # each job once
    assert forks == 3
    first = {w["pid"] for w in writes if w["data"] == "s-1\n"}
    assert {w["pid"] for w in writes if w["data"] == "s-0\n"} - first  # taken back from the slow worker
    assert not {w["pid"] for w in writes if w["data"].startswith("000210de")} & first
    assert elapsed < 4 + 1.3 * 2  # the slow read, then the two slow writes side by side, none timed out


def test_the_same_holds_with_parallel_one_and_a_short_timeout(target):
    checks = nv_checks("p1", 50)
    results, writes, forks = run(target, checks, timeout=2, parallel=1)[:3]
    assert (len(writes), forks, len({w["pid"] for w in writes})) == (100, 1, 1)
    assert_true_verdicts(target, results, checks)


def test_a_hung_read_of_the_target_version_is_error_and_nothing_is_written_to_it(target):
    """The target's own version is read under the same time limit as a write, in a worker: a show
    that never returns gives error ETIMEDOUT, the attribute is not written, the rest get verdicts."""
    checks = [{"id": "hang-show", "mdev_type": "odd-hang-show", "version": "hs-1"}] + nv_checks("rest", 6)
    results, writes, forks, elapsed = run(target, checks, timeout=1.5)
    hung = [r for r in results if r["id"] == "hang-show"]
    assert [(r["parent"], r["status"], r["errno_name"]) for r in hung] == [(HANG_PARENT, "error", "ETIMEDOUT")]
    assert hung[0]["message"] == ("reading the target's own version failed: "
                                  "no answer from the driver within the time limit")
    assert hung[0]["target_version"] is None
    assert len(writes) == 12 and not [w for w in writes if "odd-hang-show" in w["path"]]
    assert_true_verdicts(target, results, checks, skip=("hang-show",))
    assert {r["target_version"] for r in results if r["id"] != "hang-show"} == {NV % "2.3", NV % "2.1"}
    # the reads behind the hung one moved to a second worker after SLOW_WRITE; the hung one was killed
    assert forks == 2
    assert elapsed < 1.5 + 1.5


def test_a_driver_answering_etimedout_is_told_apart_from_no_answer(target):
    """ETIMEDOUT from the driver's own show is the driver's answer, in its words; only a read given up
    on after the time limit says that no answer came."""
    checks = [{"id": "timedout", "mdev_type": "odd-timedout", "version": "t-1"}] + nv_checks("rest", 2)
    results, writes, forks, elapsed = run(target, checks, timeout=4)
    got = [r for r in results if r["id"] == "timedout"]
    assert [(r["status"], r["errno_name"]) for r in got] == [("error", "ETIMEDOUT")]
    assert got[0]["message"] == "reading the target's own version failed: %s" % os.strerror(errno.ETIMEDOUT)
    assert len(writes) == 4 and not [w for w in writes if "odd-timedout" in w["path"]]
    assert forks == 1 and elapsed < 2  # answered at once: no time-out, no second worker


def test_a_hung_write_is_error_and_the_rest_go_on_in_a_new_worker(target):
    def nv(cid, version):
        return {"id": cid, "mdev_type": "nvidia-257", "version": NV % version}
    before = [nv("b-%d" % i, v) for i, v in enumerate(("3.0", "1.7", "2.25", "2.1"))]
    after = [nv("a-%d" % i, "2.%d" % i) for i in (0, 2, 3) + tuple(range(4, 20))]
    checks = before + [{"id": "hang", "mdev_type": "odd-hang", "version": "h-1"}] + after
    results, writes, forks, elapsed = run(target, checks, timeout=1.5, parallel=1)
    hung = [r for r in results if r["id"] == "hang"]
    assert [(r["parent"], r["status"], r["errno_name"]) for r in hung] == [(HANG_PARENT, "error", "ETIMEDOUT")]
    assert hung[0]["message"] == "no answer from the driver within the time limit"
    assert_true_verdicts(target, results, checks, skip=("hang",))
    # the writes after the hang got every kind of answer the drivers give
    assert {(r["status"], r["errno_name"]) for r in results if r["id"].startswith("a-")} == {
        ("compatible", None), ("incompatible", "EINVAL")}
    assert forks == 2  # the first worker, and the one that replaced it after the hang
    writers = {}
    for w in writes:
        writers.setdefault(w["data"][:-1], set()).add(w["pid"])
    first = set().union(*(writers[c["version"]] for c in before))
    assert len(first) == 1 and writers["h-1"] == first  # the hung write was the first worker's ...
    assert [w["errno_name"] for w in writes if w["data"] == "h-1\n"] == ["EINTR"]  # ... which was killed
    later = set().union(*(writers[c["version"]] for c in after))
    assert len(later) == 1 and not later & first  # the rest: one new worker
    # which opens its attributes anew: an attribute's writes share an open within a worker only
    opens = {}
    for w in writes:
        opens.setdefault((w["pid"], w["path"]), set()).add(w["open"])
    assert all(len(o) == 1 for o in opens.values())
    assert len(set().union(*opens.values())) == len(opens) == 5  # 2 attributes x 2 workers, and the hung one
    assert 1.5 <= elapsed < 10


def test_a_hung_driver_does_not_hold_up_the_rest_of_the_batch(target):
    checks = ([{"id": "hang", "mdev_type": "odd-hang", "version": "h-1"}] + nv_checks("rest", 30))
    results, writes, forks, elapsed = run(target, checks, timeout=4)
    assert [(r["status"], r["errno_name"]) for r in results if r["id"] == "hang"] == [("error", "ETIMEDOUT")]
    assert_true_verdicts(target, results, checks, skip=("hang",))
    # a helper started once the hung write was older than a second, and wrote all the rest
    assert forks == 2
    rest = {w["pid"] for w in writes if w["data"] != "h-1\n"}
    assert len(rest) == 1
    rest_done = max(w["time"] for w in writes if w["data"] != "h-1\n")
    hang_ended = [w["time"] for w in writes if w["data"] == "h-1\n"][0]
    assert rest_done < hang_ended  # answered before the time limit ended the hung write
    assert 4 <= elapsed < 15


def test_two_hung_drivers_are_waited_on_side_by_side(target):
    checks = [{"id": "hang", "mdev_type": "odd-hang", "version": "h-1"},
              {"id": "hang2", "mdev_type": "odd-hang2", "version": "h-2"},
              {"id": "gvt", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4}]
    outcome = run(target, checks, timeout=3)
    results, forks, elapsed = outcome[0], outcome[2], outcome[3]
    status = {r["id"]: (r["status"], r["errno_name"]) for r in results}
    assert status == {"hang": ("error", "ETIMEDOUT"), "hang2": ("error", "ETIMEDOUT"), "gvt": ("compatible", None)}
    assert forks == 3
    assert elapsed < 3 + 3  # not one time limit after the other


def children():
    """Pids whose parent is this process, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                out.append(int(entry))
    return out


def test_a_worker_writes_with_the_module_output_left_behind(target):
    """A worker stuck in a store that even SIGKILL cannot end would otherwise keep the
    module's stdout open, and Ansible waiting for its end. Its stdin, stdout and stderr
    are /dev/null, seen from /proc while it hangs."""
    checks = [{"id": "hang", "mdev_type": "odd-hang", "version": "h-1"}]
    others, outcome, seen = set(children()), [], {}
    prober = threading.Thread(target=lambda: outcome.append(run(target, checks, timeout=3)))
    prober.start()
    try:
        deadline, workers = time.monotonic() + 2, set()
        while not workers and time.monotonic() < deadline:
            workers = set(children()) - others
            time.sleep(0.05)
        time.sleep(0.3)  # well into the hung write, which lasts 3 s
        for pid in workers:
            seen[pid] = [os.readlink("/proc/%d/fd/%d" % (pid, fd)) for fd in (0, 1, 2)]
    finally:
        prober.join()
    assert len(seen) == 1 and list(seen.values()) == [[os.devnull] * 3]
    assert [os.readlink("/proc/self/fd/%d" % fd) for fd in (0, 1, 2)] != [os.devnull] * 3  # the test's own are not
    assert [(r["status"], r["errno_name"]) for r in outcome[0][0]] == [("error", "ETIMEDOUT")]


def test_a_worker_killed_mid_write_is_eio_and_the_rest_go_on(target):
    """Not a time limit: the worker dies under a hung write (OOM killer, an operator)."""
    checks = [{"id": "hang", "mdev_type": "odd-hang", "version": "h-1"}] + nv_checks("k", 10)
    killed, others = [], set(children())  # the emulator is a child too

    def kill_the_worker():
        time.sleep(0.5)
        for pid in set(children()) - others:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    try:
        results, writes, forks, elapsed = run(target, checks, timeout=8, parallel=1)
    finally:
        killer.join()
    assert len(killed) == 1
    hung = [r for r in results if r["id"] == "hang"]
    assert [(r["status"], r["errno_name"], r["message"]) for r in hung] == [
        ("error", "EIO", "could not ask the target (EIO)")]
    assert_true_verdicts(target, results, checks, skip=("hang",))
    assert forks == 2 and elapsed < 8
    assert {w["pid"] for w in writes if w["data"] != "h-1\n"} - set(killed)  # written by the replacement


def test_the_module_through_ansible_writes_its_batch_from_one_process(target, tmp_path):
    inv = write_inventory(str(tmp_path / "hosts.json"), {"target": {
        "ansible_python_interpreter": os.environ["ANSIBLE_PYTHON_INTERPRETER"]}})
    checks = nv_checks("ansible", 50)
    before = len(target["emu"].writes())
    res = adhoc(inv, "vfio.migration.migration_probe",
                {"sysfs_root": target["root"], "allow_non_sysfs": True, "checks": checks})[0]["target"]
    writes = target["emu"].writes()[before:]
    assert len(res["results"]) == 100 and len(writes) == 100
    assert len({w["pid"] for w in writes}) == 1
    assert_true_verdicts(target, res["results"], checks)
