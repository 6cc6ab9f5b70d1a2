"""vfio.migration benchmarks: the readiness run against Ansible's own floor.

    .venv/bin/python bench/run.py                      # every part, sizes 50,200,1000
    .venv/bin/python bench/run.py --sizes 50,200 --parts fleet
    .venv/bin/python bench/run.py --quick              # small sizes, a minute or two

Parts (``--parts``, comma separated; default all):

``fleet``       ``vfio.migration.readiness`` over N emulated hosts (one FUSE emulator
                serving every host tree) against the floor (``ansible.builtin.ping``
                twice) on the same inventory and forks: wall and CPU time, ratio,
                per-host cost, wall time per task. Also counts module invocations per
                host (``bench/callback_plugins/bench_count.py``) and proves the probe
                economy from the emulator's write log.
``controller``  ``probe_batches`` + ``compat_matrix`` + ``migration_targets`` +
                ``drain_plan`` on synthetic fleets (``bench/controller.py``).
``discovery``   ``gather()`` against ``mdevctl types`` + ``mdevctl list`` on one big
                tree (``bench/discovery.py``).

Everything is measured as ratios taken in the same run on the same machine.
Results go to ``build/bench/results.json`` (``--out``) and, as Markdown
tables, to stdout.
"""

import argparse
import collections
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import fleet as F  # noqa: E402
from demo.run_demo import collection_path  # noqa: E402

BUILD = os.path.join(REPO, "build", "bench")
PYTHON = sys.executable
VENV_BIN = os.path.dirname(sys.executable)
FLOOR = os.path.join(HERE, "playbooks", "floor.yml")
READINESS = "vfio.migration.readiness"


# -- helpers -------------------------------------------------------------------

def ansible_env(forks, pipelining=False, extra=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collection_path(),
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_count",
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_PIPELINING": "1" if pipelining else "0",
    })
    env.update(extra or {})
    return env


