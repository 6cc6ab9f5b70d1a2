"""The terminal summary (readiness_summary), drift between runs (matrix_changes) and the decision-first page."""

import copy
import json
import re

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.filter import report as F
from ansible_collections.vfio.migration.plugins.plugin_utils import _drift as D
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from ansible_collections.vfio.migration.plugins.plugin_utils import _summary as S
from ansible_collections.vfio.migration.plugins.plugin_utils import _views as V
from tests.browser.report_fixture import EVIL_HOST, all_status_hosts, all_status_matrix, all_status_plan
from tests.synthetic import facts, fleet, ok, probe_all

U1, U2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def hosts_of(versions, down=()):
    """Hosts ``a``, ``b``, ``c`` on nv-1 with the given versions; ``a`` runs two instances."""
    hosts = {}
    for name, version in versions.items():
        f = facts({"gpu0": {"nv-1": (version, 4, [U1, U2] if name == "a" else [])}})
        f["parents"]["gpu0"]["driver_version"] = "drv-" + version
        f["stack"] = {"kernel": "6.1.0", "qemu": "8.2", "libvirt": "9.0"}
        hosts[name] = ok(f)
    for name in down:
        hosts[name] = {"state": "unreachable", "reason": "ssh: no route", "facts": None, "probe": None}
    return probe_all(hosts, M.probe_batches(hosts))


def run_of(versions, down=(), drain=("a",)):
    hosts = hosts_of(versions, down)
    m = M.compat_matrix(hosts)
    return m, M.drain_plan(m, list(drain)), D.host_versions(hosts)


def previous_doc(versions, down=(), cell_limit=R.DEFAULT_CELL_LIMIT):
    m, plan, hv = run_of(versions, down)
    return json.loads(R.render_json(m, plan, "2025-01-01T00:00:00Z", cell_limit, hv))


# -- drift -------------------------------------------------------------------------

@pytest.mark.parametrize("cell_limit", [R.DEFAULT_CELL_LIMIT, 0])  # the cells, or the compact form
def test_one_driver_upgrade_changes_exactly_its_cells(cell_limit):
    before = {"a": "p-1.2", "b": "p-1.3", "c": "p-1.4"}
    prev = previous_doc(before, cell_limit=cell_limit)
    m, plan, hv = run_of(dict(before, b="p-2.0"))  # b moves to another major version
    ch = D.matrix_changes(prev, m, plan, hv)
    cells = {(c["source_host"], c["target_host"]): (c["before"]["status"], c["after"]["status"])
             for c in ch["cells"]}
    # oracle of the range rule: same major, source minor not newer than the target's
    assert cells == {("a", "b"): ("compatible", "incompatible"),
                     ("b", "c"): ("compatible", "incompatible")}
    assert ch["cells_changed"] == 2 and ch["cells_omitted"] == 0
    assert ch["versions"] == [{"host": "b", "what": "driver gpu0", "before": "drv-p-1.3", "after": "drv-p-2.0"}]
    entry = next(c for c in ch["cells"] if c["source_host"] == "b")
    assert entry["before"]["source_version"] == "p-1.3" and entry["after"]["source_version"] == "p-2.0"
    assert entry["after"]["errno_name"] == "EPROTO"
    assert ch["hosts"] == {"appeared": [], "vanished": [], "state_changed": []}


def test_nothing_changed_is_nothing_and_no_previous_is_said():
    before = {"a": "p-1.2", "b": "p-1.3"}
    m, plan, hv = run_of(before)
    ch = D.matrix_changes(previous_doc(before), m, plan, hv)
    assert ch["count"] == 0 and ch["cells"] == [] and ch["previous"]["generated"] == "2025-01-01T00:00:00Z"
    assert D.matrix_changes(None, m, plan, hv)["previous"] is None
    assert D.matrix_changes("", m, plan, hv)["previous"] is None


def test_hosts_plan_items_and_state_changes():
    prev = previous_doc({"a": "p-1.2", "b": "p-1.3", "gone": "p-1.3"})
    m, plan, hv = run_of({"a": "p-1.2", "new": "p-1.0"}, down=("b",))
    ch = D.matrix_changes(prev, m, plan, hv)
    assert ch["hosts"]["appeared"] == ["new"] and ch["hosts"]["vanished"] == ["gone"]
    assert ch["hosts"]["state_changed"] == [{"host": "b", "before": "ok", "after": "unreachable",
                                             "reason": "ssh: no route"}]
    # a's two instances were placed (b or gone had room) and are stranded now (b down, new too old)
    assert sorted(i["device"] for i in ch["plan"]["newly_stranded"]) == [U1, U2]
    assert all(i["before"] == "placed" and i["after"] == "stranded" and i["reason"]
               for i in ch["plan"]["newly_stranded"])
    # cells towards b changed to unknown; nothing is listed for hosts that came or went
    assert {(c["source_host"], c["target_host"]) for c in ch["cells"]} == {("a", "b")}
    assert not any("gone" in (c["source_host"], c["target_host"]) for c in ch["cells"])
    back = D.matrix_changes(json.loads(R.render_json(m, plan, None, R.DEFAULT_CELL_LIMIT, hv)),
                            *run_of({"a": "p-1.2", "b": "p-1.3", "new": "p-1.0"})[:2])
    assert sorted(i["device"] for i in back["plan"]["newly_placeable"]) == [U1, U2]


