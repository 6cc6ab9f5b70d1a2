"""vfio.migration.readiness and vfio.migration.precheck over real kernels.

The four lab VMs run Debian's 6.1 kernel with the patched mtty driver
(kvm-a 1.2, kvm-b 1.3, kvm-c 2.0, kvm-d without the attribute). The playbooks
reach them over SSH like any managed host; the probe writes to real sysfs (no
``allow_non_sysfs``), and the kernel's own driver answers every write.

The 6.1 mtty sample has no VFIO migration support at all: the kernel answers
``VFIO_DEVICE_FEATURE_MIGRATION`` with ENOTTY, so no VM owning one could ever
migrate. ``mdev_facts`` asks the kernel on the free instances (kvm-a, kvm-c), and
the matrix says ``unsupported`` where the driver's attribute alone would say
``compatible``, keeping the attribute's answer among the cell's reasons.
"""

import json
import os

import pytest

from tests.ansible_runner import adhoc, playbook

pytestmark = pytest.mark.kernel

# No policy classes (every lab source has the driver attribute or none); stack minimums still gate.
NO_POLICY = {"vfio_migration_policy": {"enabled": False}, "vfio_migration_report_timestamp": False}


def best_cell(matrix, source, target, mdev_type="mtty-2"):
    cells = [c for c in matrix["cells"] if (c["source_host"], c["target_host"], c["mdev_type"]) ==
             (source, target, mdev_type)]
    assert cells, (source, target, mdev_type)
    order = ["compatible", "incompatible", "unsupported", "missing_type", "error", "unknown"]
    return min(cells, key=lambda c: order.index(c["status"]))


def best(matrix, source, target, mdev_type="mtty-2"):
    c = best_cell(matrix, source, target, mdev_type)
    return c["status"], c["errno_name"], c["evidence"]


NO_VFIO_MIGRATION = "the driver offers no VFIO migration (VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY)"


@pytest.fixture(scope="module")
def readiness(lab):
    report = os.path.join(lab.run_dir, "report")
    proc = playbook(lab.inventory, "vfio.migration.readiness", timeout=1200, extra_vars=dict(
        NO_POLICY, vfio_migration_report_dir=report, vfio_migration_drain_hosts=["kvm-a"]))
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    with open(os.path.join(report, "matrix.json")) as f:
        return json.load(f)


def test_the_kernel_says_mtty_61_cannot_migrate(lab_mdev_facts):
    a = lab_mdev_facts["kvm-a"]["parents"]["mtty"]["types"]
    cap = a["mtty-2"]["vfio_migration"]
    assert (cap["checked"], cap["migratable"], cap["errno_name"], cap["in_use"]) == (True, False, "ENOTTY", False)
    assert cap["device"] == "4b1f0a52-7d3e-4c59-9b7a-0a0000000a01"
    assert a["mtty-1"]["vfio_migration"]["checked"] is False  # no mtty-1 instance to ask
    assert a["mtty-1"]["vfio_migration"]["message"] == "no instance of this type to ask"
    assert lab_mdev_facts["kvm-c"]["parents"]["mtty"]["types"]["mtty-2"]["vfio_migration"]["migratable"] is False


def test_real_kernels_give_the_driver_verdicts_gated_by_the_capability(readiness):
    m = readiness
    assert all(h["state"] == "ok" for h in m["hosts"].values())
    assert not [c for c in m["cells"] if c["status"] == "compatible"]
    for t in ("mtty-1", "mtty-2"):
        # 1.2 -> 1.3: the attribute accepts, the kernel says the source cannot migrate at all
        c = best_cell(m, "kvm-a", "kvm-b", t)
        assert (c["status"], c["evidence"]) == ("unsupported", "vfio")
        assert NO_VFIO_MIGRATION in c["message"]
        assert {"evidence": "driver", "status": "compatible",
                "message": "target accepted the source version"} in c["reasons"]
        assert best(m, "kvm-b", "kvm-a", t) == ("incompatible", "EINVAL", "driver")  # 1.3 -> 1.2: asymmetric
        assert best(m, "kvm-a", "kvm-c", t) == ("incompatible", "EINVAL", "driver")  # other major
        assert best(m, "kvm-c", "kvm-b", t) == ("incompatible", "EINVAL", "driver")
        assert best(m, "kvm-a", "kvm-d", t) == ("unsupported", "ENOENT", "driver")   # no attribute on target
        assert best(m, "kvm-d", "kvm-a", t)[0] == "unsupported"                      # none on the source
        # a refusal names the capability too
        assert any(NO_VFIO_MIGRATION in r["message"] for r in best_cell(m, "kvm-b", "kvm-a", t)["reasons"])


def test_real_kernel_drain_plan_strands_what_cannot_migrate(readiness):
    plan = readiness["plan"]
    assert not plan["ready"] and plan["placements"] == []
    (s,) = plan["stranded"]
    assert s["device"] == "4b1f0a52-7d3e-4c59-9b7a-0a0000000a01"
    assert s["reason"] == "no compatible target outside the drain set"
    assert any(d.startswith("kvm-b: unsupported - source mtty-2 on mtty: " + NO_VFIO_MIGRATION) for d in s["details"])


def test_precheck_fails_naming_the_stranded_instance(lab):
    proc = playbook(lab.inventory, "vfio.migration.precheck", timeout=1200, extra_vars=dict(
        NO_POLICY, vfio_migration_report_dir=os.path.join(lab.run_dir, "precheck"),
        vfio_migration_drain_hosts=["kvm-c"]))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "4b1f0a52-7d3e-4c59-9b7a-0a0000000c01" in out
    assert "no compatible target outside the drain set" in out
    assert "kvm-a: incompatible (EINVAL)" in out and "kvm-d: unsupported (ENOENT)" in out


def test_a_group_a_process_holds_is_never_opened(lab):
    """A VM's QEMU holds its instance's /dev/vfio/N: discovery must report "in use", never open it.

    A process in kvm-c holds the group of kvm-c's only instance open (as QEMU would); the kernel's
    one-opener rule is not what saves it here: the /proc scan sees the holder first.
    """
    uuid = "4b1f0a52-7d3e-4c59-9b7a-0a0000000c01"
    group = lab.ssh("kvm-c", "basename $(readlink /sys/bus/mdev/devices/%s/iommu_group)" % uuid).stdout.strip()
    assert group.isdigit(), group
    holder = ("import os, sys, time\nfd = os.open('/dev/vfio/%s', os.O_RDWR)\nprint('held', flush=True)\n"
              "sys.stdout.close()\ntime.sleep(120)\n" % group)
    lab.ssh("kvm-c", "cat > /run/holder.py && (setsid python3 /run/holder.py > /run/holder.out 2>&1 &) "
                     "&& sleep 2 && cat /run/holder.out", input=holder)
    try:
        results, proc = adhoc(lab.inventory, "vfio.migration.mdev_facts", limit="kvm-c", timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        cap = results["kvm-c"]["ansible_facts"]["vfio_mdev"]["parents"]["mtty"]["types"]["mtty-2"]["vfio_migration"]
        assert (cap["checked"], cap["migratable"], cap["in_use"]) == (False, None, True)
        assert cap["message"] == "no free instance of this type to ask (every instance is in use)"
    finally:
        lab.ssh("kvm-c", "pkill -f /run/holder.py; true", check=False)
