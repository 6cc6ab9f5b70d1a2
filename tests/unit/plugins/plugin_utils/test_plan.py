"""The drain plan in VMs: whole VMs, real room, coupled capacity, QEMU's word, collisions.

Facts are built the way ``mdev_facts`` reports them (``vms`` with resolved
mdevs, ``libvirt.present``); verdicts come from the synthetic driver rule
(same prefix and major, source minor not newer than the target's).
"""

import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _plan as PLAN
from tests.synthetic import facts, ok, probe_all


def uid(n):
    return "%08x-0000-4000-8000-%012x" % (n, n)


def with_vms(f, vms, driver=None):
    """Add libvirt domains: ``{name: (state, [mdev uuids], extra)}``; mdevs resolved as mdev_facts does."""
    f["libvirt"] = {"present": True, "errors": [], "message": None}
    f["vms"] = {}
    for i, (name, spec) in enumerate(sorted(vms.items())):
        state, uuids = spec[0], spec[1]
        extra = spec[2] if len(spec) > 2 else {}
        mdevs = []
        for u in uuids:
            d = f["devices"].get(u)
            mdevs.append({"uuid": u, "model": "vfio-pci", "alias": None, "present": d is not None,
                          "mdev_type": (d or {}).get("mdev_type"), "parent": (d or {}).get("parent")})
        vm = {"name": name, "uuid": uid(1000 + i), "state": state, "persistent": True, "mdevs": mdevs,
              "pci": extra.get("pci", []), "viommu": extra.get("viommu", False), "differences": [],
              "qemu": extra.get("qemu", {"asked": False, "blocked": None, "reasons": [],
                                         "message": "not asked (not the host's real root)"})}
        f["vms"][name] = vm
    if driver:
        for p in f["parents"].values():
            p["driver"] = driver
    return f


def plan_for(hosts, drain):
    matrix = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)))
    return M.drain_plan(matrix, drain), matrix


def placed(plan):
    return {p["vm"]: p["target_host"] for p in plan["placements"]}


def test_a_vm_with_two_instances_lands_on_one_host_or_nowhere():
    src = with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(1), uid(2)])}}), {"vm2": ("running", [uid(1), uid(2)])})
    # each target has room for one instance only: the VM must not be split over them
    hosts = {"src": ok(src),
             "b": ok(with_vms(facts({"g": {"t": ("p-1.0", 1, [])}}), {})),
             "c": ok(with_vms(facts({"g": {"t": ("p-1.0", 1, [])}}), {}))}
    plan, _m = plan_for(hosts, ["src"])
    assert not plan["placements"] and not plan["ready"]
    (s,) = plan["stranded"]
    assert s["vm"] == "vm2" and s["cause"] == "full" and len(s["devices"]) == 2
    assert "every compatible target is full: b/g, c/g" in s["reasons"][0]
    # one more slot on c: the whole VM goes there, both devices
    hosts["c"] = ok(with_vms(facts({"g": {"t": ("p-1.0", 2, [])}}), {}))
    plan, _m = plan_for(hosts, ["src"])
    (p,) = plan["placements"]
    assert (p["vm"], p["target_host"], p["target_parents"]) == ("vm2", "c", ["g"])
    assert [(d["source"], d["device"], d["action"]) for d in p["target_devices"]] == [
        (uid(1), uid(1), "create"), (uid(2), uid(2), "create")]
    assert plan["ready"]


def test_unused_instances_are_not_demand_and_shut_off_vms_move_cold():
    src = with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(1), uid(2), uid(3)])}}),
                   {"on": ("running", [uid(1)]), "off": ("shutoff", [uid(2)])})
    hosts = {"src": ok(src), "b": ok(with_vms(facts({"g": {"t": ("p-1.0", 1, [])}}), {}))}
    plan, _m = plan_for(hosts, ["src"])
    assert placed(plan) == {"on": "b"} and plan["ready"]
    (cold,) = plan["cold"]
    assert cold["vm"] == "off" and cold["state"] == "shutoff" and cold["target_hosts"] == ["b"]
    assert [f["device"] for f in plan["free_instances"]] == [uid(3)]


