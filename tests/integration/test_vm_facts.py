"""VMs and coupled capacity in emulated hosts, read by the real mdev_facts through Ansible.

Two sets of hosts are served by the FUSE sysfs emulator in one mount: the
demo fleet (demo/fleet.py) and a lab of builder trees made here with every
kind of domain libvirt keeps (running, paused, shut off, transient, a live
view that differs from the definition, a vIOMMU, a device that is gone) and
parents whose capacity is coupled. ``vfio.migration.mdev_facts`` runs once
over all of them.

The expectations are written here, not read back from the builder's files:
the VMs from tables of what each host was given, the capacity from the
drivers' rules restated below in their own arithmetic (GVT-g in eighths of a
GPU, NVIDIA from the description's framebuffer and max_instance, mtty in
ports, vGPU 17+ in GB of framebuffer).
"""

import re

import pytest

from demo import fleet
from tests.ansible_runner import adhoc, write_inventory
from tests.emulator.mount import EmulatorMount, fuse_unavailable
from tests.fixtures import sysfs_builder as B

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]


def uu(n):
    return "7e57ab1e-%04x-4000-8000-%012x" % (n, n)


# -- the lab: builder trees made for this test ---------------------------------------------------

HETERO = {"0000:86:00.0"}  # NVIDIA parents built in heterogeneous mode


def lab_vgpu(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", instances=[("257", uu(1)), ("257", uu(2))])
    B.nvidia_vgpu(t, "0000:86:00.0", instances=[("256", uu(3)), ("258", uu(4))], heterogeneous=True)
    B.nvidia_vgpu(t, "0000:af:00.0")
    B.intel_gvtg(t, instances=[("4", uu(5)), ("8", uu(6))])
    B.mtty(t, instances=[("mtty-1", uu(7)), ("mtty-1", uu(8)), uu(9)])
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=4, current={0: 1414})
    B.mlx5_vf(t, bdf="0000:5e:00.1")
    B.mlx5_vf(t, bdf="0000:5e:00.2")
    B.domain(t, "two-vgpu", uu(101), mdevs=[uu(1), uu(2)])
    B.domain(t, "het-pair", uu(102), state="paused", mdevs=[uu(3), uu(4)], pci=[("0000:41:00.1", False)])
    B.domain(t, "gvt-off", uu(103), state="shutoff", mdevs=[uu(5)])
    B.domain(t, "transient-serial", uu(104), persistent=False, mdevs=[uu(7)])
    # a serial port hot-plugged into the running VM without --config: only the live XML has it
    B.domain(t, "hotplug", uu(105), mdevs=[uu(8)], live_mdevs=[uu(8), uu(9)])
    B.domain(t, "secure-nic", uu(106), pci=["0000:5e:00.1"], viommu=True)
    # the second mlx5 VF was detached live; the definition still names it
    B.domain(t, "detached", uu(107), pci=["0000:5e:00.2"], live_pci=[])
    # an instance that does not exist on this host (removed, or never created)
    B.domain(t, "ghost", uu(108), state="shutoff", mdevs=[uu(99)])


def lab_s390(t):
    B.s390_ccw(t, instances=[uu(10)])
    B.s390_ap(t, instances=[uu(11)])
    B.domain(t, "zguest", uu(110), mdevs=[(uu(10), "vfio-ccw"), (uu(11), "vfio-ap")], arch="s390x")


def lab_empty(t):
    B.mtty(t)
    B.libvirt_dirs(t)  # libvirt installed, no domain defined


def lab_bare(t):
    B.mtty(t)  # no libvirt at all


LAB = {"lab-vgpu": lab_vgpu, "lab-s390": lab_s390, "lab-empty": lab_empty, "lab-bare": lab_bare}

