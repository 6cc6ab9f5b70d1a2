"""The bundled demo: `vfio.migration.readiness` over emulated hypervisors.

``make demo`` runs this: it builds the demo fleet's sysfs trees
(demo/fleet.py), serves them through the FUSE sysfs emulator at
``build/demo/mnt``, runs the readiness playbook over ``demo/inventory.yml``
and prints where the reports are. Extra arguments go to ansible-playbook
(for example ``-e vfio_migration_drain_hosts=[gpu-b1]``).
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from demo.fleet import build  # noqa: E402
from tests.emulator.mount import EmulatorMount, fuse_unavailable  # noqa: E402

BUILD = os.path.join(REPO, "build", "demo")
REPORT_DIR = os.path.join(REPO, "vfio-migration-report")


def collection_path():
    """A collections dir holding ``ansible_collections/vfio/migration`` -> this tree."""
    base = os.path.join(REPO, "build", "collections")
    link = os.path.join(base, "ansible_collections", "vfio", "migration")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if not os.path.islink(link):
        os.symlink(REPO, link)
    return base


def run(playbook="vfio.migration.readiness", args=(), inventory=os.path.join(HERE, "inventory.yml"),
        build_dir=BUILD, capture=False):
    """Build the fleet in ``build_dir``, mount it, run ``playbook``; return the exit code
    (or the completed process when ``capture``). The inventory finds the mount through
    ``vfio_demo_mount`` (``-e`` overrides it when ``build_dir`` is not the default)."""
    why = fuse_unavailable()
    if why:
        sys.exit("the demo needs the FUSE sysfs emulator: %s" % why)
    src, mnt = os.path.join(build_dir, "hosts"), os.path.join(build_dir, "mnt")
    shutil.rmtree(src, ignore_errors=True)
    build(src)
    os.makedirs(mnt, exist_ok=True)
    # this tree first; collections the caller already names (a community callback...) after it
    paths = [collection_path()] + [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(paths), ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_HOST_KEY_CHECKING="0")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, playbook] + list(args)
    if build_dir != BUILD:
        cmd += ["-e", "vfio_demo_mount=%s" % mnt]
    with EmulatorMount(src, mnt, os.path.join(build_dir, "writes.log")):
        if capture:
            return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        return subprocess.call(cmd, cwd=REPO, env=env)


def main():
    rc = run(args=sys.argv[1:])
    if rc != 0:
        print("\nThe readiness run failed (exit code %d): see its output above." % rc)
    elif not any(a.startswith("vfio_migration_report_dir") for a in sys.argv[1:]):
        print("\nReports: %s/report.html (matrix.json, matrix.csv, matrix.md, changes.json beside it;"
              " the previous run's matrix.json is kept as matrix.previous.json)" % REPORT_DIR)
    return rc


if __name__ == "__main__":
    sys.exit(main())
