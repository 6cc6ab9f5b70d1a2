"""What AWX/AAP and CI read: the set_stats outcome (readiness_stats) and the junit cases (precheck_cases).

Both speak in VMs when the plan does: one entry and one case per VM, whatever
the number of its instances; hosts that could not be asked and drain hosts the
inventory does not know are said, so a consumer never sees ``ready: false``
without its reason.
"""

import json

from ansible_collections.vfio.migration.plugins.filter import report as F
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _summary as S
from ansible_collections.vfio.migration.plugins.plugin_utils import _views as V
from tests.browser.report_fixture import all_status_matrix

U1, U2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
DOWN = "unreachable - ssh: connect to host down port 22: Connection refused"


def vm_plan():
    """A VM-level plan of alpha: web-1 (two instances) placed, db-1 stranded, idle-1 (shut off) cold."""
    return {"drain_hosts": ["alpha"], "unknown_hosts": [], "ready": False,
            "placements": [{"vm": "web-1", "vm_uuid": "u-web", "state": "running", "source_host": "alpha",
                            "mdev_type": "nv-1", "source_parent": "gpu0",
                            "devices": [{"uuid": U1}, {"uuid": U2}], "target_host": "beta",
                            "target_parents": ["gpu0"], "target_parent": "gpu0"}],
            "stranded": [{"vm": "db-1", "vm_uuid": "u-db", "source_host": "alpha", "mdev_type": "nv-1",
                          "cause": "blocked", "reasons": ["QEMU blocks: vIOMMU", "second"],
                          "details": ["beta: compatible, no free instance"]}],
            "cold": [{"vm": "idle-1", "vm_uuid": "u-idle", "source_host": "alpha", "target_host": "beta",
                      "reason": "shut off: moves cold"}]}


def test_stats_give_one_entry_per_vm_with_the_counts_and_the_unasked_hosts():
    matrix = all_status_matrix()
    out = S.readiness_stats(matrix, vm_plan(), "/runner/vfio-reports")
    assert json.loads(json.dumps(out)) == out  # what set_stats hands to AWX is plain data
    assert out["ready"] is False and out["drain_hosts"] == ["alpha"] and out["unknown_hosts"] == []
    assert out["placed"] == [{"vm": "web-1", "vm_uuid": "u-web", "mdev_type": "nv-1", "source_host": "alpha",
                              "target_host": "beta"}]
    assert out["stranded"] == [{"vm": "db-1", "vm_uuid": "u-db", "mdev_type": "nv-1", "source_host": "alpha",
                                "cause": "blocked", "reason": "QEMU blocks: vIOMMU"}]
    assert out["cold"] == [{"vm": "idle-1", "vm_uuid": "u-idle", "source_host": "alpha", "target_host": "beta"}]
    counts = V.summary(matrix)
    assert out["status_counts"] == counts["status_counts"] and out["evidence_counts"] == counts["evidence_counts"]
    assert sum(out["status_counts"].values()) == counts["cells"]
    assert out["hosts_not_asked"] == [{"host": "down", "state": "unreachable",
                                       "reason": "ssh: connect to host down port 22: Connection refused"}]
    assert out["report_dir"] == "/runner/vfio-reports"
    assert F.readiness_stats(matrix, vm_plan(), "/runner/vfio-reports") == out  # the filter gives the same


def test_stats_without_a_plan_have_no_verdict():
    out = S.readiness_stats(all_status_matrix())
    assert out["ready"] is None and out["drain_hosts"] == [] and out["unknown_hosts"] == []
    assert out["placed"] == out["stranded"] == out["cold"] == []


def test_a_drain_host_the_inventory_does_not_know_is_the_reason_in_stats_and_a_failing_case():
    """Defect: the outcome said ready false with nothing stranded and no reason for it."""
    matrix = all_status_matrix()
    plan = M.drain_plan(matrix, ["eta", "nosuch"])  # eta runs nothing: only the unknown host stops the drain
    assert plan["ready"] is False and plan["stranded"] == [] and plan["unknown_hosts"] == ["nosuch"]
    out = S.readiness_stats(matrix, plan)
    assert out["unknown_hosts"] == ["nosuch"] and out["stranded"] == []
    cases = {c["name"]: c for c in S.precheck_cases(matrix, plan)}
    assert cases["host nosuch: not in the inventory"]["ok"] is False


def test_cases_one_per_vm_and_per_unasked_host():
    cases = S.precheck_cases(all_status_matrix(), vm_plan())
    assert [(c["name"], c["ok"]) for c in cases] == [
        ("web-1 nv-1 on alpha: placed", True),  # two instances, one case
        ("idle-1 on alpha: moves cold", True),
        ("db-1 nv-1 on alpha: stranded", False),
        ("host down: could not be asked", False)]
    by_name = {c["name"]: c["message"] for c in cases}
    assert by_name["web-1 nv-1 on alpha: placed"] == "goes to beta/gpu0"
    # a stranded VM's case fails with every reason and every target's line
    assert by_name["db-1 nv-1 on alpha: stranded"] == (
        "QEMU blocks: vIOMMU\nsecond\n  beta: compatible, no free instance")
    assert by_name["host down: could not be asked"] == DOWN
    assert F.precheck_cases(all_status_matrix(), vm_plan()) == cases
