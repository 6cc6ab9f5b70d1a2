"""The working tree builds into an installable collection whose plugins all document themselves."""

import json
import os
import subprocess

import pytest

from tests.conftest import REPO, ansible_bin

pytestmark = pytest.mark.ansible

MODULES = ["vfio.migration.mdev_facts", "vfio.migration.migration_probe"]
FILTERS = ["compat_matrix", "compatible_match", "decode_version", "drain_plan", "matrix_cells", "migration_targets",
           "parse_migration_layout", "probe_batches", "report_csv", "report_html", "report_json", "report_markdown",
           "stranded_message"]
ROLES = ["vfio.migration.facts", "vfio.migration.matrix", "vfio.migration.precheck"]


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
    for pb in ("vfio.migration.readiness", "vfio.migration.precheck"):
        run(ansible_bin("ansible-playbook"), "-i", str(inv), pb, "--syntax-check", env=installed)