# What each lab VM is, written out: (state, persistent, viommu, [(mdev uuid, model, type, parent)],
# [(pci address, managed, driver, vgpu type name)], live devices differ)
LAB_VMS = {
    "lab-vgpu": {
        "two-vgpu": ("running", True, False, [(uu(1), "vfio-pci", "nvidia-257", "0000:3b:00.0"),
                                              (uu(2), "vfio-pci", "nvidia-257", "0000:3b:00.0")], [], False),
        "het-pair": ("paused", True, False, [(uu(3), "vfio-pci", "nvidia-256", "0000:86:00.0"),
                                             (uu(4), "vfio-pci", "nvidia-258", "0000:86:00.0")],
                     [("0000:41:00.1", False, "nvidia", "NVIDIA H200X-1-18C")], False),
        "gvt-off": ("shutoff", True, False, [(uu(5), "vfio-pci", "i915-GVTg_V5_4", "0000:00:02.0")], [], False),
        "transient-serial": ("running", False, False, [(uu(7), "vfio-pci", "mtty-1", "mtty")], [], False),
        "hotplug": ("running", True, False, [(uu(8), "vfio-pci", "mtty-1", "mtty"),
                                             (uu(9), "vfio-pci", "mtty-2", "mtty")], [], True),
        "secure-nic": ("running", True, True, [], [("0000:5e:00.1", True, "mlx5_vfio_pci", None)], False),
        "detached": ("running", True, False, [], [], True),
        "ghost": ("shutoff", True, False, [(uu(99), "vfio-pci", None, None)], [], False),
    },
    "lab-s390": {
        "zguest": ("running", True, False, [(uu(10), "vfio-ccw", "vfio_ccw-io", "0.0.0313"),
                                            (uu(11), "vfio-ap", "vfio_ap-passthrough", "matrix")], [], False),
    },
    "lab-empty": {},
    "lab-bare": {},
}
LAB_DIFFERENCES = {
    ("lab-vgpu", "hotplug"): "live VFIO devices mdev:%s, mdev:%s differ from the persistent definition's mdev:%s"
                             % (uu(8), uu(9), uu(8)),
    ("lab-vgpu", "detached"): "live VFIO devices none differ from the persistent definition's pci:0000:5e:00.2",
}

# -- the demo's VMs, written out (demo/fleet.py's table) ---------------------------------------

A11, A12, B11 = fleet.U["a1-1"], fleet.U["a1-2"], fleet.U["b1-1"]
DEMO_VMS = {  # host: {vm: (state, viommu, [(mdev, type, parent)], [(pci, driver, vgpu)])}
    "gpu-a1": {"cad-render": ("running", False, [(A11, "nvidia-257", "0000:3b:00.0"),
                                                 (A12, "nvidia-257", "0000:3b:00.0")], [])},
    "gpu-b1": {"ml-train": ("running", False, [(B11, "nvidia-258", "0000:3b:00.0")], [])},
    "igd-1": {"vdi-secure": ("running", True, [(fleet.U["igd1"], "i915-GVTg_V5_4", "0000:00:02.0")], [])},
    "s390-1": {"zlinux-ccw": ("running", False, [(fleet.U["ccw"], "vfio_ccw-io", "0.0.0313")], [])},
    "serial-1": {"console-off": ("shutoff", False, [(fleet.U["mtty"], "mtty-2", "mtty")], [])},
    "h200-1": {"llm-a": ("running", False, [], [("0000:41:00.1", "nvidia", "NVIDIA H200X-1-18C")]),
               "llm-b": ("running", False, [], [("0000:41:00.2", "nvidia", "NVIDIA H200X-1-18C")])},
    "h200-2": {"llm-c": ("running", False, [], [("0000:41:00.1", "nvidia", "NVIDIA H200X-2-35C")])},
    "vf-1": {"nfv-1": ("running", False, [], [("0000:5e:00.1", "mlx5_vfio_pci", None)]),
             "legacy-nic": ("paused", False, [], [("0000:af:00.0", "vfio-pci", None)])},
}


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    base = tmp_path_factory.mktemp("vmfacts")
    src, mnt = base / "src", base / "mnt"
    fleet.build(str(src / "demo"))
    demo_vms = {h: dict(v) for h, v in fleet.VMS.items()}
    trees = {}
    for name, fn in LAB.items():
        t = B.SysfsTree(str(src / "lab" / name))
        fn(t)
        B.host_stack(t)
        t.save()
        trees[name] = t
    hosts = {h: {"sub": "demo/" + h} for h in fleet.HOSTS}
    hosts.update({h: {"sub": "lab/" + h} for h in LAB})
    inv = write_inventory(str(base / "hosts.json"), hosts, {"mnt": str(mnt)})
    with EmulatorMount(str(src), str(mnt), str(base / "writes.log")):
        results, proc = adhoc(inv, "vfio.migration.mdev_facts",
                              "sysfs_root={{ mnt }}/{{ sub }}/sys host_root={{ mnt }}/{{ sub }}/root")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return {"facts": {h: r["ansible_facts"]["vfio_mdev"] for h, r in results.items()},
            "trees": trees, "demo_vms": demo_vms}