def test_a_free_pre_created_instance_is_room_and_is_the_one_used():
    tgt = with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(9)])}}), {})  # the type is full, but uid(9) is free
    hosts = {"src": ok(with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(1)])}}), {"vm": ("running", [uid(1)])})),
             "b": ok(tgt)}
    plan, _m = plan_for(hosts, ["src"])
    (p,) = plan["placements"]
    (d,) = p["target_devices"]
    assert (d["device"], d["action"], d["uuid_changes"]) == (uid(9), "use", True)
    # the same instance used by a shut-off VM on the target is not free
    hosts["b"] = ok(with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(9)])}}), {"parked": ("shutoff", [uid(9)])}))
    plan, _m = plan_for(hosts, ["src"])
    assert not plan["placements"] and plan["stranded"][0]["cause"] == "full"


def test_without_libvirt_each_instance_is_its_own_unit_and_nothing_is_free():
    hosts = {"src": ok(facts({"g": {"t": ("p-1.0", 0, [uid(1), uid(2)])}})),
             "b": ok(facts({"g": {"t": ("p-1.0", 1, [uid(9)])}}))}
    plan, _m = plan_for(hosts, ["src"])
    assert sorted(p["device"] for p in plan["placements"]) == [uid(1)]  # one slot; uid(9) may be in use
    assert [s["device"] for s in plan["stranded"]] == [uid(2)] and plan["stranded"][0]["vm"] is None


def test_nvidia_time_sliced_keeps_one_type_per_gpu():
    types = {"nv-a": ("a-1.0", 2, []), "nv-b": ("b-1.0", 2, [])}
    src = with_vms(facts({"g": {"nv-a": ("a-1.0", 0, [uid(1)]), "nv-b": ("b-1.0", 0, [uid(2)])}}),
                   {"va": ("running", [uid(1)]), "vb": ("running", [uid(2)])}, driver="nvidia")
    hosts = {"src": ok(src), "b": ok(with_vms(facts({"gpu0": dict(types)}), {}, driver="nvidia"))}
    plan, _m = plan_for(hosts, ["src"])
    assert len(plan["placements"]) == 1 and len(plan["stranded"]) == 1
    assert "room left gpu0 0" in " ".join(plan["stranded"][0]["details"])
    # the same GPU under a driver that shares one budget takes both (2 halves of nv-a's room)
    hosts["b"] = ok(with_vms(facts({"gpu0": dict(types)}), {}, driver="drv"))
    plan, _m = plan_for(hosts, ["src"])
    assert placed(plan) == {"va": "b", "vb": "b"}


def test_gvtg_types_share_one_budget():
    # V5_4 takes a quarter, V5_8 an eighth: 4 and 8 available on an empty GPU
    tgt = with_vms(facts({"igd": {"V5_4": ("i-1.0", 4, []), "V5_8": ("j-1.0", 8, [])}}), {}, driver="i915")
    vms = {"q%d" % i: ("running", [uid(i)]) for i in range(3)}
    vms.update({"e%d" % i: ("running", [uid(10 + i)]) for i in range(5)})
    src = with_vms(facts({"igd": {"V5_4": ("i-1.0", 0, [uid(i) for i in range(3)]),
                                  "V5_8": ("j-1.0", 0, [uid(10 + i) for i in range(5)])}}), vms, driver="i915")
    plan, _m = plan_for({"src": ok(src), "b": ok(tgt)}, ["src"])
    # (names order the ties: the five eighths go first) five eighths leave three: one quarter fits
    assert sum(1 for p in plan["placements"] if p["mdev_type"] == "V5_8") == 5
    assert sum(1 for p in plan["placements"] if p["mdev_type"] == "V5_4") == 1
    assert sorted(s["vm"] for s in plan["stranded"]) == ["q1", "q2"]
    assert "room left igd 0" in plan["stranded"][0]["details"][0]


def test_vgpu_vf_is_one_slot_for_any_type():
    def vgpu_host(current, n_free):
        f = with_vms(facts({}), {})
        vfs, common = {}, {"physfn": "0000:41:00.0", "driver": "nvidia", "driver_version": "550.54.14"}
        for i in range(n_free):
            vfs["0000:41:00.%d" % (i + 4)] = dict(common, current=None,
                                                  creatable=[{"id": 1, "name": "A"}, {"id": 2, "name": "B"}])
        for i, name in enumerate(current):
            vfs["0000:41:00.%d" % (i + 1)] = dict(common, current={"id": 1, "name": name}, creatable=[])
        f["vendor_vgpu"] = {"pfs": {}, "vfs": vfs}
        return f
    src = vgpu_host(["A", "A"], 0)
    src["vms"] = {"v%d" % i: {"name": "v%d" % i, "uuid": uid(i), "state": "running", "persistent": True,
                              "mdevs": [], "viommu": False, "differences": [], "qemu": {"asked": False},
                              "pci": [{"address": "0000:41:00.%d" % (i + 1), "managed": True}]}
                  for i in range(2)}
    policy_hosts = {"src": ok(src), "b": ok(vgpu_host([], 1))}
    matrix = M.compat_matrix(policy_hosts)
    plan = M.drain_plan(matrix, ["src"])
    # the one free VF is listed under both types it could take, but it is one slot
    assert len(plan["placements"]) == 1 and len(plan["stranded"]) == 1
    assert plan["placements"][0]["target_devices"][0]["device"] == "0000:41:00.4"


def test_qemu_blocked_vm_is_stranded_with_qemus_words():
    blocked = {"asked": True, "blocked": True, "reasons": ["VFIO device doesn't support migration"], "message": None}
    silent = {"asked": False, "blocked": None, "reasons": [], "message": "virsh qemu-monitor-command failed (rc 1)"}
    src = with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(1), uid(2), uid(3)])}}),
                   {"x": ("running", [uid(1)], {"qemu": blocked}), "y": ("running", [uid(2)], {"qemu": silent}),
                    "z": ("running", [uid(3)], {"viommu": True})})
    hosts = {"src": ok(src), "b": ok(with_vms(facts({"g": {"t": ("p-1.0", 8, [])}}), {}))}
    plan, _m = plan_for(hosts, ["src"])
    by = {s["vm"]: s for s in plan["stranded"]}
    assert by["x"]["cause"] == "blocked" and by["x"]["evidence"] == ["qemu"]
    assert by["x"]["reasons"] == ["QEMU: VFIO device doesn't support migration"]
    assert by["y"]["cause"] == "unknown" and "did not answer" in by["y"]["reasons"][0]
    assert by["z"]["cause"] == "blocked" and "vIOMMU" in by["z"]["reasons"][0]
    # QEMU asked and not blocking wins over the domain's own hints
    fine = {"asked": True, "blocked": False, "reasons": [], "message": None}
    src["vms"]["z"]["qemu"] = fine
    plan, _m = plan_for(hosts, ["src"])
    assert "z" in placed(plan)


def test_a_uuid_that_exists_on_the_target_is_reported_and_avoided():
    src = with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(1)])}}), {"vm": ("running", [uid(1)])})
    taken = with_vms(facts({"g": {"t": ("p-1.0", 8, [uid(1)])}}), {"other": ("running", [uid(1)])})
    hosts = {"src": ok(src), "b": ok(taken), "c": ok(with_vms(facts({"g": {"t": ("p-1.0", 1, [])}}), {}))}
    plan, _m = plan_for(hosts, ["src"])
    assert placed(plan) == {"vm": "c"}  # b has more room, but the UUID is taken there
    (c,) = plan["collisions"]
    assert (c["uuid"], c["target_host"], c["held_by"]) == (uid(1), "b", "other")
    # a stale free instance with that UUID and type on a compatible parent: the plan uses it
    hosts["b"] = ok(with_vms(facts({"g": {"t": ("p-1.0", 8, [uid(1)])}}), {}))
    hosts["c"] = ok(with_vms(facts({"g": {"t": ("p-1.0", 0, [])}}), {}))
    plan, _m = plan_for(hosts, ["src"])
    (p,) = plan["placements"]
    assert p["target_host"] == "b" and p["target_devices"][0]["action"] == "use"
    assert p["target_devices"][0]["uuid_changes"] is False


def test_stranded_message_names_vms_and_every_target():
    src = with_vms(facts({"g": {"t": ("p-2.0", 0, [uid(1)])}}), {"web": ("running", [uid(1)])})
    hosts = {"src": ok(src), "b": ok(with_vms(facts({"g": {"t": ("p-1.0", 1, [])}}), {})),
             "down": {"state": "unreachable", "reason": "ssh: refused", "facts": None, "probe": None}}
    plan, _m = plan_for(hosts, ["src"])
    text = M.stranded_message(plan)
    assert text.splitlines()[0] == "VM web on src: no compatible target outside the drain set"
    assert "    b: incompatible (EPROTO)" in text and "    down: unknown - host unreachable: ssh: refused" in text


# -- the plan never promises room a driver would not give -------------------------------

def _room_oracle(matrix, plan):
    """Re-count, per target parent, what the placements take, the slow way, from the facts' numbers."""
    over = []
    per_parent = {}
    for p in plan["placements"]:
        for d in p["target_devices"]:
            per_parent.setdefault((p["target_host"], d["target_parent"]), []).append(d)
    for (host, parent), taken in per_parent.items():
        pool = matrix["hosts"][host]["room"]["pools"][parent]
        created = {}
        used_free = [d["device"] for d in taken if d["action"] == "use"]
        for d in taken:
            if d["action"] == "create":
                created[d["mdev_type"]] = created.get(d["mdev_type"], 0) + 1
        share = sum(Fraction(n, pool["available"][t]) for t, n in created.items() if pool["available"].get(t))
        if share > 1 or any(not pool["available"].get(t) for t in created):
            over.append((host, parent, "created more than the budget"))
        free = [u for ids in pool["free"].values() for u in ids]
        if len(set(used_free)) != len(used_free) or not set(used_free) <= set(free):
            over.append((host, parent, "used a free instance twice or one that is not free"))
        types = set(pool["in_use_types"]) | {d["mdev_type"] for d in taken}
        if pool["mode"] == "one-type" and len(types) > 1:
            over.append((host, parent, "two types on a one-type GPU"))
    return over


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10 ** 6))
def test_random_fleets_whole_vms_compatible_parents_room_never_overbooked(seed):
    rnd = random.Random(seed)
    hosts, n = {}, rnd.randrange(2, 12)
    counter = iter(range(1, 10 ** 6))
    for i in range(n):
        parents, vms = {}, {}
        for g in range(rnd.randrange(1, 3)):
            types = {}
            for t in ("a", "b"):
                devs = [uid(next(counter)) for _k in range(rnd.randrange(0, 3))]
                types["nv-" + t] = ("%s-1.%d" % (t, rnd.randrange(3)), rnd.randrange(0, 4), devs)
            parents["gpu%d" % g] = types
        f = facts(parents)
        devs = sorted(f["devices"])
        rnd.shuffle(devs)
        while devs:
            k = min(len(devs), rnd.choice((1, 1, 2)))
            vms["vm-%d-%d" % (i, len(vms))] = (rnd.choice(("running", "running", "paused", "shutoff")), devs[:k])
            devs = devs[k:] if rnd.random() < 0.8 else devs[k + 1:]  # some instances stay free
        hosts["h%02d" % i] = ok(with_vms(f, vms, driver=rnd.choice(("nvidia", "drv"))))
    drain = sorted(rnd.sample(sorted(hosts), rnd.randrange(1, n)))
    plan, matrix = plan_for(hosts, drain)
    assert _room_oracle(matrix, plan) == []
    live = {(h, vm["name"]) for h in drain for vm in matrix["hosts"][h]["vms"]
            if vm["state"] in ("running", "paused") and vm["devices"]}
    seen = {(p["source_host"], p["vm"]) for p in plan["placements"]} | {
        (s["source_host"], s["vm"]) for s in plan["stranded"]}
    assert seen == live  # every live VM is placed or stranded, once
    for p in plan["placements"]:
        assert p["target_host"] not in drain
        for dev, tgt in zip(p["devices"], p["target_devices"]):
            vs = matrix["verdicts"][dev["class"]][p["target_host"]]
            assert any(v["parent"] == tgt["target_parent"] and v["status"] == "compatible" for v in vs)
    # a VM stranded for room really fits nowhere in what is left
    left = {t: {p: PLAN._Pool(spec) for p, spec in matrix["hosts"][t]["room"]["pools"].items()}
            for t in matrix["hosts"] if t not in drain}
    for p in plan["placements"]:
        for d in p["target_devices"]:
            left[p["target_host"]][d["target_parent"]].take(d["mdev_type"], d["device"])
    for s in plan["stranded"]:
        if s["cause"] != "full":
            continue
        for t, pools in left.items():
            ok_parents = {dev["id"]: [v["parent"] for v in matrix["verdicts"][dev["class"]].get(t) or []
                                      if v["status"] == "compatible"] for dev in s["devices"]}
            if len(s["devices"]) == 1:
                dev = s["devices"][0]
                assert all(pools[p].room(dev["mdev_type"]) == 0 for p in ok_parents[dev["id"]]), (s, t)


