"""Readiness against the floor on the fleet shapes and connections operators have.

    .venv/bin/python bench/shapes.py                                  # every variant, 200 hosts
    .venv/bin/python bench/shapes.py --variants dense-f10 --sizes 1000
    .venv/bin/python bench/shapes.py --variants ssh-f10,ssh-f10-pipe --ssh-endpoints 20
    .venv/bin/python bench/shapes.py --quick                          # 5 hosts: the machinery only

Each variant is one ``bench/run.py`` fleet part (``fleet_part``): the floor
(two ``ansible.builtin.ping`` tasks per host), ``vfio.migration.readiness``
without reports and with them, one after another on the same inventory, the
same forks and the same connection settings, so every ratio is taken inside
one run. Besides the whole runs it compares single tasks, from the
``bench_tasks`` callback: the readiness run's gathering (``mdev_facts``, each
host's first module task) against the floor's first ping, and its probe
(``migration_probe``, each target's second module task) against the floor's
second ping. Under SSH the first module task of a host also opens its
connection, so first is compared with first and second with second.

Variants (``--variants``, comma separated):

================  =======  ==========  =====  ==========
variant           shape    connection  forks  pipelining
================  =======  ==========  =====  ==========
dense-f10         dense    local       10     no
dense-f50         dense    local       50     no
dense-f10-pipe    dense    local       10     yes
dense-f50-pipe    dense    local       50     yes
ssh-f10           dense    ssh         10     no
ssh-f10-pipe      dense    ssh         10     yes
ssh-f50-pipe      dense    ssh         50     yes
mix-f10           mix      local       10     no
================  =======  ==========  =====  ==========

``dense`` (``bench/fleet.py``): two NVIDIA parents per host, 24 version
classes, 48 probe writes per target. ``ssh``: the hosts spread over
``--ssh-endpoints`` real sshd processes on 127.0.0.1 (``bench/sshd.py``),
each inventory host with a connection of its own.

With ``--repeat N`` the floor and readiness runs alternate N times; besides the
ratio of the medians, each pair's own ratios (readiness / floor, gathering /
1st ping, probe / 2nd ping) and their medians are printed: a pair's run and
floor are minutes apart, the medians may come from different pairs.
``--emulators`` and ``--emulator-nice`` change only the stand-in for the
hosts' kernels: how many FUSE emulator processes serve the fleet, and their
priority against the module processes.

Results accumulate in ``build/bench/shapes.json`` (one entry per variant and
size; a new run of the same variant and size replaces its entry), and the
table of every entry is printed.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import run as R  # noqa: E402
from bench import sshd as S  # noqa: E402

VARIANTS = {
    "dense-f10": {"shape": "dense", "ssh": False, "forks": 10, "pipelining": False},
    "dense-f50": {"shape": "dense", "ssh": False, "forks": 50, "pipelining": False},
    "dense-f10-pipe": {"shape": "dense", "ssh": False, "forks": 10, "pipelining": True},
    "dense-f50-pipe": {"shape": "dense", "ssh": False, "forks": 50, "pipelining": True},
    "ssh-f10": {"shape": "dense", "ssh": True, "forks": 10, "pipelining": False},
    "ssh-f10-pipe": {"shape": "dense", "ssh": True, "forks": 10, "pipelining": True},
    "ssh-f50-pipe": {"shape": "dense", "ssh": True, "forks": 50, "pipelining": True},
    "mix-f10": {"shape": "mix", "ssh": False, "forks": 10, "pipelining": False},
}
DEFAULT = "dense-f10,dense-f50,dense-f10-pipe,ssh-f10,ssh-f10-pipe"
OUT = os.path.join(R.BUILD, "shapes.json")


def run_variant(name, sizes, repeat=1, reports=True, ssh_endpoints=20, workdir=None, log=print, compare=None,
                alternate=0, emulators=1, echo=False, timed_runs=True, ab_probe=None, emulator_nice=0):
    """One variant at ``sizes``: the fleet part's result plus the variant's settings.

    ``compare``: a collections path (``bench/snapshot.py``) whose readiness run is timed too, in the same run.
    ``alternate``: turns of the alternating run (a ping and the probe task, turn about; 0: none).
    ``emulators``: FUSE emulator processes sharing the hosts (``bench/run.py: fleet_part``);
    ``emulator_nice``: their niceness change (e.g. -10).
    ``echo``: the alternating run also takes ``bench_probe_echo`` turns; ``timed_runs=False``: that run alone.
    ``ab_probe``: a git revision whose probe the alternating run also takes turns of.
    """
    v = VARIANTS[name]
    work = workdir or os.path.join(R.BUILD, "shapes", name)
    trees = R.fleet_dir(v["shape"], os.path.dirname(work))  # shared by every variant of a shape
    t0 = time.monotonic()
    machine = R.machine()
    kwargs = dict(forks=v["forks"], reports=reports, repeat=repeat, pipelining=v["pipelining"], workdir=work,
                  count_sizes=[], log=log, shape=v["shape"], trees=trees, compare_collections=compare,
                  alternate=alternate, emulators=emulators, echo=echo, timed_runs=timed_runs,
                  ab_probe=ab_probe, emulator_nice=emulator_nice)
    if v["ssh"]:
        with S.LoopbackSshd(work, ssh_endpoints) as ssh:
            res = R.fleet_part(sizes, ssh=ssh, **kwargs)
    else:
        res = R.fleet_part(sizes, **kwargs)
    res.update(variant=name, settings=v, machine_before=machine, load_after=R.machine()["loadavg"],
               seconds=round(time.monotonic() - t0, 1))
    return res


def task_pairs(rec, task, ping):
    """Each interleaved pair's own ``task / ping``: the readiness run's task against the floor's ping timed
    minutes before it (the ratio of the medians divides times from different pairs)."""
    floors, readies = rec["runs"].get("floor") or [], rec["runs"].get("readiness") or []
    return [round(x["task_seconds"][task] / f["task_seconds"][ping], 3) for f, x in zip(floors, readies)
            if task in x.get("task_seconds", {}) and f.get("task_seconds", {}).get(ping)]


def rows(results):
    """One flat row per variant and size, for the tables and for tests (timed-run fields None without them)."""
    out = []
    for key in sorted(results, key=lambda k: (results[k]["variant"], results[k]["sizes"][0]["hosts"], k)):
        res = results[key]
        local = res["connection"] == "local"
        for rec in res["sizes"]:
            floor, ready = rec.get("floor") or {}, rec.get("readiness") or {}
            full = rec.get("readiness+reports") or {}
            alt = rec.get("alternate") or {}
            runs = rec["runs"].get("readiness") or [{}]
            econ = runs[0].get("probe_economy") or {}
            out.append({
                "variant": res["variant"], "shape": res["shape"], "connection": res["connection"],
                "endpoints": res.get("ssh_endpoints"), "forks": res["forks"], "pipelining": res["pipelining"],
                "emulators": res.get("emulators", 1), "emulator_nice": res.get("emulator_nice", 0),
                "timed": bool(floor),
                "hosts": rec["hosts"], "vms": rec.get("vms"), "floor_s": floor.get("wall"),
                "readiness_s": ready.get("wall"), "ratio": ready.get("ratio_wall"),
                "pairs": ready.get("pairs_wall"),
                "gather_pairs": task_pairs(rec, "gather", "ping_first"),
                "probe_pairs": task_pairs(rec, "probe", "ping_second"),
                "ratio_cpu": ready.get("ratio_cpu_all"),
                "reports_s": full.get("wall"), "ratio_reports": full.get("ratio_wall"),
                "ping_first_s": floor.get("ping_first"), "gather_s": ready.get("gather"),
                "gather_per_ping": ready.get("gather_per_ping"), "ping_second_s": floor.get("ping_second"),
                "probe_s": ready.get("probe"), "probe_per_ping": ready.get("probe_per_ping"),
                # per-task CPU holds the module processes only when they are the controller's descendants
                "gather_per_ping_cpu": ready.get("gather_per_ping_cpu") if local else None,
                "probe_per_ping_cpu": ready.get("probe_per_ping_cpu") if local else None,
                "gather_per_ping_cpu_host": ready.get("gather_per_ping_cpu_host") if local else None,
                "probe_per_ping_cpu_host": ready.get("probe_per_ping_cpu_host") if local else None,
                "writes_per_target": econ.get("max_writes_per_target"), "economy_ok": econ.get("ok"),
                "alt_turns": alt.get("turns"),
                "alt_probe_per_ping": alt.get("probe_per_ping_wall"),
                "alt_probe_per_ping_cpu": alt.get("probe_per_ping_cpu") if local else None,
                "alt_probe_per_ping_cpu_host": alt.get("probe_per_ping_cpu_host") if local else None,
                "alt_gather_per_ping": alt.get("gather_per_ping_wall"),
                "alt_gather_per_ping_cpu": alt.get("gather_per_ping_cpu") if local else None,
                "alt_echo_per_ping": alt.get("echo_per_ping_wall"),
                "alt_echo_per_ping_cpu": alt.get("echo_per_ping_cpu") if local else None,
                "ab_probe": alt.get("ab_probe"), "alt_ab_per_ping": alt.get("ab_per_ping_wall"),
                "alt_probe_per_ab": alt.get("probe_per_ab_wall"),
                "alt_probe_per_ab_cpu": alt.get("probe_per_ab_cpu") if local else None,
                "alt_probe_per_ab_cpu_host": alt.get("probe_per_ab_cpu_host") if local else None,
                "alt_ab_pairs": alt.get("ab_pairs_wall"),
                "alt_probe_pairs": alt.get("pairs_wall") or [],
                "alt_gather_pairs": alt.get("gather_pairs_wall") or [],
                "compare_ratio": (rec.get("readiness@compare") or {}).get("ratio_wall"),
                "compare_probe_per_ping": (rec.get("readiness@compare") or {}).get("probe_per_ping"),
                "compare_probe_per_ping_cpu": (rec.get("readiness@compare") or {}).get("probe_per_ping_cpu")
                if local else None,
                "load": "%s / %s" % (res["machine_before"]["loadavg"].split()[0], res["load_after"].split()[0]),
                "commands": [r[0]["command"] for r in rec["runs"].values()] + ([alt["command"]] if alt else []),
            })
    return out


def _f(x, fmt="%.2f"):
    return "-" if x is None else fmt % x


def _ratios(xs):
    return ", ".join("%.2f" % x for x in xs or [])


def _median(xs):
    return _f(statistics.median(xs) if xs else None)


def _emulators(r):
    return "%d" % r["emulators"] + (", nice %+d" % r["emulator_nice"] if r.get("emulator_nice") else "")


def markdown(results):
    lines = ["Wall time (the targets: readiness <= 1.3x the floor, probe <= 1.15x a ping):", "",
             "| variant | connection | forks | pipelining | emulators | hosts | VMs | floor s | readiness s "
             "| readiness / floor "
             "| with reports / floor | 1st ping s | gather s | gather / 1st ping | 2nd ping s | probe s "
             "| probe / 2nd ping | writes / target | load before / after |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows(results):
        if not r["timed"]:
            continue
        conn = r["connection"] if r["connection"] == "local" else "ssh, %d sshd" % r["endpoints"]
        lines.append("| %s | %s | %d | %s | %s | %d | %s | %.1f | %.1f | **%.2f** | %s | %.1f | %s | %s | %.1f | %s "
                     "| **%s** | %d | %s |" % (
                         r["variant"], conn, r["forks"], "yes" if r["pipelining"] else "no", _emulators(r), r["hosts"],
                         r["vms"], r["floor_s"], r["readiness_s"], r["ratio"], _f(r["ratio_reports"]),
                         r["ping_first_s"], _f(r["gather_s"], "%.1f"), _f(r["gather_per_ping"]), r["ping_second_s"],
                         _f(r["probe_s"], "%.1f"), _f(r["probe_per_ping"]), r["writes_per_target"], r["load"]))
    repeated = [r for r in rows(results) if r["timed"] and len(r["pairs"] or ()) > 1]
    if repeated:
        lines += ["", "Each interleaved floor and readiness pair on its own (``--repeat``; the table above divides "
                      "the median times, which may come from different pairs):", "",
                  "| variant | hosts | pairs | readiness / floor, each pair | median of the pairs | lowest | highest "
                  "| gather / 1st ping, each pair | median | probe / 2nd ping, each pair | median |",
                  "|---|---:|---:|---|---:|---:|---:|---|---:|---|---:|"]
        for r in repeated:
            lines.append("| %s | %d | %d | %s | **%.2f** | %.2f | %.2f | %s | %s | %s | **%s** |" % (
                r["variant"], r["hosts"], len(r["pairs"]), _ratios(r["pairs"]),
                statistics.median(r["pairs"]), min(r["pairs"]), max(r["pairs"]),
                _ratios(r["gather_pairs"]), _median(r["gather_pairs"]),
                _ratios(r["probe_pairs"]), _median(r["probe_pairs"])))
    lines += ["", "CPU time (every process the run caused, the emulator's and the sshd sessions' included; "
                  "per task where the modules are the controller's descendants):", "",
              "| variant | hosts | readiness / floor | gather / 1st ping | probe / 2nd ping "
              "| gather / 1st ping, emulator left out | probe / 2nd ping, emulator left out |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows(results):
        if not r["timed"]:
            continue
        lines.append("| %s | %d | %s | %s | %s | %s | %s |" % (
            r["variant"], r["hosts"], _f(r["ratio_cpu"]), _f(r["gather_per_ping_cpu"]), _f(r["probe_per_ping_cpu"]),
            _f(r["gather_per_ping_cpu_host"]), _f(r["probe_per_ping_cpu_host"])))
    alternated = [r for r in rows(results) if r["alt_turns"]]
    if alternated:
        lines += ["", "Gathering and the probe task against a ping, taken turn about in one run (the median times of "
                  "the turns divided; then each turn's own ratio against the ping just before it, and their median):",
                  "", "| variant | emulators | hosts | turns | probe / ping, wall | CPU | CPU, emulator left out "
                  "| gather / ping, wall | CPU | echo / ping, wall | CPU | probe / ping, each turn | median "
                  "| gather / ping, each turn | median |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|"]
        for r in alternated:
            lines.append("| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s |" % (
                r["variant"], _emulators(r), r["hosts"], r["alt_turns"], _f(r["alt_probe_per_ping"]),
                _f(r["alt_probe_per_ping_cpu"]), _f(r["alt_probe_per_ping_cpu_host"]), _f(r["alt_gather_per_ping"]),
                _f(r["alt_gather_per_ping_cpu"]), _f(r["alt_echo_per_ping"]), _f(r["alt_echo_per_ping_cpu"]),
                _ratios(r["alt_probe_pairs"]), _median(r["alt_probe_pairs"]),
                _ratios(r["alt_gather_pairs"]), _median(r["alt_gather_pairs"])))
    ab = [r for r in rows(results) if r["ab_probe"]]
    if ab:
        lines += ["", "This checkout's probe against another revision's, turn about in the same run (``--ab-probe``; "
                  "median of the per-turn ratios):", "",
                  "| variant | hosts | turns | revision | its probe / ping | this / it, wall | CPU "
                  "| CPU, emulator left out | per turn, wall |", "|---|---:|---:|---|---:|---:|---:|---:|---|"]
        for r in ab:
            lines.append("| %s | %d | %d | %s | %s | **%s** | %s | %s | %s |" % (
                r["variant"], r["hosts"], r["alt_turns"], r["ab_probe"], _f(r["alt_ab_per_ping"]),
                _f(r["alt_probe_per_ab"]), _f(r["alt_probe_per_ab_cpu"]), _f(r["alt_probe_per_ab_cpu_host"]),
                _ratios(r["alt_ab_pairs"])))
    compared = [r for r in rows(results) if r["compare_ratio"] is not None]
    if compared:
        lines += ["", "The same run with the compared collection (``--compare``):", "",
                  "| variant | hosts | readiness / floor: this, compared | probe / 2nd ping: this, compared "
                  "| probe / 2nd ping CPU: this, compared |", "|---|---:|---|---|---|"]
        for r in compared:
            lines.append("| %s | %d | %.2f, %.2f | %s, %s | %s, %s |" % (
                r["variant"], r["hosts"], r["ratio"], r["compare_ratio"], _f(r["probe_per_ping"]),
                _f(r["compare_probe_per_ping"]), _f(r["probe_per_ping_cpu"]), _f(r["compare_probe_per_ping_cpu"])))
    lines += ["", "Commands (floor, readiness, readiness with reports, the alternating run), per variant and size:", ""]
    for r in rows(results):
        lines.append("%s, %d hosts:" % (r["variant"], r["hosts"]))
        lines += [""] + ["    " + c for c in r["commands"]] + [""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--variants", default=DEFAULT, help="comma separated (default %(default)s); 'all' for every one")
    ap.add_argument("--sizes", default="200", help="fleet sizes, comma separated")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size, interleaved (median)")
    ap.add_argument("--no-reports", action="store_true", help="skip the readiness run with reports")
    ap.add_argument("--ssh-endpoints", type=int, default=20, help="sshd processes for the ssh variants")
    ap.add_argument("--quick", action="store_true", help="5 hosts, 2 sshd endpoints: checks the machinery")
    ap.add_argument("--alternate", type=int, default=3, metavar="TURNS",
                    help="turns of the alternating run, a ping and the probe task turn about (0: none)")
    ap.add_argument("--emulators", type=int, default=1,
                    help="FUSE emulator processes sharing the hosts (host i on emulator i %% N)")
    ap.add_argument("--emulator-nice", type=int, default=0, metavar="N",
                    help="niceness change of the emulator processes (negative: served before the module processes)")
    ap.add_argument("--echo", action="store_true",
                    help="dense shape: the alternating run also runs bench/library/bench_probe_echo.py each turn")
    ap.add_argument("--alternate-only", action="store_true", help="no floor and readiness runs, the alternating run alone")
    ap.add_argument("--ab-probe", metavar="REV", default=None,
                    help="the alternating run also takes turns of this revision's probe (its module and module_utils)")
    ap.add_argument("--compare", metavar="DIR", default=None,
                    help="also time readiness with the collection on this ANSIBLE_COLLECTIONS_PATH (bench/snapshot.py)")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error("unknown variants %s (known: %s)" % (", ".join(unknown), ", ".join(VARIANTS)))
    sizes = [5] if args.quick else [int(x) for x in args.sizes.split(",")]
    endpoints = 2 if args.quick else args.ssh_endpoints
    if args.quick and args.out == OUT:
        args.out = os.path.join(R.BUILD, "shapes-quick.json")
    results = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
    for name in names:
        if VARIANTS[name]["ssh"] and S.unavailable():
            print("%s: skipped, %s" % (name, S.unavailable()), flush=True)
            continue
        for n in sizes:
            print("%s, %d hosts ..." % (name, n), flush=True)
            res = run_variant(name, [n], args.repeat, not args.no_reports, endpoints,
                              log=lambda *a: print(*a, flush=True), compare=args.compare,
                              alternate=args.alternate, emulators=args.emulators, echo=args.echo,
                              timed_runs=not args.alternate_only, ab_probe=args.ab_probe,
                              emulator_nice=args.emulator_nice)
            key = "%s@%d" % (name, n) + ("/%de" % args.emulators if args.emulators > 1 else "") + \
                ("/nice%d" % args.emulator_nice if args.emulator_nice else "") + \
                ("/alternate" if args.alternate_only else "")
            results[key] = res
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)
    print(markdown(results))
    print("results: %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
