"""Where the kernel labs build and run, for a checkout the lab guests cannot see (issue 12).

The guests share this machine's root read-only and mount tmpfs over some of its
directories (``tests/kernel/guest-init.sh``). A checkout below one of them
(``/tmp``, root's home ``/root``) is invisible inside a guest, so a ``mtty.ko`` the
build wrote into it could not be loaded (``insmod ...: No such file or
directory``: three kernel tests failed from clones in ``/tmp`` and ``/root``).
``lab.default_lab_dir`` moves such a checkout's lab to ``/var/tmp``; these tests
need no kernel, no qemu and no root.
"""

import hashlib
import os
import re

import pytest

from tests.kernel import lab


def guest_tmpfs_mounts():
    """The host-root paths ``guest-init.sh`` mounts a file system over inside every guest."""
    with open(lab.GUEST_INIT) as f:
        text = f.read()
    loop = re.search(r"^for d in ([^;]+); do\n(.*?)^done", text, re.M | re.S)
    assert loop and '"$R/$d"' in loop.group(2), "guest-init.sh's tmpfs loop changed: update this test"
    paths = {"/" + d for d in loop.group(1).split()}
    # the other mounts below $R; /etc/libvirt only in the 6.1 lab (lab_libvirt=hidden), not a checkout's place
    paths.update("/" + m for m in re.findall(r"^\s*mount -t \S+ (?:-o \S+ )?\S+ \"?\$R/([\w/]+)\"?", text, re.M))
    paths.discard("/etc/libvirt")
    return paths


def test_every_directory_the_guests_cover_is_hidden():
    mounts = guest_tmpfs_mounts()
    assert {"/tmp", "/root", "/run"} <= mounts
    # /dev/shm and /dev/pts lie below /dev, which is covered as a whole
    uncovered = [m for m in mounts if not lab._hidden_in_guests(m)]  # pylint: disable=protected-access
    assert not uncovered, "guest-init.sh mounts over %s, missing from lab.GUEST_TMPFS" % uncovered


@pytest.mark.parametrize("path", ["/tmp/vfio-migration", "/tmp/x/y/vfio-migration", "/root/vfio-migration",
                                  "/root/src/vfio-migration", "/run/user/0/vfio-migration", "/tmp", "/root"])
def test_a_checkout_below_a_guest_tmpfs_is_hidden(path):
    assert lab._hidden_in_guests(path)  # pylint: disable=protected-access


@pytest.mark.parametrize("path", ["/work/main", "/var/tmp/vfio-migration", "/home/user/vfio-migration",
                                  "/srv/ci/vfio-migration", "/tmpfoo/vfio-migration", "/rootfs/vfio-migration"])
def test_other_checkouts_are_visible(path):
    assert not lab._hidden_in_guests(path)  # pylint: disable=protected-access


def test_a_symlink_is_judged_by_where_it_leads(tmp_path):
    hidden_dir = tmp_path / "clone"
    hidden_dir.mkdir()
    if not lab._hidden_in_guests(str(hidden_dir)):  # pylint: disable=protected-access
        pytest.skip("pytest's tmp_path is not below a directory the guests cover")
    into_var_tmp = tmp_path / "to-var-tmp"
    into_var_tmp.symlink_to("/var/tmp")
    assert not lab._hidden_in_guests(str(into_var_tmp))  # pylint: disable=protected-access


@pytest.mark.parametrize("checkout", ["/tmp/vfio-migration", "/root/vfio-migration"])
def test_a_hidden_checkout_builds_and_runs_in_var_tmp(monkeypatch, checkout):
    monkeypatch.delenv("KERNEL_LAB_DIR", raising=False)
    monkeypatch.setattr(lab, "REPO", checkout)
    got = lab.default_lab_dir()
    digest = hashlib.sha256(os.path.realpath(checkout).encode()).hexdigest()[:12]
    assert got == "/var/tmp/vfio-migration-lab-%s" % digest
    assert not lab._hidden_in_guests(got)  # pylint: disable=protected-access


def test_two_hidden_checkouts_do_not_share_a_lab(monkeypatch):
    monkeypatch.delenv("KERNEL_LAB_DIR", raising=False)
    dirs = set()
    for checkout in ("/tmp/a/vfio-migration", "/tmp/b/vfio-migration", "/root/vfio-migration"):
        monkeypatch.setattr(lab, "REPO", checkout)
        dirs.add(lab.default_lab_dir())
    assert len(dirs) == 3


def test_a_visible_checkout_keeps_its_build_dir(monkeypatch):
    monkeypatch.delenv("KERNEL_LAB_DIR", raising=False)
    monkeypatch.setattr(lab, "REPO", "/work/main")
    assert lab.default_lab_dir() == "/work/main/build/kernel-lab"


def test_kernel_lab_dir_wins(monkeypatch):
    monkeypatch.setattr(lab, "REPO", "/tmp/vfio-migration")
    monkeypatch.setenv("KERNEL_LAB_DIR", "/srv/lab")
    assert lab.default_lab_dir() == "/srv/lab"


def test_the_migration_lab_uses_the_same_place():
    from tests.kernel import lab612  # pylint: disable=import-outside-toplevel
    assert lab612.LAB_DIR == lab.LAB_DIR == lab.default_lab_dir()
    assert not lab._hidden_in_guests(lab.LAB_DIR) or os.environ.get("KERNEL_LAB_DIR")  # pylint: disable=protected-access
