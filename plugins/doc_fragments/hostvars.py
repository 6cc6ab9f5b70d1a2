# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the plugins that read C(hostvars): which hosts, and under which names each host's results are.

    The filters take DOCUMENTATION (C(hostvars) and the hosts) and RESULTS; the compat_matrix
    action, which reads the play's C(hostvars) itself, takes RESULTS and PROBE.
    """

    DOCUMENTATION = r"""
options:
  _input:
    description:
      - C(hostvars).
      - Where this play registered a host's O(facts_result_var), the host's values are read straight from
        Ansible's fact caches; otherwise through C(hostvars[host]) (a sliced run, facts from C(facts_modules)),
        which gives the same values, slower.
    type: raw
    required: true
  hosts:
    description: The hosts to cover, usually C(ansible_play_hosts_all).
    type: list
    elements: str
    required: true
"""

    RESULTS = r"""
options:
  facts_result_var:
    description:
      - The variable holding each host's registered M(vfio.migration.mdev_facts) result, which says how gathering
        went. The default is what the C(vfio.migration.facts) role registers.
      - A host without it is judged by its C(ansible_facts.vfio_mdev) and O(gather_state_var).
    type: str
    default: vfio_migration_facts_result
  gather_state_var:
    description:
      - The variable holding how gathering went on a host whose O(facts_result_var) is not set, as C({state, reason})
        kept in the fact cache by a sliced run's first phase (the default is what the C(vfio.migration.gather)
        playbook caches).
    type: str
    default: vfio_migration_gather_state
"""

    PROBE = r"""
options:
  probe_result_var:
    description:
      - The variable holding each target's registered M(vfio.migration.migration_probe) result. The default is what
        the C(vfio.migration.matrix) role registers (and the C(vfio.migration.probe) playbook caches).
    type: str
    default: vfio_migration_probe_result
"""
