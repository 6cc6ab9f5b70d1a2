# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: compat_matrix
short_description: Assemble the source-to-target compatibility matrix on the controller
version_added: 0.2.0
description:
  - Builds the fleet's live-migration compatibility matrix from the play's C(hostvars) - each host's
    C(ansible_facts.vfio_mdev), how gathering went and its probe answers - and returns it as the task's result.
    It is the same matrix as the P(vfio.migration.compat_matrix#filter) filter's, built by the same code; the
    P(vfio.migration.compat_matrix#filter) filter documents the statuses, evidence and O(policy).
  - "This is how the C(vfio.migration.matrix) role publishes C(vfio_migration_matrix) (C(register)). Register it
    rather than C(set_fact) the filter for a large fleet: ansible-core finalizes a C(set_fact) value element by
    element in the task's worker, which for a matrix of a thousand hosts takes more time than building it,
    while a registered result is kept as it is."
  - The registered value is the matrix (C(schema_version), C(hosts), C(classes), C(sources), C(verdicts),
    C(policy)) with Ansible's own C(changed) and C(failed) keys beside them. Every filter and report of this
    collection reads the matrix's keys only.
author:
  - vfio.migration maintainers (@vfio-migration)
options:
  hosts:
    description:
      - The hosts to cover, sources and targets alike. Omitted, every host of the play (C(ansible_play_hosts_all)).
      - A host of the list that gathered nothing is in the matrix as C(unknown), never left out.
    type: list
    elements: str
  policy:
    description:
      - How to decide sources whose driver cannot be asked, as the P(vfio.migration.compat_matrix#filter) filter's
        O(vfio.migration.compat_matrix#filter:policy) option. Omitted or empty, the defaults.
      - A policy with an unknown key or a bad value fails the task, naming it.
    type: dict
attributes:
  check_mode:
    support: full
    details: Changes nothing anywhere in any mode; the matrix is built in check mode too.
notes:
  - Run it once per play (C(run_once)); the C(vfio.migration.matrix) role does.
  - Callbacks are not given the matrix it built (they show the result as censored, as for C(no_log)), since
    ansible-core would copy and convert the whole matrix again in the controller's main process for them (about
    5 s at a thousand hosts), and a callback that keeps results (the json callback, an AWX/AAP job event) would
    carry all of it. The registered variable has the whole matrix; so has C(matrix.json). A failure is shown in
    full.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - vfio.migration.controller_action
  - vfio.migration.hostvars.results
  - vfio.migration.hostvars.probe
seealso:
  - module: vfio.migration.mdev_facts
  - module: vfio.migration.migration_probe
  - module: vfio.migration.matrix_reports
"""

EXAMPLES = r"""
# What the vfio.migration.matrix role runs after the probe
- name: Assemble the source-to-target compatibility matrix
  vfio.migration.compat_matrix:
    hosts: "{{ ansible_play_hosts_all }}"
    policy:
      driver_version: branch
  register: vfio_migration_matrix
  run_once: true

- name: The compatible targets of one host's vGPU
  ansible.builtin.debug:
    msg: "{{ vfio_migration_matrix | vfio.migration.migration_targets('hv1') }}"
  run_once: true
"""

RETURN = r"""
schema_version:
  description: The matrix's schema version.
  returned: success
  type: int
  sample: 1
hosts:
  description:
    - Per host of O(hosts), how gathering went (C(state), C(reason)), whether it was C(probed), and for a host
      whose facts were gathered whether libvirt was there, its running VMs and its free room.
  returned: success
  type: dict
  sample: {"hv1": {"state": "ok", "reason": null, "probed": true, "libvirt": true, "vms": [], "room": {}}}
classes:
  description:
    - The source version classes, by id - each with its C(mdev_type), C(version), C(self), C(kind) and C(sources)
      - that the verdicts are kept per.
  returned: success
  type: dict
sources:
  description:
    - One row per source host, parent and type, with its C(devices) and its C(class), or the C(reason) it cannot
      migrate anywhere.
  returned: success
  type: list
  elements: dict
verdicts:
  description:
    - Class id to target host to one verdict per target parent - C(parent), C(status), C(errno), C(errno_name),
      C(message), C(evidence), C(available_instances) and C(reasons), every piece of evidence that applies.
  returned: success
  type: dict
policy:
  description: The policy the verdicts were decided with, defaults filled in.
  returned: success
  type: dict
"""