# -- VMs -----------------------------------------------------------------------------------------

def summarise(vm):
    """A fact VM as the tables above write one."""
    return (vm["state"], vm["persistent"], vm["viommu"],
            [(m["uuid"], m["model"], m["mdev_type"], m["parent"]) for m in vm["mdevs"]],
            [(p["address"], p["managed"], p["driver"], p["vgpu"]) for p in vm["pci"]],
            bool(vm["differences"]))


@pytest.mark.parametrize("host", sorted(LAB_VMS))
def test_lab_vms_are_exactly_the_domains_written(facts, host):
    f = facts["facts"][host]
    vms = f["vms"]
    assert sorted(vms) == sorted(LAB_VMS[host])
    for name, want in LAB_VMS[host].items():
        vm = vms[name]
        assert vm["name"] == name
        assert vm["uuid"] == next(r["uuid"] for r in facts["trees"][host].vms if r["name"] == name)
        assert summarise(vm) == want, name
        present = [m["present"] for m in vm["mdevs"]]
        assert present == [m[2] is not None for m in want[3]]
        diff = LAB_DIFFERENCES.get((host, name))
        assert vm["differences"] == ([diff] if diff else [])
        if vm["state"] == "shutoff":
            assert vm["qemu"]["message"] == "not running"
        else:  # emulated roots are never asked through virsh
            assert vm["qemu"] == {"asked": False, "blocked": None, "reasons": [],
                                  "message": "not asked (not the host's real root)"}
    assert f["libvirt"]["present"] is (host != "lab-bare")
    assert f["libvirt"]["errors"] == [] and f["errors"] == []
    if host == "lab-bare":
        assert f["libvirt"]["message"] == "no libvirt QEMU state directories: no VMs"


def test_lab_uuids_are_the_written_ones(facts):
    """The domain uuids come from the files, not from names: check them against the inputs."""
    got = {(h, n): v["uuid"] for h in LAB for n, v in facts["facts"][h]["vms"].items()}
    assert got == {("lab-vgpu", "two-vgpu"): uu(101), ("lab-vgpu", "het-pair"): uu(102),
                   ("lab-vgpu", "gvt-off"): uu(103), ("lab-vgpu", "transient-serial"): uu(104),
                   ("lab-vgpu", "hotplug"): uu(105), ("lab-vgpu", "secure-nic"): uu(106),
                   ("lab-vgpu", "detached"): uu(107), ("lab-vgpu", "ghost"): uu(108), ("lab-s390", "zguest"): uu(110)}


def test_live_view_wins_for_running_domains(facts):
    """A running domain's devices are the live ones (the hot-plugged port is there, the detached VF is not)."""
    vms = facts["facts"]["lab-vgpu"]["vms"]
    assert [m["uuid"] for m in vms["hotplug"]["mdevs"]] == [uu(8), uu(9)]
    assert vms["detached"]["pci"] == []
    assert [m["alias"] for m in vms["two-vgpu"]["mdevs"]] == ["hostdev0", "hostdev1"]
    assert [m["alias"] for m in vms["gvt-off"]["mdevs"]] == [None]  # a definition has no aliases


def test_demo_vms_are_exactly_the_documented_ones(facts):
    got = {}
    for host in fleet.HOSTS:
        f = facts["facts"][host]
        assert f["libvirt"]["present"] is True and f["libvirt"]["errors"] == [], host
        for name, vm in f["vms"].items():
            assert vm["persistent"] is True and vm["differences"] == [], name
            got.setdefault(host, {})[name] = (
                vm["state"], vm["viommu"], [(m["uuid"], m["mdev_type"], m["parent"]) for m in vm["mdevs"]],
                [(p["address"], p["driver"], p["vgpu"]) for p in vm["pci"]])
            assert vm["uuid"] == fleet.VM_UUID[name]
    assert got == DEMO_VMS
    # what the builder recorded is what the facts read
    assert {h: sorted(v) for h, v in facts["demo_vms"].items() if v} == {h: sorted(v) for h, v in DEMO_VMS.items()}


