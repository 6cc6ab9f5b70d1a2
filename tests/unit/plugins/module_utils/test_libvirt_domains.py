"""VMs from libvirt's QEMU state files (module_utils._libvirt and mdev_facts' ``vms``).

The files are written here in the shapes libvirt writes them: a definition
``<domain>`` under etc/libvirt/qemu and a live ``<domstatus>`` under
run/libvirt/qemu. No daemon is asked.
"""

import errno
import os

from ansible_collections.vfio.migration.plugins.module_utils import _libvirt as L
from ansible_collections.vfio.migration.plugins.module_utils._gather import host_vms

A1, A2, B1 = ("4b1f0a52-7d3e-4c59-9b7a-0a0000000a01", "4b1f0a52-7d3e-4c59-9b7a-0a0000000a02",
              "4b1f0a52-7d3e-4c59-9b7a-0a0000000b01")


def domain_xml(name, uuid, mdevs=(), pci=(), iommu=False, live_id=None):
    hostdevs = "".join(
        "<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>"
        "<source><address uuid='%s'/></source>%s</hostdev>" % (u, "<alias name='hostdev%d'/>" % i if live_id else "")
        for i, u in enumerate(mdevs))
    hostdevs += "".join(
        "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/><source>"
        "<address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/></source></hostdev>"
        % tuple(p.replace(".", ":").split(":")) for p in pci)
    return ("<domain type='qemu'%s><name>%s</name><uuid>%s</uuid><memory unit='KiB'>65536</memory>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>%s%s</devices></domain>"
            % (" id='%s'" % live_id if live_id else "", name, uuid, hostdevs,
               "<iommu model='intel'/>" if iommu else ""))


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def status_xml(state, domain):
    return "<domstatus state='%s' reason='booted' pid='4242'><monitor path='/x' type='unix'/>%s</domstatus>" % (
        state, domain)


def test_no_libvirt_means_no_vms_and_says_so(tmp_path):
    got = L.domains(str(tmp_path))
    assert got == {"libvirt": False, "vms": {}, "errors": []}
    facts = {"devices": {}, "physical": {}}
    out = host_vms(facts, str(tmp_path))
    assert out["present"] is False and out["vms"] == {} and "no VMs" in out["message"]


def test_running_paused_shutoff_and_their_devices(tmp_path):
    root = str(tmp_path)
    write(root, "etc/libvirt/qemu/two.xml", domain_xml("two", "9d1c1f4e-0000-4000-8000-000000000002", [A1, A2]))
    write(root, "run/libvirt/qemu/two.xml", status_xml("running", domain_xml(
        "two", "9d1c1f4e-0000-4000-8000-000000000002", [A1, A2], live_id=1)))
    write(root, "etc/libvirt/qemu/off.xml", domain_xml("off", "9d1c1f4e-0000-4000-8000-000000000003", [B1]))
    write(root, "etc/libvirt/qemu/nic.xml", domain_xml("nic", "9d1c1f4e-0000-4000-8000-000000000004",
                                                       pci=["0000:5e:00.1"], iommu=True))
    write(root, "run/libvirt/qemu/nic.xml", status_xml("paused", domain_xml(
        "nic", "9d1c1f4e-0000-4000-8000-000000000004", pci=["0000:5e:00.1"], iommu=True, live_id=2)))
    got = L.domains(root)
    assert got["libvirt"] is True and got["errors"] == []
    vms = got["vms"]
    assert {n: v["state"] for n, v in vms.items()} == {"two": "running", "off": "shutoff", "nic": "paused"}
    assert [m["uuid"] for m in vms["two"]["mdevs"]] == [A1, A2]
    assert vms["two"]["mdevs"][0] == {"uuid": A1, "model": "vfio-pci", "alias": "hostdev0"}
    assert vms["nic"]["pci"] == [{"address": "0000:5e:00.1", "managed": True}]
    assert vms["nic"]["viommu"] is True and vms["two"]["viommu"] is False
    assert all(v["persistent"] and v["differences"] == [] for v in vms.values())


def test_resolved_against_discovery_and_not_asked_off_the_real_root(tmp_path):
    root = str(tmp_path)
    write(root, "run/libvirt/qemu/t.xml", status_xml("running", domain_xml("t", "9d1c1f4e-0000-4000-8000-00000000000a",
                                                                           [A1, B1], live_id=3)))
    facts = {"devices": {A1: {"mdev_type": "mtty-2", "parent": "mtty"}}, "physical": {}}
    out = host_vms(facts, root)
    (vm,) = list(out["vms"].values())
    assert vm["persistent"] is False  # transient domain: live status only
    assert [(m["mdev_type"], m["parent"], m["present"]) for m in vm["mdevs"]] == [("mtty-2", "mtty", True),
                                                                                  (None, None, False)]
    assert vm["qemu"] == {"asked": False, "blocked": None, "reasons": [],
                          "message": "not asked (not the host's real root)"}


def test_live_and_persistent_difference_is_a_finding(tmp_path):
    root = str(tmp_path)
    uuid = "9d1c1f4e-0000-4000-8000-00000000000b"
    write(root, "etc/libvirt/qemu/d.xml", domain_xml("d", uuid, [A1]))
    write(root, "run/libvirt/qemu/d.xml", status_xml("running", domain_xml("d", uuid, [A1, A2], live_id=4)))
    (vm,) = list(L.domains(root)["vms"].values())
    assert [m["uuid"] for m in vm["mdevs"]] == [A1, A2]  # the live view wins
    assert vm["differences"] == ["live VFIO devices mdev:%s, mdev:%s differ from the persistent definition's "
                                 "mdev:%s" % (A1, A2, A1)]


def test_unreadable_or_malformed_files_are_errors_not_vms(tmp_path):
    root = str(tmp_path)
    write(root, "etc/libvirt/qemu/bad.xml", "<domain><name>bad</name")
    write(root, "etc/libvirt/qemu/ok.xml", domain_xml("ok", "9d1c1f4e-0000-4000-8000-00000000000c"))
    write(root, "etc/libvirt/qemu/networks/default.xml", "<network/>")  # a directory libvirt keeps there
    got = L.domains(root)
    assert list(got["vms"]) == ["ok"]
    (err,) = got["errors"]
    assert err["path"].endswith("bad.xml") and err["message"].startswith("not XML")


def test_an_oversized_or_unopenable_file_is_an_error_and_the_rest_are_read(tmp_path, monkeypatch):
    root = str(tmp_path)
    monkeypatch.setattr(L, "XML_MAX", 600)
    ok = domain_xml("ok", "9d1c1f4e-0000-4000-8000-00000000000d")
    write(root, "etc/libvirt/qemu/big.xml", ok.replace("</domain>", "<!--%s--></domain>" % ("x" * 600)))
    write(root, "etc/libvirt/qemu/edge.xml", ok.replace("'qemu'", "'kvm'").replace("<name>ok", "<name>edge")
          .replace("0000000d", "0000000e").ljust(600))  # exactly the limit: read
    write(root, "etc/libvirt/qemu/ok.xml", ok)
    os.makedirs(os.path.join(root, "etc/libvirt/qemu/odd.xml"))  # not a file
    got = L.domains(root)
    assert sorted(got["vms"]) == ["edge", "ok"]
    errors = {os.path.basename(e["path"]): e for e in got["errors"]}
    assert sorted(errors) == ["big.xml", "odd.xml"]
    assert errors["big.xml"]["message"] == "larger than 600 bytes"
    assert errors["odd.xml"]["errno"] == errno.EISDIR and errors["odd.xml"]["what"] == "libvirt domain XML"
