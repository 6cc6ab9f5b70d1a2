"""The modules' processes compile each of the collection's module_utils once (``_compile_once``).

Python's zipimport compiles a module's source twice when it imports it from a
zip: once to learn its file name, once to run it. The modules run from
AnsiballZ zips; ``_compile_once`` makes the collection's own module_utils
compile once. Counted here with an audit hook (a ``sitecustomize`` on
``PYTHONPATH``) in the real module processes Ansible starts: ansible-core's
own module_utils, imported before the module's code runs, are the control and
are still compiled twice.
"""

import json
import os
import shutil
import sys

import pytest

from tests.ansible_runner import adhoc, write_inventory

pytestmark = pytest.mark.ansible

OURS = ".zip/ansible_collections/vfio/migration/plugins/module_utils/"
CORE = ".zip/ansible/module_utils/basic.py"

SITECUSTOMIZE = r"""
import atexit, collections, json, os, sys
_compiled = collections.Counter()


def _count(event, args):
    if event == "compile" and isinstance(args[1], str) and ".zip/" in args[1]:
        _compiled[args[1].split(".zip/", 1)[1]] += 1


def _report():
    if _compiled:
        with open(os.path.join(os.environ["COMPILE_COUNTS"], "%d.json" % os.getpid()), "w") as f:
            json.dump(dict(_compiled), f)


sys.addaudithook(_count)
atexit.register(_report)
"""


def compiles_in_module_processes(tmp_path, module, args, tree):
    hook, counts = tmp_path / "hook", tmp_path / "counts"
    hook.mkdir()
    counts.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    inv = write_inventory(str(tmp_path / "hosts.json"), {"h": {"tree": tree}},
                          {"ansible_python_interpreter": sys.executable})
    env = {"PYTHONPATH": str(hook), "COMPILE_COUNTS": str(counts)}
    res, proc = adhoc(inv, module, args, env=env)
    assert proc.returncode == 0 and not res["h"].get("failed"), (proc.stdout[-3000:], proc.stderr[-3000:])
    found = [json.loads(p.read_text()) for p in counts.iterdir()]
    # the controller imports nothing from a zip: one report, from the module process
    assert len(found) == 1, found
    return res["h"], found[0]


@pytest.mark.parametrize("module", ["vfio.migration.mdev_facts", "vfio.migration.migration_probe"])
def test_each_module_util_is_compiled_once(fixture_trees, tmp_path, module):
    tree = str(tmp_path / "sys")
    shutil.copytree(os.path.join(fixture_trees["proposal"], "sys"), tree, symlinks=True)
    if module.endswith("probe"):
        args = {"sysfs_root": tree, "allow_non_sysfs": True,
                "checks": [{"id": "a", "mdev_type": "i915-GVTg_V5_4", "version": "00028086-193b-i915-GVTg_V5_4"}]}
    else:
        args = {"sysfs_root": tree}
    result, compiled = compiles_in_module_processes(tmp_path, module, args, tree)
    if module.endswith("probe"):
        assert [r["status"] for r in result["results"]] == ["compatible"]
    else:
        assert result["ansible_facts"]["vfio_mdev"]["parents"]
    prefix = OURS.split(".zip/", 1)[1]
    ours = {name[len(prefix):]: n for name, n in compiled.items() if name.startswith(prefix)}
    before = {"__init__.py", "_compile_once.py"}  # imported before it takes effect
    expected = {"_probe.py", "_sysfs.py", "_errno.py", "_version.py"} if module.endswith("probe") else {
        "_gather.py", "_inventory.py", "_sysfs.py", "_errno.py", "_version.py"}
    assert expected <= set(ours), ours
    assert {n: ours[n] for n in set(ours) - before} == dict.fromkeys(set(ours) - before, 1)
    # the control: what is imported before the module's code runs is still compiled twice
    assert compiled[CORE.split(".zip/", 1)[1]] == 2 and {ours[n] for n in before} == {2}
