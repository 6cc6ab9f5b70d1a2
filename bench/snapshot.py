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


def git_show(rev, path):
    """The bytes of ``path`` as it is in the git revision ``rev`` of this checkout."""
    return subprocess.run(["git", "show", "%s:%s" % (rev, path)], cwd=REPO, capture_output=True, check=True).stdout


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
        with open(os.path.join(coll, f), "wb") as out:
            out.write(git_show(rev, f))
    return os.path.abspath(dest)


AB_NAMESPACE = "vfioab"
AB_MODULE = "bench_probe_ab"
PROBE_UTILS = ("_errno.py", "_probe.py", "_sysfs.py", "_version.py")
PROBE_UTILS_SINCE = ("_compile_once.py",)  # what the probe imports in later revisions only


def probe_at(dest, rev):
    """The probe module with its ``module_utils`` as they are in ``rev``, beside this checkout's, for one play.

    Writes ``DEST/ansible_collections/vfioab/migration/plugins/module_utils`` (those files, their
    imports renamed to the ``vfioab`` namespace) and ``DEST/library/bench_probe_ab.py`` (``rev``'s
    ``migration_probe`` importing them). With ``DEST`` added to ANSIBLE_COLLECTIONS_PATH
    and ``DEST/library`` to ANSIBLE_LIBRARY, a task ``bench_probe_ab`` (its action is the probe's,
    ``bench/action_plugins``) runs the probe of ``rev`` on the host. Returns ``DEST``.
    """
    dest = os.path.abspath(dest)
    utils = os.path.join(dest, "ansible_collections", AB_NAMESPACE, "migration", "plugins", "module_utils")
    shutil.rmtree(os.path.join(dest, "ansible_collections"), ignore_errors=True)
    os.makedirs(utils)
    os.makedirs(os.path.join(dest, "library"), exist_ok=True)

    def renamed(text):
        return text.replace("ansible_collections.vfio.migration.", "ansible_collections.%s.migration." % AB_NAMESPACE)
    for name in PROBE_UTILS + PROBE_UTILS_SINCE:
        try:
            text = git_show(rev, "plugins/module_utils/" + name).decode("utf-8")
        except subprocess.CalledProcessError:
            if name in PROBE_UTILS:
                raise
            continue
        with open(os.path.join(utils, name), "w") as out:
            out.write(renamed(text))
    for init in (utils, os.path.dirname(utils)):
        open(os.path.join(init, "__init__.py"), "w").close()
    with open(os.path.join(dest, "library", AB_MODULE + ".py"), "w") as out:
        out.write(renamed(git_show(rev, "plugins/modules/migration_probe.py").decode("utf-8")))
    return dest


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(snapshot(sys.argv[1], sys.argv[2], sys.argv[3:]))
