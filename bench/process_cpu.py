"""Where a run's CPU goes, by kind of process: the module runs, the workers per task, the main process.

    .venv/bin/python bench/process_cpu.py                     # dense shape, 100 hosts, forks 10
    .venv/bin/python bench/process_cpu.py --hosts 200 --json
    .venv/bin/python bench/process_cpu.py --pipelining            # both runs with ANSIBLE_PIPELINING=True
    .venv/bin/python bench/process_cpu.py --hosts 1000 --results  # and the main process's work per task

The floor (``bench/playbooks/floor.yml``: two pings per host) and
``vfio.migration.readiness`` (no reports) run one after the other on the same
emulated ``dense`` fleet (``bench/fleet.py``: two NVIDIA parents per host, 48
probe writes per target). Every Python process either run starts records its
own CPU time (user + system) when it exits, through a ``sitecustomize``
that only these runs load (``PYTHONPATH``): the ``ansible-playbook`` main
process, each forked worker (named by its task) and each module run on a
host (named by its ``AnsiballZ_<module>.py``, or with ``--pipelining``, where
the payload comes on stdin, by what it imported). A process a module forks
(the probe's writer) has a line of its own. The FUSE emulator, which stands
in for the hosts' kernels, is left out.

With ``--results``, ``ansible-playbook`` runs through a wrapper that also
times, in the main process and per task, what ansible-core does there with
each host's task: the variables it works out before queueing it
(``VariableManager.get_vars``), and the copy of each result it makes for the
callbacks (``as_callback_task_result``: a deep copy, internal keys stripped)
and converts for them (``CallbackTaskResult.result``). A ``run_once`` task's
share blocks the whole run: nothing else is queued meanwhile.

The per-run figures are per process: a ping's module process against a
``mdev_facts`` or ``migration_probe`` one, a ping task's worker against the
collection's, and the main process per host and module task. CPU time on a
shared machine moves with its load, so compare inside one invocation.
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import fleet as F  # noqa: E402
from bench import run as R  # noqa: E402

# Loaded by every Python the runs start (PYTHONPATH): one line per process at its exit.
SITECUSTOMIZE = r'''
import atexit, os, sys
_LOG = os.environ.get("BENCH_PROCESS_CPU_LOG")
if _LOG:
    _MAIN = os.getpid()

    def _module():
        """The module this process runs: its AnsiballZ file, or pipelined (the payload came on stdin) its imports."""
        if "AnsiballZ_" in " ".join(sys.argv):
            return os.path.basename(sys.argv[0])[len("AnsiballZ_"):-len(".py")]
        mods = sys.modules
        if "ansible.module_utils.basic" not in mods:
            return None
        ours = "ansible_collections.vfio.migration.plugins.module_utils."
        for name, part in (("migration_probe", "_probe"), ("mdev_facts", "_gather")):
            if ours + part in mods:
                return name
        return "ping" if "ansible.modules" in mods else None

    def _kind():
        argv = " ".join(sys.argv)
        if "ansible-playbook" not in argv:
            name = _module()
            if os.getpid() != _MAIN:  # forked by a module (the probe's writer): a line of its own
                return "other", "child of %s" % (name or "?")
            if name:
                return "module", name
            return "other", os.path.basename(sys.argv[0]) if sys.argv else "?"
        if os.getpid() == _MAIN:
            return "main", ""
        try:  # a forked worker: multiprocessing's current process is Ansible's WorkerProcess
            import multiprocessing
            task = multiprocessing.current_process()._task
            return "worker", task.get_name() or task.action
        except Exception:
            return "worker", "?"

    def _record():
        t = os.times()
        kind, name = _kind()
        try:
            with open(_LOG, "a") as f:
                f.write("%s\t%s\t%.4f\n" % (kind, name, t.user + t.system))
        except OSError:
            pass

    atexit.register(_record)
    _exit = os._exit

    def _exit_recorded(code):  # workers leave through os._exit, past atexit
        _record()
        _exit(code)

    os._exit = _exit_recorded
'''


# With --results: ansible-playbook itself, with the main process's work per task timed (written at exit, one JSON line).
WRAPPER = r'''#!%(python)s
import atexit, functools, json, os, sys, time
from ansible.executor import task_result as _tr
from ansible.vars import manager as _vm
_SPENT = {}


def _add(what, task, seconds):
    rec = _SPENT.setdefault(what, {}).setdefault(task.get_name() if task is not None else "", [0, 0.0])
    rec[0] += 1
    rec[1] += seconds


def _timed(what, func, task_of):
    @functools.wraps(func)
    def run(self, *args, **kwargs):
        t0 = time.process_time()
        try:
            return func(self, *args, **kwargs)
        finally:
            _add(what, task_of(self, kwargs), time.process_time() - t0)
    return run


_tr._RawTaskResult.as_callback_task_result = _timed(
    "callback copy", _tr._RawTaskResult.as_callback_task_result, lambda self, kw: self.task)
_native = functools.cached_property(_timed("callback convert", _tr.CallbackTaskResult.result.func,
                                           lambda self, kw: self.task))
_native.__set_name__(_tr.CallbackTaskResult, "result")
_tr.CallbackTaskResult.result = _native
_vm.VariableManager.get_vars = _timed("get_vars", _vm.VariableManager.get_vars, lambda self, kw: kw.get("task"))
_MAIN = os.getpid()


def _write():
    if os.getpid() == _MAIN:
        with open(os.environ["BENCH_MAIN_RESULTS"], "w") as f:
            json.dump(_SPENT, f)


atexit.register(_write)
from ansible.cli.playbook import main  # noqa: E402
sys.exit(main())
'''


def results_table(runs, top=8):
    """The main process's work per task (``--results``), the dearest first."""
    lines = ["", "Main process, per task: get_vars before queueing each host, and each result copied and converted "
             "for the callbacks (CPU s, hosts):", "", "| run | what | task | s | hosts | ms each |",
             "|---|---|---|---:|---:|---:|"]
    for label, run in runs.items():
        rows = [(rec[1], what, task, rec[0]) for what, tasks in (run.get("main_results") or {}).items()
                for task, rec in tasks.items()]
        for seconds, what, task, count in sorted(rows, reverse=True)[:top]:
            lines.append("| %s | %s | %s | %.2f | %d | %.2f |" % (label, what, task or "-", seconds, count,
                                                                  1000.0 * seconds / max(1, count)))
    return "\n".join(lines)