def proc_cpu(pid):
    """User + system CPU seconds of a running process (the emulator)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _hwm_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def _emulators_cpu(pids):
    if not pids:
        return None
    got = [proc_cpu(pid) for pid in (pids if isinstance(pids, (list, tuple)) else [pids])]
    return None if None in got else sum(got)


def timed(cmd, env=None, cwd=REPO, log=None, emulator_pid=None):
    """Run ``cmd``; return wall seconds, CPU seconds of it and its children, the peak
    RSS of its main process (the Ansible controller), the emulators' CPU (``emulator_pid``:
    one pid or a list), exit code."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    e0 = _emulators_cpu(emulator_pid)
    t0 = time.monotonic()
    hwm = None
    with open(log or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                rc = proc.wait(0.25)
                break
            except subprocess.TimeoutExpired:
                hwm = _hwm_mib(proc.pid) or hwm
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    e1 = _emulators_cpu(emulator_pid)
    return {"wall": round(wall, 3), "cpu": round((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), 3),
            "controller_peak_rss_mib": round(hwm, 1) if hwm else None,
            "emulator_cpu": round(e1 - e0, 3) if e0 is not None and e1 is not None else None, "rc": rc}


def _rel(text):
    """Paths inside the checkout as the README writes them: relative to its top."""
    return text.replace(REPO + os.sep, "")


def shell_line(cmd, env_keys, env):
    """The command as one shell line to run from the top of the checkout."""
    return " ".join(["%s=%s" % (k, shlex.quote(_rel(env[k]))) for k in env_keys] + [shlex.quote(_rel(c)) for c in cmd])


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


# -- probe economy from the write log ----------------------------------------------

def _rules(hostdir):
    with open(os.path.join(hostdir, "rules.json")) as f:
        return json.load(f)["attributes"]


def _readable(spec):
    inner = spec.get("inner", spec)
    return spec["rule"] != "read_enodev" and not inner.get("unsupported") and "self" in inner


def _pci_type(sysdir, devrel):
    ids = []
    for key in ("vendor", "device"):
        with open(os.path.join(sysdir, devrel, key)) as f:
            ids.append(f.read().strip().lower().replace("0x", "").zfill(4))
    return "pci-%s:%s" % tuple(ids)


def host_attributes(hostdir):
    """From a host's rules.json and tree, independently of the collection's code:
    ``{"offers": {type: [(parent, readable)]}, "classes": {(type, version)}}``."""
    sysdir = os.path.join(hostdir, "sys")
    offers, classes = collections.defaultdict(list), set()
    for rel, spec in _rules(hostdir).items():
        parts = rel.split("/")
        if len(parts) >= 3 and parts[-3] == "mdev_supported_types":
            mdev_type, parent = parts[-2], parts[-4]
        elif len(parts) >= 2 and parts[-1] == "migration_version" and \
                os.path.exists(os.path.join(sysdir, *parts[:-1], "vendor")):
            mdev_type, parent = _pci_type(sysdir, "/".join(parts[:-1])), parts[-2]
        else:
            continue  # instance-level attribute (same version as its type in this fleet)
        readable = _readable(spec)
        offers[mdev_type].append((parent, readable))
        if readable:
            classes.add((mdev_type, spec.get("inner", spec)["self"]))
    # types without any attribute are offered too (mtty): they form no class and take no write
    return {"offers": dict(offers), "classes": classes}


def probe_economy(hostdirs, writes):
    """Check the write log against the expected classes per target.

    Expected per target: every (type, version) class with a source other than the
    target itself, whose type the target offers; one write per class and parent
    whose attribute reads (the probe asks nothing of a target that says it cannot
    migrate). Returns a summary and per-host rows.
    """
    attrs = {h: host_attributes(d) for h, d in hostdirs.items()}
    sources = collections.defaultdict(set)
    for h, a in attrs.items():
        for c in a["classes"]:
            sources[c].add(h)
    by_host = collections.defaultdict(list)
    for w in writes:
        by_host[w["path"].split("/", 1)[0]].append(w)
    rows, ok = {}, True
    for h, a in sorted(attrs.items()):
        expected = {c for c in sources if c[0] in a["offers"] and sources[c] != {h}}
        expected_writes = sum(sum(1 for dummy, readable in a["offers"][t] if readable) for t, dummy2 in expected)
        ws = by_host.get(h, [])
        seen = set()
        for w in ws:
            parts = w["path"].split("/")
            t = parts[-2] if parts[-3] == "mdev_supported_types" else \
                _pci_type(os.path.join(hostdirs[h], "sys"), "/".join(parts[2:-1]))
            seen.add((t, w["data"].rstrip("\n")))
        readable_expected = {c for c in expected if any(r for dummy, r in a["offers"][c[0]])}
        # what asking once per source host (instead of once per class) would write
        naive = sum(len(sources[c] - {h}) * sum(1 for dummy, r in a["offers"][c[0]] if r) for c in expected)
        row = {"writes": len(ws), "expected_writes": expected_writes, "classes": len(readable_expected),
               "distinct_written": len(seen), "per_source_host_writes": naive,
               "match": len(ws) == expected_writes and seen == readable_expected}
        ok = ok and row["match"]
        rows[h] = row
    total = {k: sum(r[k] for r in rows.values()) for k in ("writes", "expected_writes", "per_source_host_writes")}
    return {"ok": ok, "classes_in_fleet": len(sources), "hosts": len(rows),
            "targets_written": sum(1 for r in rows.values() if r["writes"]),
            "max_writes_per_target": max((r["writes"] for r in rows.values()), default=0),
            "max_classes_per_target": max((r["classes"] for r in rows.values()), default=0),
            "total": total, "mismatches": {h: r for h, r in rows.items() if not r["match"]}, "rows": rows}


def invocation_summary(count_doc, hosts):
    per = {h: sum((count_doc["modules"].get(h) or {}).values()) for h in hosts}
    hist = collections.Counter(per.values())
    actions = collections.Counter()
    for h in hosts:
        actions.update(count_doc["modules"].get(h) or {})
    return {"max": max(per.values()) if per else 0, "mean": round(sum(per.values()) / max(1, len(per)), 3),
            "histogram": {str(k): v for k, v in sorted(hist.items())}, "by_action": dict(actions),
            "delegated": count_doc.get("delegated", {})}


# -- part 1 + 2: the fleet run ------------------------------------------------------

def task_seconds(tasks):
    """The module tasks a ratio compares: the floor's two pings, the readiness run's gather and probe.

    Each is the task's wall time over the whole play (every host, ``forks`` at a time).
    """
    out = {}
    pings = [t for t in tasks if t["action"] in ("ansible.builtin.ping", "ping")]
    named = [("ping_first", pings[0]), ("ping_second", pings[-1])] if pings else []
    for t in tasks:
        if t["action"] == "vfio.migration.mdev_facts":
            named.append(("gather", t))
        elif t["action"] == "vfio.migration.migration_probe":
            named.append(("probe", t))
    for key, t in named:
        out[key], out[key + "_cpu"] = t["seconds"], t.get("cpu")
        # without the FUSE emulator's share: what a kernel's sysfs would nearly cost
        out[key + "_cpu_host"] = round(t["cpu"] - t.get("emulator_cpu", 0), 4) if t.get("cpu") is not None else None
    return out


ALTERNATE_HEAD = """---
# Written by bench/run.py (alternate_playbook): the gathering and probe tasks against a ping,
# taken turn about in one play, so a load that comes and goes on the machine falls on all alike.
- name: Bench - gathering, probe and a ping, taken turn about
  hosts: all
  gather_facts: false
  tasks:
    - name: Gather the facts the batches are made from
      ansible.builtin.import_role:
        name: vfio.migration.facts
"""
ALTERNATE_PAIR = """
    - name: Ping, turn {k}
      ansible.builtin.ping:

    - name: The facts role again, turn {k}
      ansible.builtin.import_role:
        name: vfio.migration.facts

    - name: The matrix role's probe step, turn {k}
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: probe
"""
ALTERNATE_ECHO = """
    - name: The probe's batch in and stored probe results out, nothing done, turn {k}
      bench_probe_echo:
        batches_var: vfio_migration_batches
        results_file: {results}
      register: bench_echo_result
      ignore_unreachable: true
      failed_when: false
"""
LIBRARY = os.path.join(HERE, "library")
# the echo module's action: the probe's, so the batch reaches both the same way
ECHO_ACTIONS = os.path.join(HERE, "action_plugins")


def ab_probe_task(k):
    """The matrix role's own probe task (``roles/matrix/tasks/probe.yml``) with another revision's probe
    (``bench_probe_ab``, ``bench/snapshot.py: probe_at``) in it: the same arguments, templates and
    keywords, so an A/B turn differs from the probe step in the code on the host alone."""
    import yaml  # pylint: disable=import-outside-toplevel
    with open(os.path.join(REPO, "roles", "matrix", "tasks", "probe.yml")) as f:
        task = [t for t in yaml.safe_load(f) if "vfio.migration.migration_probe" in t][0]
    ab = {"name": "The probe of another revision, turn %d" % k,
          "bench_probe_ab": task["vfio.migration.migration_probe"], "register": "bench_ab_result"}
    ab.update((key, value) for key, value in task.items()
              if key not in ("name", "vfio.migration.migration_probe", "register"))
    return "\n" + textwrap.indent(yaml.safe_dump([ab], sort_keys=False, width=1000), "    ")


def alternate_playbook(path, turns, echo_results=None, ab=False):
    """A play that gathers once, then runs a ping, the facts role and the matrix role's own probe step
    ``turns`` times each, in turn; with ``echo_results`` (a file of probe results) also, after each probe,
    ``bench/library/bench_probe_echo.py`` with the same batch, returning those results. With ``ab``,
    each turn also runs ``bench_probe_ab`` (another revision's probe), after the probe step in odd
    turns and before it in even ones."""
    with open(path, "w") as f:
        f.write(ALTERNATE_HEAD)
        for k in range(turns):
            pair = ALTERNATE_PAIR.format(k=k + 1)
            if ab:
                step = pair.index("\n    - name: The matrix role's probe step")
                ab_turn = ab_probe_task(k + 1)
                pair = pair + ab_turn if k % 2 == 0 else pair[:step] + ab_turn + pair[step:]
            f.write(pair)
            if echo_results:
                f.write(ALTERNATE_ECHO.format(k=k + 1, results=json.dumps(echo_results)))
    return path


def _dense_checks():
    """The batch every target of a dense fleet gets (four types at six versions)."""
    return [{"id": "nvidia-%s-%d.%d" % (t, major, minor), "mdev_type": "nvidia-%s" % t,
             "version": "000210de-nvidia-%s-%d.%d" % (t, major, minor)}
            for (major, minor) in F.DENSE_VERSIONS for t in ("256", "257", "258", "259")]


def stored_probe_results(hostdir_sys, checks, path):
    """Run the probe core once on one host's tree with ``checks``; keep its results in ``path``.

    The results are compact, the form the matrix role asks for.
    """
    from bench import importable
    importable()
    from ansible_collections.vfio.migration.plugins.module_utils._probe import Prober  # pylint: disable=import-outside-toplevel
    results = Prober(hostdir_sys, allow_non_sysfs=True, timeout=5).run(checks, compact=True)
    with open(path, "w") as f:
        json.dump(results, f)
    return path


def alternate_summary(tasks):
    """Median wall and CPU of the pings, gathering and probe tasks of one alternating run, and the ratios.

    The first gathering (before the turns) opens the connections and is left out.
    """
    pings = [t for t in tasks if t["action"] in ("ansible.builtin.ping", "ping")]
    probes = [t for t in tasks if t["action"] == "vfio.migration.migration_probe"]
    gathers = [t for t in tasks if t["action"] == "vfio.migration.mdev_facts"][1:]
    echoes = [t for t in tasks if t["action"].endswith("bench_probe_echo")]
    abs_ = [t for t in tasks if t["action"].endswith("bench_probe_ab")]
    out = {"turns": len(probes)}
    for key, field in (("wall", "seconds"), ("cpu", "cpu"), ("cpu_host", None)):
        def value(t):
            return t["cpu"] - t.get("emulator_cpu", 0) if field is None else t[field]
        ping = median([value(t) for t in pings])
        out["ping_" + key] = round(ping, 3)
        for name, got in (("probe", probes), ("gather", gathers), ("echo", echoes), ("ab", abs_)):
            if got:
                mid = median([value(t) for t in got])
                out["%s_%s" % (name, key)] = round(mid, 3)
                out["%s_per_ping_%s" % (name, key)] = round(mid / ping, 3) if ping else None
        if abs_ and probes:
            # the other revision's probe against this checkout's, turn by turn
            out["probe_per_ab_" + key] = round(median([value(p) / value(a) for p, a in zip(probes, abs_)]), 3)
    # each turn's own ratio (the ratios above divide medians, which may come from different turns)
    out["pairs_wall"] = [round(q["seconds"] / p["seconds"], 3) for p, q in zip(pings, probes)]
    out["gather_pairs_wall"] = [round(g["seconds"] / p["seconds"], 3) for p, g in zip(pings, gathers)]
    if abs_:
        out["ab_pairs_wall"] = [round(p["seconds"] / a["seconds"], 3) for p, a in zip(probes, abs_)]
    return out


def ab_unwritten(writes, runs):
    """``(hosts written to, hosts not written ``runs`` whole batches)`` in an emulator write log.

    Each probe run writes its host's batch from one writer process, so a host's batch is the most
    common count of writes by one process on it (a pid the kernel gave out twice counts double,
    once). Every host written to must have had ``runs`` times that many writes.
    """
    per_host = {}
    for w in writes:
        per_pid = per_host.setdefault(w["path"].split("/", 1)[0], {})
        per_pid[w["pid"]] = per_pid.get(w["pid"], 0) + 1
    short = []
    for host, per_pid in sorted(per_host.items()):
        counts = list(per_pid.values())
        batch = max(set(counts), key=lambda c: (counts.count(c), -c))  # a tie: the smaller (a pid twice is double)
        if sum(counts) != runs * batch:
            short.append(host)
    return len(per_host), short


def fleet_dir(shape, base=BUILD):
    """Where the trees of a shape are built (and kept for the next run)."""
    return os.path.join(base, "fleet" if shape == "mix" else "fleet-%s" % shape)


def fleet_part(sizes, forks, reports, repeat, pipelining=False, workdir=BUILD, count_sizes=None,
               extra_env=None, log=print, reports_max=None, compare_collections=None, shape="mix",
               trees=None, ssh=None, alternate=0, emulators=1, echo=False, timed_runs=True, ab_probe=None,
               emulator_nice=0):
    """Build the fleet once (max size), mount it once, and for each size run the floor and the
    readiness run (without and with reports) ``repeat`` times, interleaved; then a counting run.

    ``shape`` is a ``bench/fleet.py`` shape (``mix``, ``dense``), its trees kept in ``trees``
    (default ``fleet_dir(shape, workdir)``). ``ssh``, a started ``bench.sshd.LoopbackSshd``,
    puts every host behind one of its sshd endpoints instead of ``ansible_connection: local``.
    ``alternate``: after the timed runs, one more run of ``alternate`` pings and probe tasks taken
    turn about (``alternate_playbook``), for a task ratio that load changes on the machine do not tilt.
    ``emulators``: FUSE emulator processes, each serving the whole fleet at its own mount point;
    host ``i`` reads and writes through emulator ``i % emulators`` (one user-space process
    answering every host is a shared queue no real fleet has: each host has its own kernel).
    ``emulator_nice``: the emulators' niceness change (negative: a FUSE request is served before
    the module processes' next turn, as a kernel serves a sysfs store in the writer's own time).
    ``echo`` (dense shape): the alternating run also takes ``bench_probe_echo`` turns (``alternate_playbook``).
    ``timed_runs=False`` leaves out the floor and readiness runs (the alternating run alone).
    ``ab_probe`` (a git revision): the alternating run also takes turns of that revision's probe,
    its module and ``module_utils`` (``bench/snapshot.py: probe_at``), for an A/B of the probe in one play.
    """
    import contextlib
    from tests.emulator.mount import EmulatorMount, fuse_unavailable, read_write_log
    why = fuse_unavailable()
    if why:
        raise SystemExit("the fleet bench needs the FUSE sysfs emulator: %s" % why)
    src, mnt = trees or fleet_dir(shape, workdir), os.path.join(workdir, "mnt")
    logs = os.path.join(workdir, "logs")
    os.makedirs(logs, exist_ok=True)
    t0 = time.monotonic()
    hostdirs = F.build(src, max(sizes), shape=shape)
    build_seconds = time.monotonic() - t0
    writelogs = [os.path.join(workdir, "writes.log" if k == 0 else "writes-%d.log" % k) for k in range(emulators)]
    for writelog in writelogs:
        if os.path.exists(writelog):
            os.unlink(writelog)

    def log_sizes():
        return [len(read_write_log(w)) for w in writelogs]

    def writes_since(sizes):
        return [w for path, size in zip(writelogs, sizes) for w in read_write_log(path)[size:]]

    env = ansible_env(forks, pipelining, extra_env)
    env_keys = ["ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_FORKS",
                "ANSIBLE_PIPELINING"] + (["ANSIBLE_SSH_CONTROL_PATH_DIR"] if ssh else []) + sorted(extra_env or {})
    playbook = os.path.join(VENV_BIN, "ansible-playbook")
    count_sizes = set(sizes[:1] if count_sizes is None else count_sizes)
    out = {"forks": forks, "pipelining": pipelining, "extra_env": extra_env or {}, "shape": shape, "emulators": emulators,
           "emulator_nice": emulator_nice,
           "connection": "ssh" if ssh else "local", "tree_build_seconds": round(build_seconds, 1), "sizes": []}
    if ssh:
        out["ssh_endpoints"] = len(ssh.ports)
        cpbase = os.path.join(workdir, "cp")
    modes = [("readiness", False)] + ([("readiness+reports", True)] if reports else [])
    if compare_collections:
        # the same readiness run with another copy of the collection (e.g. before a change)
        modes.append(("readiness@compare", False))

    def command(label, inv, n, with_reports):
        cmd = [playbook, "-i", inv, FLOOR if label == "floor" else READINESS]
        if label != "floor":
            cmd += ["-e", "vfio_migration_reports=%s" % ("true" if with_reports else "false"),
                    "-e", "vfio_migration_report_dir=%s" % os.path.join(workdir, "reports-%d" % n)]
        return cmd

    with contextlib.ExitStack() as stack:
        emus = [stack.enter_context(EmulatorMount(src, mnt if k == 0 else "%s-%d" % (mnt, k), writelogs[k], timeout=300,
                                                  nice=emulator_nice))
                for k in range(emulators)]
        pid = [emu.proc.pid for emu in emus]
        mounts = [emu.mountpoint for emu in emus]
        for n in sizes:
            names = [F.host_name(i) for i in range(n)]
            index = {h: i for i, h in enumerate(names)}
            inv = F.write_inventory(os.path.join(workdir, "inventory-%d.json" % n), names,
                                    lambda h: mounts[index[h] % len(mounts)], PYTHON,
                                    drain=names[:max(1, n // 50)],
                                    extra_vars=ssh.group_vars() if ssh else None,
                                    host_vars=ssh.host_vars(index.get) if ssh else None)
            built = F.kinds(src)
            rec = {"hosts": n, "runs": {}, "vms": sum(built[h].get("vms", 0) for h in names)}
            size_modes = [m for m in modes if not (m[1] and reports_max is not None and n > reports_max)]
            for r in range(repeat if timed_runs else 0):
                for label, with_reports in [("floor", None)] + size_modes:
                    cmd = command(label, inv, n, with_reports)
                    tasks_out = os.path.join(logs, "tasks-%s-%d-%d.json" % (label, n, r))
                    e = dict(env, ANSIBLE_CALLBACKS_ENABLED="bench_tasks", BENCH_TASKS_OUT=tasks_out,
                             BENCH_EMULATOR_PID=",".join(str(p) for p in pid))
                    if label == "readiness@compare":
                        e["ANSIBLE_COLLECTIONS_PATH"] = os.path.abspath(compare_collections)
                    if ssh:  # no run starts on the connections of the one before
                        e["ANSIBLE_SSH_CONTROL_PATH_DIR"] = ssh.control_dir(cpbase, "%s-%d-%d" % (
                            label.replace("+", "-").replace("@", "-"), n, r))
                    before = log_sizes()
                    logfile = os.path.join(logs, "%s-%d-%d.log" % (label, n, r))
                    server0 = ssh.server_cpu() if ssh else None
                    try:
                        res = timed(cmd, e, log=logfile, emulator_pid=pid)
                    finally:
                        if ssh:
                            masters = ssh.close_masters(e["ANSIBLE_SSH_CONTROL_PATH_DIR"])
                            ssh.settle()
                    # every CPU second the run caused: Ansible and its children, the emulator, and under
                    # ssh the client masters and the sshd sessions (which run the modules)
                    res["cpu_all"] = round(res["cpu"] + (res["emulator_cpu"] or 0), 3)
                    if ssh:
                        res["ssh_masters_cpu"], res["sshd_cpu"] = masters, round(ssh.server_cpu() - server0, 3)
                        res["cpu_all"] = round(res["cpu_all"] + masters + res["sshd_cpu"], 3)
                    if res["rc"] != 0:
                        raise SystemExit("%s over %d hosts failed (rc=%s): see %s" % (label, n, res["rc"], logfile))
                    with open(tasks_out) as f:
                        res["tasks"] = json.load(f)["tasks"]
                    res["task_seconds"] = task_seconds(res["tasks"])
                    res["command"] = shell_line(cmd, env_keys, e)
                    if label != "floor":
                        econ = probe_economy({h: hostdirs[h] for h in names}, writes_since(before))
                        econ["rows"] = {h: econ["rows"][h] for h in names[:10]}
                        res["probe_economy"] = econ
                        if with_reports:
                            rdir = os.path.join(workdir, "reports-%d" % n)
                            res["report_bytes"] = {f: os.path.getsize(os.path.join(rdir, f))
                                                   for f in sorted(os.listdir(rdir))}
                    rec["runs"].setdefault(label, []).append(res)
                    log("  N=%d %s run %d: %.1fs wall, %.1fs CPU, controller peak RSS %s MiB" % (
                        n, label, r + 1, res["wall"], res["cpu"], res["controller_peak_rss_mib"]))
            if timed_runs:
                for label, runs in rec["runs"].items():
                    rec[label] = {"wall": round(median([x["wall"] for x in runs]), 3),
                                  "cpu": round(median([x["cpu"] for x in runs]), 3),
                                  "cpu_all": round(median([x["cpu_all"] for x in runs]), 3)}
                floor = rec["floor"]
                for label, dummy in size_modes:
                    rec[label]["ratio_wall"] = round(rec[label]["wall"] / floor["wall"], 3)
                    # each interleaved pair's own ratio: how far one floor-and-readiness pair alone may be trusted
                    rec[label]["pairs_wall"] = [round(x["wall"] / f["wall"], 3)
                                                for f, x in zip(rec["runs"]["floor"], rec["runs"][label])]
                    rec[label]["ratio_cpu"] = round(rec[label]["cpu"] / floor["cpu"], 3) if floor["cpu"] else None
                    rec[label]["ratio_cpu_all"] = round(rec[label]["cpu_all"] / floor["cpu_all"], 3) \
                        if floor["cpu_all"] else None
                    rec[label]["per_host_ms"] = round(1000.0 * rec[label]["wall"] / n, 2)
                floor["per_host_ms"] = round(1000.0 * floor["wall"] / n, 2)
                pings = [x["task_seconds"] for x in rec["runs"]["floor"]]
                for key in ("ping_first", "ping_second", "ping_first_cpu", "ping_second_cpu", "ping_first_cpu_host",
                            "ping_second_cpu_host"):
                    floor[key] = round(median([p[key] for p in pings]), 3)
                for label, dummy in size_modes:
                    got = [x["task_seconds"] for x in rec["runs"][label]]
                    for task, ping in (("gather", "ping_first"), ("probe", "ping_second")):
                        if all(task in g for g in got):
                            # the readiness run's first module task against the floor's first, second against second
                            for suffix in ("", "_cpu", "_cpu_host"):
                                rec[label][task + suffix] = round(median([g[task + suffix] for g in got]), 3)
                                rec[label]["%s_per_ping%s" % (task, suffix)] = round(
                                    rec[label][task + suffix] / floor[ping + suffix], 3) if floor[ping + suffix] else None
            if alternate:
                stored = None
                if echo:
                    stored = stored_probe_results(os.path.join(mounts[0], names[0], "sys"), _dense_checks(),
                                                  os.path.join(workdir, "echo-results.json"))
                cmd = [playbook, "-i", inv, alternate_playbook(os.path.join(workdir, "alternate.yml"), alternate, stored,
                                                               ab=bool(ab_probe))]
                tasks_out = os.path.join(logs, "tasks-alternate-%d.json" % n)
                e = dict(env, ANSIBLE_CALLBACKS_ENABLED="bench_tasks", BENCH_TASKS_OUT=tasks_out,
                         BENCH_EMULATOR_PID=",".join(str(p) for p in pid))
                if echo or ab_probe:
                    e.update(ANSIBLE_LIBRARY=LIBRARY, ANSIBLE_ACTION_PLUGINS=ECHO_ACTIONS)
                if ab_probe:
                    from bench.snapshot import probe_at  # pylint: disable=import-outside-toplevel
                    other = probe_at(os.path.join(workdir, "ab-probe"), ab_probe)
                    e["ANSIBLE_COLLECTIONS_PATH"] = "%s:%s" % (e["ANSIBLE_COLLECTIONS_PATH"], other)
                    e["ANSIBLE_LIBRARY"] = "%s:%s" % (LIBRARY, os.path.join(other, "library"))
                if ssh:
                    e["ANSIBLE_SSH_CONTROL_PATH_DIR"] = ssh.control_dir(cpbase, "alternate-%d" % n)
                logfile = os.path.join(logs, "alternate-%d.log" % n)
                before = log_sizes()
                try:
                    res = timed(cmd, e, log=logfile, emulator_pid=pid)
                finally:
                    if ssh:
                        ssh.close_masters(e["ANSIBLE_SSH_CONTROL_PATH_DIR"])
                        ssh.settle()
                if res["rc"] != 0:
                    raise SystemExit("alternating run over %d hosts failed (rc=%s): see %s" % (n, res["rc"], logfile))
                with open(tasks_out) as f:
                    res["tasks"] = json.load(f)["tasks"]
                res.update(alternate_summary(res["tasks"]), command=shell_line(cmd, env_keys, e))
                if ab_probe:
                    # a probe that fails on the host is quick, and its time says nothing
                    written, short = ab_unwritten(writes_since(before), 2 * alternate)
                    if not written or short:
                        raise SystemExit("alternating run over %d hosts: not both probes wrote in every turn on %s; "
                                         "see %s" % (n, ", ".join(short[:5]) or "any host", logfile))
                    res["ab_hosts_written"] = written
                rec["alternate"] = res
                if echo or ab_probe:
                    res["command"] = "ANSIBLE_LIBRARY=%s ANSIBLE_ACTION_PLUGINS=%s %s" % (
                        _rel(e["ANSIBLE_LIBRARY"]), _rel(ECHO_ACTIONS), res["command"])
                if ab_probe:
                    res["ab_probe"] = ab_probe
                    res["command"] += "  # after bench/snapshot.py's probe_at(%s, %s)" % (
                        _rel(os.path.join(workdir, "ab-probe")), ab_probe)
                log("  N=%d alternating: probe / ping %.2f wall, %.2f CPU over %d turns" % (
                    n, res["probe_per_ping_wall"], res["probe_per_ping_cpu"], res["turns"]))
            if n in count_sizes:
                # counting runs: bench_count copies every result, so they are not timed
                rec["count"] = {}
                for label in ("floor", "readiness"):
                    count_out = os.path.join(logs, "count-%s-%d.json" % (label, n))
                    e = dict(env, ANSIBLE_CALLBACKS_ENABLED="bench_count", BENCH_COUNT_OUT=count_out)
                    if ssh:
                        e["ANSIBLE_SSH_CONTROL_PATH_DIR"] = ssh.control_dir(cpbase, "count-%s-%d" % (label, n))
                    cmd = command(label, inv, n, False)
                    before = log_sizes()
                    try:
                        res = timed(cmd, e, log=os.path.join(logs, "count-%s-%d.log" % (label, n)), emulator_pid=pid)
                    finally:
                        if ssh:
                            ssh.close_masters(e["ANSIBLE_SSH_CONTROL_PATH_DIR"])
                    if res["rc"] != 0:
                        raise SystemExit("counting run %s over %d hosts failed" % (label, n))
                    with open(count_out) as f:
                        rec["count"][label] = invocation_summary(json.load(f), names)
                    rec["count"][label]["command"] = shell_line(cmd, env_keys, e)
                    if label == "readiness":
                        econ = probe_economy({h: hostdirs[h] for h in names}, writes_since(before))
                        rec["count"][label]["probe_economy_ok"] = econ["ok"]
            out["sizes"].append(rec)
            if timed_runs:
                log(fleet_row(rec))
    return out


def fleet_row(rec):
    parts = ["N=%d floor %.1fs" % (rec["hosts"], rec["floor"]["wall"])]
    for label in ("readiness", "readiness+reports", "readiness@compare"):
        if label in rec:
            r = rec[label]
            parts.append("%s %.1fs (x%.2f wall, x%.2f cpu)" % (label, r["wall"], r["ratio_wall"], r["ratio_cpu"] or 0))
    return "; ".join(parts)


# -- markdown ----------------------------------------------------------------------

def _slope(recs, label, key="wall"):
    """Marginal seconds per host between consecutive sizes."""
    out = []
    for a, b in zip(recs, recs[1:]):
        if label in a and label in b:
            per_host = (b[label][key] - a[label][key]) / (b["hosts"] - a["hosts"])
            out.append("%d->%d: %.0f ms" % (a["hosts"], b["hosts"], 1000.0 * per_host))
    return ", ".join(out)


def markdown(results):
    lines = []
    m = results.get("machine", {})
    lines.append("Machine: %s, %s CPUs (shared), Python %s, load before %s, sum(range(1000)) %s us" % (
        m.get("platform"), m.get("cpus"), m.get("python"), m.get("loadavg"), m.get("sum_range_1000_us")))
    lines.append("")
    fl = results.get("fleet")
    if not fl:
        return "\n".join(lines)
    recs = fl["sizes"]
    lines.append("forks=%s pipelining=%s %s" % (fl["forks"], fl["pipelining"], fl.get("extra_env") or ""))
    lines += ["", "| hosts | run | wall s | CPU s | wall / floor | CPU / floor | wall ms/host | "
                  "controller peak RSS MiB |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for rec in recs:
        for label, runs in rec["runs"].items():
            r = rec[label]
            lines.append("| %d | %s | %.1f | %.1f | %s | %s | %.0f | %s |" % (
                rec["hosts"], label, r["wall"], r["cpu"], "%.2f" % r["ratio_wall"] if "ratio_wall" in r else "1",
                "%.2f" % r["ratio_cpu"] if r.get("ratio_cpu") else "1", 1000.0 * r["wall"] / rec["hosts"],
                max(x["controller_peak_rss_mib"] or 0 for x in runs)))
    lines += ["", "Marginal cost per added host: floor %s; readiness %s" % (
        _slope(recs, "floor"), _slope(recs, "readiness")), ""]
    big = recs[-1]
    for label in ("floor", "readiness"):
        tasks = big["runs"][label][0]["tasks"]
        total = big["runs"][label][0]["wall"]
        lines += ["", "Wall time per task, %s, %d hosts (%.0f s in all; the rest is start-up and play set-up):"
                  % (label, big["hosts"], total), "",
                  "| task | s | share | ms per host |", "|---|---:|---:|---:|"]
        for t in tasks:
            lines.append("| %s | %.1f | %.0f %% | %.1f |" % (
                t["name"], t["seconds"], 100.0 * t["seconds"] / total, 1000.0 * t["seconds"] / big["hosts"]))
    lines += ["", "| hosts | classes in fleet | targets written | max classes / target | writes (log) | "
                  "expected writes | writes if asked per source host | log matches classes |",
              "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for rec in recs:
        e = rec["runs"]["readiness"][0]["probe_economy"]
        lines.append("| %d | %d | %d | %d | %d | %d | %d | %s |" % (
            rec["hosts"], e["classes_in_fleet"], e["targets_written"], e["max_classes_per_target"],
            e["total"]["writes"], e["total"]["expected_writes"], e["total"]["per_source_host_writes"],
            "yes" if e["ok"] else "NO"))
    counted = [rec for rec in recs if rec.get("count")]
    if counted:
        lines += ["", "| hosts | run | module invocations per host: max | mean | hosts with 1 / 2 | by module |",
                  "|---:|---|---:|---:|---|---|"]
        for rec in counted:
            for label, c in rec["count"].items():
                lines.append("| %d | %s | %d | %.2f | %s / %s | %s |" % (
                    rec["hosts"], label, c["max"], c["mean"], c["histogram"].get("1", 0), c["histogram"].get("2", 0),
                    ", ".join("%s %d" % kv for kv in sorted(c["by_action"].items()))))
    lines += ["", "Commands (timed runs, then counting runs):", ""]
    for rec in recs:
        for label, runs in rec["runs"].items():
            lines.append("    %s" % runs[0]["command"])
    for rec in counted:
        for label, c in rec["count"].items():
            lines.append("    %s" % c["command"])
    lines.append("")
    return "\n".join(lines)


def calibration():
    """Microseconds for ``sum(range(1000))`` (best of 5): how fast this machine runs Python right now."""
    import timeit
    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 2)


def machine():
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg": " ".join("%.2f" % x for x in os.getloadavg()), "sum_range_1000_us": calibration()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--sizes", default="50,200,1000", help="fleet sizes (hosts), comma separated")
    ap.add_argument("--quick", action="store_true", help="small sizes everywhere (a minute or two)")
    ap.add_argument("--parts", default="fleet,controller,discovery")
    ap.add_argument("--forks", type=int, default=20)
    ap.add_argument("--pipelining", action="store_true", help="ANSIBLE_PIPELINING=1 for both runs")
    ap.add_argument("--no-reports", action="store_true", help="skip the readiness run with reports")
    ap.add_argument("--reports-max", type=int, default=None,
                    help="run the readiness run with reports only up to this many hosts (see bench/reports.py)")
    ap.add_argument("--compare-collections", default=None, metavar="DIR",
                    help="also time readiness with the collection found on this ANSIBLE_COLLECTIONS_PATH")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (median is reported)")
    ap.add_argument("--count-sizes", default=None,
                    help="sizes that also get the (untimed) counting runs; default: the smallest size")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for both the floor and the readiness runs (repeatable)")
    ap.add_argument("--controller-hosts", default="1000,10000")
    ap.add_argument("--discovery-repeat", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(BUILD, "results.json"))
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    chosts = [int(s) for s in args.controller_hosts.split(",")]
    drepeat, dscale = args.discovery_repeat, None
    if args.quick:
        sizes, chosts, drepeat, dscale = [10, 40], [200, 1000], 3, (2, 8, 4)
    results = {"machine": machine(), "argv": sys.argv[1:]}
    if "fleet" in parts:
        count_sizes = [int(x) for x in args.count_sizes.split(",")] if args.count_sizes else None
        extra = dict(kv.split("=", 1) for kv in args.env)
        results["fleet"] = fleet_part(sizes, args.forks, not args.no_reports, args.repeat, args.pipelining,
                                      count_sizes=count_sizes, extra_env=extra, reports_max=args.reports_max,
                                      compare_collections=args.compare_collections)
    if "controller" in parts:
        from bench import controller
        results["controller"] = controller.run_all(chosts, quick=args.quick)
        print(controller.markdown(results["controller"]), flush=True)
    if "discovery" in parts:
        from bench import discovery
        results["discovery"] = discovery.run(repeat=drepeat, scale=dscale)
        print(discovery.markdown(results["discovery"]), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print(markdown(results))
    print("results: %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