def test_demo_every_device_is_used_or_deliberately_free(facts):
    """Each mdev instance, VFIO PCI function and vGPU-17+ VF of the demo is in exactly one VM or in fleet.FREE."""
    for host in fleet.HOSTS:
        f = facts["facts"][host]
        devices = set(f["devices"]) | set(f["physical"]) | set(f["vendor_vgpu"]["vfs"])
        used = [m["uuid"] for vm in f["vms"].values() for m in vm["mdevs"]] + \
            [p["address"] for vm in f["vms"].values() for p in vm["pci"]]
        assert len(used) == len(set(used)), host
        free = fleet.FREE.get(host, [])
        assert not set(used) & set(free), host
        assert set(used) | set(free) == devices, host


def test_demo_cases_the_planner_needs(facts):
    f = facts["facts"]
    # a two-device VM on one host
    assert len(f["gpu-a1"]["vms"]["cad-render"]["mdevs"]) == 2
    # exactly one free pre-created instance of nvidia-257 on a likely target
    a2 = f["gpu-a2"]
    assert a2["parents"]["0000:3b:00.0"]["types"]["nvidia-257"]["devices"] == [fleet.U["a2-free"]]
    assert not a2["vms"]
    # the collision: cad-render's first vGPU uuid is also a (stale) instance on gpu-slow
    assert fleet.U["a1-1"] in f["gpu-slow"]["devices"] and not f["gpu-slow"]["vms"]
    # a vIOMMU VM, a shut-off VM, a paused one
    assert f["igd-1"]["vms"]["vdi-secure"]["viommu"] is True
    assert f["serial-1"]["vms"]["console-off"]["state"] == "shutoff"
    assert f["vf-1"]["vms"]["legacy-nic"]["state"] == "paused"
    # a GPU running one type offers no other
    types = f["gpu-b1"]["parents"]["0000:3b:00.0"]["types"]
    assert {t: v["available_instances"] for t, v in types.items()} == {
        "nvidia-256": 0, "nvidia-257": 0, "nvidia-258": 3, "nvidia-259": 0}


# -- coupled capacity ----------------------------------------------------------------------------

def used_per_type(parent):
    return {t: len(v["devices"]) for t, v in parent["types"].items()}