def summarize(path):
    """``{(kind, name): {"processes": n, "cpu": seconds}}`` from one run's log."""
    out = collections.defaultdict(lambda: {"processes": 0, "cpu": 0.0})
    with open(path) as f:
        for line in f:
            kind, name, cpu = line.rstrip("\n").split("\t")
            rec = out[(kind, name)]
            rec["processes"] += 1
            rec["cpu"] += float(cpu)
    return out


def per_process_ms(rows, kind, name_part):
    hits = [r for (k, n), r in rows.items() if k == kind and name_part in n]
    count = sum(r["processes"] for r in hits)
    return 1000.0 * sum(r["cpu"] for r in hits) / count if count else None


def measure(hosts, forks, work, pipelining=False, results=False):
    from tests.emulator.mount import EmulatorMount, fuse_unavailable
    why = fuse_unavailable()
    if why:
        raise SystemExit("this bench needs the FUSE sysfs emulator: %s" % why)
    src = R.fleet_dir("dense", os.path.join(R.BUILD, "shapes"))
    F.build(src, hosts, shape="dense")
    names = [F.host_name(i) for i in range(hosts)]
    mnt = os.path.join(work, "mnt")
    inv = F.write_inventory(os.path.join(work, "inventory.json"), names, mnt, R.PYTHON,
                            drain=names[:max(1, hosts // 50)])
    site = os.path.join(work, "site")
    os.makedirs(site, exist_ok=True)
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    env = R.ansible_env(forks, pipelining=pipelining)
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    env["PYTHONPATH"] = site
    playbook_bin = os.path.join(R.VENV_BIN, "ansible-playbook")
    if results:  # named ansible-playbook too: SITECUSTOMIZE tells the main process by that name
        playbook_bin = os.path.join(work, "wrapped", "ansible-playbook")
        os.makedirs(os.path.dirname(playbook_bin), exist_ok=True)
        with open(playbook_bin, "w") as f:
            f.write(WRAPPER % {"python": os.path.join(R.VENV_BIN, "python")})
        os.chmod(playbook_bin, 0o755)
    runs = {}
    with EmulatorMount(src, mnt, os.path.join(work, "writes.log"), timeout=300):
        for label, playbook, extra in (("floor", R.FLOOR, []),
                                       ("readiness", R.READINESS, ["-e", "vfio_migration_reports=false"])):
            log = os.path.join(work, "%s.log" % label)
            spent = os.path.join(work, "%s-main.json" % label)
            cmd = [playbook_bin, "-i", inv, playbook] + extra
            t0 = time.monotonic()
            proc = subprocess.run(cmd, env=dict(env, BENCH_PROCESS_CPU_LOG=log, BENCH_MAIN_RESULTS=spent),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit("%s failed (rc=%s): %s" % (label, proc.returncode, proc.stderr[-2000:]))
            runs[label] = {"wall": round(time.monotonic() - t0, 1), "rows": summarize(log)}
            if results:
                with open(spent) as f:
                    runs[label]["main_results"] = json.load(f)
    return runs


def report(runs, hosts, forks, pipelining=False):
    floor, ready = runs["floor"]["rows"], runs["readiness"]["rows"]
    main_floor = floor[("main", "")]["cpu"]
    main_ready = ready[("main", "")]["cpu"]
    ping = per_process_ms(floor, "module", "ping")
    lines = ["%d hosts, forks %d%s: floor %.1f s, readiness %.1f s (wall, this run)" % (
        hosts, forks, ", pipelining" if pipelining else "", runs["floor"]["wall"], runs["readiness"]["wall"]), "",
        "| process | count | CPU ms each | over the ping's |", "|---|---:|---:|---:|"]
    rows = [("module: ping", floor, "module", "ping"),
            ("module: mdev_facts", ready, "module", "mdev_facts"),
            ("module: migration_probe", ready, "module", "migration_probe"),
            ("worker: a ping task", floor, "worker", "no-op"),
            ("worker: gathering", ready, "worker", "Gather"),
            ("worker: the probe", ready, "worker", "Ask each target")]
    worker_ping = per_process_ms(floor, "worker", "no-op")
    for label, data, kind, part in rows:
        ms = per_process_ms(data, kind, part)
        count = sum(r["processes"] for (k, n), r in data.items() if k == kind and part in n)
        base = ping if kind == "module" else worker_ping
        lines.append("| %s | %d | %.1f | %+.1f |" % (label, count, ms or 0, (ms or 0) - (base or 0)))
    lines += ["", "Main process: floor %.2f s, readiness %.2f s CPU; %+.1f ms per host and module task "
              "(two per host in each run)." % (main_floor, main_ready, 1000.0 * (main_ready - main_floor) / (2 * hosts))]
    once = sorted(((n, r["cpu"]) for (k, n), r in ready.items() if k == "worker" and r["processes"] == 1),
                  key=lambda x: -x[1])
    lines += ["Run-once workers of the readiness run: " + ", ".join("%s %.2f s" % (n, c) for n, c in once[:6])]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--pipelining", action="store_true", help="ANSIBLE_PIPELINING=True for both runs")
    ap.add_argument("--results", action="store_true",
                    help="also time the main process's get_vars and result copies for the callbacks, per task")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="process-cpu-", dir=R.BUILD if os.path.isdir(R.BUILD) else None)
    try:
        runs = measure(args.hosts, args.forks, work, pipelining=args.pipelining, results=args.results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({label: {"wall": r["wall"], "main_results": r.get("main_results"), "processes": [
            {"kind": k, "name": n, "processes": v["processes"], "cpu": round(v["cpu"], 3)}
            for (k, n), v in sorted(r["rows"].items())]} for label, r in runs.items()}, indent=1))
    else:
        print(report(runs, args.hosts, args.forks, args.pipelining) + (results_table(runs) if args.results else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
