"""The rolling schedule in the reports: ``matrix.json``'s ``schedule``, the page's wave table, ``matrix.md``, the summary.

The schedules come from the fleets of ``test_rolling.py``: one that is ready only in the order the
exact search finds (resting on an assumption), one where a VM must be shut down because the only
host that accepts it is full, and one with a host that could not be asked. Without a schedule the
reports are what they were (no key, no section, the same bytes).
"""

import copy
import json
import os
import re
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.filter import report as F
from ansible_collections.vfio.migration.plugins.plugin_utils import _html as H
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as REP
from ansible_collections.vfio.migration.plugins.plugin_utils import _rolling as R
from tests.conftest import COLLECTIONS, ansible_bin
from tests.synthetic import ok
from tests.unit.plugins.plugin_utils.test_rolling import asymmetric_fleet, gpu_host, matrix_of

GENERATED = "2025-01-01T00:00:00Z"


def ready_case():
    m = matrix_of(asymmetric_fleet())
    return m, R.rolling_schedule(m, after={"driver_version": "2.5"})


def full_case():
    """A's VM of two vGPUs fits nowhere (B has one slot) and B's cannot go to A's older driver."""
    hosts = {"A": ok(gpu_host({"gpu0": (3, {"nv": (1, 2)})}, {"a": ("running", [("gpu0", "nv", 0), ("gpu0", "nv", 1)])})),
             "B": ok(gpu_host({"gpu0": (4, {"nv": (1, 1)})}, {"b": ("running", [("gpu0", "nv", 0)])}))}
    m = matrix_of(hosts)
    return m, R.rolling_schedule(m, after={"driver_version": "2.5"})


def unknown_case():
    hosts = asymmetric_fleet()
    hosts["gone"] = {"state": "unreachable", "reason": "ssh: connect to host gone port 22: No route",
                     "facts": None, "probe": None}
    m = matrix_of(hosts)
    return m, R.rolling_schedule(m, after={"driver_version": "2.5"})


def table(page, css):
    start = page.index('<table class="data %s"' % css)
    return page[start:page.index("</table>", start)]


def text(fragment):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).replace("&rarr;", "->").replace(" ,", ",")


# -- matrix.json ------------------------------------------------------------------------------------

def test_matrix_json_keeps_the_schedule_without_the_solvers_time():
    m, s = ready_case()
    doc = json.loads(REP.render_json(m, None, GENERATED, schedule=s))
    assert set(doc["schedule"]) == set(s)
    assert doc["schedule"]["solver"] == {k: v for k, v in s["solver"].items() if k != "seconds"}
    assert doc["schedule"]["waves"] == json.loads(json.dumps(s["waves"]))
    # the time the solver took is the only part of a schedule that varies between runs over the same facts
    slower = copy.deepcopy(s)
    slower["solver"]["seconds"] += 12.5
    assert REP.render_json(m, None, GENERATED, schedule=slower) == REP.render_json(m, None, GENERATED, schedule=s)
    assert "seconds" in s["solver"]  # the caller's schedule is left as it was


def test_without_a_schedule_matrix_json_has_no_such_key_and_the_same_bytes():
    m, _s = ready_case()
    plain = REP.render_json(m, None, GENERATED)
    assert "schedule" not in json.loads(plain)
    assert F.report_json(m, None, GENERATED, schedule=None) == plain == F.report_json(m, None, GENERATED, schedule={})


@pytest.mark.parametrize("bad", [{"waves": []}, {"schema_version": 1, "waves": "x"}, [1], "schedule"])
def test_a_schedule_that_is_not_one_is_refused(bad):
    m, _s = ready_case()
    for render in (REP.render_json, REP.render_markdown, REP.render_html):
        with pytest.raises(ValueError, match="schedule must be the output of vfio.migration.rolling_schedule"):
            render(m, None, None, schedule=bad)
    with pytest.raises(AnsibleFilterError, match="vfio.migration.report_html: schedule must be the output"):
        F.report_html(m, schedule=bad)
    with pytest.raises(AnsibleFilterError, match="vfio.migration.readiness_summary: schedule must be the output"):
        F.readiness_summary(m, schedule=bad)


