"""The bundled demo: build emulated hosts and run discovery over them.

Run with ``make demo``.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.fixtures.sysfs_builder import build_all  # noqa: E402


def main():
    build = os.path.join(REPO, "build", "demo")
    trees = build_all(os.path.join(build, "hosts"))
    coll = os.path.join(REPO, "build", "collections", "ansible_collections", "vfio")
    os.makedirs(coll, exist_ok=True)
    if not os.path.islink(os.path.join(coll, "migration")):
        os.symlink(REPO, os.path.join(coll, "migration"))
    inv = os.path.join(build, "inventory.json")
    with open(inv, "w") as f:
        json.dump({"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                           "hosts": {n: {"vfio_migration_sysfs_root": os.path.join(p, "sys")}
                                     for n, p in trees.items()}}}, f, indent=1)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"))
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    return subprocess.call([ansible, "all", "-i", inv, "-m", "vfio.migration.mdev_facts",
                            "-a", "sysfs_root={{ vfio_migration_sysfs_root }}"], env=env)


if __name__ == "__main__":
    sys.exit(main())
