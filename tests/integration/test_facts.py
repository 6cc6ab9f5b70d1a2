"""mdev_facts and the facts role through Ansible: vendor-VFIO vGPUs, the host
stack, gather_facts via facts_modules, and persisted local facts."""

import json
import os

import pytest

from tests.ansible_runner import adhoc, playbook, write_inventory

pytestmark = pytest.mark.ansible


@pytest.fixture(scope="module")
def inv(fixture_trees, tmp_path_factory):
    hosts = {name: {"tree": os.path.join(path, "sys"), "root": os.path.join(path, "root")}
             for name, path in fixture_trees.items()}
    return write_inventory(str(tmp_path_factory.mktemp("inv") / "hosts.json"), hosts)


def test_vendor_vfio_vgpus_and_stack(inv):
    res, proc = adhoc(inv, "vfio.migration.mdev_facts", "sysfs_root={{ tree }} host_root={{ root }}",
                      limit="vendor_vfio")
    assert proc.returncode == 0, proc.stderr
    f = res["vendor_vfio"]["ansible_facts"]["vfio_mdev"]
    vfs = f["vendor_vgpu"]["vfs"]
    assert sorted(vfs) == ["0000:41:00.1", "0000:41:00.2", "0000:41:00.3", "0000:41:00.4"]
    assert vfs["0000:41:00.1"]["current"] == {"id": 1414, "name": "NVIDIA H200X-1-18C"}
    assert vfs["0000:41:00.3"]["current"] is None
    assert {"id": 1415, "name": "NVIDIA H200X-2-35C"} in vfs["0000:41:00.3"]["creatable"]
    assert vfs["0000:41:00.1"]["physfn"] == "0000:41:00.0" and vfs["0000:41:00.1"]["driver_version"] == "550.90.07"
    pf = f["vendor_vgpu"]["pfs"]["0000:41:00.0"]
    assert pf["vfs"] == sorted(vfs) and pf["sriov_totalvfs"] == 16 and pf["sriov_numvfs"] == 4
    assert f["stack"]["kernel"] == "6.1.0-27-amd64"
    assert (f["stack"]["qemu"], f["stack"]["libvirt"]) == ("8.2.2", "9.0.0")
    assert f["stack"]["modules"]["nvidia"] == "550.90.07"
    assert res["vendor_vfio"]["changed"] is False


def test_check_mode_reads_the_same(inv):
    normal = adhoc(inv, "vfio.migration.mdev_facts", "sysfs_root={{ tree }}", limit="gvtg")[0]
    checked = adhoc(inv, "vfio.migration.mdev_facts", "sysfs_root={{ tree }}", limit="gvtg", check=True)[0]
    assert normal["gvtg"]["ansible_facts"] == checked["gvtg"]["ansible_facts"]


def test_gather_facts_through_facts_modules_and_local_facts(inv, tmp_path):
    out, facts_dir = tmp_path / "out.json", tmp_path / "facts.d"
    play = tmp_path / "play.yml"
    play.write_text("""
- name: facts_modules gathers vfio_mdev
  hosts: gvtg
  gather_facts: true
  module_defaults:
    vfio.migration.mdev_facts:
      sysfs_root: "{{ tree }}"
  tasks:
    - name: Persist with the facts role
      ansible.builtin.include_role:
        name: vfio.migration.facts
      vars:
        vfio_migration_sysfs_root: "{{ tree }}"
        vfio_migration_persist_facts: true
        vfio_migration_facts_dir: "%(facts)s"
    - name: Read the local fact back as another role would
      ansible.builtin.setup:
        fact_path: "%(facts)s"
        gather_subset: [min]
    - name: Save what was gathered
      ansible.builtin.copy:
        content: "{{ {'gathered': ansible_facts.vfio_mdev, 'local': ansible_local.vfio_mdev} | to_json }}"
        dest: "%(out)s"
        mode: "0644"
""" % {"facts": facts_dir, "out": out})
    proc = playbook(inv, str(play), env={"ANSIBLE_FACTS_MODULES": "vfio.migration.mdev_facts"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    got = json.loads(out.read_text())
    assert "0000:00:02.0" in got["gathered"]["parents"]
    assert got["local"] == json.loads((facts_dir / "vfio_mdev.fact").read_text())
    assert got["local"]["parents"]["0000:00:02.0"]["types"]["i915-GVTg_V5_4"]["migration"]["version"] \
        == "00028086-193b-i915-GVTg_V5_4"


@pytest.mark.parametrize("setting, writes", [("false", False), ("no", False), ("true", True), ("yes", True)])
def test_the_role_persists_only_when_asked_as_the_command_line_says_it(inv, tmp_path, setting, writes):
    """``-e vfio_migration_persist_facts=false`` is the string "false": it must not write."""
    facts_dir = tmp_path / "facts.d"
    play = tmp_path / "play.yml"
    play.write_text("""
- name: The facts role with persisting set on the command line
  hosts: gvtg
  gather_facts: false
  roles:
    - role: vfio.migration.facts
      vars:
        vfio_migration_sysfs_root: "{{ tree }}"
        vfio_migration_facts_dir: "%s"
""" % facts_dir)
    # key=value: a string, as an operator types it
    proc = playbook(inv, str(play), extra_vars="vfio_migration_persist_facts=%s" % setting)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (facts_dir / "vfio_mdev.fact").exists() is writes
