# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: matrix_reports
short_description: Write the reports of the compatibility matrix on the controller
version_added: 0.2.0
description:
  - "Renders C(vfio_migration_matrix), with C(vfio_migration_plan) where it is set and not null and with
    C(vfio_migration_schedule) (the C(vfio.migration.rolling) role's) where it is set and not null, into O(dir) on
    the controller - C(matrix.json), C(matrix.csv), C(matrix.md), C(report.html) and C(changes.json), as O(formats)
    chooses - in one task. This is the C(reports) entry point of the C(vfio.migration.matrix) role
    (C(tasks_from: reports)), which records the result in its variables; use the entry point rather than this
    action directly."
  - The matrix, plan and schedule are read from the play's variables of those names, not from options, because
    ansible-core templates and walks every element of a task's options (seconds for a matrix of a few hundred
    hosts). A variable whose value is a string is templated; any other value is taken as it is stored.
  - Each host's kernel, QEMU, libvirt and driver versions (what P(vfio.migration.host_versions#filter) gives for
    O(hosts)) go into C(matrix.json) for the next run's comparison, and are returned.
  - "What this run is compared with is chosen once per play, by the first call (without O(previous_path)): the
    C(matrix.json) already in O(dir) is the previous run's. When this run's is byte-identical to it (timestamps
    off, nothing changed), the comparison that run made stands (C(matrix.previous.json), or nothing when there is
    none), so re-runs change nothing. Otherwise, when C(json) is among O(formats), the previous run's C(matrix.json)
    is kept as C(matrix.previous.json) and compared with; in check mode, or without C(json), it is compared where it
    is. O(previous_matrix) names another file to compare with."
  - Everything is rendered before anything is written; a file whose content and mode are already right is not
    written again. Each report is replaced atomically (a temporary file in O(dir), then a rename), so a run
    interrupted at any moment leaves each report whole, the old one or the new one.
  - A run killed while writing can leave its hidden temporary file beside a report (C(.matrix.md.XXXX.tmp)). The
    next run that writes that report removes such files once they are ten minutes old; a younger one may belong to
    a run writing at that moment and stays.
author:
  - vfio.migration maintainers (@vfio-migration)
options:
  dir:
    description:
      - The report directory on the controller, created (with any missing parent) with mode 0755. A relative path
        is taken from the directory C(ansible-playbook) runs in.
    type: path
    required: true
  formats:
    description: Which reports to write; C(changes.json) comes with C(json).
    type: list
    elements: str
    choices: [json, csv, md, html]
    default: [json, csv, md, html]
  cell_limit:
    description:
      - Above this many cells (source parent by target parent), C(matrix.json) and C(matrix.csv) hold one verdict per
        class and target parent instead of every cell. 0 always writes the verdicts.
      - An integer, or a string of one.
    type: raw
    default: 20000
  timestamp:
    description: Put the generation time in the reports; V(false) makes re-runs byte-identical.
    type: bool
    default: true
  hosts:
    description: The hosts whose versions C(matrix.json) records; omitted or empty, every host of the play.
    type: list
    elements: str
  previous_matrix:
    description: A C(matrix.json) to compare this run with; empty, the previous run's (see above).
    type: path
    default: ""
  previous_path:
    description:
      - What an earlier call of this play chose to compare with (RV(previous_path), an empty string for nothing).
        Given, nothing is chosen or kept again; that file is read and compared with.
      - Omitted, this call is the play's first and chooses.
    type: str
  previous_same:
    description: With O(previous_path), what the earlier call returned as RV(previous_same); returned as it is.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Renders and compares as usual and says whether any file would change; writes and removes nothing.
  safe_file_operations:
    description: Writes files so that a reader or an interruption never sees one half written.
    support: full
    details: Each file is written to a temporary file in the same directory, then renamed over the report.
notes:
  - Run it once per play (C(run_once)); the C(vfio.migration.matrix) role's C(reports) entry point does.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - vfio.migration.controller_action
seealso:
  - module: vfio.migration.mdev_facts
  - module: vfio.migration.migration_probe
"""

EXAMPLES = r"""
# What the vfio.migration.matrix role's reports entry point runs (tasks_from: reports)
- name: Write matrix.json, matrix.csv, matrix.md, report.html and changes.json
  vfio.migration.matrix_reports:
    dir: "{{ vfio_migration_report_dir }}"
    formats: "{{ vfio_migration_report_formats }}"
    cell_limit: "{{ vfio_migration_report_cell_limit }}"
    timestamp: "{{ vfio_migration_report_timestamp | bool }}"
    hosts: "{{ vfio_migration_matrix_hosts or ansible_play_hosts_all }}"
    previous_matrix: "{{ vfio_migration_previous_matrix }}"
    previous_path: "{{ vfio_migration_previous_path | default(omit) }}"
    previous_same: "{{ vfio_migration_previous_same | default(false) }}"
  run_once: true
  register: reports

- name: Only the HTML page of a stored matrix, without a time stamp
  vars:
    vfio_migration_matrix: "{{ lookup('ansible.builtin.file', 'matrix.json') | from_json }}"
  vfio.migration.matrix_reports:
    dir: /srv/vfio-reports
    formats: [html]
    timestamp: false
  run_once: true
"""

RETURN = r"""
written:
  description: The files written, in O(formats) order, C(changes.json) last; empty in check mode.
  returned: success
  type: list
  elements: str
  sample: [matrix.json, matrix.csv, matrix.md, report.html, changes.json]
changes:
  description:
    - What changed since the matrix compared with (P(vfio.migration.matrix_changes#filter)); what C(changes.json) holds
      and the top of C(report.html) shows. Its C(previous) is null when there was nothing to compare with.
  returned: success
  type: dict
  sample: {"schema_version": 1, "previous": null, "count": 0, "cells": [], "cells_changed": 0, "cells_omitted": 0,
           "hosts": {"appeared": [], "vanished": [], "state_changed": []},
           "sources": {"appeared": [], "vanished": []},
           "plan": {"newly_stranded": [], "newly_placeable": [], "appeared": [], "vanished": [],
                    "retargeted": []}, "versions": []}
previous_path:
  description:
    - The C(matrix.json) this run was compared with, an empty string for none. Pass it as O(previous_path) to later
      calls of the play.
  returned: success
  type: str
  sample: /srv/vfio-reports/matrix.previous.json
previous_same:
  description: Whether this run's C(matrix.json) was byte-identical to the one already in O(dir).
  returned: success
  type: bool
generated:
  description: The generation time in the reports (UTC, C(%Y-%m-%dT%H:%M:%SZ)), null with O(timestamp=false).
  returned: success
  type: str
  sample: "2026-12-03T09:30:00Z"
host_versions:
  description: Each host's kernel, QEMU, libvirt and driver versions (P(vfio.migration.host_versions#filter)).
  returned: success
  type: dict
  sample: {"hv1": {"kernel": "6.1.0-18-amd64", "qemu": "8.2.2", "libvirt": "9.0.0", "drivers": {"mtty": null}}}
dir:
  description: The report directory, as an absolute path with symbolic links resolved.
  returned: success
  type: str
  sample: /srv/vfio-reports
"""