def test_a_placement_onto_another_host_is_retargeted():
    prev = previous_doc({"a": "p-1.2", "b": "p-1.3"})  # a's two instances can only go to b
    m, plan, hv = run_of({"a": "p-1.2", "b": "p-1.3", "c": "p-1.3"}, down=("b",))  # now only to c
    ch = D.matrix_changes(prev, m, plan, hv)
    got = ch["plan"]["retargeted"]
    assert sorted(i["device"] for i in got) == [U1, U2]
    assert all((i["before"], i["after"], i["before_target"], i["after_target"]) == ("placed", "placed", "b", "c")
               for i in got)
    assert not ch["plan"]["newly_stranded"] and not ch["plan"]["newly_placeable"]
    assert ch["count"] >= 2 and "%s nv-1 on a now planned onto c (was b)" % U1 in S.change_lines(ch)
    same = D.matrix_changes(previous_doc({"a": "p-1.2", "b": "p-1.3"}), *run_of({"a": "p-1.2", "b": "p-1.3"}))
    assert same["plan"]["retargeted"] == [] and same["count"] == 0


def test_change_limit_counts_what_it_leaves_out():
    prev = json.loads(R.render_json(*_fleet_run(seed=1)))
    m, plan = _fleet_run(seed=2)[:2]
    full = D.matrix_changes(prev, m, plan)
    capped = D.matrix_changes(prev, m, plan, limit=3)
    assert full["cells_changed"] > 3 and len(capped["cells"]) == 3
    assert capped["cells_omitted"] == full["cells_changed"] - 3 and capped["cells"] == full["cells"][:3]


def _fleet_run(seed):
    hosts = fleet(12, n_types=2, versions_per_type=3, seed=seed)
    m = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)))
    return m, M.drain_plan(m, ["host00000"]), None


def test_previous_must_be_a_matrix_json():
    m, plan, hv = run_of({"a": "p-1.2", "b": "p-1.3"})
    for bad in ("{not json", {"schema_version": 7, "hosts": {}}, [1, 2]):
        with pytest.raises(ValueError):
            D.matrix_changes(bad, m, plan, hv)
    with pytest.raises(AnsibleFilterError, match="matrix_changes"):
        F.matrix_changes(m, "{not json")


# -- the terminal summary ----------------------------------------------------------

def test_summary_says_the_verdict_counts_unasked_stranded_and_where():
    matrix = all_status_matrix()
    plan = all_status_plan(matrix)
    lines = S.readiness_summary(matrix, plan, None, "/srv/reports", reports_written=True)
    assert lines[0].startswith("NOT READY: draining alpha, gamma - 1 of 3 instances would be stranded")
    assert lines[1] == "Plan: 2 placed, 1 stranded, 0 cold (instances)"
    assert "Could not ask 1 host:" in lines and any(l.startswith("  down: unreachable - ssh:") for l in lines)
    stranded = [l for l in lines if l.startswith("  33333333")]
    assert len(stranded) == 1 and stranded[0].startswith(
        "  33333333-3333-4333-8333-333333333333 nv-1 on gamma: no compatible target outside the drain set; "
        "nearest: beta: incompatible (EPROTO)")
    assert lines[-1].startswith("Reports: /srv/reports/report.html")
    assert "Ran: facts from 8 of 9 hosts, probe answered by 8, matrix and plan, reports written" in lines
    assert not any(CONTROL.search(l) for l in lines)


def test_summary_without_plan_in_check_mode_and_capped():
    hosts = fleet(30, n_types=1, versions_per_type=2)
    for i in range(14):
        hosts["down%02d" % i] = {"state": "unreachable", "reason": "no route\x1b[31m red", "facts": None,
                                 "probe": None}
    matrix = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)))
    lines = S.readiness_summary(matrix, None, None, "rep", reports_written=False, check_mode=True, max_lines=5)
    assert lines[0].startswith("NO DRAIN PLANNED: 44 hosts checked")
    assert lines[1] == "Could not ask 14 hosts:" and lines[7] == "  ... and 9 more hosts (report.html, matrix.json)"
    assert "\\x1b[31m" in lines[2] and not any(CONTROL.search(l) for l in lines)  # escapes shown, never sent
    assert lines[-2] == "Ran in check mode: facts from 30 of 44 hosts, probe answered by 30, matrix, reports not " \
                        "written (check mode)"
    assert lines[-1] == "Reports would go to rep"


def test_summary_lists_changes_capped_with_a_count():
    before = {"a": "p-1.2", "b": "p-1.3", "c": "p-1.4"}
    prev = previous_doc(before)
    m, plan, hv = run_of(dict(before, b="p-2.0"))
    ch = D.matrix_changes(prev, m, plan, hv)
    lines = S.readiness_summary(m, plan, ch, "rep", True, max_lines=2)
    # the upgraded b refuses a's instances now: the one the last plan put on b goes to c
    i = lines.index("Changes since 2025-01-01T00:00:00Z: 4 (2 cells)")
    assert lines[i + 1:i + 4] == ["  b driver gpu0: drv-p-1.3 -> drv-p-2.0",
                                  "  %s nv-1 on a now planned onto c (was b)" % U1,
                                  "  ... and 2 more (changes.json)"]
    assert "  a/gpu0 nv-1 -> b/gpu0: compatible (driver) -> incompatible (driver, EPROTO)" in \
        S.readiness_summary(m, plan, ch, "rep", True, max_lines=4)


def test_summary_takes_vm_plans_and_their_reasons():
    """A plan whose items are VMs (the next step of the plan) reads the same way."""
    matrix = all_status_matrix()
    plan = {"drain_hosts": ["alpha"], "unknown_hosts": [], "ready": False,
            "placements": [{"vm": "web-1", "source_host": "alpha", "target_host": "beta"}],
            "stranded": [{"vm": "db-1", "source_host": "alpha", "reasons": ["QEMU blocks: vIOMMU", "second"]}],
            "cold": [{"vm": "idle-1", "source_host": "alpha"}]}
    lines = S.readiness_summary(matrix, plan)
    assert lines[0] == "NOT READY: draining alpha - 1 of 2 VMs would be stranded"
    assert lines[1] == "Plan: 1 placed, 1 stranded, 1 cold (VMs)"
    assert "  db-1 on alpha: QEMU blocks: vIOMMU" in lines
    page = R.render_html(matrix, plan)
    assert "web-1" in page and "idle-1" in page and "QEMU blocks: vIOMMU<br>second" in page


def test_summary_filter_checks_its_inputs():
    matrix = all_status_matrix()
    assert F.readiness_summary(matrix, None)[0].startswith("NO DRAIN PLANNED")
    for kwargs in ({"max_lines": 0}, {"changes": "x"}, {"plan": {"ready": True}}):
        with pytest.raises(AnsibleFilterError, match="readiness_summary"):
            F.readiness_summary(matrix, **kwargs)


# -- views behind the page ---------------------------------------------------------

def test_overview_best_over_shared_types_with_counts():
    hosts = all_status_hosts()
    sources, targets, cells = V.host_overview(M.compat_matrix(hosts))
    evil = cells[(EVIL_HOST, "alpha")]  # nv-1 (same version: compatible) and the hostile type alpha lacks
    assert (evil["status"], evil["shared"], evil["compatible"]) == ("compatible", 1, 1)
    assert cells[("alpha", "delta")]["status"] == "missing_type"  # delta offers only gvt-4
    assert cells[("alpha", "down")]["status"] == "unknown" and cells[("alpha", "alpha")]["status"] == "self"
    assert set(targets) == set(hosts) and "down" not in sources


def test_reach_counts_every_target_once_per_source_host():
    hosts = fleet(40, n_types=2, versions_per_type=3, seed=7)
    matrix = M.compat_matrix(probe_all(hosts, M.probe_batches(hosts)))
    reach = V.host_reach(matrix)
    _sources, _targets, cells = V.host_overview(matrix)
    assert len(reach) == 40
    for r in reach:
        brute = {}
        for (src, dst), c in cells.items():
            if src == r["host"] and c["status"] != "self":
                brute[c["status"]] = brute.get(c["status"], 0) + 1
        assert {k: v for k, v in r["targets"].items() if v} == brute
    assert [r["targets"]["compatible"] for r in reach] == sorted(r["targets"]["compatible"] for r in reach)


def test_page_puts_the_decision_first():
    matrix = all_status_matrix()
    plan = all_status_plan(matrix)
    prev = json.loads(R.render_json(matrix, plan))
    changed = copy.deepcopy(matrix)
    changed["hosts"]["down"]["state"] = "failed"
    page = R.render_html(changed, plan, None, D.matrix_changes(prev, changed, plan))
    order = [page.index(x) for x in ('id="decision"', 'id="changes"', 'id="unasked"', 'id="stranded"',
                                     'id="placements"', 'id="overview"', 'id="types"', "<h2>Legend")]
    assert order == sorted(order)
    assert "host down: unreachable -&gt; failed" in page
    assert page.count("<details") == len(V.type_grids(matrix))
