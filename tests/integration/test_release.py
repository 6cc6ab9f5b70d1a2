"""What an AWX/AAP operator and a release consume: the execution environment, the docs site, the changelog.

* The execution environment gets only what the collection needs on the controller
  (``meta/execution-environment.yml``), nothing from the test and tooling pins; where a
  container engine answers, the image is built and runs the demo's readiness.
* The docs site builds with antsibull-docs and Sphinx from the installed collection.
* ``CHANGELOG.md`` is what ``antsibull-changelog`` makes of ``changelogs/changelog.yaml``, and
  the next ``antsibull-changelog release`` turns the pending fragments into a release in it.
"""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from demo import fleet as DEMO
from demo.run_demo import run as run_demo
from tests.conftest import REPO, ansible_bin
from tests.emulator.mount import EmulatorMount, fuse_unavailable

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


def ee_definition(built, where, base_image, python="python3.11"):
    """An ansible-builder v3 definition: ``base_image`` and its ``python`` package, ansible-core,
    ansible-runner and the collection tarball."""
    shutil.copy(built["tarball"], where / built["tarball"].name)
    # the build runs ansible-galaxy in _build/, where additional_build_files put the tarball under collections/
    (where / "requirements.yml").write_text(
        "---\ncollections:\n  - name: collections/%s\n    type: file\n" % built["tarball"].name)
    definition = where / "execution-environment.yml"
    definition.write_text(
        "---\nversion: 3\nimages:\n  base_image:\n    name: %s\n"
        "dependencies:\n  python_interpreter:\n    package_system: %s\n    python_path: /usr/bin/%s\n"
        "  ansible_core:\n    package_pip: ansible-core==2.19.14\n"
        "  ansible_runner:\n    package_pip: ansible-runner\n  galaxy: requirements.yml\n"
        "additional_build_files:\n  - src: %s\n    dest: collections\n"
        % (base_image, python, python, built["tarball"].name))
    return definition


def test_ee_context_holds_the_collection_and_nothing_from_the_tests(built, tmp_path):
    definition = ee_definition(built, tmp_path, "registry.example/ee-minimal:latest")
    ctx = tmp_path / "context"
    run(ansible_bin("ansible-builder"), "create", "-f", str(definition), "-c", str(ctx), cwd=str(tmp_path))
    files = sorted(str(p.relative_to(ctx)) for p in ctx.rglob("*") if p.is_file())
    assert ("Containerfile" in files or "Dockerfile" in files) and "_build/requirements.yml" in files
    assert "_build/collections/%s" % built["tarball"].name in files
    # the only dependencies in the context: ansible-core, ansible-runner and the collection tarball
    assert not [f for f in files if re.match(r"_build/(requirements.*\.txt|bindep\.txt)$", f)], files
    assert yaml.safe_load((ctx / "_build" / "requirements.yml").read_text()) == {
        "collections": [{"name": "collections/" + built["tarball"].name, "type": "file"}]}
    containerfile = (ctx / ("Containerfile" if "Containerfile" in files else "Dockerfile")).read_text()
    assert "ansible-core==2.19.14" in containerfile
    for pin in DEV_PINS:
        if pin not in ("ansible-core", "jinja2"):
            assert not re.search(r"\b%s\b" % re.escape(pin), containerfile), pin


def container_engine():
    """The first of docker and podman whose ``info`` answers, or None."""
    for name in ("docker", "podman"):
        path = shutil.which(name)
        if path and subprocess.run([path, "info"], capture_output=True, timeout=60, check=False).returncode == 0:
            return name
    return None


#: what a build that could not reach a registry says (then the step is skipped, with the engine's words)
OFFLINE = re.compile(r"pull|manifest|registry|resolve|dial tcp|no such host|network|timeout|TLS handshake|"
                     r"Could not find a version|No matching distribution|Connection refused", re.I)


