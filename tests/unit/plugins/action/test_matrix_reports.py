"""vfio.migration.matrix_reports: the matrix role's reports in one controller-side task.

One ``ansible-playbook`` run drives the action, in real plays, through the
scenarios the dozen tasks it replaced handled: a first run, an identical
re-run, a changed matrix kept as ``matrix.previous.json`` once per play (the
action called directly and through the role's ``reports`` entry point),
``vfio_migration_previous_matrix``, check mode, a subset of the formats, and
errors that must write nothing. Each scenario has its own report directory;
the play records every registered result for the assertions here.
"""

import copy
import json
import os
import re
import subprocess

import pytest

from ansible_collections.vfio.migration.plugins.plugin_utils import _drift as D
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from tests.conftest import COLLECTIONS, ansible_bin
from tests.unit.plugins.plugin_utils.test_report import small_matrix

pytestmark = pytest.mark.ansible

ALL = ["matrix.json", "matrix.csv", "matrix.md", "report.html", "changes.json"]

PLAY = """
- name: The reports action, called directly
  hosts: localhost
  gather_facts: false
  vars:
    m1: "{{ lookup('ansible.builtin.file', 'm1.json') | from_json }}"
    m2: "{{ lookup('ansible.builtin.file', 'm2.json') | from_json }}"
    out: "{{ playbook_dir }}/out"
  tasks:
    - name: Check mode on a directory that is not there
      vfio.migration.matrix_reports:
        dir: "{{ out }}/first"
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      check_mode: true
      register: check_first

    - name: First run
      vfio.migration.matrix_reports:
        dir: "{{ out }}/first"
        timestamp: false
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      register: first

    - name: The same run again
      vfio.migration.matrix_reports:
        dir: "{{ out }}/first"
        timestamp: false
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      register: again

    - name: Another matrix in check mode
      vfio.migration.matrix_reports:
        dir: "{{ out }}/first"
      vars:
        vfio_migration_matrix: "{{ m2 }}"
      check_mode: true
      register: check_changed

    - name: Rotation, the previous run
      vfio.migration.matrix_reports:
        dir: "{{ out }}/rotate"
        timestamp: false
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      register: rotate1

    - name: Rotation, this run's first call
      vfio.migration.matrix_reports:
        dir: "{{ out }}/rotate"
        timestamp: false
      vars:
        vfio_migration_matrix: "{{ m2 }}"
      register: rotate2

    - name: Rotation, this run's second call, with a plan
      vfio.migration.matrix_reports:
        dir: "{{ out }}/rotate"
        timestamp: false
        previous_path: "{{ rotate2.previous_path }}"
        previous_same: "{{ rotate2.previous_same }}"
      vars:
        vfio_migration_matrix: "{{ m2 }}"
        vfio_migration_plan: "{{ m2 | vfio.migration.drain_plan(['a']) }}"
      register: rotate3

    - name: Compared with a given matrix.json
      vfio.migration.matrix_reports:
        dir: "{{ out }}/given"
        timestamp: false
        previous_matrix: "{{ playbook_dir }}/previous.json"
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      register: given

    - name: Two formats
      vfio.migration.matrix_reports:
        dir: "{{ out }}/subset"
        formats: [csv, html]
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      register: subset

    - name: A cell limit that is no number
      vfio.migration.matrix_reports:
        dir: "{{ out }}/bad"
        cell_limit: many
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      register: bad_limit
      ignore_errors: true

    - name: A negative cell limit, where reports are
      vfio.migration.matrix_reports:
        dir: "{{ out }}/first"
        cell_limit: -1
      vars:
        vfio_migration_matrix: "{{ m2 }}"
      register: negative_limit
      ignore_errors: true

    - name: A directory below a file
      vfio.migration.matrix_reports:
        dir: "{{ playbook_dir }}/m1.json/reports"
      vars:
        vfio_migration_matrix: "{{ m1 }}"
      register: bad_dir
      ignore_errors: true

    - name: No matrix
      vfio.migration.matrix_reports:
        dir: "{{ out }}/none"
      register: no_matrix
      ignore_errors: true

    - name: Keep what the calls returned
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/direct.json"
        content: >-
          {{ {'check_first': check_first, 'first': first, 'again': again, 'check_changed': check_changed,
              'rotate1': rotate1, 'rotate2': rotate2, 'rotate3': rotate3, 'given': given, 'subset': subset,
              'bad_limit': bad_limit, 'negative_limit': negative_limit, 'bad_dir': bad_dir,
              'no_matrix': no_matrix} | to_json }}
        mode: "0644"

- name: The role's reports entry point, twice in one play
  hosts: localhost
  gather_facts: false
  vars:
    vfio_migration_report_dir: "{{ playbook_dir }}/out/role"
    vfio_migration_report_timestamp: false
  tasks:
    - name: Load this run's matrix
      ansible.builtin.set_fact:
        vfio_migration_matrix: "{{ lookup('ansible.builtin.file', 'm2.json') | from_json }}"

    - name: First call, no plan
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Keep the record of the first call
      ansible.builtin.set_fact:
        role_first:
          written: "{{ vfio_migration_reports_written }}"
          previous_path: "{{ vfio_migration_previous_path }}"
          previous_same: "{{ vfio_migration_previous_same }}"
          changes: "{{ vfio_migration_changes.count }}"
          generated: "{{ vfio_migration_report_generated }}"
          host_versions: "{{ vfio_migration_host_versions }}"

    - name: Plan a drain
      ansible.builtin.set_fact:
        vfio_migration_plan: "{{ vfio_migration_matrix | vfio.migration.drain_plan(['a']) }}"

    - name: Second call, with the plan
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Keep what the calls recorded
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/role.json"
        content: >-
          {{ {'first': role_first, 'written': vfio_migration_reports_written, 'plan': vfio_migration_reports_plan,
              'previous_path': vfio_migration_previous_path, 'previous_same': vfio_migration_previous_same,
              'changes': vfio_migration_changes.count} | to_json }}
        mode: "0644"
"""


