"""Gates: stack minimums, the kernel's VFIO migration capability and plain vfio-pci lower every verdict.

Each test states its oracle: what a real migration would do between the two hosts.
"""

import copy

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from tests.synthetic import STACK, facts, ok, probe_all

U1, U2, U3 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
              "33333333-3333-4333-8333-333333333333")
ENOTTY = {"checked": True, "migratable": False, "flags": [], "device": U3, "errno": 25, "errno_name": "ENOTTY",
          "in_use": False, "message": "the driver offers no VFIO migration (VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY)"}
CAN = {"checked": True, "migratable": True, "flags": ["STOP_COPY", "P2P"], "device": U3, "errno": None,
       "errno_name": None, "in_use": False, "message": "VFIO migration supported: STOP_COPY, P2P"}


ACCEPTED = "target accepted the source version"


def run(hosts, policy=None):
    """The matrix after every target answered its batch, compatible answers worded as the probe words them."""
    hosts = probe_all(hosts, M.probe_batches(hosts))
    for h in hosts.values():
        for r in (h.get("probe") or {}).get("results", []):
            if r["status"] == "compatible":
                r["message"] = ACCEPTED
    return M.compat_matrix(hosts, policy)


def cell(m, source, target, mdev_type="nv-1"):
    cid = next(c for c, cl in m["classes"].items() if source in cl["sources"] and cl["mdev_type"] == mdev_type)
    (v,) = m["verdicts"][cid][target]
    return v


def pair(src_stack=None, dst_stack=None, src_version="p-1.2", dst_version="p-1.3"):
    return {"src": ok(facts({"gpu0": {"nv-1": (src_version, 3, [U1])}}, stack=src_stack)),
            "dst": ok(facts({"gpu0": {"nv-1": (dst_version, 3, [])}}, stack=dst_stack))}


def test_old_qemu_on_target_turns_a_driver_compatible_into_unsupported():
    m = run(pair(dst_stack=dict(STACK, qemu="7.2")))
    v = cell(m, "src", "dst")
    assert (v["status"], v["evidence"]) == ("unsupported", "policy")
    assert v["message"] == "QEMU 7.2 < 8.1 on target; target accepted the source version"
    # the driver's own answer is still in the cell
    assert v["reasons"][1] == {"evidence": "driver", "status": "compatible",
                               "message": "target accepted the source version"}
    assert M.drain_plan(m, ["src"])["ready"] is False


def test_old_stack_on_source_gates_every_target_and_still_asks_the_driver_once():
    hosts = pair(src_stack=dict(STACK, libvirt="8.0.0"))
    hosts["dst2"] = ok(facts({"gpu0": {"nv-1": ("p-1.2", 3, [U2])}}))  # same version as src, modern stack
    batches = M.probe_batches(hosts)
    # src and dst2 share version p-1.2: one check for both, even though their classes differ
    assert [c["version"] for c in batches["dst"]] == ["p-1.2"]
    m = run(hosts)
    assert cell(m, "src", "dst")["status"] == "unsupported"
    assert "libvirt 8.0.0 < 8.6 on source" in cell(m, "src", "dst")["message"]
    assert cell(m, "dst2", "dst")["status"] == "compatible"
    assert len({c["id"] for c in m["classes"].values() if c["version"] == "p-1.2"}) == 2


def test_unknown_stack_fact_is_unknown_never_compatible():
    m = run(pair(dst_stack=dict(STACK, qemu=None)))
    v = cell(m, "src", "dst")
    assert (v["status"], v["message"]) == ("unknown", "QEMU version not known on target; target accepted the source "
                                                      "version")


def test_a_refusal_stays_a_refusal_with_every_reason_listed():
    m = run(pair(dst_stack=dict(STACK, qemu="7.2"), src_version="p-1.4"))  # 1.4 -> 1.3 refused (EINVAL)
    v = cell(m, "src", "dst")
    assert (v["status"], v["evidence"], v["errno_name"]) == ("incompatible", "driver", "EINVAL")
    assert [r["evidence"] for r in v["reasons"]] == ["driver", "policy"]


def with_capability(host, parent, mdev_type, cap):
    host["facts"]["parents"][parent]["types"][mdev_type]["vfio_migration"] = copy.deepcopy(cap)
    return host


def test_target_type_whose_free_instance_cannot_migrate_is_unsupported():
    hosts = pair()
    with_capability(hosts["dst"], "gpu0", "nv-1", ENOTTY)
    v = cell(run(hosts), "src", "dst")
    assert (v["status"], v["evidence"]) == ("unsupported", "vfio")
    assert v["message"].startswith("target nv-1 on gpu0: the driver offers no VFIO migration "
                                   "(VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY) (free instance %s)" % U3)
    assert v["reasons"][-1]["evidence"] == "driver"


def test_source_capability_from_another_type_on_the_same_parent():
    """No free nv-1 on the source; a free nv-2 there cannot migrate: the parent's driver cannot."""
    hosts = {"src": ok(facts({"gpu0": {"nv-1": ("p-1.2", 3, [U1]), "nv-2": ("p-1.2", 3, [U3])}})),
             "dst": ok(facts({"gpu0": {"nv-1": ("p-1.3", 3, [])}}))}
    with_capability(hosts["src"], "gpu0", "nv-1", {"checked": False, "migratable": None, "in_use": True,
                                                   "message": "no free instance"})
    with_capability(hosts["src"], "gpu0", "nv-2", ENOTTY)
    v = cell(run(hosts), "src", "dst")
    assert (v["status"], v["evidence"]) == ("unsupported", "vfio")
    assert "no free instance of the type to ask, and a free nv-2 instance on the same parent says" in v["message"]


