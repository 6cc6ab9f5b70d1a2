"""What a host's Python pays to read a module's AnsiballZ script from stdin (pipelining) rather than from a file.

    .venv/bin/python bench/stdin_script.py                  # the payload sizes of ping, the probe, mdev_facts
    .venv/bin/python bench/stdin_script.py --sizes 100000,200000 --repeat 40 --json

With pipelining, ansible-core starts the host's interpreter with no script
argument and writes the AnsiballZ wrapper to its stdin; without it, the
wrapper is copied to a file first and run from there. Each case here is a
script of that size (a base64 string, as the wrapper's zip is, then an exit),
run ``--repeat`` times each way by the interpreter a host would use; the CPU
of each run is read from the kernel (``RUSAGE_CHILDREN``). The difference is
what the interpreter spends reading source from a pipe; the bytes it then
compiles and runs are the same.
"""

import argparse
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

# AnsiballZ bytes of ping, the compact probe and mdev_facts (bench/probe_cost.py, 2026-12-05)
SIZES = {"ping": 176745, "migration_probe": 209882, "mdev_facts": 216207}


def script(size):
    """Python source of ``size`` bytes: one base64 string literal, then an exit."""
    head, tail = "import sys\nZ = '", "'\nsys.exit(0)\n"
    body = base64.b64encode(os.urandom(size)).decode()[:size - len(head) - len(tail)]
    return head + body + tail


def child_cpu(cmd, stdin_path=None):
    """CPU seconds (user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if stdin_path:
        with open(stdin_path, "rb") as f:
            subprocess.run(cmd, stdin=f, check=True)
    else:
        subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure(sizes, python, repeat):
    """``{name: {"bytes", "file_ms", "stdin_ms"}}``: median CPU ms of each way, taking turns."""
    out = {}
    with tempfile.TemporaryDirectory() as work:
        for name, size in sizes.items():
            path = os.path.join(work, "%s.py" % name)
            with open(path, "w") as f:
                f.write(script(size))
            from_file, from_stdin = [], []
            for dummy in range(repeat):
                from_file.append(child_cpu([python, path]))
                from_stdin.append(child_cpu([python], stdin_path=path))
            out[name] = {"bytes": size, "file_ms": round(statistics.median(from_file) * 1e3, 1),
                         "stdin_ms": round(statistics.median(from_stdin) * 1e3, 1)}
    return out


def markdown(res, python, repeat):
    lines = ["A script of each size run by %s, %d times each way (CPU ms, median):" % (python, repeat), "",
             "| script | bytes | from a file | from stdin | stdin over file | per KB |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in res.items():
        extra = r["stdin_ms"] - r["file_ms"]
        lines.append("| %s | %s | %.1f | %.1f | +%.1f | %.3f |" % (
            name, format(r["bytes"], ","), r["file_ms"], r["stdin_ms"], extra, extra / (r["bytes"] / 1000.0)))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--sizes", help="script sizes in bytes, comma separated (default: the three modules' payloads)")
    ap.add_argument("--python", default="/usr/bin/python3", help="the managed host's interpreter")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sizes = {"%d B" % int(s): int(s) for s in args.sizes.split(",")} if args.sizes else SIZES
    res = measure(sizes, args.python, args.repeat)
    print(json.dumps(res, indent=1) if args.json else markdown(res, args.python, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
