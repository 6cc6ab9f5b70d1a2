"""The controller-side matrix, batches, targets and drain plans (plugin_utils._matrix)."""

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from tests.synthetic import facts, fleet, ok, probe_all

U1, U2, U3 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
              "33333333-3333-4333-8333-333333333333")


def small_fleet():
    hosts = {
        "a": ok(facts({"gpu0": {"nv-1": ("p-1.2", 3, [U1, U2])}})),
        "b": ok(facts({"gpu0": {"nv-1": ("p-1.3", 1, [])}, "gpu1": {"nv-1": ("p-1.1", 5, [])}})),
        "c": ok(facts({"gpu0": {"nv-1": ("p-2.0", 8, [U3])}})),
        "d": ok(facts({"igd": {"gvt-4": ("q-1.0", 2, [])}})),
        "down": {"state": "unreachable", "reason": "ssh: connection refused", "facts": None, "probe": None},
    }
    return probe_all(hosts, M.probe_batches(hosts))


def verdicts(matrix, source, target, mdev_type="nv-1"):
    cid = next(c for c, cl in matrix["classes"].items() if source in cl["sources"] and cl["mdev_type"] == mdev_type)
    return {v["parent"]: v["status"] for v in matrix["verdicts"][cid][target]}


def test_batches_hold_one_check_per_class_the_target_offers():
    hosts = small_fleet()
    batches = M.probe_batches(hosts)
    assert "down" not in batches
    assert [c["version"] for c in batches["a"]] == ["p-1.1", "p-1.3", "p-2.0"]
    assert [c["version"] for c in batches["d"]] == []  # offers no nv-1; its own class is not sent to itself
    # b's own classes (1.3 on gpu0, 1.1 on gpu1) are not sent to b
    assert [c["version"] for c in batches["b"]] == ["p-1.2", "p-2.0"]


def test_probe_economy_classes_not_hosts():
    hosts = fleet(500, n_types=2, versions_per_type=3)
    batches = M.probe_batches(hosts)
    assert max(len(b) for b in batches.values()) <= 2 * 3
    classes = M.build_classes(hosts)[0]
    assert len(classes) <= 6


def test_verdicts_per_parent_and_asymmetry():
    m = M.compat_matrix(small_fleet())
    assert verdicts(m, "a", "b") == {"gpu0": "compatible", "gpu1": "incompatible"}  # 1.2 -> 1.3 ok, -> 1.1 no
    assert verdicts(m, "b", "a") == {"gpu0": "incompatible"}  # 1.3 -> 1.2 refused (asymmetric)
    assert verdicts(m, "a", "c") == {"gpu0": "incompatible"}  # other major
    assert verdicts(m, "a", "d") == {None: "missing_type"}


def test_unreachable_target_is_unknown_never_guessed():
    m = M.compat_matrix(small_fleet())
    v = m["verdicts"][next(iter(m["classes"]))]["down"]
    assert [x["status"] for x in v] == ["unknown"]
    assert "connection refused" in v[0]["message"]
    assert m["hosts"]["down"]["state"] == "unreachable"


def test_failed_probe_is_unknown():
    hosts = small_fleet()
    hosts["b"]["probe"] = {"failed": True, "msg": "refused, nothing written: bad"}
    m = M.compat_matrix(hosts)
    assert set(verdicts(m, "a", "b").values()) == {"unknown"}


def test_error_statuses_from_the_probe_stay_errors():
    hosts = small_fleet()
    for r in hosts["b"]["probe"]["results"]:
        r.update(status="error", errno=13, errno_name="EACCES")
    m = M.compat_matrix(hosts)
    assert set(verdicts(m, "a", "b").values()) == {"error"}


def test_cells_cover_every_source_row_and_target():
    m = M.compat_matrix(small_fleet())
    cells = M.expand_cells(m)
    pairs = {(c["source_host"], c["target_host"]) for c in cells}
    assert ("a", "down") in pairs and ("a", "a") not in pairs
    a_to_b = [c for c in cells if c["source_host"] == "a" and c["target_host"] == "b"]
    assert {c["target_parent"]: c["status"] for c in a_to_b} == {"gpu0": "compatible", "gpu1": "incompatible"}
    assert a_to_b[0]["source_devices"] == [U1, U2]


def test_migration_targets_ranked_by_capacity():
    hosts = small_fleet()
    hosts["c"] = ok(facts({"gpu0": {"nv-1": ("p-1.9", 8, [U3])}}))
    hosts = probe_all(hosts, M.probe_batches(hosts))
    m = M.compat_matrix(hosts)
    got = M.migration_targets(m, "a")
    assert [(t["target_host"], t["available_instances"]) for t in got] == [("c", 8), ("b", 1)]
    assert M.migration_targets(m, "a", exclude=("c",))[0]["target_host"] == "b"


def test_drain_plan_never_double_books_a_slot():
    m = M.compat_matrix(small_fleet())
    plan = M.drain_plan(m, ["a"])
    # a's two instances can only go to b/gpu0, which has one free slot
    assert [p["target_host"] + "/" + p["target_parent"] for p in plan["placements"]] == ["b/gpu0"]
    assert len(plan["stranded"]) == 1 and not plan["ready"]
    assert "full" in plan["stranded"][0]["reason"]
    msg = M.stranded_message(plan)
    assert plan["stranded"][0]["device"] in msg and "c: incompatible" in msg


def test_drain_plan_stranded_without_any_target_names_each_reason():
    m = M.compat_matrix(small_fleet())
    plan = M.drain_plan(m, ["c"])
    assert plan["stranded"][0]["device"] == U3
    details = "\n".join(plan["stranded"][0]["details"])
    assert "a: incompatible" in details and "down: unknown" in details and "d: missing_type" in details


def test_drain_plan_unreachable_drain_host_is_not_ready():
    m = M.compat_matrix(small_fleet())
    plan = M.drain_plan(m, ["down"])
    assert not plan["ready"] and "unreachable" in plan["stranded"][0]["reason"]
    assert M.drain_plan(m, ["nosuch"])["unknown_hosts"] == ["nosuch"]


def test_drain_plan_ready():
    hosts = small_fleet()
    hosts["b"]["facts"]["parents"]["gpu0"]["types"]["nv-1"]["available_instances"] = 4
    m = M.compat_matrix(hosts)
    plan = M.drain_plan(m, ["a"])
    assert plan["ready"] and len(plan["placements"]) == 2
    assert plan["placements"][-1]["target_free_after"] == 2


def test_unsupported_source_rows_explain_themselves():
    hosts = {"x": ok(facts({"mtty": {"mtty-2": (None, 3, [U1])}})), "y": ok(facts({"mtty": {"mtty-2": (None, 3, [])}}))}
    plan = M.drain_plan(M.compat_matrix(hosts, {"enabled": False}), ["x"])
    assert plan["stranded"][0]["reasons"] == ["mtty-2 %s: source has no migration attribute: it does not support migration" % U1]
    # with the policy on, missing facts make it say it cannot decide, never guess
    plan = M.drain_plan(M.compat_matrix(hosts), ["x"])
    assert "y: unknown - policy cannot decide: driver version not known on source" in plan["stranded"][0]["details"][0]


def test_a_version_the_probe_refuses_is_error_and_leaves_other_checks_alone():
    # a hand-made (or tampered) fact whose version the probe would refuse: not ASCII
    hosts = {
        "bad": ok(facts({"gpu0": {"nv-1": ("p-1.\u00e9", 1, [U1])}})),
        "src": ok(facts({"gpu0": {"nv-1": ("p-1.1", 1, [U2])}})),
        "t": ok(facts({"gpu0": {"nv-1": ("p-1.2", 4, [])}})),
    }
    batches = M.probe_batches(hosts)
    assert [c["version"] for c in batches["t"]] == ["p-1.1"]  # the refused class is not sent
    matrix = M.compat_matrix(probe_all(hosts, batches, rule=lambda source, target: None if source <= target else 22))
    assert verdicts(matrix, "src", "t") == {"gpu0": "compatible"}
    bad = matrix["verdicts"][next(c for c, cl in matrix["classes"].items() if cl["sources"] == ["bad"])]["t"]
    assert [(v["status"], v["parent"]) for v in bad] == [("error", "gpu0")]
    assert "refuses" in bad[0]["message"] and "ASCII" in bad[0]["message"]


def test_a_task_that_hit_its_time_limit_is_unknown_with_why():
    """A registered result with ``timedout`` (the task keyword ``timeout``): never a verdict, the limit named."""
    from ansible_collections.vfio.migration.plugins.filter.matrix import gather_state
    hosts = small_fleet()
    hosts["b"]["probe"] = {"failed": True, "msg": "Timed out after 5 second(s).", "timedout": {"period": 5}}
    m = M.compat_matrix(hosts)
    cid = next(c for c, cl in m["classes"].items() if "a" in cl["sources"] and cl["mdev_type"] == "nv-1")
    assert [(v["parent"], v["status"], v["message"]) for v in m["verdicts"][cid]["b"]] == [
        (gpu, "unknown", "target not probed: the probe did not finish within 5 s: a driver or file that never answers?")
        for gpu in ("gpu0", "gpu1")]
    gathered = gather_state({"failed": True, "msg": "Timed out after 8 second(s).", "timedout": {"period": 8}})
    assert gathered == {"state": "failed",
                        "reason": "fact gathering did not finish within 8 s: a driver or file that never answers?"}
    # without the period (another ansible-core), the reason still says what happened
    assert gather_state({"failed": True, "timedout": {}})["reason"].startswith(
        "fact gathering did not finish within its time limit")
