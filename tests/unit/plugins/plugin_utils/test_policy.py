"""The policy layer: one test per rule, and its place in the matrix."""

import pytest

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _policy as P
from tests.synthetic import facts, ok

STACK = {"kernel": "6.1.0-27-amd64", "qemu": "8.2.2", "libvirt": "9.0.0"}


def side(name="NVIDIA H200X-1-18C", driver="550.90.07", **stack):
    return {"type_name": name, "driver_version": driver, "stack": dict(STACK, **stack)}


def verdict(policy=None, source=None, target=None):
    return P.check(P.normalize(policy), source or side(), target or side())


def test_all_rules_met():
    status, msg = verdict()
    assert status == "compatible" and msg.startswith("policy:") and "550.90.07" in msg


def test_type_name_must_match():
    status, msg = verdict(target=side(name="NVIDIA H200X-2-35C"))
    assert status == "incompatible" and "type name differs" in msg


def test_driver_versions_equal_names_both():
    status, msg = verdict(source=side(driver="550.54.14"), target=side(driver="550.90.05"))
    assert (status, msg) == ("incompatible", "policy: target driver 550.90.05, source 550.54.14")


def test_driver_branch_mode():
    assert verdict({"driver_version": "branch"}, side(driver="550.54.14"), side(driver="550.90.05"))[0] == "compatible"
    status, msg = verdict({"driver_version": "branch"}, side(driver="535.1"), side(driver="550.90.05"))
    assert status == "incompatible" and "branch" in msg


def test_driver_range():
    pol = {"driver_version": "any", "driver_version_min": "550.54", "driver_version_max": "550.99"}
    assert verdict(pol, side(driver="550.54.14"), side(driver="550.90.05"))[0] == "compatible"
    status, msg = verdict(pol, side(driver="535.154"), side(driver="550.90.05"))
    assert status == "incompatible" and "source driver 535.154 < 550.54" in msg
    status, msg = verdict(pol, side(driver="550.54"), side(driver="570.1"))
    assert "target driver 570.1 > 550.99" in msg


@pytest.mark.parametrize("key,low,label", [("qemu", "7.2", "QEMU 7.2 < 8.1"), ("libvirt", "8.0.0", "libvirt 8.0.0 < 8.6"),
                                           ("kernel", "5.15.0-91-generic", "kernel 5.15.0 < 5.18")])
def test_stack_minimums_name_the_side(key, low, label):
    pol = P.normalize(None)
    assert P.stack_check(pol, dict(STACK, **{key: low}), "target") == [
        {"evidence": "policy", "status": "unsupported", "message": label + " on target"}]
    assert P.stack_check(pol, dict(STACK, **{key: low}), "source")[0]["message"] == label + " on source"
    assert P.stack_check(pol, STACK, "source") == []
    # the stack is a gate, not part of the policy's own verdict
    assert verdict(target=side(**{key: low}))[0] == "compatible"


def test_unknown_facts_give_unknown_never_a_guess():
    assert P.stack_check(P.normalize(None), dict(STACK, qemu=None), "target") == [
        {"evidence": "policy", "status": "unknown", "message": "QEMU version not known on target"}]
    status, msg = verdict(target=side(driver=None))
    assert status == "unknown" and "driver version not known on target" in msg


def test_minimums_can_be_switched_off():
    assert P.stack_check(P.normalize({"min_qemu": None}), dict(STACK, qemu=None), "target") == []


def test_compatible_message_names_what_was_compared():
    """Under branch or any the versions may differ: the message must not say "on both"."""
    assert verdict()[1] == "policy: same type, driver 550.90.07 on both"
    msg = verdict({"driver_version": "branch"}, side(driver="550.54.14"), side(driver="550.90.05"))[1]
    assert msg == "policy: same type, drivers 550.54.14 and 550.90.05 on one branch"
    msg = verdict({"driver_version": "any"}, side(driver="535.1"), side(driver="550.90.05"))[1]
    assert msg == "policy: same type, driver versions not compared"


