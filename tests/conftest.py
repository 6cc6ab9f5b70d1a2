"""Shared test set-up: the working tree as the collection vfio.migration.

Tests import ``ansible_collections.vfio.migration...`` and run Ansible with
``ANSIBLE_COLLECTIONS_PATH`` pointing at a symlink farm under ``build/``.
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PARTS = REPO.split(os.sep)
if _PARTS[-3:] == ["ansible_collections", "vfio", "migration"]:
    # already laid out as a collection (ansible-test units, an installed copy): use that tree
    COLLECTIONS = os.sep.join(_PARTS[:-3]) or os.sep
else:
    COLLECTIONS = os.path.join(REPO, "build", "collections")
    _LINK = os.path.join(COLLECTIONS, "ansible_collections", "vfio", "migration")
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    if not os.path.islink(_LINK):
        os.symlink(REPO, _LINK)
for p in (COLLECTIONS, REPO):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "0")
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_WARNING", "0")
os.environ.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
os.environ.setdefault("ANSIBLE_HOST_KEY_CHECKING", "0")

MARKERS = (
    'emulator: needs the FUSE sysfs emulator (/dev/fuse, root)',
    "mdevctl: runs Debian's mdevctl in a private mount namespace (root)",
    'ansible: runs ansible/ansible-playbook',
    'kernel: boots real Debian kernels under qemu (slow)',
    'browser: opens reports in headless Chromium',
    'lint: ansible-lint, ansible-test sanity, molecule',
)


def pytest_configure(config):
    """Register the markers here rather than in pytest.ini: ansible-test units runs with its own ini."""
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


VENV_BIN = os.path.dirname(sys.executable)


def ansible_bin(name):
    """Path of an Ansible command next to the running interpreter."""
    path = os.path.join(VENV_BIN, name)
    return path if os.path.exists(path) else name


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def fixture_trees(tmp_path_factory):
    """Every fixture scenario built once: ``{name: hostdir}``."""
    from tests.fixtures.sysfs_builder import build_all
    return build_all(str(tmp_path_factory.mktemp("fixtures")))
