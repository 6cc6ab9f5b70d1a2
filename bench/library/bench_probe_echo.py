# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench module: takes a probe batch's arguments and returns a probe's results, doing nothing else.

The alternating bench run (``bench/run.py``, ``echo``) runs it between a ping and the
real probe, through the probe's own action (``bench/action_plugins``), so it gets the
same ``checks`` the probe gets, and returns the results a probe
returned (read from ``results_file`` on the host), so the difference to a ping is what
ansible-core costs to carry the batch in and the verdicts out, and the difference to the
probe is the probe module's own work.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: bench_probe_echo
short_description: return a stored probe result for a probe batch (vfio.migration bench)
description:
  - Accepts the arguments of C(vfio.migration.migration_probe) and returns the results stored in O(results_file).
options:
  checks:
    description: A probe batch, validated as the probe validates it.
    type: list
    elements: dict
    required: true
  results_file:
    description: JSON list of probe results to return.
    type: path
    required: true
  sysfs_root:
    description: What the probe's action sends (the tree of the host's facts); not used.
    type: path
"""

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type="list", elements="dict", required=True, options=dict(
                id=dict(type="str", required=True),
                mdev_type=dict(type="str", required=True),
                version=dict(type="str", required=True, no_log=False),
                parent=dict(type="str"),
                device=dict(type="str"),
            )),
            results_file=dict(type="path", required=True),
            sysfs_root=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    with open(module.params["results_file"]) as f:
        results = json.load(f)
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