@pytest.mark.parametrize("bad", [{"driver_version": "newest"}, {"min_qemu": "eight"}, {"nosuch": 1}, "equal"])
def test_bad_policy_is_refused(bad):
    with pytest.raises(P.PolicyError):
        P.normalize(bad)


def vgpu_host(current, free, driver="550.90.07", **stack):
    """A vendor-VFIO host: VFs 0..n with ``current`` type ids set, ``free`` VFs with none."""
    types = [{"id": 1414, "name": "NVIDIA H200X-1-18C"}, {"id": 1415, "name": "NVIDIA H200X-2-35C"}]
    names = {t["id"]: t["name"] for t in types}
    vfs = {}
    for i, tid in enumerate(list(current) + [0] * free):
        vfs["0000:41:00.%d" % (i + 1)] = {"physfn": "0000:41:00.0", "creatable": types, "driver": "nvidia",
                                          "current": {"id": tid, "name": names[tid]} if tid else None,
                                          "driver_version": driver}
    f = facts({})
    f["vendor_vgpu"] = {"pfs": {}, "vfs": vfs}
    f["stack"] = dict(STACK, **stack)
    return ok(f)


def test_vendor_vfio_vgpus_are_decided_by_policy_with_capacity():
    hosts = {"src": vgpu_host([1414, 1414], 0), "same": vgpu_host([], 1), "newer": vgpu_host([], 4, driver="550.90.09"),
             "oldqemu": vgpu_host([], 4, qemu="7.2")}
    m = M.compat_matrix(hosts)
    cls = [c for c in m["classes"].values() if "src" in c["sources"]]
    assert len(cls) == 1 and cls[0]["evidence"] == "policy"
    v = {t: m["verdicts"][cls[0]["id"]][t][0] for t in ("same", "newer", "oldqemu")}
    assert (v["same"]["status"], v["same"]["evidence"], v["same"]["available_instances"]) == ("compatible", "policy", 1)
    assert v["newer"]["message"] == "policy: target driver 550.90.09, source 550.90.07"
    # the stack gates the policy's verdict: unsupported, with the policy's own answer kept
    assert (v["oldqemu"]["status"], v["oldqemu"]["evidence"]) == ("unsupported", "policy")
    assert v["oldqemu"]["message"] == "QEMU 7.2 < 8.1 on target; policy: same type, driver 550.90.07 on both"
    assert [r["status"] for r in v["oldqemu"]["reasons"]] == ["unsupported", "compatible"]
    plan = M.drain_plan(m, ["src"])
    # one free slot on "same": one VF placed, the other stranded with each reason named
    assert [p["target_host"] for p in plan["placements"]] == ["same"]
    assert "full" in plan["stranded"][0]["reason"]
    assert any("QEMU 7.2 < 8.1 on target" in d for d in plan["stranded"][0]["details"])


def test_driver_answers_are_never_replaced_by_policy():
    hosts = {"a": ok(facts({"gpu": {"nv-1": ("p-1.2", 3, [])}})), "b": ok(facts({"gpu": {"nv-1": ("p-1.2", 3, [])}}))}
    m = M.compat_matrix(hosts)
    assert {c["evidence"] for c in m["classes"].values()} == {"driver"}


def test_batch_ids_match_matrix_ids_when_policy_classes_exist():
    """Probe batches are computed before the matrix; their class ids must be the matrix's."""
    from tests.synthetic import probe_all
    hosts = {"aaa-vgpu": vgpu_host([1414], 2),
             "b": ok(facts({"gpu": {"nv-1": ("p-1.2", 3, [])}})), "c": ok(facts({"gpu": {"nv-1": ("p-1.3", 3, [])}}))}
    hosts = probe_all(hosts, M.probe_batches(hosts))
    m = M.compat_matrix(hosts)
    messages = [v["message"] for per in m["verdicts"].values() for vs in per.values() for v in vs]
    assert not [msg for msg in messages if msg and "not probed" in msg]
    assert M.compat_matrix(hosts)["classes"].keys() == m["classes"].keys()