# -- report.html ------------------------------------------------------------------------------------

def test_the_page_opens_with_the_schedules_verdict_and_its_wave_table():
    m, s = ready_case()
    page = F.report_html(m, None, GENERATED, schedule=s)
    assert "<script" not in page and 'data-schedule-ready="true"' in page
    assert "NO DRAIN PLANNED" not in page  # the schedule is this run's decision
    header = page[page.index("<header>"):page.index("</header>")]
    assert "ROLLING READY" in header
    decision = text(page[page.index('id="rolling-badge"'):page.index("</p>", page.index('id="rolling-badge"'))])
    assert "READY rolling maintenance: 3 hosts in 3 waves (at most 1 a wave), 4 live migrations" in decision
    order = [page.index(x) for x in ('id="decision"', 'id="rolling-badge"', 'id="unasked"', 'id="rolling"',
                                     'id="waves"', 'id="wave-1"', 'id="overview"', 'id="types"')]
    assert order == sorted(order)
    waves = table(page, "waves")
    rows = re.findall(r'<tr data-wave="(\d+)">(.*?)</tr>', waves, re.S)
    assert [int(n) for n, _row in rows] == [1, 2, 3]
    # each wave: the hosts drained, each VM's source, target host and parents, what it rests on, the versions after
    assert [text(row).strip() for _n, row in rows] == [
        "1 B b : B -> C (gpu0) - - matrix B: driver 2.5",
        "2 A a : A -> B (gpu0) - - assumed 1 assumption A: driver 2.5",
        "3 C b : C -> A (gpu0) c : C -> A (gpu0) - - assumed 1 assumption C: driver 2.5"]


def test_each_wave_is_folded_with_every_device_and_the_assumptions_it_rests_on():
    m, s = ready_case()
    page = F.report_html(m, None, GENERATED, schedule=s)
    sections = re.findall(r'<details data-wave-section="(\d+)" id="wave-\d+"><summary>(.*?)</summary>(.*?)</details>',
                          page, re.S)
    assert [(int(n), head) for n, head, _body in sections] == [
        (1, "Wave 1: B - 1 VM move"), (2, "Wave 2: A - 1 VM move; rests on 1 assumption"),
        (3, "Wave 3: C - 2 VMs move; rests on 1 assumption")]
    third = text(sections[2][2])
    # b moves the second time (it came from B in wave 1); every device says where it goes and on what basis
    assert "C (from B, move 2)" in third
    for p in s["waves"][2]["placements"]:
        for d in p["target_devices"]:
            assert "%s -> %s: use free %s (UUID changes) assumed" % (d["source"], d["target_parent"], d["device"]) in third
            assert d["evidence"] in third
    assert ("nv from driver 2.4 on A/gpu0 (driver 2.5 after the upgrade): assumed: a newer driver accepts older "
            "sources of the same type, as the vendors document") in third
    assert "Assumptions this wave rests on" not in sections[0][2]
    assert 'id="rolling-assumes"' in page and "Rests on 2 assumptions" in page
    assumptions = text(table(page, "assumptions"))
    assert "nv 2.3 B/gpu0 2.5 2 a" in assumptions and "nv 2.4 A/gpu0 2.5 3 b, c" in assumptions


def test_a_failed_schedule_says_who_to_shut_down_what_room_to_add_and_where():
    m, s = full_case()
    page = F.report_html(m, None, GENERATED, schedule=s)
    assert 'data-schedule-ready="false"' in page and "ROLLING NOT READY" in page
    decision = text(page[page.index('id="rolling-badge"'):page.index("</p>", page.index('id="rolling-badge"'))])
    assert "NOT READY rolling maintenance: 2 hosts in 2 waves (at most 1 a wave), 1 live migration, 1 VM to shut " \
           "down or move cold" in decision
    why = page[page.index('id="rolling-why"'):page.index('id="waves"')]
    assert "shut these VMs down (or move them cold) for their host's wave, or add the room" in why
    stop = text(table(why, "must-stop"))
    assert "1 a %s" % s["must_stop"][0]["vm_uuid"] in stop
    assert "A full every host that accepts it is full in this wave: B" in stop
    assert "B: no room for every device at once" in stop
    assert text(table(why, "capacity")).strip().endswith("1 a A 2 x nv B")
    # the wave it happens in says so too
    waves = table(page, "waves")
    assert re.search(r'<tr data-wave="1">.*?<td class="down">VM a</td>', waves, re.S)
    assert "Wave 1: A - 0 VMs move, 1 VM shut down" in page


def test_a_host_that_could_not_be_asked_is_named_with_its_reason():
    m, s = unknown_case()
    assert [u["host"] for u in s["unknown_hosts"]] == ["gone"]
    page = F.report_html(m, None, None, schedule=s)
    why = text(page[page.index('id="rolling-why"'):page.index('id="waves"')])
    assert "Hosts that cannot be planned (1)" in why and "gone unreachable" in why
    assert "1 host that cannot be planned" in text(page[page.index('id="rolling-badge"'):page.index('id="unasked"')])


def test_with_a_drain_plan_too_both_verdicts_show_and_the_plan_says_it_is_now():
    m, s = ready_case()
    plan = M.drain_plan(m, ["A"])
    page = F.report_html(m, plan, GENERATED, schedule=s)
    assert 'data-schedule-ready="true"' in page and page.count('data-ready="false"') == 2  # plan: big + header
    order = [page.index(x) for x in ('id="rolling-badge"', 'id="plan-badge"', 'id="rolling"', 'id="drain-plan"',
                                     'id="stranded"', 'id="placements"')]
    assert order == sorted(order)
    assert "Drain plan now: draining A" in page


def test_without_a_schedule_the_page_is_what_it_was():
    m, s = ready_case()
    page = F.report_html(m, M.drain_plan(m, ["A"]), GENERATED)
    assert page == REP.render_html(m, M.drain_plan(m, ["A"]), GENERATED, schedule=None)
    for marker in ("rolling", "data-schedule-ready", 'id="waves"', "drain-plan"):
        assert marker not in page.replace("section.rolling", "")  # (the style sheet names the class)


def test_many_waves_fold_past_the_first_ones():
    m, s = ready_case()
    many = copy.deepcopy(s)
    many["waves"] = []
    for i in range(H.WAVES_OPEN + 7):
        w = copy.deepcopy(s["waves"][i % 3])
        w["wave"] = i + 1
        many["waves"].append(w)
    page = F.report_html(m, None, None, schedule=many)
    assert len(re.findall(r'<tr data-wave="\d+">', table(page, "waves"))) == H.WAVES_OPEN
    assert "<summary>7 more waves</summary>" in page
    assert page.count('<tr data-wave="') == H.WAVES_OPEN + 7
    assert page.count("data-wave-section=") == H.WAVES_OPEN + 7


def test_hostile_names_stay_text_in_the_page():
    hosts = {"h|x<i>": ok(gpu_host({"gpu0": (3, {"nv": (2, 1)})},
                                   {"v\x1b[31m<script>": ("running", [("gpu0", "nv", 0)])})),
             "b": ok(gpu_host({"gpu0": (3, {"nv": (2, 0)})}))}
    m = matrix_of(hosts)
    s = R.rolling_schedule(m, hosts=["h|x<i>"])
    page = F.report_html(m, None, None, schedule=s)
    assert "<script" not in page and "<i>" not in page and "\x1b" not in page
    assert "v\\x1b[31m&lt;script&gt;" in page and "h|x&lt;i&gt;" in page
    md = F.report_markdown(m, None, None, schedule=s)
    assert "<script>" not in md and "\x1b" not in md


# -- matrix.md and the summary ----------------------------------------------------------------------

def test_matrix_md_has_the_verdict_and_the_wave_sections_of_schedule_md():
    m, s = full_case()
    md = F.report_markdown(m, None, GENERATED, schedule=s)
    assert "Rolling maintenance: **NOT READY** (waves below)" in md
    section = md[md.index("## Rolling maintenance schedule"):]
    own = R.render_markdown(s)
    # the same tables as schedule.md, one heading level down
    assert section.count("\n### ") == own.count("\n## ")
    assert section.replace("### ", "## ").split("\n", 2)[2] == own.split("\n", 2)[2]
    assert "| 1 | A | - | VM a | - | A: driver 2.5 |" in section
    assert "| 1 | a | 2 x nv | B |" in section
    assert "Rolling" not in F.report_markdown(m, None, GENERATED)


