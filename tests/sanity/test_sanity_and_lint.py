"""ansible-test sanity and ansible-lint (production profile) over the collection.

ansible-test wants the collection at ``.../ansible_collections/vfio/migration``
and in a git work tree; the test lays out the tracked files that way in a
temporary directory. The pip bootstrap it would download is replaced by
``get_pip_offline.py`` (see there why).
"""

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO, ansible_bin

pytestmark = pytest.mark.lint

PIP_BOOTSTRAP = os.path.expanduser("~/.ansible/test/cache/get_pip_24_2.py")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and os.path.isfile(os.path.join(REPO, f))]


@pytest.fixture(scope="module")
def collection_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("sanity") / "ansible_collections" / "vfio" / "migration"
    for rel in tracked_files():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), dest)
    subprocess.run(["git", "init", "-q", "."], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    return root


def test_ansible_test_sanity(collection_copy):
    os.makedirs(os.path.dirname(PIP_BOOTSTRAP), exist_ok=True)
    shutil.copy(os.path.join(REPO, "tests", "sanity", "get_pip_offline.py"), PIP_BOOTSTRAP)
    proc = subprocess.run([ansible_bin("ansible-test"), "sanity", "--python", "3.11", "--color", "no"],
                          cwd=collection_copy, capture_output=True, text=True, timeout=1800, check=False)
    errors = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if line.startswith("ERROR")]
    assert proc.returncode == 0, "\n".join(errors) or proc.stdout[-4000:] + proc.stderr[-4000:]


def test_ansible_test_units(collection_copy):
    """``ansible-test units`` finds and runs the unit tests (no root, FUSE or apt needed)."""
    proc = subprocess.run([ansible_bin("ansible-test"), "units", "--python", "3.11", "--color", "no"],
                          cwd=collection_copy, capture_output=True, text=True, timeout=1800, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    counts = [line for line in out.splitlines() if " passed" in line and "==" in line]
    assert counts and int(counts[-1].split(" passed")[0].split()[-1]) >= 300, counts


def test_ansible_lint_production_profile():
    proc = subprocess.run([ansible_bin("ansible-lint"), "--nocolor"], cwd=REPO, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr
