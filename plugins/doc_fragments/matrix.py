# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the filters that read a matrix: the matrix itself, the plan and what the reports share."""

    DOCUMENTATION = r"""
options:
  _input:
    description: The output of P(vfio.migration.compat_matrix#filter) (or a C(matrix.json) it was written to).
    type: dict
    required: true
"""

    PLAN = r"""
options:
  plan:
    description: The output of P(vfio.migration.drain_plan#filter), or null without a plan (no drain hosts).
    type: dict
"""

    GENERATED = r"""
options:
  generated:
    description:
      - An ISO 8601 time stamp for the report (C(generated) in C(matrix.json), the header of the others), or null
        to keep the output identical between runs. The matrix role takes it once for all the reports of a run.
    type: str
"""

    CELL_LIMIT = r"""
options:
  cell_limit:
    description:
      - The most cells (source parent by target parent) written one each. Above it the report lists one verdict
        per class and target parent instead - C(matrix.json) a compact C(verdicts) list in place of C(cells),
        C(matrix.csv) one row per verdict - which holds every verdict in a size that grows with classes, not
        with hosts squared. 0 always writes the verdicts.
    type: int
    default: 20000
"""
