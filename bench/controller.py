"""Controller work on synthetic fleets: batches, matrix, targets and drain plans.

    .venv/bin/python bench/controller.py                       # the tables of BENCHMARKS.md
    .venv/bin/python bench/controller.py --one --hosts 10000 --versions 8 [--profile]

Calls the pure functions of ``plugins/plugin_utils/_matrix.py`` directly
(what the ``vfio.migration.*`` filters call once the hostvars are extracted).
Each configuration runs in a fresh interpreter so ``ru_maxrss`` is its own
peak. The fleet is ``tests/synthetic.py``'s (4 types, one parent per host
offering every type at a seeded random version, 0-2 running instances per
type), so every class is offered by every target: the worst case for
classes x targets. Probe results are what the range rule would answer.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import importable  # noqa: E402
from tests.synthetic import fleet, probe_all  # noqa: E402


# -- one configuration, in this process ---------------------------------------------

def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _clock():
    """CPU seconds of this process: the controller code is single-threaded, and on a shared
    machine its CPU time is what it costs (the wall time is reported beside it)."""
    return time.process_time()


def one(n_hosts, n_types, versions, drain, targets_calls=10, profile=None, trace=False):
    importable()
    from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
    if trace:
        import tracemalloc
        tracemalloc.start()
    t0 = time.perf_counter()
    hosts = fleet(n_hosts, n_types, versions)
    gen = time.perf_counter() - t0
    rss_inputs = maxrss_mib()
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    out = {"hosts": n_hosts, "types": n_types, "versions_per_type": versions}
    wall0 = time.perf_counter()
    t = _clock()
    batches = M.probe_batches(hosts)
    out["probe_batches_s"] = _clock() - t
    if prof:
        prof.disable()
    probe_all(hosts, batches)
    if prof:
        prof.enable()
    t = _clock()
    matrix = M.compat_matrix(hosts)
    out["compat_matrix_s"] = _clock() - t
    names = sorted(hosts)
    t = _clock()
    picks = names[::max(1, len(names) // targets_calls)][:targets_calls]
    n_targets = 0
    for h in picks:
        n_targets += len(M.migration_targets(matrix, h))
    out["migration_targets_s_per_call"] = (_clock() - t) / len(picks)
    t = _clock()
    plan = M.drain_plan(matrix, names[:drain])
    out["drain_plan_s"] = _clock() - t
    if prof:
        prof.disable()
        import pstats
        prof.dump_stats(profile)
        st = pstats.Stats(profile)
        st.sort_stats("cumulative")
        import io
        buf = io.StringIO()
        st.stream = buf
        st.print_stats(25)
        out["profile_top"] = buf.getvalue()
    out["wall_s"] = time.perf_counter() - wall0
    out["total_s"] = out["probe_batches_s"] + out["compat_matrix_s"] + out["drain_plan_s"] + \
        out["migration_targets_s_per_call"]
    out["classes"] = len(matrix["classes"])
    out["verdict_lists"] = sum(len(v) for v in matrix["verdicts"].values())
    out["drained_hosts"] = drain
    out["placements"] = len(plan["placements"])
    out["stranded"] = len(plan["stranded"])
    out["batch_checks"] = sum(len(b) for b in batches.values())
    out["generate_s"] = gen
    out["maxrss_inputs_mib"] = rss_inputs
    out["maxrss_mib"] = maxrss_mib()
    if trace:
        import tracemalloc
        out["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 1048576.0
    out["ns_per_class_target"] = 1e9 * (out["probe_batches_s"] + out["compat_matrix_s"]) / \
        max(1, out["classes"] * n_hosts)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def spawn(n_hosts, n_types=4, versions=8, drain=None, profile=None, trace=False):
    """Run :func:`one` in a fresh interpreter; return its result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--one", "--hosts", str(n_hosts), "--types", str(n_types),
           "--versions", str(versions), "--drain", str(drain if drain is not None else max(1, n_hosts // 100))]
    if profile:
        cmd += ["--profile", profile]
    if trace:
        cmd.append("--tracemalloc")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    doc = json.loads(res.stdout)
    doc["command"] = " ".join([".venv/bin/python", "bench/controller.py"] + cmd[2:])
    return doc


def run_all(headline_hosts=(1000, 10000), quick=False):
    """The headline runs, then classes at fixed hosts and hosts at fixed classes, and a tracemalloc run."""
    out = {"headline": [spawn(n, 4, 8) for n in headline_hosts]}
    fixed_hosts = 500 if quick else 2000
    out["vary_classes"] = [spawn(fixed_hosts, 4, v) for v in (1, 2, 4, 8)]
    steps = (250, 500, 1000) if quick else (1000, 2500, 5000, 10000)
    out["vary_hosts"] = [spawn(n, 4, 4) for n in steps]
    out["tracemalloc"] = spawn(max(headline_hosts), 4, 8, trace=True)
    return out


def _row(r):
    return "| %d | %d | %d | %.3f | %.3f | %.4f | %.3f | %.3f | %.0f | %.0f | %.0f |" % (
        r["hosts"], r["versions_per_type"], r["classes"], r["probe_batches_s"], r["compat_matrix_s"],
        r["migration_targets_s_per_call"], r["drain_plan_s"], r["total_s"], r["maxrss_mib"],
        r["maxrss_mib"] - r["maxrss_inputs_mib"], r["ns_per_class_target"])


HEADER = ("| hosts | versions/type | classes | probe_batches s | compat_matrix s | migration_targets s/call | "
          "drain_plan s (1 % drained) | total s | peak RSS MiB | RSS over inputs MiB | ns per class x target |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def markdown(res):
    lines = []
    titles = (("headline", "Headline (4 types x 8 versions)"), ("vary_classes", "Classes vary, hosts fixed"),
              ("vary_hosts", "Hosts vary, classes fixed"))
    for key, title in titles:
        lines += ["", title, "", HEADER] + [_row(r) for r in res[key]]
        lines += ["", "Commands:", ""] + ["    %s" % r["command"] for r in res[key]]
    t = res.get("tracemalloc")
    if t:
        lines += ["", "tracemalloc peak (%d hosts, %d classes): %.0f MiB (`%s`)" % (
            t["hosts"], t["classes"], t["tracemalloc_peak_mib"], t["command"])]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--one", action="store_true", help="run one configuration here and print JSON")
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--types", type=int, default=4)
    ap.add_argument("--versions", type=int, default=8)
    ap.add_argument("--drain", type=int, default=None)
    ap.add_argument("--profile", default=None, help="write cProfile stats here (with --one)")
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.one:
        drain = args.drain if args.drain is not None else max(1, args.hosts // 100)
        print(json.dumps(one(args.hosts, args.types, args.versions, drain, profile=args.profile,
                             trace=args.tracemalloc)))
        return 0
    res = run_all((200, 1000) if args.quick else (1000, 10000), quick=args.quick)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
