"""vfio.migration.readiness and vfio.migration.precheck over real kernels.

The four lab VMs run Debian's 6.1 kernel with the patched mtty driver
(kvm-a 1.2, kvm-b 1.3, kvm-c 2.0, kvm-d without the attribute). The playbooks
reach them over SSH like any managed host; the probe writes to real sysfs (no
``allow_non_sysfs``), and the kernel's own driver gives every verdict.
"""

import json
import os

import pytest

from tests.ansible_runner import playbook

pytestmark = pytest.mark.kernel

# Real kernels expose no stack facts the policy would need here; the lab checks the driver's word.
NO_POLICY = {"vfio_migration_policy": {"enabled": False}, "vfio_migration_report_timestamp": False}


def best(matrix, source, target, mdev_type="mtty-2"):
    cells = [c for c in matrix["cells"] if (c["source_host"], c["target_host"], c["mdev_type"]) ==
             (source, target, mdev_type)]
    assert cells, (source, target, mdev_type)
    order = ["compatible", "incompatible", "unsupported", "missing_type", "error", "unknown"]
    c = min(cells, key=lambda c: order.index(c["status"]))
    return c["status"], c["errno_name"], c["evidence"]


@pytest.fixture(scope="module")
def readiness(lab):
    report = os.path.join(lab.run_dir, "report")
    proc = playbook(lab.inventory, "vfio.migration.readiness", timeout=1200, extra_vars=dict(
        NO_POLICY, vfio_migration_report_dir=report, vfio_migration_drain_hosts=["kvm-a"]))
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    with open(os.path.join(report, "matrix.json")) as f:
        return json.load(f)


def test_real_kernels_give_the_driver_verdicts(readiness):
    m = readiness
    assert all(h["state"] == "ok" for h in m["hosts"].values())
    for t in ("mtty-1", "mtty-2"):
        assert best(m, "kvm-a", "kvm-b", t) == ("compatible", None, "driver")      # 1.2 -> 1.3
        assert best(m, "kvm-b", "kvm-a", t) == ("incompatible", "EINVAL", "driver")  # 1.3 -> 1.2: asymmetric
        assert best(m, "kvm-a", "kvm-c", t) == ("incompatible", "EINVAL", "driver")  # other major
        assert best(m, "kvm-c", "kvm-b", t) == ("incompatible", "EINVAL", "driver")
        assert best(m, "kvm-a", "kvm-d", t) == ("unsupported", "ENOENT", "driver")   # no attribute on target
        assert best(m, "kvm-d", "kvm-a", t)[0] == "unsupported"                      # none on the source


def test_real_kernel_drain_plan(readiness):
    plan = readiness["plan"]
    assert plan["ready"] and plan["stranded"] == []
    assert [(p["device"], p["target_host"]) for p in plan["placements"]] == \
        [("4b1f0a52-7d3e-4c59-9b7a-0a0000000a01", "kvm-b")]


def test_precheck_fails_naming_the_stranded_instance(lab):
    proc = playbook(lab.inventory, "vfio.migration.precheck", timeout=1200, extra_vars=dict(
        NO_POLICY, vfio_migration_report_dir=os.path.join(lab.run_dir, "precheck"),
        vfio_migration_drain_hosts=["kvm-c"]))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "4b1f0a52-7d3e-4c59-9b7a-0a0000000c01" in out
    assert "no compatible target outside the drain set" in out
    assert "kvm-a: incompatible (EINVAL)" in out and "kvm-d: unsupported (ENOENT)" in out