def nvidia_expected(parent, heterogeneous):
    """max_instance and framebuffer from each type's description; one type a GPU unless heterogeneous."""
    spec = {}
    for t, v in parent["types"].items():
        desc = dict(kv.split("=", 1) for kv in v["description"].split(", "))
        spec[t] = (int(desc["framebuffer"].rstrip("M")), int(desc["max_instance"]))
    used = used_per_type(parent)
    running = [t for t, n in used.items() if n]
    if heterogeneous:
        budget = max(fb * most for fb, most in spec.values())
        left = budget - sum(spec[t][0] * n for t, n in used.items())
        return {t: min(left // fb, most - used[t]) if left > 0 else 0 for t, (fb, most) in spec.items()}
    if not running:
        return {t: most for t, (fb, most) in spec.items()}
    return {t: (spec[t][1] - used[t] if [t] == running else 0) for t in spec}


def gvtg_expected(parent):
    """In eighths of the GPU: V5_N holds 8/N of them; a type fits as many times as its share goes into what is left."""
    used = used_per_type(parent)
    eighths = {t: 8 // int(t.rsplit("_", 1)[1]) for t in parent["types"]}
    left = 8 - sum(eighths[t] * n for t, n in used.items())
    return {t: max(left, 0) // eighths[t] for t in parent["types"]}


def mtty_expected(parent):
    used = used_per_type(parent)
    ports_left = 24 - used.get("mtty-1", 0) - 2 * used.get("mtty-2", 0)
    return {"mtty-1": ports_left, "mtty-2": ports_left // 2}


def single_expected(parent, limit):
    return {t: limit - len(v["devices"]) for t, v in parent["types"].items()}


def expected_available(host, name, parent):
    first = next(iter(parent["types"]))
    if first.startswith("nvidia-"):
        return nvidia_expected(parent, host.startswith("lab-") and name in HETERO)
    if first.startswith("i915-GVTg"):
        return gvtg_expected(parent)
    if first.startswith("mtty"):
        return mtty_expected(parent)
    if first == "vfio_ccw-io":
        return single_expected(parent, 1)
    if first == "vfio_ap-passthrough":
        return single_expected(parent, 65535)
    raise AssertionError("no rule for %s" % first)


def test_available_instances_follow_the_drivers_rules(facts):
    checked = 0
    for host, f in sorted(facts["facts"].items()):
        for name, parent in f["parents"].items():
            got = {t: v["available_instances"] for t, v in parent["types"].items()}
            assert got == expected_available(host, name, parent), (host, name)
            checked += 1
    assert checked >= 20


def test_coupled_numbers_by_hand(facts):
    """A few of the numbers spelled out, as an operator would read them."""
    f = facts["facts"]

    def avail(host, parent):
        return {t: v["available_instances"] for t, v in f[host]["parents"][parent]["types"].items()}

    assert avail("gpu-a1", "0000:3b:00.0") == {"nvidia-256": 0, "nvidia-257": 6, "nvidia-258": 0, "nvidia-259": 0}
    assert avail("gpu-a2", "0000:3b:00.0") == {"nvidia-256": 0, "nvidia-257": 7, "nvidia-258": 0, "nvidia-259": 0}
    assert avail("gpu-a2", "0000:d8:00.0") == {"nvidia-256": 16, "nvidia-257": 8, "nvidia-258": 4, "nvidia-259": 2}
    assert avail("igd-1", "0000:00:02.0") == {"i915-GVTg_V5_1": 0, "i915-GVTg_V5_2": 1, "i915-GVTg_V5_4": 3,
                                              "i915-GVTg_V5_8": 6}
    assert avail("igd-2", "0000:00:02.0") == {"i915-GVTg_V5_1": 1, "i915-GVTg_V5_2": 2, "i915-GVTg_V5_4": 4,
                                              "i915-GVTg_V5_8": 8}
    assert avail("serial-1", "mtty") == {"mtty-1": 22, "mtty-2": 11}
    # heterogeneous: 16384 MB less 1024 + 4096 leaves 11264
    assert avail("lab-vgpu", "0000:86:00.0") == {"nvidia-256": 11, "nvidia-257": 5, "nvidia-258": 2,
                                                 "nvidia-259": 1}
    # 1/4 + 1/8 of the GPU used: 5/8 left
    assert avail("lab-vgpu", "0000:00:02.0") == {"i915-GVTg_V5_1": 0, "i915-GVTg_V5_2": 1, "i915-GVTg_V5_4": 2,
                                                 "i915-GVTg_V5_8": 5}
    assert avail("lab-vgpu", "mtty") == {"mtty-1": 20, "mtty-2": 10}


H200_GB = 141
H200_TYPES = {1414: "NVIDIA H200X-1-18C", 1415: "NVIDIA H200X-2-35C"}  # the PFs' types, GB in the name


def vf_expected(f, heterogeneous):
    """{vf: [creatable type ids]} for a host's vGPU 17+ PF, in GB of framebuffer."""
    size = {tid: int(re.search(r"-(\d+)C$", name).group(1)) for tid, name in H200_TYPES.items()}
    vfs = f["vendor_vgpu"]["vfs"]
    running = [v["current"]["id"] for v in vfs.values() if v["current"]]
    out = {}
    for bdf, v in vfs.items():
        if v["current"]:
            out[bdf] = [v["current"]["id"]]  # a VF with a type lists that type
        elif heterogeneous:
            left = H200_GB - sum(size[r] for r in running)
            out[bdf] = [t for t in sorted(size) if size[t] <= left]
        elif not running:
            out[bdf] = sorted(size)
        elif len(set(running)) == 1:
            out[bdf] = running[:1] if len(running) < H200_GB // size[running[0]] else []
        else:
            out[bdf] = []
    return out


@pytest.mark.parametrize("host, heterogeneous", [("h200-1", False), ("h200-2", True), ("h200-3", False),
                                                 ("h200-4", False), ("lab-vgpu", False)])
def test_vgpu17_creatable_types_follow_the_pf(facts, host, heterogeneous):
    f = facts["facts"][host]
    got = {bdf: [t["id"] for t in v["creatable"]] for bdf, v in f["vendor_vgpu"]["vfs"].items()}
    assert got == vf_expected(f, heterogeneous)
    if host == "lab-vgpu":  # one VF runs 1-18C: the free ones offer 1-18C only
        assert got == {"0000:41:00.1": [1414], "0000:41:00.2": [1414], "0000:41:00.3": [1414],
                       "0000:41:00.4": [1414]}
    if host == "h200-2":  # mixed-size: the free VF still takes either type
        assert got["0000:41:00.2"] == [1414, 1415]
