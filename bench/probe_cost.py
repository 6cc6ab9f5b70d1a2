"""What one migration_probe run costs on one host, piece by piece, against a ping.

    .venv/bin/python bench/probe_cost.py                           # this checkout, 20 rounds
    .venv/bin/python bench/probe_cost.py --against c12db9d~1 --repeat 30
    .venv/bin/python bench/probe_cost.py --python /usr/bin/python3 --json

The target is host ``bench-00003`` of the ``dense`` bench shape (two NVIDIA
parents, four types), served by the FUSE emulator; the batch is what every
target of a dense fleet of 200 gets: 24 classes (four types at six driver
versions), 48 writes. Every figure is CPU time, the minimum and the median of
``--repeat`` rounds in which the modules take turns, so a load that comes and
goes on a shared machine weighs on each alike:

1. **The module as a host runs it**: each module's ``AnsiballZ_<module>.py``
   (captured from a real ``ansible -m`` run with ``ANSIBLE_KEEP_REMOTE_FILES``)
   run by ``--python``, CPU of the process and its children (the probe's
   writer), and of the emulator while it ran, and the context switches of
   both (each FUSE request and each hand-over to the writer is one; on a
   loaded machine each costs more than here). ``ping`` is the floor.
2. **Phases**, each in a fresh process: ansible-core's ``module_utils`` from
   the payload's zip (what every module pays), this collection's
   ``module_utils`` (compiled from source on every run: AnsiballZ ships no
   bytecode), and the module's own run (arguments, work, result).
3. **Prober.run** in this process (the writer's CPU apart), and with
   ``--against``, the same for ``plugins/module_utils/_probe.py`` of another
   commit (its payload is measured in part 1 too).
"""

import argparse
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import fleet as F  # noqa: E402
from bench.run import proc_cpu  # noqa: E402
from bench.snapshot import snapshot  # noqa: E402

TARGET = F.host_name(3)
OURS = ("_compile_once", "_errno", "_version", "_sysfs", "_probe")  # in the order the probe imports them

# Run inside a fresh interpreter: CPU of each phase of one module run (process_time).
PHASES = r"""
import ast, base64, io, json, os, re, sys, time
t_start = time.process_time()
src = open(sys.argv[1]).read()
call = src[src.index("_ansiballz_main(\n"):]
kw = {k: ast.literal_eval(re.search(r"^%s=('.*')(,)?$" % k, call, re.M).group(1))
      for k in ("module_fqn", "profile", "params", "zip_data")}
zpath = sys.argv[2]
with open(zpath, "wb") as f:
    f.write(base64.b64decode(kw["zip_data"]))
sys.path.insert(0, zpath)
out = {}
t0 = time.process_time()
import ansible.module_utils.basic
from ansible.module_utils._internal._ansiballz import _loader
t1 = time.process_time()
out["ansible_module_utils"] = t1 - t0
if ".vfio." in kw["module_fqn"]:
    import importlib
    for name in sys.argv[3].split(","):
        importlib.import_module("ansible_collections.vfio.migration.plugins.module_utils." + name)
t2 = time.process_time()
out["collection_module_utils"] = t2 - t1
real, sys.stdout = sys.stdout, io.StringIO()
try:
    _loader._run_module(json_params=kw["params"].encode(), profile=kw["profile"], module_fqn=kw["module_fqn"],
                        modlib_path=zpath)
except SystemExit:
    pass
sys.stdout = real
out["module_run"] = time.process_time() - t2
out["total"] = time.process_time() - t_start
print(json.dumps(out))
"""


def dense_checks():
    return [{"id": "nvidia-%s-%d.%d" % (t, major, minor), "mdev_type": "nvidia-%s" % t,
             "version": "000210de-nvidia-%s-%d.%d" % (t, major, minor)}
            for (major, minor) in F.DENSE_VERSIONS for t in ("256", "257", "258", "259")]


