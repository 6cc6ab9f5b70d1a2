"""The matrix role's ``reports`` entry point, and the summary line that names what it wrote.

Defect: the summary said ``Reports: .../report.html (matrix.json, matrix.csv, matrix.md,
changes.json beside it)`` whatever ``vfio_migration_report_formats`` chose. The role now
records the files it wrote and the summary names those.
"""

import json
import os
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.filter import report as F
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from tests.conftest import COLLECTIONS, ansible_bin
from tests.unit.plugins.plugin_utils.test_report import small_matrix


def test_the_summary_names_only_the_files_written():
    m = small_matrix()
    lines = F.readiness_summary(m, report_dir="/srv/r/", reports_written=["matrix.json", "changes.json"])
    assert lines[-1] == "Reports: /srv/r/matrix.json (changes.json beside it)"
    assert lines[-2].endswith(", reports written")
    lines = F.readiness_summary(m, report_dir="/srv/r", reports_written=["report.html"])
    assert lines[-1] == "Reports: /srv/r/report.html"
    lines = F.readiness_summary(m, report_dir="/srv/r", reports_written=["matrix.csv", "report.html", "matrix.md"])
    assert lines[-1] == "Reports: /srv/r/report.html (matrix.csv, matrix.md beside it)"


def test_nothing_written_says_where_they_would_go():
    m = small_matrix()
    lines = F.readiness_summary(m, report_dir="/srv/r", reports_written=[], check_mode=True)
    assert lines[-1] == "Reports would go to /srv/r"
    assert lines[-2].endswith("reports not written (check mode)")
    assert F.readiness_summary(m, reports_written=["matrix.json"])[-1].startswith("Ran: ")  # no directory, no line


def test_a_plain_yes_keeps_its_old_line():
    lines = F.readiness_summary(small_matrix(), report_dir="/srv/r", reports_written=True)
    assert lines[-1] == "Reports: /srv/r/report.html (matrix.json, matrix.csv, matrix.md, changes.json beside it)"


@pytest.mark.parametrize("bad", [["matrix.json", 3], [""], {"json": True}, "matrix.json"])
def test_reports_written_must_be_a_yes_no_or_file_names(bad):
    with pytest.raises(AnsibleFilterError, match="reports_written must be true, false or the list of file names"):
        F.readiness_summary(small_matrix(), report_dir="/r", reports_written=bad)


PLAY = """
- name: The reports entry point on a stored matrix
  hosts: localhost
  gather_facts: false
  vars:
    vfio_migration_report_formats: [json, html]
    vfio_migration_report_timestamp: false
  tasks:
    - name: Load the matrix
      ansible.builtin.set_fact:
        vfio_migration_matrix: "{{ lookup('ansible.builtin.file', 'matrix.json') | from_json }}"

    - name: First call, no plan
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Keep the record, then remove a report the next call would write again
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/record1.json"
        content: "{{ {'written': vfio_migration_reports_written, 'plan': vfio_migration_reports_plan} | to_json }}"
        mode: "0644"
    - name: Remove report.html
      ansible.builtin.file:
        path: "{{ vfio_migration_report_dir }}/report.html"
        state: absent

    - name: Second call, same matrix and plan
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Was report.html written again?
      ansible.builtin.stat:
        path: "{{ vfio_migration_report_dir }}/report.html"
      register: after_second

    - name: Plan a drain
      ansible.builtin.set_fact:
        vfio_migration_plan: "{{ vfio_migration_matrix | vfio.migration.drain_plan(['a']) }}"

    - name: Third call, with the plan
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: reports

    - name: Summarise as the matrix role does
      ansible.builtin.import_role:
        name: vfio.migration.matrix
        tasks_from: summary.yml

    - name: Keep what the calls did
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/record2.json"
        content: >-
          {{ {'second_wrote_html': after_second.stat.exists, 'written': vfio_migration_reports_written,
              'plan': vfio_migration_reports_plan} | to_json }}
        mode: "0644"
"""


@pytest.mark.ansible
def test_the_reports_entry_point_writes_each_matrix_and_plan_once(tmp_path):
    m = small_matrix()
    (tmp_path / "matrix.json").write_text(json.dumps(m))
    (tmp_path / "play.yml").write_text(PLAY)
    report = tmp_path / "report"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run([ansible_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", "play.yml",
                           "-e", "vfio_migration_report_dir=%s" % report], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    first = json.loads((tmp_path / "record1.json").read_text())
    assert first == {"written": ["matrix.json", "report.html", "changes.json"], "plan": None}
    second = json.loads((tmp_path / "record2.json").read_text())
    assert second == {"second_wrote_html": False, "written": ["matrix.json", "report.html", "changes.json"],
                      "plan": ["a"]}
    # one comparison per play: the first call found no previous run, so nothing was rotated
    assert sorted(p.name for p in report.iterdir()) == ["changes.json", "matrix.json", "report.html"]
    assert json.loads((report / "matrix.json").read_text())["plan"] == M.drain_plan(m, ["a"])
    # the summary names what was written, not the formats left out
    assert "Reports: %s/report.html (matrix.json, changes.json beside it)" % report in proc.stdout
    assert "matrix.csv" not in proc.stdout.split("Summarise readiness")[-1]
