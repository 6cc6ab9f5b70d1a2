# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling maintenance filters: the schedule of waves, its Markdown wave table and its terminal summary.

Documentation of each filter is in the YAML file of the same name beside
this one (``ansible-doc -t filter vfio.migration.rolling_schedule``). The
planning itself lives in ``plugin_utils/_rolling.py``; the schedule's schema
is in ``docs/rolling.md``.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _rolling as R
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain, view


def _host_list(name, value, arg):
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(h, str) for h in value):
        raise AnsibleFilterError("vfio.migration.%s: %s must be a list of inventory host names" % (name, arg))
    return list(value)


def rolling_schedule(matrix, hosts=None, max_wave=1, keep_free=0.0, stay_up=None, after=None, host_versions=None,
                     solver="auto", assume="newer_accepts_older", exact_max_hosts=R.DEFAULT_EXACT_MAX_HOSTS,
                     exact_budget=R.DEFAULT_EXACT_BUDGET):
    """Waves of hosts to drain and upgrade, with every running VM's placement in each wave, or why none exists."""
    matrix = view(matrix)
    if not isinstance(matrix, dict) or matrix.get("schema_version") != M.SCHEMA_VERSION or "verdicts" not in matrix:
        raise AnsibleFilterError("vfio.migration.rolling_schedule expects the output of vfio.migration.compat_matrix")
    try:
        return R.rolling_schedule(matrix, hosts=_host_list("rolling_schedule", plain(hosts), "hosts"),
                                  max_wave=plain(max_wave), keep_free=plain(keep_free),
                                  stay_up=_host_list("rolling_schedule", plain(stay_up), "stay_up"),
                                  after=plain(after) or None, host_versions=plain(host_versions) or None,
                                  solver=plain(solver), assume=plain(assume), exact_max_hosts=plain(exact_max_hosts),
                                  exact_budget=plain(exact_budget))
    except (R.RollingError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("vfio.migration.rolling_schedule: %s" % exc) from exc


def _schedule(name, schedule):
    schedule = plain(schedule)
    if not isinstance(schedule, dict) or schedule.get("schema_version") != R.SCHEMA_VERSION or "waves" not in schedule:
        raise AnsibleFilterError("vfio.migration.%s expects the output of vfio.migration.rolling_schedule" % name)
    return schedule


def rolling_markdown(schedule, generated=None):
    """``schedule.md``: the verdict, why not, the wave table, every placement, the assumptions and the capacity."""
    try:
        return R.render_markdown(_schedule("rolling_markdown", schedule), plain(generated))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("vfio.migration.rolling_markdown: %s" % exc) from exc


def rolling_summary(schedule, report_dir=None, written=False, check_mode=False, max_lines=10):
    """The terminal summary as plain lines, for a debug msg."""
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
        raise AnsibleFilterError("vfio.migration.rolling_summary: max_lines must be a positive integer, not %r"
                                 % (max_lines,))
    try:
        return R.summary_lines(_schedule("rolling_summary", schedule), plain(report_dir), bool(written),
                               bool(check_mode), max_lines)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("vfio.migration.rolling_summary: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {
            "rolling_schedule": rolling_schedule,
            "rolling_markdown": rolling_markdown,
            "rolling_summary": rolling_summary,
        }