def matrices():
    """Two matrices that differ: in the second, fact gathering failed on the host that was unreachable."""
    m1 = small_matrix()
    m2 = copy.deepcopy(m1)
    m2["hosts"]["down"].update(state="failed", reason="fact gathering failed")
    return m1, m2


def files(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else None


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The playbook, run once: ``(tmp, direct results, role record, files of the role's directory before)``."""
    tmp = tmp_path_factory.mktemp("matrix_reports")
    m1, m2 = matrices()
    (tmp / "m1.json").write_text(json.dumps(m1))
    (tmp / "m2.json").write_text(json.dumps(m2))
    (tmp / "previous.json").write_text(R.render_json(m2, None, "2026-01-01T00:00:00Z"))
    (tmp / "play.yml").write_text(PLAY)
    # the role's directory holds the previous run's reports (of m1; localhost has no versions)
    role = tmp / "out" / "role"
    role.mkdir(parents=True)
    (role / "matrix.json").write_text(R.render_json(m1, None, None, host_versions={}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run([ansible_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", "play.yml"],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    direct = json.loads((tmp / "direct.json").read_text())
    return tmp, direct, json.loads((tmp / "role.json").read_text()), proc.stdout


def test_the_first_run_writes_every_report(run):
    tmp, direct, dummy, dummy = run
    first, out = direct["first"], tmp / "out" / "first"
    m1 = matrices()[0]
    assert first["changed"] is True and not first.get("failed")
    assert first["written"] == ALL and files(out) == sorted(ALL)
    assert first["dir"] == os.path.realpath(str(out))
    assert first["previous_path"] == "" and first["previous_same"] is False and first["generated"] is None
    assert first["host_versions"] == {}
    # the same bytes as the report filters give, each file 0644 in a 0755 directory
    assert read(out / "matrix.json").decode() == R.render_json(m1, None, None, host_versions={})
    assert read(out / "matrix.csv").decode() == R.render_csv(m1)
    assert read(out / "matrix.md").decode() == R.render_markdown(m1)
    assert read(out / "report.html").decode() == R.render_html(m1, changes=first["changes"])
    assert json.loads(read(out / "changes.json")) == first["changes"] == D.matrix_changes(None, m1)
    assert {oct(os.stat(out / f).st_mode & 0o777) for f in ALL} == {"0o644"}
    assert oct(os.stat(out).st_mode & 0o777) == "0o755"


def test_an_identical_rerun_is_the_same_and_changes_nothing(run):
    dummy, direct, dummy, dummy = run
    again = direct["again"]
    assert again["changed"] is False and again["previous_same"] is True
    # no matrix.previous.json from an earlier run: nothing to compare with, as the first run
    assert again["previous_path"] == "" and again["changes"] == direct["first"]["changes"]
    assert again["written"] == ALL


def test_check_mode_writes_nothing_and_says_what_would_change(run):
    tmp, direct, dummy, dummy = run
    out = tmp / "out" / "first"
    check_first = direct["check_first"]
    assert check_first["changed"] is True and check_first["written"] == []
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", check_first["generated"])
    # the later calls wrote, and the check-mode call with another matrix left their files as they were
    check_changed = direct["check_changed"]
    assert check_changed["changed"] is True and check_changed["written"] == []
    assert check_changed["previous_same"] is False
    assert check_changed["previous_path"] == os.path.realpath(str(out / "matrix.json"))  # not rotated
    assert check_changed["changes"]["previous"] is not None
    assert files(out) == sorted(ALL)
    assert read(out / "matrix.json").decode() == R.render_json(matrices()[0], None, None, host_versions={})


def test_a_changed_matrix_keeps_the_previous_one_once_per_play(run):
    tmp, direct, dummy, dummy = run
    out = tmp / "out" / "rotate"
    m1, m2 = matrices()
    rotate2, rotate3 = direct["rotate2"], direct["rotate3"]
    kept = os.path.realpath(str(out / "matrix.previous.json"))
    assert rotate2["changed"] is True and rotate2["previous_same"] is False and rotate2["previous_path"] == kept
    assert rotate2["changes"]["hosts"]["state_changed"] and rotate2["changes"]["count"] > 0
    # the second call compares with the same file and keeps nothing again: still the previous run's
    assert rotate3["changed"] is True and rotate3["previous_path"] == kept
    assert read(kept).decode() == R.render_json(m1, None, None, host_versions={})
    plan = M.drain_plan(m2, ["a"])
    assert read(out / "matrix.json").decode() == R.render_json(m2, plan, None, host_versions={})
    assert rotate3["changes"] == D.matrix_changes(read(kept).decode(), m2, plan, {})
    assert files(out) == sorted(ALL + ["matrix.previous.json"])


def test_the_role_entry_point_records_what_the_action_returned(run):
    tmp, dummy, role, dummy = run
    out = tmp / "out" / "role"
    kept = os.path.realpath(str(out / "matrix.previous.json"))
    m1, m2 = matrices()
    assert role["first"] == {"written": ALL, "previous_path": kept, "previous_same": False,
                             "changes": role["first"]["changes"], "generated": None, "host_versions": {}}
    assert role["first"]["changes"] > 0
    assert role["written"] == ALL and role["plan"] == ["a"]
    assert role["previous_path"] == kept and role["previous_same"] is False
    # the previous run's matrix.json was kept once; the second call did not keep the first call's
    assert read(kept).decode() == R.render_json(m1, None, None, host_versions={})
    assert json.loads(read(out / "matrix.json"))["plan"] == M.drain_plan(m2, ["a"])
    assert files(out) == sorted(ALL + ["matrix.previous.json"])


def test_a_given_previous_matrix_is_compared_with(run):
    tmp, direct, dummy, dummy = run
    given = direct["given"]
    assert given["previous_path"] == os.path.realpath(str(tmp / "previous.json"))
    assert given["changes"]["previous"] == {"generated": "2026-01-01T00:00:00Z", "hosts": 4}
    assert given["changes"]["count"] > 0
    assert files(tmp / "out" / "given") == sorted(ALL)


def test_only_the_formats_asked_for(run):
    tmp, direct, dummy, dummy = run
    assert direct["subset"]["written"] == ["matrix.csv", "report.html"]
    assert files(tmp / "out" / "subset") == ["matrix.csv", "report.html"]


@pytest.mark.parametrize("name, message", [
    ("bad_limit", "vfio.migration.matrix_reports: cell_limit must be a non-negative integer, not 'many'"),
    ("negative_limit", "vfio.migration.matrix_reports: cell_limit must be a non-negative integer, not -1"),
    ("bad_dir", "vfio.migration.matrix_reports: %s is not a directory"),
    ("no_matrix", "vfio.migration.matrix_reports: vfio_migration_matrix is not defined"),
])
def test_errors_fail_the_task_and_write_nothing(run, name, message):
    tmp, direct, dummy, dummy = run
    result = direct[name]
    message = message.replace("%s", os.path.realpath(str(tmp / "m1.json")))
    assert result["failed"] is True and result["msg"].startswith(message), result["msg"]
    assert "written" not in result
    assert files(tmp / "out" / "bad") is None and files(tmp / "out" / "none") is None
    # the directory that had reports keeps them as they were, with no temporary file beside them
    out = tmp / "out" / "first"
    assert files(out) == sorted(ALL)
    assert read(out / "matrix.json").decode() == R.render_json(matrices()[0], None, None, host_versions={})


def test_a_killed_runs_old_temporary_files_are_removed_and_a_writing_runs_are_not(tmp_path):
    from ansible_collections.vfio.migration.plugins.action import matrix_reports as A
    out = tmp_path / "reports"
    out.mkdir()
    (out / "matrix.md").write_text("old\n")
    old = [out / ".matrix.md.k1ll3d.tmp", out / ".matrix.json.k1ll3d.tmp"]
    young = [out / ".matrix.md.wr1t1n.tmp"]
    kept = [out / ".notes.md.k1ll3d.tmp", out / "matrix.md.tmp"]  # not the action's own temporaries
    for path in old + young + kept:
        path.write_text("part of a report")
    an_hour_ago = os.stat(out).st_mtime - 3600
    for path in old + kept:
        os.utime(path, (an_hour_ago, an_hour_ago))
    items = {"md": "new\n", "json": "{}\n"}
    # check mode removes nothing either
    assert A.write_reports(str(out), items, ["md", "json"], None, check_mode=True) is True
    assert all(p.exists() for p in old + young + kept) and (out / "matrix.md").read_text() == "old\n"
    assert A.write_reports(str(out), items, ["md", "json"], None, check_mode=False) is True
    assert not any(p.exists() for p in old) and all(p.exists() for p in young + kept)
    assert (out / "matrix.md").read_text() == "new\n" and (out / "matrix.json").read_text() == "{}\n"
    # a file that needs no write still has its stale temporaries removed
    stale = out / ".matrix.md.4g41n.tmp"
    stale.write_text("x")
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert A.write_reports(str(out), items, ["md"], None, check_mode=False) is False
    assert not stale.exists()
