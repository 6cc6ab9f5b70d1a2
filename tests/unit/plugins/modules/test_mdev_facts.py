"""mdev_facts ``main()``: what it returns, the fact file it persists (or fails to), and ``use_udev``.

Runs the module in this process over the builder's fixture trees; needs no
root, FUSE or installed packages.
"""

import json
import os
import stat
import types

import pytest

from ansible_collections.vfio.migration.plugins.module_utils import _gather
from ansible_collections.vfio.migration.plugins.modules import mdev_facts

GVTG = "0000:00:02.0"


@pytest.fixture
def gvtg(fixture_trees):
    hostdir = fixture_trees["gvtg"]
    return {"sysfs_root": os.path.join(hostdir, "sys"), "host_root": os.path.join(hostdir, "root"),
            "query_qemu": False}


def test_reads_the_tree_and_writes_nothing_without_persist_dir(run_module, gvtg):
    result = run_module(mdev_facts.main, gvtg)
    assert (result["failed"], result["changed"], result["fact_file"]) == (False, False, None)
    facts = result["ansible_facts"]["vfio_mdev"]
    assert facts["sysfs_root"] == gvtg["sysfs_root"] and facts["errors"] == []
    assert sorted(facts["parents"][GVTG]["types"]) == ["i915-GVTg_V5_%d" % n for n in (1, 2, 4, 8)]
    assert facts["udev"] is False  # not the host's /sys


def test_persist_writes_the_fact_file_once(run_module, gvtg, tmp_path):
    facts_dir = tmp_path / "facts.d"  # missing: created
    first = run_module(mdev_facts.main, dict(gvtg, persist_dir=str(facts_dir)))
    path = facts_dir / "vfio_mdev.fact"
    assert (first["failed"], first["changed"], first["fact_file"]) == (False, True, str(path))
    assert json.loads(path.read_text()) == first["ansible_facts"]["vfio_mdev"]
    assert stat.S_IMODE(os.stat(facts_dir).st_mode) & 0o755 == 0o755
    again = run_module(mdev_facts.main, dict(gvtg, persist_dir=str(facts_dir)))
    assert (again["failed"], again["changed"]) == (False, False)
    assert os.listdir(facts_dir) == ["vfio_mdev.fact"]  # no temporary file left behind


def test_persist_false_writes_nothing_even_with_a_directory(run_module, gvtg, tmp_path):
    facts_dir = tmp_path / "facts.d"
    result = run_module(mdev_facts.main, dict(gvtg, persist_dir=str(facts_dir), persist=False))
    assert (result["failed"], result["changed"], result["fact_file"]) == (False, False, None)
    assert not facts_dir.exists()


def test_check_mode_says_it_would_write_and_writes_nothing(run_module, gvtg, tmp_path):
    facts_dir = tmp_path / "facts.d"
    result = run_module(mdev_facts.main, dict(gvtg, persist_dir=str(facts_dir), _ansible_check_mode=True))
    assert (result["failed"], result["changed"]) == (False, True)
    assert result["fact_file"] == str(facts_dir / "vfio_mdev.fact")
    assert not facts_dir.exists()


def test_a_rewrite_keeps_the_file_s_mode(run_module, gvtg, tmp_path):
    """The file is replaced through module.atomic_move, which keeps what the operator set on it."""
    path = tmp_path / "vfio_mdev.fact"
    path.write_text("{}\n")
    os.chmod(path, 0o600)
    result = run_module(mdev_facts.main, dict(gvtg, persist_dir=str(tmp_path)))
    assert (result["failed"], result["changed"]) == (False, True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text()) == result["ansible_facts"]["vfio_mdev"]


def test_a_failed_write_fails_with_its_message_and_keeps_the_facts(run_module, gvtg, tmp_path):
    """Defect: a failed fact-file write must fail the module with its reason, the facts still returned."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = run_module(mdev_facts.main, dict(gvtg, persist_dir=str(blocker)))
    assert result["failed"] is True
    assert result["msg"].startswith("writing %s/vfio_mdev.fact failed: " % blocker)
    assert "File exists" in result["msg"] or "Not a directory" in result["msg"]
    assert result["ansible_facts"]["vfio_mdev"]["parents"][GVTG]["types"]


def test_a_failed_rename_names_its_cause_and_leaves_no_temporary_file(run_module, gvtg, tmp_path):
    (tmp_path / "vfio_mdev.fact").mkdir()  # a directory where the file goes: the rename fails (EISDIR)
    result = run_module(mdev_facts.main, dict(gvtg, persist_dir=str(tmp_path)))
    assert result["failed"] is True and result["msg"].startswith("writing %s/vfio_mdev.fact failed: " % tmp_path)
    assert "Is a directory" in result["msg"]
    assert os.listdir(tmp_path) == ["vfio_mdev.fact"]
    assert result["ansible_facts"]["vfio_mdev"]["parents"]


class FakeUdev(object):
    """Stands in for pyudev: names every device after its sysfs path, and counts the calls."""

    def __init__(self):
        self.contexts, self.asked = 0, []
        self.Devices = types.SimpleNamespace(from_sys_path=self.from_sys_path)  # pylint: disable=invalid-name

    def Context(self):  # pylint: disable=invalid-name
        self.contexts += 1
        return self

    def from_sys_path(self, context, path):
        assert context is self
        self.asked.append(path)
        return types.SimpleNamespace(properties={"ID_VENDOR_FROM_DATABASE": "Vendor of %s" % os.path.basename(path),
                                                 "ID_MODEL_FROM_DATABASE": "Model of %s" % os.path.basename(path)})


@pytest.fixture
def as_real_sysfs(monkeypatch, gvtg):
    """Let the fixture tree stand for the host's /sys (udev names are read for that tree only)."""
    monkeypatch.setattr(_gather, "REAL_SYSFS", gvtg["sysfs_root"])
    return dict(gvtg, check_vfio_capability="never")  # never open a device


@pytest.mark.parametrize("use_udev", [True, False])
def test_use_udev_adds_hwdb_names_only_when_asked(run_module, monkeypatch, as_real_sysfs, use_udev):
    fake = FakeUdev()
    monkeypatch.setattr(_gather, "pyudev", fake)
    result = run_module(mdev_facts.main, dict(as_real_sysfs, use_udev=use_udev))
    facts = result["ansible_facts"]["vfio_mdev"]
    assert facts["udev"] is use_udev
    if use_udev:
        assert fake.contexts == 1 and fake.asked == [facts["parents"][GVTG]["path"]]
        assert facts["parents"][GVTG]["udev"] == {"vendor_name": "Vendor of %s" % GVTG, "model_name": "Model of %s" % GVTG}
    else:
        assert (fake.contexts, fake.asked) == (0, [])
        assert facts["parents"][GVTG].get("udev") is None


def test_without_pyudev_use_udev_changes_nothing(run_module, monkeypatch, as_real_sysfs):
    monkeypatch.setattr(_gather, "pyudev", None)
    facts = run_module(mdev_facts.main, as_real_sysfs)["ansible_facts"]["vfio_mdev"]
    assert facts["udev"] is False and facts["parents"][GVTG].get("udev") is None
    assert facts["errors"] == []


def test_a_failing_udev_context_is_no_udev(run_module, monkeypatch, as_real_sysfs):
    def broken():
        raise OSError("libudev.so.1: cannot open shared object file")
    monkeypatch.setattr(_gather, "pyudev", types.SimpleNamespace(Context=broken))
    facts = run_module(mdev_facts.main, as_real_sysfs)["ansible_facts"]["vfio_mdev"]
    assert facts["udev"] is False and facts["parents"][GVTG]
