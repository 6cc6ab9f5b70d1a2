"""The probe's writes: processes forked and time per batch, against an older probe.

Runs ``Prober.run`` in this process against one emulated target (two NVIDIA
parents, so each class is two writes) with batches of 48 and 100 writes, and
counts this process's forks with the interpreter's fork hook. ``--against``
loads ``plugins/module_utils/_probe.py`` of another commit beside this
checkout's, so both run on the same mount in the same run.

    .venv/bin/python bench/probe_writes.py --against 2ad8b4c --repeat 7
    .venv/bin/python bench/probe_writes.py --against 5d19a0d --writers-only --repeat 60 --load 4

A second table times the writer processes alone (``_Writers.run``) writing 48
versions to 8 plain files, which answer at once, as a real host's sysfs
answers in the kernel: wall and CPU (the module process and its writers) per
batch, and how often the module process went to sleep (its voluntary context
switches). ``--load N`` keeps N busy processes running meanwhile, as a fleet
run with many forks keeps the cores busy. The two probes take turns.

The emulator table needs ``/dev/fuse`` and root, like the emulator tests.
"""

import argparse
import importlib.util
import os
import resource
import signal
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "build", "collections"), REPO]

# tests.conftest lays out build/collections/ansible_collections/vfio/migration
from tests import conftest  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position
from tests.emulator.mount import EmulatorMount  # noqa: E402  pylint: disable=wrong-import-position
from tests.fixtures import sysfs_builder as B  # noqa: E402  pylint: disable=wrong-import-position


class Forks(object):
    count = 0

    @classmethod
    def forked(cls):
        cls.count += 1


def probe_module(rev, workdir):
    """``_probe`` at ``rev`` (None: this checkout) as a module object."""
    if rev is None:
        from ansible_collections.vfio.migration.plugins.module_utils import _probe  # pylint: disable=import-outside-toplevel
        return _probe
    from bench.snapshot import git_show  # pylint: disable=import-outside-toplevel
    path = os.path.join(workdir, "probe_%s.py" % rev)
    with open(path, "wb") as f:
        f.write(git_show(rev, "plugins/module_utils/_probe.py"))
    spec = importlib.util.spec_from_file_location("probe_%s" % rev, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _busy(count):
    """``count`` processes that only spin, until killed."""
    pids = []
    for dummy in range(count):
        pid = os.fork()
        if pid == 0:
            while True:
                pass
        pids.append(pid)
    return pids


def writers_alone(probes, repeat, work, load=0):
    """Table rows: each probe's ``_Writers`` writing 48 versions to 8 plain files, taking turns."""
    paths = []
    for i in range(8):
        paths.append(os.path.join(work, "migration_version-%d" % i))
        open(paths[-1], "w").close()
    jobs = [(paths[i % 8], "000210de-nvidia-256-2.%d" % i) for i in range(48)]
    got = {name: [] for name, dummy in probes}
    spinners = _busy(load)
    try:
        for rep in range(repeat):
            for name, module in probes if rep % 2 else probes[::-1]:
                own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                module._Writers(10, 8).run(jobs)  # pylint: disable=protected-access
                wall = time.perf_counter() - start
                own1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((own0, own1), (kids0, kids1))
                          for f in ("ru_utime", "ru_stime"))
                got[name].append((wall * 1e3, cpu * 1e3, own1.ru_nvcsw - own0.ru_nvcsw))
    finally:
        for pid in spinners:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    rows = ["| probe | busy processes | wall ms, median / min | CPU ms, median | the module process's sleeps |",
            "|---|---:|---:|---:|---:|"]
    for name, dummy in probes:
        walls, cpus, sleeps = zip(*got[name])
        rows.append("| %s | %d | %.2f / %.2f | %.2f | %d |" % (
            name, load, statistics.median(walls), min(walls), statistics.median(cpus), statistics.median(sleeps)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--against", help="a commit whose probe to compare with")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--writers-only", action="store_true", help="only the writers, to plain files (no emulator)")
    parser.add_argument("--load", type=int, default=0, metavar="N", help="busy processes while the writers run")
    opts = parser.parse_args(argv)
    os.register_at_fork(after_in_parent=Forks.forked)
    with tempfile.TemporaryDirectory(prefix="vfio-probe-bench-") as work:
        probes = [("this checkout", probe_module(None, work))]
        if opts.against:
            probes.insert(0, (opts.against, probe_module(opts.against, work)))
        print("\n".join(writers_alone(probes, opts.repeat, work, opts.load)))
        if opts.writers_only:
            return
        print()
        tree = B.SysfsTree(os.path.join(work, "src", "target"))
        B.nvidia_vgpu(tree, "0000:3b:00.0", minor=3, types={"257": B.NVIDIA_TYPES["257"]})
        B.nvidia_vgpu(tree, "0000:5e:00.0", minor=1, types={"257": B.NVIDIA_TYPES["257"]})
        tree.save()
        with EmulatorMount(os.path.join(work, "src"), os.path.join(work, "mnt"), os.path.join(work, "writes.log")) as emu:
            root = emu.path("target", "sys")
            print("| writes | probe | forks per batch | median ms | min ms |")
            print("|---:|---|---:|---:|---:|")
            for classes in (24, 50):
                checks = [{"id": "c%d" % i, "mdev_type": "nvidia-257", "version": "000210de-nvidia-257-2.%d" % i}
                          for i in range(classes)]
                for name, module in probes:
                    times, forks = [], set()
                    for _rep in range(opts.repeat):
                        before, start = Forks.count, time.perf_counter()
                        module.Prober(root, allow_non_sysfs=True, timeout=10).run(checks)
                        times.append(time.perf_counter() - start)
                        forks.add(Forks.count - before)
                    fork_counts = "/".join(str(n) for n in sorted(forks))
                    print("| %d | %s | %s | %.1f | %.1f |" % (
                        2 * classes, name, fork_counts, statistics.median(times) * 1e3, min(times) * 1e3))


if __name__ == "__main__":
    main()
