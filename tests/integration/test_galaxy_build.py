"""The working tree builds into an installable collection whose plugins all document themselves."""

import importlib
import json
import os
import subprocess

import pytest

from tests.conftest import REPO, ansible_bin

pytestmark = pytest.mark.ansible

MODULES = sorted("vfio.migration." + f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules"))
                 if f.endswith(".py") and not f.startswith("_"))
ROLES = sorted("vfio.migration." + d for d in os.listdir(os.path.join(REPO, "roles")))


def filter_names():
    """Every filter the working tree's filter plugins export (the docs must cover each)."""
    names = []
    for f in sorted(os.listdir(os.path.join(REPO, "plugins", "filter"))):
        if f.endswith(".py") and not f.startswith("_"):
            mod = importlib.import_module("ansible_collections.vfio.migration.plugins.filter." + f[:-3])
            names.extend(mod.FilterModule().filters())
    return sorted(names)


FILTERS = filter_names()


def test_the_lists_are_what_the_tree_has():
    assert MODULES == ["vfio.migration.compat_matrix", "vfio.migration.matrix_reports", "vfio.migration.mdev_facts",
                       "vfio.migration.migration_probe"]
    assert {"gather_states", "compat_matrix", "drain_plan", "report_html"} <= set(FILTERS)
    readme = open(os.path.join(REPO, "README.md")).read()
    for name in FILTERS:  # the README's plugin table names every filter
        assert "`%s`" % name in readme or "vfio.migration.%s" % name in readme, name


def run(*cmd, **kw):
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=300, check=False, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run(ansible_bin("ansible-galaxy"), "collection", "build", REPO, "--output-path", str(out))
    tarball = [f for f in os.listdir(out) if f.endswith(".tar.gz")]
    assert tarball == ["vfio-migration-0.1.0.tar.gz"]
    coll = tmp_path_factory.mktemp("collections")
    run(ansible_bin("ansible-galaxy"), "collection", "install", "--force", str(out / tarball[0]), "-p", str(coll))
    root = coll / "ansible_collections" / "vfio" / "migration"
    assert (root / "plugins" / "modules" / "migration_probe.py").is_file()
    assert not (root / ".venv").exists() and not (root / "build").exists()
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(coll))


def test_installed_collection_documents_every_plugin(installed):
    docs = json.loads(run(ansible_bin("ansible-doc"), "--json", *MODULES, env=installed))
    for name in MODULES:
        d = docs[name]
        assert d["doc"]["description"] and d["examples"].strip() and d["return"], name
    fdocs = json.loads(run(ansible_bin("ansible-doc"), "-t", "filter", "--json",
                           *["vfio.migration." + f for f in FILTERS], env=installed))
    assert sorted(k.split(".")[-1] for k in fdocs) == FILTERS
    for name, d in fdocs.items():
        assert d["doc"]["description"] and d["examples"].strip() and d["return"], name
    rdocs = json.loads(run(ansible_bin("ansible-doc"), "-t", "role", "--json", *ROLES, env=installed))
    assert sorted(rdocs) == ROLES


def test_installed_playbooks_resolve(installed, tmp_path):
    inv = tmp_path / "hosts"
    inv.write_text("localhost ansible_connection=local\n")
    playbooks = sorted("vfio.migration." + f[:-4] for f in os.listdir(os.path.join(REPO, "playbooks"))
                       if f.endswith(".yml"))
    assert {"vfio.migration.readiness", "vfio.migration.precheck", "vfio.migration.gather"} <= set(playbooks)
    for pb in playbooks:
        run(ansible_bin("ansible-playbook"), "-i", str(inv), pb, "--syntax-check", env=installed)
