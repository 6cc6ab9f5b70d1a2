"""The demo fleet: emulated hypervisors of several vendors and driver versions.

Each host is a sysfs tree with emulator rules (tests/fixtures/sysfs_builder.py).
The fleet is made to show every verdict:

- NVIDIA vGPU hosts on driver rule "range": gpu-a1 (2.3) and gpu-a2 (2.4) share a
  major version, so a2 accepts a1's devices but a1 refuses a2's (asymmetric);
  gpu-b1 (3.0) is another major version; gpu-slow answers after a delay;
  gpu-flaky answers every write with EIO (an error, never "incompatible").
- Intel GVT-g hosts on the exact-match rule: igd-1 and igd-2 (same device id)
  accept each other; igd-old is a generation without migration (ENODEV).
- s390-1 with vfio-ccw and vfio-ap; serial-1 with the mtty sample, which has no
  migration attribute at all.
- NVIDIA vGPU 17+ hosts without mdev (vendor-VFIO): no driver attribute exists,
  so the operator's policy decides, and says so: h200-1 runs two vGPUs;
  h200-2 has room for one on the same driver and stack; h200-3 runs another
  driver version; h200-4 has an old QEMU. Draining h200-1 strands one vGPU.
- VFIO PCI functions: vf-1 has an mlx5 VF on the mlx5_vfio_pci variant driver
  (migration_version 1.0) and a NIC bound to plain vfio-pci, which cannot migrate;
  vf-2's mlx5 VF (1.1) accepts vf-1's, but vf-2 runs QEMU 7.2, below the
  policy's minimum, so the driver's yes is gated to unsupported.
- offline is in the inventory but unreachable.

Every host also gets a root beside its sys/ with a kernel release, a dpkg
database (so the policy can read the stack) and libvirt's QEMU state
directories with the host's VMs (domain XML as libvirt writes it).

Capacity is what the drivers would publish (the builder couples it): an
NVIDIA GPU running one type offers no other type; GVT-g types share one
budget; a vGPU 17+ PF offers its free VFs only the type its VFs run, unless
it is in mixed-size (heterogeneous) mode.

The VMs (:data:`VMS` lists them; each device in the demo is used by exactly
one VM or deliberately free, see :data:`FREE`):

=========  ==============  =========================================  ========  ==============================
host       VM              VFIO devices                               state     why it is there
=========  ==============  =========================================  ========  ==============================
gpu-a1     cad-render      nvidia-257 a1-1 and a1-2 on 0000:3b:00.0   running   two vGPUs in one VM: it moves
                                                                                as a unit to one target host
gpu-b1     ml-train        nvidia-258 b1-1 on 0000:3b:00.0            running   one vGPU; its GPU then offers
                                                                                no other type (258: 3, others 0)
igd-1      vdi-secure      i915-GVTg_V5_4 igd1                        running   an Intel vIOMMU in the domain:
                                                                                QEMU blocks its migration
s390-1     zlinux-ccw      vfio_ccw-io ccw (vfio-ccw)                 running   one s390 subchannel
serial-1   console-off     mtty-2 mtty                                shut off  moves cold, never live
h200-1     llm-a           VF 0000:41:00.1 (H200X-1-18C)              running   one vGPU 17+ VF
h200-1     llm-b           VF 0000:41:00.2 (H200X-1-18C)              running   the second: h200-2 has room
                                                                                for one of the two only
h200-2     llm-c           VF 0000:41:00.1 (H200X-2-35C)              running   fills one VF of h200-2
vf-1       nfv-1           mlx5 VF 0000:5e:00.1                       running   a migratable PCI function
vf-1       legacy-nic      NIC 0000:af:00.0 (plain vfio-pci)          paused    cannot migrate (no driver)
=========  ==============  =========================================  ========  ==============================

Deliberately free: gpu-a2 has one pre-created nvidia-257 instance on
0000:3b:00.0 that no VM uses (a target with exactly one free instance of a
type; its GPU then offers 257 alone), gpu-slow holds a stale nvidia-257
instance whose UUID is a1-1, the UUID of cad-render's first vGPU (left by an
aborted migration: a collision for any move that keeps the UUID), h200-2's
second VF, every VF of h200-3 and h200-4, and vf-2's mlx5 VF. gpu-a2's
second GPU, gpu-slow, gpu-flaky, igd-2, igd-old and s390-1's vfio-ap matrix
have no instances. The drained hosts keep the devices they had before VMs
were added (two vGPUs on gpu-a1, one GVT-g instance on igd-1, two VFs on
h200-1), so the instance-level plan is the same as before.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.fixtures import sysfs_builder as B  # noqa: E402

U = {  # mdev instances on the hosts (uuids are stable so reports are too)
    "a1-1": "6a0c5e1e-0001-4000-8000-00000000a101",
    "a1-2": "6a0c5e1e-0002-4000-8000-00000000a102",
    "b1-1": "6a0c5e1e-0003-4000-8000-00000000b101",
    "igd1": "6a0c5e1e-0004-4000-8000-0000000019d1",
    "ccw": "6a0c5e1e-0005-4000-8000-000000000cc1",
    "mtty": "6a0c5e1e-0006-4000-8000-000000000771",
    "a2-free": "6a0c5e1e-0007-4000-8000-00000000a201",
}

VM_UUID = {  # libvirt domain uuids
    "cad-render": "d3f1a7c2-0001-4e5b-9a10-00000000c001",
    "ml-train": "d3f1a7c2-0002-4e5b-9a10-00000000c002",
    "vdi-secure": "d3f1a7c2-0003-4e5b-9a10-00000000c003",
    "zlinux-ccw": "d3f1a7c2-0004-4e5b-9a10-00000000c004",
    "console-off": "d3f1a7c2-0005-4e5b-9a10-00000000c005",
    "llm-a": "d3f1a7c2-0006-4e5b-9a10-00000000c006",
    "llm-b": "d3f1a7c2-0007-4e5b-9a10-00000000c007",
    "llm-c": "d3f1a7c2-0008-4e5b-9a10-00000000c008",
    "nfv-1": "d3f1a7c2-0009-4e5b-9a10-00000000c009",
    "legacy-nic": "d3f1a7c2-000a-4e5b-9a10-00000000c00a",
}


def vm(t, name, **kw):
    return B.domain(t, name, VM_UUID[name], **kw)


def gpu_a1(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, instances=[("257", U["a1-1"]), ("257", U["a1-2"])])
    # two vGPUs in one VM: the plan must move both to one target host
    vm(t, "cad-render", mdevs=[U["a1-1"], U["a1-2"]])


def gpu_a2(t):
    # a likely target for cad-render (2.4 accepts 2.3): exactly one free pre-created
    # nvidia-257 instance on its first GPU, which therefore offers nvidia-257 alone
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=4, driver_version="550.90.07", instances=[("257", U["a2-free"])])
    B.nvidia_vgpu(t, "0000:d8:00.0", minor=4, driver_version="550.90.07", numa_node=1)


def gpu_b1(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", major=3, minor=0, driver_version="570.124.03",
                  instances=[("258", U["b1-1"])])
    # one vGPU; its GPU runs nvidia-258, so the other types show 0
    vm(t, "ml-train", mdevs=[U["b1-1"]])


def gpu_slow(t):
    # a stale instance left by an aborted migration of cad-render: it carries the
    # UUID of cad-render's first vGPU, so a move that keeps UUIDs collides here
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, wrap={"rule": "slow", "delay": 0.5}, instances=[("257", U["a1-1"])])


def gpu_flaky(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, wrap={"rule": "eio"})


def igd_1(t):
    B.intel_gvtg(t, instances=[("4", U["igd1"])])
    # a VM with an Intel vIOMMU: QEMU refuses to migrate it with a VFIO device (blocked)
    vm(t, "vdi-secure", mdevs=[U["igd1"]], viommu=True)


def igd_2(t):
    B.intel_gvtg(t)


def igd_old(t):
    B.intel_gvtg(t, device_id="0x3e92", supported=False)


def s390_1(t):
    B.s390_ccw(t, instances=[U["ccw"]])
    B.s390_ap(t)
    # an s390 guest with one vfio-ccw subchannel
    vm(t, "zlinux-ccw", mdevs=[U["ccw"]], mdev_model="vfio-ccw", arch="s390x")


def serial_1(t):
    B.mtty(t, instances=[U["mtty"]])
    # a shut-off VM: its instance exists but nothing runs; it moves cold
    vm(t, "console-off", state="shutoff", mdevs=[U["mtty"]])


def h200_1(t):
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=2, current={0: 1414, 1: 1414})
    # two VMs of one vGPU 17+ VF each (attached as PCI host devices, managed='no':
    # the vGPU type is set on the VF before the VM starts)
    vm(t, "llm-a", pci=[("0000:41:00.1", False)])
    # h200-2 has room for one H200X-1-18C only: one of llm-a/llm-b is stranded
    vm(t, "llm-b", pci=[("0000:41:00.2", False)])


def h200_2(t):
    # mixed-size (heterogeneous) mode: the free VF can still take H200X-1-18C beside the 2-35C
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=2, current={0: 1415}, heterogeneous=True)
    vm(t, "llm-c", pci=[("0000:41:00.1", False)])


def h200_3(t):
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=4, driver_version="550.54.14")


def h200_4(t):
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=4)
    return {"qemu": "1:7.2+dfsg-7+deb12u13"}


def vf_1(t):
    B.mlx5_vf(t, minor=0)
    t.pci_device("0000:af:00.0", "0x8086", "0x1572", "vfio-pci", pci_class="0x020000", root_port="pci0000:ae")
    # a migratable mlx5 VF (mlx5_vfio_pci variant driver)
    vm(t, "nfv-1", pci=["0000:5e:00.1"])
    # a NIC on plain vfio-pci, which cannot migrate; the VM is paused
    vm(t, "legacy-nic", state="paused", pci=["0000:af:00.0"])


def vf_2(t):
    B.mlx5_vf(t, minor=1)
    return {"qemu": "1:7.2+dfsg-7+deb12u13"}


HOSTS = {
    "gpu-a1": gpu_a1, "gpu-a2": gpu_a2, "gpu-b1": gpu_b1, "gpu-slow": gpu_slow, "gpu-flaky": gpu_flaky,
    "igd-1": igd_1, "igd-2": igd_2, "igd-old": igd_old, "s390-1": s390_1, "serial-1": serial_1,
    "h200-1": h200_1, "h200-2": h200_2, "h200-3": h200_3, "h200-4": h200_4,
    "vf-1": vf_1, "vf-2": vf_2,
}
UNREACHABLE = ["offline"]


# Devices no VM uses, on purpose (host -> mdev uuids or PCI addresses).
FREE = {
    "gpu-a2": [U["a2-free"]],
    "gpu-slow": [U["a1-1"]],
    "h200-2": ["0000:41:00.2"],
    "h200-3": ["0000:41:00.1", "0000:41:00.2", "0000:41:00.3", "0000:41:00.4"],
    "h200-4": ["0000:41:00.1", "0000:41:00.2", "0000:41:00.3", "0000:41:00.4"],
    "vf-2": ["0000:5e:00.1"],
}

# Every VM of the demo: {host: {vm: domain() record}}, filled by build().
VMS = {}


def build(dest):
    """Build every demo host's tree below ``dest``; return ``{host: hostdir}``.

    Every host has libvirt (its QEMU state directories, maybe without domains).
    """
    out = {}
    VMS.clear()
    for name, fn in sorted(HOSTS.items()):
        tree = B.SysfsTree(os.path.join(dest, name))
        stack = fn(tree) or {}
        B.host_stack(tree, **stack)
        B.libvirt_dirs(tree)
        VMS[name] = {rec["name"]: rec for rec in tree.vms}
        out[name] = tree.save()
    return out
