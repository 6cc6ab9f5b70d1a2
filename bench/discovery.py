"""Per-host discovery: ``gather()`` against ``mdevctl types`` + ``mdevctl list``.

    .venv/bin/python bench/discovery.py [--repeat 10] [--scale 8,32,16]

Builds one big host tree with the primitives of ``tests/fixtures/sysfs_builder.py``
(``--scale P,T,I``: P NVIDIA-style parents x T types x I running instances per
type, every type and instance with a ``migration_version``) and times, each as
a whole process in a private mount namespace with the tree bind-mounted over
``/sys`` (so the namespace cost is in every figure):

* ``mdevctl``: ``mdevctl types --dumpjson`` and ``mdevctl list --dumpjson``
* ``gather``: ``python -c`` importing ``_sysfs`` and printing ``gather()`` as JSON
* ``module``: the ``mdev_facts`` module run directly (no AnsiballZ) with an args file

The runs are interleaved, repeated, and the median is reported.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from demo.run_demo import collection_path  # noqa: E402
from tests.fixtures import sysfs_builder as B  # noqa: E402

BUILD = os.path.join(REPO, "build", "bench", "discovery")


def build_tree(dest, parents=8, types=32, instances=16):
    """``parents`` GPUs, each offering ``types`` types with ``instances`` running instances each."""
    stamp = os.path.join(dest, ".scale")
    want = "%d,%d,%d" % (parents, types, instances)
    if os.path.exists(stamp) and open(stamp).read() == want:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    t = B.SysfsTree(dest)
    n = 0
    for p in range(parents):
        bdf = "0000:%02x:00.0" % (0x10 + p)
        dev = t.pci_device(bdf, "0x10de", "0x1eb8", "nvidia", version="550.54.14", pci_class="0x030200",
                           numa_node=p % 2, root_port="pci0000:%02x" % (0x10 + p))
        t.mdev_parent(bdf, dev)
        for k in range(types):
            type_id = "nvidia-%d" % (256 + k)
            rule = {"rule": "range", "self": "000210de-nvidia-%d-2.3" % (256 + k)}
            t.mdev_type(dev, type_id, "vfio-pci", instances, name="GRID T4-%dQ" % (k + 1),
                        description="num_heads=4, frl_config=60, framebuffer=%dM, max_resolution=5120x2880, "
                                    "max_instance=%d" % (1024 * (k % 4 + 1), 2 * instances),
                        migration=rule)
            for i in range(instances):
                n += 1
                t.mdev_instance(dev, type_id, "%08x-0000-4000-8000-%012x" % (p, n), migration=rule)
    B.host_stack(t)
    t.save()
    with open(stamp, "w") as f:
        f.write(want)
    return dest


def commands(tree, python):
    sysdir = os.path.join(tree, "sys")
    root = os.path.join(tree, "root")
    coll = collection_path()
    bind = "mount --bind %s /sys" % shlex.quote(sysdir)
    gather = ("import json,sys; from ansible_collections.vfio.migration.plugins.module_utils._gather import gather; "
              "json.dump(gather('/sys', use_udev=False, host_root=%r), sys.stdout)" % root)
    args = os.path.join(os.path.dirname(tree), "mdev_facts.args.json")
    with open(args, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": {"sysfs_root": "/sys", "host_root": root, "use_udev": False}}, f)
    module = os.path.join(REPO, "plugins", "modules", "mdev_facts.py")
    return {
        "mdevctl": "%s && mdevctl types --dumpjson >/dev/null && mdevctl list --dumpjson >/dev/null" % bind,
        "gather": "%s && PYTHONPATH=%s %s -c %s >/dev/null" % (bind, shlex.quote(coll), shlex.quote(python),
                                                               shlex.quote(gather)),
        "module": "%s && PYTHONPATH=%s %s %s %s >/dev/null" % (bind, shlex.quote(coll), shlex.quote(python),
                                                               shlex.quote(module), shlex.quote(args)),
    }


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def run(repeat=10, scale=None, python=sys.executable, dest=BUILD):
    parents, types, instances = scale or (8, 32, 16)
    tree = build_tree(os.path.join(dest, "host"), parents, types, instances)
    cmds = commands(tree, python)
    # sanity: both sides see the same instances
    out = subprocess.run(["unshare", "-m", "sh", "-c", cmds["mdevctl"].replace(
        "mdevctl list --dumpjson >/dev/null", "mdevctl list --dumpjson")], capture_output=True, text=True, check=True)
    listed = sum(len(v) for p in json.loads(out.stdout or "[]") for v in p.values())
    g = subprocess.run(["unshare", "-m", "sh", "-c", cmds["gather"].replace(" >/dev/null", "")],
                       capture_output=True, text=True, check=True)
    facts = json.loads(g.stdout)
    times = {k: [] for k in cmds}
    for dummy in range(repeat):
        for name, sh in cmds.items():
            t0 = time.monotonic()
            subprocess.run(["unshare", "-m", "sh", "-c", sh], check=True)
            times[name].append(time.monotonic() - t0)
    med = {k: _median(v) for k, v in times.items()}
    return {
        "scale": {"parents": parents, "types": types, "instances_per_type": instances,
                  "instances": parents * types * instances},
        "mdevctl_listed": listed, "gather_devices": len(facts["devices"]),
        "gather_types": sum(len(p["types"]) for p in facts["parents"].values()),
        "repeat": repeat, "median_s": {k: round(v, 4) for k, v in med.items()},
        "min_s": {k: round(min(v), 4) for k, v in times.items()},
        "ratio_gather_to_mdevctl": round(med["gather"] / med["mdevctl"], 3),
        "ratio_module_to_mdevctl": round(med["module"] / med["mdevctl"], 3),
        "commands": {k: "unshare -m sh -c %s" % shlex.quote(v) for k, v in cmds.items()},
    }


def markdown(res):
    s = res["scale"]
    lines = ["", "Tree: %d parents x %d types x %d instances per type = %d instances (mdevctl list: %d, gather: %d)"
             % (s["parents"], s["types"], s["instances_per_type"], s["instances"], res["mdevctl_listed"],
                res["gather_devices"]), "",
             "| what | median s (%d runs) | min s | ratio to mdevctl |" % res["repeat"], "|---|---:|---:|---:|"]
    for k in ("mdevctl", "gather", "module"):
        ratio = res["median_s"][k] / res["median_s"]["mdevctl"]
        lines.append("| %s | %.3f | %.3f | %.2f |" % (k, res["median_s"][k], res["min_s"][k], ratio))
    lines += ["", "Commands:", ""] + ["    %s" % v for v in res["commands"].values()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--scale", default="8,32,16", help="parents,types,instances per type")
    args = ap.parse_args(argv)
    res = run(args.repeat, tuple(int(x) for x in args.scale.split(",")))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