def capture(module, args, collections, python, work):
    """Run ``module`` once through ``ansible localhost``; return the path of the AnsiballZ file it left."""
    remote = tempfile.mkdtemp(prefix="remote-%s-" % module, dir=work)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_KEEP_REMOTE_FILES="1",
               ANSIBLE_REMOTE_TMP=remote, ANSIBLE_PIPELINING="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_NOCOLOR="1")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % python, "-m", module] + (["-a", json.dumps(args)] if args else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    found = glob.glob(os.path.join(remote, "*", "AnsiballZ_%s.py" % module.rsplit(".", 1)[-1]))
    if proc.returncode != 0 or len(found) != 1:
        raise SystemExit("%s: rc=%s\n%s%s" % (module, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return found[0]


def _stats(values):
    # the mean too: the emulator's CPU is read from /proc in clock ticks (10 ms), too coarse for one round
    return {"min": round(min(values) * 1e3, 1), "median": round(statistics.median(values) * 1e3, 1),
            "mean": round(statistics.mean(values) * 1e3, 1)}


def switches(pid):
    """Context switches (voluntary and not) of every thread of a running process."""
    total = 0
    for status in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(status) as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:  # a thread that ended meanwhile
            pass
    return total


def module_rounds(payloads, python, emulator_pid, repeat):
    """CPU and context switches of each payload run as a process (with its children), and of the emulator
    meanwhile, in turns."""
    got = {name: {"cpu": [], "emulator": [], "switches": [], "emulator_switches": [], "output": 0}
           for name in payloads}
    for dummy in range(repeat):
        for name, path in payloads.items():
            r0, e0, s0 = resource.getrusage(resource.RUSAGE_CHILDREN), proc_cpu(emulator_pid), switches(emulator_pid)
            proc = subprocess.run([python, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            r1, e1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), proc_cpu(emulator_pid), switches(emulator_pid)
            if proc.returncode != 0 or b'"failed": true' in proc.stdout:
                raise SystemExit("%s failed: %s %s" % (name, proc.stdout[-800:], proc.stderr[-800:]))
            got[name]["cpu"].append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
            got[name]["emulator"].append(e1 - e0)
            got[name]["switches"].append((r1.ru_nvcsw - r0.ru_nvcsw) + (r1.ru_nivcsw - r0.ru_nivcsw))
            got[name]["emulator_switches"].append(s1 - s0)
            got[name]["output"] = len(proc.stdout)
    return {name: {"cpu_ms": _stats(v["cpu"]), "emulator_ms": _stats(v["emulator"]), "output_bytes": v["output"],
                   "switches": statistics.median(v["switches"]),
                   "emulator_switches": statistics.median(v["emulator_switches"])}
            for name, v in got.items()}


def phase_rounds(payloads, python, repeat, work):
    script = os.path.join(work, "phases.py")
    with open(script, "w") as f:
        f.write(PHASES)
    got = {}
    for dummy in range(repeat):
        for name, path in payloads.items():
            out = subprocess.run([python, script, path, os.path.join(work, "phases.zip"), ",".join(OURS)],
                                 capture_output=True, text=True, check=True).stdout
            for key, value in json.loads(out).items():
                got.setdefault(name, {}).setdefault(key, []).append(value)
    return {name: {key: _stats(v) for key, v in phases.items()} for name, phases in got.items()}


def compile_ms(tree, repeat):
    out = {}
    for name in OURS:
        with open(os.path.join(tree, "plugins", "module_utils", name + ".py")) as f:
            src = f.read()
        best = min(_timed_compile(src) for dummy in range(repeat))
        out[name] = {"bytes": len(src.encode("utf-8")), "compile_ms": round(best * 1e3, 2)}
    return out


def _timed_compile(src):
    t = time.process_time()
    compile(src, "m", "exec")
    return time.process_time() - t


def prober_rounds(modules, root, checks, emulator_pid, repeat):
    """``Prober.run`` in this process: wall, own CPU, the writer's CPU, the emulator's CPU."""
    got = {name: {"wall": [], "cpu": [], "writer": [], "emulator": []} for name in modules}
    for dummy in range(repeat):
        for name, module in modules.items():
            c0, s0, e0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time(), proc_cpu(emulator_pid)
            t0 = time.perf_counter()
            results = module.Prober(root, allow_non_sysfs=True, timeout=5).run(checks)
            wall = time.perf_counter() - t0
            c1, s1, e1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time(), proc_cpu(emulator_pid)
            assert len(results) == 2 * len(checks), len(results)
            got[name]["wall"].append(wall)
            got[name]["cpu"].append(s1 - s0)
            got[name]["writer"].append((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime))
            got[name]["emulator"].append(e1 - e0)
    return {name: {k + "_ms": _stats(v) for k, v in d.items()} for name, d in got.items()}


def markdown(res):
    lines = ["Module runs as a host runs them (%s, %d rounds, CPU ms: min / median):" % (
        res["python"], res["repeat"]), "",
        "| module | AnsiballZ bytes | output bytes | module process + children | emulator meanwhile (mean) | over ping (min) "
        "| context switches: module process + children / emulator (median) |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    ping = res["modules"]["ping"]["cpu_ms"]["min"]
    for name, m in res["modules"].items():
        lines.append("| %s | %s | %s | %.0f / %.0f | %.1f | %+.0f | %.0f / %.0f |" % (
            name, format(res["payload_bytes"][name], ","), format(m["output_bytes"], ","),
            m["cpu_ms"]["min"], m["cpu_ms"]["median"], m["emulator_ms"]["mean"], m["cpu_ms"]["min"] - ping,
            m["switches"], m["emulator_switches"]))
    lines += ["", "Phases of one run, each in a fresh process (CPU ms, min / median):", "",
              "| module | ansible-core module_utils | the collection's module_utils | module run | whole process |",
              "|---|---:|---:|---:|---:|"]
    for name, p in res["phases"].items():
        lines.append("| %s | %s |" % (name, " | ".join("%.1f / %.1f" % (p[k]["min"], p[k]["median"]) for k in (
            "ansible_module_utils", "collection_module_utils", "module_run", "total"))))
    lines += ["", "Compiling the collection's module_utils (what every run pays, min ms): " + ", ".join(
        "`%s.py` %s B %.1f ms" % (k, format(v["bytes"], ","), v["compile_ms"]) for k, v in res["compile"].items()),
        "", "`Prober.run` in one process (ms, min / median; the emulator's CPU: mean):", "",
        "| probe | wall | own CPU | writer's CPU | emulator's CPU |", "|---|---:|---:|---:|---:|"]
    for name, p in res["prober"].items():
        lines.append("| %s | %s | %.1f |" % (name, " | ".join("%.1f / %.1f" % (p[k]["min"], p[k]["median"]) for k in (
            "wall_ms", "cpu_ms", "writer_ms")), p["emulator_ms"]["mean"]))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--python", default="/usr/bin/python3", help="the managed host's interpreter")
    ap.add_argument("--against", metavar="REV", help="also measure _probe.py of this commit")
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args(argv)
    from bench.probe_writes import probe_module  # sets up the collection's import path
    from tests.emulator.mount import EmulatorMount, fuse_unavailable
    if fuse_unavailable():
        raise SystemExit("needs the FUSE emulator: %s" % fuse_unavailable())
    from demo.run_demo import collection_path
    work = tempfile.mkdtemp(prefix="vfio-probe-cost-")
    try:
        F.build(os.path.join(work, "fleet"), 6, shape="dense")
        with EmulatorMount(os.path.join(work, "fleet"), os.path.join(work, "mnt"), os.path.join(work, "writes.log")) as emu:
            root, host_root = emu.path(TARGET, "sys"), emu.path(TARGET, "root")
            checks = dense_checks()
            probe_args = {"sysfs_root": root, "allow_non_sysfs": True, "timeout": 5, "checks": checks}
            here = collection_path()
            payloads = {
                "ping": capture("ansible.builtin.ping", {}, here, opts.python, work),
                "migration_probe": capture("vfio.migration.migration_probe", probe_args, here, opts.python, work),
                # the form the matrix role asks for
                "migration_probe compact": capture("vfio.migration.migration_probe", dict(probe_args, compact=True),
                                                   here, opts.python, work),
                "mdev_facts": capture("vfio.migration.mdev_facts", {"sysfs_root": root, "host_root": host_root},
                                      here, opts.python, work),
            }
            probes = {"this checkout": probe_module(None, work)}
            if opts.against:
                other = snapshot(os.path.join(work, "against"), opts.against, ["plugins/module_utils/_probe.py"])
                payloads["migration_probe@%s" % opts.against] = capture(
                    "vfio.migration.migration_probe", probe_args, other, opts.python, work)
                probes[opts.against] = probe_module(opts.against, work)
            res = {"python": opts.python, "repeat": opts.repeat, "target": TARGET, "checks": len(checks),
                   "payload_bytes": {k: os.path.getsize(v) for k, v in payloads.items()},
                   "modules": module_rounds(payloads, opts.python, emu.proc.pid, opts.repeat),
                   "phases": phase_rounds({k: v for k, v in payloads.items() if k in ("ping", "migration_probe")},
                                          opts.python, max(5, opts.repeat // 2), work),
                   "compile": compile_ms(REPO, 30),
                   "prober": prober_rounds(probes, root, checks, emu.proc.pid, opts.repeat),
                   "loadavg": os.getloadavg()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=1) if opts.json else markdown(res))


if __name__ == "__main__":
    main()
