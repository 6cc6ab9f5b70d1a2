"""The reports' cost on their own, at fleet sizes where they are large.

    .venv/bin/python bench/reports.py --sizes 200,1000 [--mem-limit-gib 6]

For N hosts of the bench fleet (``bench/fleet.py``) served by the FUSE
emulator, this builds the matrix the way the readiness run does, but in one
process without Ansible: ``gather()`` on every host, ``probe_batches``, the
probe module's ``Prober`` on every target (real writes, answered by the
emulator), ``compat_matrix`` and ``drain_plan`` (2 % of the hosts drained). It
then renders each report (``report_json``, ``report_csv``, ``report_markdown``,
``report_html``, as the filters of ``plugins/filter/report.py``, including
their conversion of the inputs) in a fresh process under an address-space
limit, so a report that outgrows the machine fails with MemoryError instead of
starving the other users of a shared machine. Reports time, output size and
peak RSS per format, and the number of cells (``expand_cells``).
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

BUILD = os.path.join(REPO, "build", "bench")
FORMATS = ("json", "csv", "md", "html")


def build_matrix(n, workdir=BUILD):
    """Facts, probes, matrix and plan for the first ``n`` bench hosts; saved as JSON, path returned."""
    importable()
    from bench import fleet as F
    from tests.emulator.mount import EmulatorMount
    from ansible_collections.vfio.migration.plugins.module_utils import _gather as S
    from ansible_collections.vfio.migration.plugins.module_utils._probe import Prober
    from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
    src = os.path.join(workdir, "fleet")
    F.build(src, n)
    out = os.path.join(workdir, "matrix-%d.json" % n)
    names = [F.host_name(i) for i in range(n)]
    times = {}
    with EmulatorMount(src, os.path.join(workdir, "mnt-reports"), os.path.join(workdir, "reports-writes.log"),
                       timeout=120) as emu:
        t = time.monotonic()
        hosts = {h: {"state": "ok", "reason": None, "probe": None,
                     "facts": S.gather(emu.path(h, "sys"), use_udev=False, host_root=emu.path(h, "root"))}
                 for h in names}
        times["gather_all_s"] = time.monotonic() - t
        batches = M.probe_batches(hosts)
        t = time.monotonic()
        for h, batch in batches.items():
            if batch:
                hosts[h]["probe"] = {"changed": False, "results": Prober(
                    emu.path(h, "sys"), allow_non_sysfs=True, timeout=5).run(batch)}
        times["probe_all_s"] = time.monotonic() - t
    t = time.process_time()
    matrix = M.compat_matrix(hosts)
    times["compat_matrix_cpu_s"] = time.process_time() - t
    plan = M.drain_plan(matrix, names[:max(1, n // 50)])
    with open(out, "w") as f:
        json.dump({"matrix": matrix, "plan": plan, "times": times}, f)
    return out


def render_one(path, fmt, limit_gib):
    """In this process: load the matrix and render one format (as the filter does); print JSON."""
    if limit_gib:
        lim = int(limit_gib * 1024 ** 3)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    importable()
    from ansible_collections.vfio.migration.plugins.filter import report as RF
    from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
    with open(path) as f:
        doc = json.load(f)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res = {"format": fmt, "loaded_rss_mib": round(base, 1)}
    t = time.process_time()
    try:
        if fmt == "cells":
            res["cells"] = len(M.expand_cells(doc["matrix"]))
        else:
            fn = {"json": RF.report_json, "csv": RF.report_csv, "md": RF.report_markdown,
                  "html": RF.report_html}[fmt]
            args = (doc["matrix"],) if fmt == "csv" else (doc["matrix"], doc["plan"], "2026-01-01T00:00:00Z")
            res["bytes"] = len(fn(*args).encode("utf-8"))
        res["ok"] = True
    except MemoryError:
        res["ok"] = False
        res["error"] = "MemoryError above %s GiB address space" % limit_gib
    res["cpu_s"] = round(time.process_time() - t, 3)
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print(json.dumps(res))


def run(sizes, limit_gib=6.0, workdir=BUILD):
    out = []
    for n in sizes:
        path = build_matrix(n, workdir)
        with open(path) as f:
            doc = json.load(f)
        rec = {"hosts": n, "classes": len(doc["matrix"]["classes"]), "source_rows": len(doc["matrix"]["sources"]),
               "matrix_json_bytes": os.path.getsize(path), "times": doc["times"], "formats": []}
        del doc
        for fmt in ("cells",) + FORMATS:
            cmd = [sys.executable, os.path.abspath(__file__), "--render", path, "--format", fmt,
                   "--mem-limit-gib", str(limit_gib)]
            p = subprocess.run(cmd, capture_output=True, text=True, check=False)
            try:
                r = json.loads(p.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                r = {"format": fmt, "ok": False, "error": "exit %s: %s" % (p.returncode, p.stderr[-300:])}
            r["command"] = " ".join([".venv/bin/python", "bench/reports.py"] + cmd[2:])
            rec["formats"].append(r)
        out.append(rec)
    return out


def markdown(res):
    lines = ["", "| hosts | classes | source rows | what | CPU s | output MiB | peak RSS MiB | result |",
             "|---:|---:|---:|---|---:|---:|---:|---|"]
    for rec in res:
        for r in rec["formats"]:
            what = "expand_cells (%s cells)" % r.get("cells", "?") if r["format"] == "cells" else r["format"]
            lines.append("| %d | %d | %d | %s | %s | %s | %s | %s |" % (
                rec["hosts"], rec["classes"], rec["source_rows"], what, r.get("cpu_s", "-"),
                "%.1f" % (r["bytes"] / 1048576.0) if "bytes" in r else "-", r.get("peak_rss_mib", "-"),
                "ok" if r.get("ok") else r.get("error", "failed")))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--sizes", default="200,1000")
    ap.add_argument("--mem-limit-gib", type=float, default=6.0)
    ap.add_argument("--render", help=argparse.SUPPRESS)
    ap.add_argument("--format", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render:
        render_one(args.render, args.format, args.mem_limit_gib)
        return 0
    res = run([int(x) for x in args.sizes.split(",")], args.mem_limit_gib)
    with open(os.path.join(BUILD, "reports.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