def test_ee_image_builds_and_runs_the_demo_when_an_engine_runs(built, tmp_path):
    """The image from the definition above runs the demo's readiness over the emulated fleet (mounted in).

    ansible-core 2.19 needs Python 3.11 or later: the default base image is ansible-builder's
    documented UBI 9 with its ``python3.11`` package; ``VFIO_EE_BASE_IMAGE`` and ``VFIO_EE_PYTHON``
    (the package, also the interpreter's name) choose others. Without a container engine, or
    when the base image cannot be pulled, this one step is skipped with the reason.
    """
    engine = container_engine()
    if engine is None:
        pytest.skip("no container engine answers on this machine (docker info and podman info fail): "
                    "the execution-environment image is not built")
    why = fuse_unavailable()
    if why:
        pytest.skip("the demo needs the FUSE sysfs emulator: %s" % why)
    base = os.environ.get("VFIO_EE_BASE_IMAGE", "docker.io/redhat/ubi9:latest")
    python = os.environ.get("VFIO_EE_PYTHON", "python3.11")
    definition = ee_definition(built, tmp_path, base, python)
    tag = "localhost/vfio-migration-ee-test:%d" % os.getpid()
    proc = subprocess.run([ansible_bin("ansible-builder"), "build", "-f", str(definition), "-c", str(tmp_path / "ctx"),
                           "-t", tag, "--container-runtime", engine, "-v", "2"],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=3600, check=False)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-30:]  # where the build stopped
    if proc.returncode != 0 and OFFLINE.search("\n".join(tail)):
        pytest.skip("%s answers but the image could not be built from %s (no registry reachable?): %s"
                    % (engine, base, tail[-1]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    try:
        # the same demo on the host, for the verdicts the image must reproduce
        host_report = tmp_path / "host-report"
        done = run_demo(args=["-e", "vfio_migration_report_dir=%s" % host_report,
                              "-e", "vfio_migration_report_timestamp=false"],
                        build_dir=str(tmp_path / "host-build"), capture=True)
        assert (host_report / "matrix.json").is_file(), done.stdout[-3000:]
        src, mnt, report = tmp_path / "ee-build" / "hosts", tmp_path / "ee-build" / "mnt", tmp_path / "ee-report"
        DEMO.build(str(src))
        report.mkdir()
        with EmulatorMount(str(src), str(mnt), str(tmp_path / "ee-build" / "writes.log")):
            # as root: the emulator's FUSE mount answers its own user (root) only
            cmd = [engine, "run", "--rm", "--user", "0", "-v", "%s:/demo:ro" % os.path.join(REPO, "demo"),
                   "-v", "%s:%s" % (mnt, mnt), "-v", "%s:/runner/vfio-reports" % report, tag,
                   "ansible-playbook", "-i", "/demo/inventory.yml", "vfio.migration.readiness",
                   "-e", "vfio_demo_mount=%s" % mnt, "-e", "vfio_migration_report_dir=/runner/vfio-reports",
                   "-e", "vfio_migration_report_timestamp=false",
                   "-e", "ansible_python_interpreter=/usr/bin/%s" % python]
            inside = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        assert (report / "matrix.json").is_file(), inside.stdout[-3000:] + inside.stderr[-3000:]
        got = json.loads((report / "matrix.json").read_text())["summary"]
        want = json.loads((host_report / "matrix.json").read_text())["summary"]
        # the same verdicts; the unreachable demo host may fail otherwise where the image has no ssh client
        assert (got["status_counts"], got["evidence_counts"], got["ready"]) == (
            want["status_counts"], want["evidence_counts"], want["ready"])
        assert got["hosts_by_state"]["ok"] == want["hosts_by_state"]["ok"]
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True, timeout=300, check=False)


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


def collection_copy(where):
    """The files antsibull-changelog reads, laid out as ansible_collections/vfio/migration below ``where``."""
    root = where / "ansible_collections" / "vfio" / "migration"
    root.mkdir(parents=True)
    for name in ("galaxy.yml", "README.md", "CHANGELOG.md"):
        shutil.copy(os.path.join(REPO, name), root / name)
    for name in ("changelogs", "meta", "plugins", "roles", "playbooks"):
        shutil.copytree(os.path.join(REPO, name), root / name,
                        ignore=shutil.ignore_patterns("__pycache__", ".plugin-cache.yaml"))
    return root


def test_changelog_is_antsibull_changelogs_and_the_next_release_cuts_the_fragments(tmp_path):
    readme = open(os.path.join(REPO, "README.md")).read()
    assert "[`CHANGELOG.md`](CHANGELOG.md)" in readme.split("\n## ", 1)[0]  # linked from the README's top
    root = collection_copy(tmp_path)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path),
               PATH=os.path.dirname(ansible_bin("ansible")) + os.pathsep + os.environ["PATH"])
    changelog = ansible_bin("antsibull-changelog")
    proc = run(changelog, "lint", cwd=str(root), env=env)
    assert proc.stdout.strip() == "", proc.stdout
    # the committed CHANGELOG.md is the one the tool makes from changelog.yaml
    run(changelog, "generate", cwd=str(root), env=env)
    assert (root / "CHANGELOG.md").read_text() == open(os.path.join(REPO, "CHANGELOG.md")).read()
    # the next release takes every pending fragment into changelog.yaml and CHANGELOG.md
    pending = sorted(f for f in os.listdir(root / "changelogs" / "fragments") if f.endswith((".yml", ".yaml")))
    released = yaml.safe_load((root / "changelogs" / "changelog.yaml").read_text())["releases"]
    run(changelog, "release", "--version", "99.0.0", "--date", "2099-01-01", cwd=str(root), env=env)
    releases = yaml.safe_load((root / "changelogs" / "changelog.yaml").read_text())["releases"]
    assert set(releases) == set(released) | {"99.0.0"}
    assert sorted(releases["99.0.0"].get("fragments") or []) == pending
    assert releases["99.0.0"]["release_date"] == "2099-01-01"
    text = (root / "CHANGELOG.md").read_text()
    assert "## v99\\.0\\.0" in text and text.index("## v99\\.0\\.0") < text.index("## v0\\.1\\.0")
    assert [f for f in os.listdir(root / "changelogs" / "fragments") if f.endswith(".yml")] == []
