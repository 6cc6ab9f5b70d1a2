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

Every host also gets a root beside its sys/ with a kernel release and a dpkg
database, so the policy can read the stack.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.fixtures import sysfs_builder as B  # noqa: E402

U = {  # instances running on the hosts (uuids are stable so reports are too)
    "a1-1": "6a0c5e1e-0001-4000-8000-00000000a101",
    "a1-2": "6a0c5e1e-0002-4000-8000-00000000a102",
    "b1-1": "6a0c5e1e-0003-4000-8000-00000000b101",
    "igd1": "6a0c5e1e-0004-4000-8000-0000000019d1",
    "ccw": "6a0c5e1e-0005-4000-8000-000000000cc1",
    "mtty": "6a0c5e1e-0006-4000-8000-000000000771",
}


def gpu_a1(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, instances=[("257", U["a1-1"]), ("257", U["a1-2"])])


def gpu_a2(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=4, driver_version="550.90.07")
    B.nvidia_vgpu(t, "0000:d8:00.0", minor=4, driver_version="550.90.07", numa_node=1)


def gpu_b1(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", major=3, minor=0, driver_version="570.124.03",
                  instances=[("258", U["b1-1"])])


def gpu_slow(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, wrap={"rule": "slow", "delay": 0.5})


def gpu_flaky(t):
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, wrap={"rule": "eio"})


def igd_1(t):
    B.intel_gvtg(t, instances=[("4", U["igd1"])])


def igd_2(t):
    B.intel_gvtg(t)


def igd_old(t):
    B.intel_gvtg(t, device_id="0x3e92", supported=False)


def s390_1(t):
    B.s390_ccw(t, instances=[U["ccw"]])
    B.s390_ap(t)


def serial_1(t):
    B.mtty(t, instances=[U["mtty"]])


def h200_1(t):
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=2, current={0: 1414, 1: 1414})


def h200_2(t):
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=2, current={0: 1415})


def h200_3(t):
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=4, driver_version="550.54.14")


def h200_4(t):
    B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=4)
    return {"qemu": "1:7.2+dfsg-7+deb12u13"}


def vf_1(t):
    B.mlx5_vf(t, minor=0)
    t.pci_device("0000:af:00.0", "0x8086", "0x1572", "vfio-pci", pci_class="0x020000", root_port="pci0000:ae")


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


def build(dest):
    """Build every demo host's tree below ``dest``; return ``{host: hostdir}``."""
    out = {}
    for name, fn in sorted(HOSTS.items()):
        tree = B.SysfsTree(os.path.join(dest, name))
        stack = fn(tree) or {}
        B.host_stack(tree, **stack)
        out[name] = tree.save()
    return out