def test_capability_that_can_migrate_or_was_not_asked_changes_nothing():
    hosts = pair()
    with_capability(hosts["dst"], "gpu0", "nv-1", CAN)
    with_capability(hosts["src"], "gpu0", "nv-1", {"checked": False, "migratable": None, "message": "never"})
    v = cell(run(hosts), "src", "dst")
    assert (v["status"], v["evidence"], len(v["reasons"])) == ("compatible", "driver", 1)


def physical(fn_driver, migration=None, cap=None, stack=None):
    f = facts({}, stack=stack)
    f["physical"]["0000:65:00.1"] = {"driver": fn_driver, "driver_version": None, "vendor": "0x15b3",
                                     "device": "0x101e", "type": "pci-15b3:101e",
                                     "migration": migration or {"attribute": None, "supported": False,
                                                                "version": None, "error": None},
                                     "vfio_migration": cap or {"checked": False, "migratable": None}}
    return ok(f)


def test_plain_vfio_pci_is_unsupported_not_a_policy_question():
    m = run({"a": physical("vfio-pci"), "b": physical("mlx5_vfio_pci")})
    row = next(r for r in m["sources"] if r["host"] == "a")
    assert row["class"] is None and row["reason"] == "bound to plain vfio-pci, which has no migration driver"
    (v,) = M.pair_status(m, row, "b")
    assert (v["status"], v["evidence"]) == ("unsupported", "vfio")
    # a variant driver without an attribute is the policy's question; a plain vfio-pci target cannot take it
    cls = next(c for c in m["classes"].values() if c["sources"] == ["b"])
    assert cls["evidence"] == "policy"
    (t,) = m["verdicts"][cls["id"]]["a"]
    assert t["status"] == "unsupported"
    assert t["message"].startswith("target function 0000:65:00.1 is bound to plain vfio-pci")


def test_variant_driver_judged_by_its_capability():
    m = run({"a": physical("mlx5_vfio_pci", cap=dict(ENOTTY, device="0000:65:00.1")),
             "b": physical("mlx5_vfio_pci")})
    cls = next(c for c in m["classes"].values() if c["sources"] == ["a"])
    (v,) = m["verdicts"][cls["id"]]["b"]
    assert (v["status"], v["evidence"]) == ("unsupported", "vfio")
    assert "source function 0000:65:00.1: the driver offers no VFIO migration" in v["message"]


def test_kernel_61_lab_shape_has_no_compatible_cell():
    """mtty 6.1 accepts versions through the patched attribute but has no VFIO migration."""
    hosts = {
        "kvm-a": ok(facts({"mtty": {"mtty-1": ("mtty-1.2", 22, []), "mtty-2": ("mtty-1.2", 11, [U1])}})),
        "kvm-b": ok(facts({"mtty": {"mtty-1": ("mtty-1.3", 24, []), "mtty-2": ("mtty-1.3", 12, [])}})),
        "kvm-c": ok(facts({"mtty": {"mtty-1": ("mtty-2.0", 22, []), "mtty-2": ("mtty-2.0", 11, [U2])}})),
    }
    for name, uuid in (("kvm-a", U1), ("kvm-c", U2)):
        with_capability(hosts[name], "mtty", "mtty-2", dict(ENOTTY, device=uuid))
        with_capability(hosts[name], "mtty", "mtty-1", {"checked": False, "migratable": None,
                                                        "message": "no instance of this type to ask"})
    m = run(hosts)
    cells = M.expand_cells(m)
    assert not [c for c in cells if c["status"] == "compatible"]
    # the driver's asymmetric answer is still there: kvm-a's 1.2 accepted by kvm-b, kvm-b's 1.3 refused by kvm-a
    a_to_b = [c for c in cells if (c["source_host"], c["target_host"]) == ("kvm-a", "kvm-b")]
    assert {c["status"] for c in a_to_b} == {"unsupported"}
    assert all(c["reasons"][-1]["status"] == "compatible" and c["evidence"] == "vfio" for c in a_to_b)
    b_to_a = [c for c in cells if (c["source_host"], c["target_host"]) == ("kvm-b", "kvm-a")]
    assert {c["status"] for c in b_to_a} == {"incompatible"}
    assert all(any(r["evidence"] == "vfio" for r in c["reasons"]) for c in b_to_a)


def test_a_target_whose_sysfs_cannot_be_listed_is_an_error_not_missing_type():
    """Defect: EACCES on class/mdev_bus gave missing_type, a guess that the type is absent."""
    hosts = pair()
    hosts["dst"]["facts"]["parents"] = {}
    hosts["dst"]["facts"]["errors"] = [{"errno": 13, "errno_name": "EACCES", "path": "/sys/class/mdev_bus",
                                        "what": "list mdev parents", "message": "Permission denied"}]
    v = cell(run(hosts), "src", "dst")
    assert (v["status"], v["parent"]) == ("error", None)
    assert v["message"] == ("target offers no nv-1 that discovery could see, but it could not list mdev parents "
                            "/sys/class/mdev_bus (EACCES)")
    # a host that listed everything and lacks the type still says missing_type
    hosts = pair()
    hosts["dst"]["facts"]["parents"] = {}
    assert cell(run(hosts), "src", "dst")["status"] == "missing_type"
