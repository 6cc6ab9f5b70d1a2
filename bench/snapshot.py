"""A copy of the collection with some files as they are in a git revision, for A/B runs.

    .venv/bin/python bench/snapshot.py build/bench/before HEAD \\
        plugins/filter/matrix.py roles/matrix/tasks/main.yml plugins/module_utils/_sysfs.py
    .venv/bin/python bench/run.py --parts fleet --sizes 200 --compare-collections build/bench/before

Copies the working tree's collection (galaxy.yml, meta, plugins, roles,
playbooks) to ``DEST/ansible_collections/vfio/migration`` and puts the named
files there as they are in ``REV`` (``git show REV:FILE``), so the two
collections differ only in those files. ``DEST`` is what goes on
``ANSIBLE_COLLECTIONS_PATH``.
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PARTS = ("galaxy.yml", "meta", "plugins", "roles", "playbooks")


def snapshot(dest, rev, files):
    coll = os.path.join(os.path.abspath(dest), "ansible_collections", "vfio", "migration")
    shutil.rmtree(coll, ignore_errors=True)
    os.makedirs(coll)
    for part in PARTS:
        src = os.path.join(REPO, part)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(coll, part), ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(coll, part))
    for f in files:
        text = subprocess.run(["git", "show", "%s:%s" % (rev, f)], cwd=REPO, capture_output=True, check=True).stdout
        with open(os.path.join(coll, f), "wb") as out:
            out.write(text)
    return os.path.abspath(dest)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(snapshot(sys.argv[1], sys.argv[2], sys.argv[3:]))