def test_the_summary_puts_the_schedule_first_and_names_its_files():
    m, s = full_case()
    plan = M.drain_plan(m, ["A"])
    lines = F.readiness_summary(m, plan=plan, report_dir="/srv/r", reports_written=["report.html", "matrix.json"],
                                schedule=s)
    assert lines[0] == R.headline(s)
    assert lines.index("Waves:") < lines.index("Why not ready:")
    assert "  VM a on A must be shut down or moved cold for wave 1: every host that accepts it is full in this " \
           "wave: B" in lines
    assert "  or add room for 2 x nv (VM a) in wave 1 on one of: B" in lines
    assert any(line.startswith("Drain plan now: NOT READY: draining A") for line in lines)
    assert "matrix, plan and rolling schedule, reports written" in lines[-3]
    assert lines[-2:] == ["Reports: /srv/r/report.html (matrix.json beside it)",
                          "Schedule written to /srv/r/schedule.json (schedule.md beside it)"]
    checked = F.readiness_summary(m, report_dir="/srv/r", reports_written=[], check_mode=True, schedule=s)
    assert checked[-1] == "Schedule would go to /srv/r/schedule.json (schedule.md beside it)"
    assert not any(line.startswith(("NO DRAIN PLANNED", "Drain plan now")) for line in checked)
    # without a schedule, nothing about one
    plain = F.readiness_summary(m, plan=plan, report_dir="/srv/r", reports_written=["report.html"])
    assert not any("chedule" in line for line in plain)


# -- the matrix role's reports entry point ----------------------------------------------------------

PLAY = """
- name: The reports entry point with a schedule
  hosts: localhost
  gather_facts: false
  vars:
    vfio_migration_report_formats: [json, html]
    vfio_migration_report_timestamp: false
  tasks:
    - name: Load the matrix
      ansible.builtin.set_fact:
        vfio_migration_matrix: "{{ lookup('ansible.builtin.file', 'matrix.json') | from_json }}"

    - name: First call, no schedule
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Plan the waves
      ansible.builtin.set_fact:
        vfio_migration_schedule: "{{ vfio_migration_matrix | vfio.migration.rolling_schedule(after={'driver_version': '2.5'}) }}"

    - name: Second call, with the schedule
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Remove report.html
      ansible.builtin.file:
        path: "{{ vfio_migration_report_dir }}/report.html"
        state: absent

    - name: Third call, the same schedule
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Was report.html written again?
      ansible.builtin.stat:
        path: "{{ vfio_migration_report_dir }}/report.html"
      register: after_third

    - name: Keep what the calls did
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/record.json"
        content: "{{ {'third_wrote_html': after_third.stat.exists, 'written': vfio_migration_reports_written} | to_json }}"
        mode: "0644"
"""


@pytest.mark.ansible
def test_the_reports_entry_point_writes_the_schedule_once_and_keeps_the_real_previous_run(tmp_path):
    m, _s = ready_case()
    (tmp_path / "matrix.json").write_text(json.dumps(m))
    (tmp_path / "play.yml").write_text(PLAY)
    report = tmp_path / "report"
    report.mkdir()
    previous = REP.render_json(m, None, "2024-12-31T00:00:00Z")
    (report / "matrix.json").write_text(previous)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run([ansible_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", "play.yml",
                           "-e", "vfio_migration_report_dir=%s" % report], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    record = json.loads((tmp_path / "record.json").read_text())
    assert record == {"third_wrote_html": False, "written": ["matrix.json", "report.html", "changes.json"]}
    doc = json.loads((report / "matrix.json").read_text())
    assert doc["schedule"]["ready"] and [w["hosts"] for w in doc["schedule"]["waves"]] == [["B"], ["A"], ["C"]]
    # the run before this play, not this play's first matrix.json, is the previous one (rotated once)
    assert (report / "matrix.previous.json").read_text() == previous
    assert json.loads((report / "changes.json").read_text())["previous"]["generated"] == "2024-12-31T00:00:00Z"