def test_the_terminal_summary_names_vms_and_collisions():
    from ansible_collections.vfio.migration.plugins.plugin_utils import _summary as S
    src = with_vms(facts({"g": {"t": ("p-1.0", 0, [uid(1), uid(2)])}}),
                   {"web": ("running", [uid(1)]), "db": ("running", [uid(2)], {"viommu": True})})
    taken = with_vms(facts({"g": {"t": ("p-1.0", 8, [uid(1)])}}), {"other": ("running", [uid(1)])})
    hosts = {"src": ok(src), "b": ok(taken), "c": ok(with_vms(facts({"g": {"t": ("p-1.0", 1, [])}}), {}))}
    plan, matrix = plan_for(hosts, ["src"])
    lines = S.readiness_summary(matrix, plan)
    assert lines[0] == "NOT READY: draining src - 1 of 2 VMs would be stranded"
    assert "Plan: 1 placed, 1 stranded, 0 cold (VMs)" in lines
    assert "Instance UUIDs already on a target: %s (web) on b" % uid(1)[:8] in lines
    assert any(line.startswith("  db t on src: domain has a vIOMMU") for line in lines), lines


def test_a_gpu_running_one_type_that_still_offers_another_is_in_mixed_size_mode():
    # the driver offers nv-b beside the nv-a in use: heterogeneous mode, the types share the GPU
    tgt = with_vms(facts({"gpu0": {"nv-a": ("a-1.0", 1, [uid(7)]), "nv-b": ("b-1.0", 2, [])}}),
                   {"here": ("running", [uid(7)])}, driver="nvidia")
    src = with_vms(facts({"g": {"nv-b": ("b-1.0", 0, [uid(1)])}}), {"vb": ("running", [uid(1)])}, driver="nvidia")
    plan, matrix = plan_for({"src": ok(src), "b": ok(tgt)}, ["src"])
    assert matrix["hosts"]["b"]["room"]["pools"]["gpu0"]["mode"] == "shared"
    assert placed(plan) == {"vb": "b"}
    # room left is taken once the whole VM is placed: one of nv-b's two halves is used
    assert plan["placements"][0]["target_devices"][0]["room_after"] == 1
