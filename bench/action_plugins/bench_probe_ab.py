# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench action for ``bench_probe_ab`` (``bench/snapshot.py: probe_at``): the probe's own action.

The module is another revision's ``migration_probe`` with that revision's ``module_utils``, so an A/B
turn takes its batch exactly as the probe does and differs only in that code on the host.
"""

from ansible_collections.vfio.migration.plugins.action.migration_probe import ActionModule as ProbeAction


class ActionModule(ProbeAction):
    pass
