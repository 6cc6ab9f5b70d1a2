# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report filters: the matrix as JSON, CSV, Markdown or an HTML page; the terminal summary; drift.

Documentation of each filter is in the YAML file of the same name beside
this one (``ansible-doc -t filter vfio.migration.report_html``). The
rendering itself lives in ``plugin_utils`` (``_report.py``, ``_html.py``,
``_summary.py``, ``_drift.py``).
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.filter.matrix import FACTS_RESULT_VAR, GATHER_STATE_VAR, host_inputs
from ansible_collections.vfio.migration.plugins.plugin_utils import _drift as D
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from ansible_collections.vfio.migration.plugins.plugin_utils import _summary as S
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain, view
from ansible_collections.vfio.migration.plugins.plugin_utils._views import _text


def _render(name, renderer, matrix, *args, **kwargs):
    """Run one renderer on plain inputs; bad input becomes an AnsibleFilterError naming the filter."""
    try:
        return renderer(plain(matrix), *[plain(a) for a in args], **kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        raise AnsibleFilterError("vfio.migration.%s: %s" % (name, exc)) from exc


def _cell_limit(name, cell_limit):
    try:
        if isinstance(cell_limit, bool):
            raise TypeError("a boolean")
        return int(cell_limit)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("vfio.migration.%s: cell_limit must be an integer, not %r"
                                 % (name, cell_limit)) from exc


def report_json(matrix, plan=None, generated=None, cell_limit=R.DEFAULT_CELL_LIMIT, host_versions=None,
                schedule=None):
    """The matrix (and plan, and rolling schedule) as a stable JSON document."""
    return _render("report_json", R.render_json, matrix, plan, generated,
                   cell_limit=_cell_limit("report_json", cell_limit), host_versions=plain(host_versions),
                   schedule=plain(schedule) or None)


def report_csv(matrix, cell_limit=R.DEFAULT_CELL_LIMIT):
    """One CSV row per source parent x target parent cell (per verdict above cell_limit cells)."""
    return _render("report_csv", R.render_csv, matrix, cell_limit=_cell_limit("report_csv", cell_limit))


def report_markdown(matrix, plan=None, generated=None, schedule=None):
    """A Markdown report: summary, host x host tables per type, hosts, drain plan, rolling schedule."""
    return _render("report_markdown", R.render_markdown, matrix, plan, generated, schedule=plain(schedule) or None)


def report_html(matrix, plan=None, generated=None, changes=None, schedule=None):
    """A self-contained HTML page, decision first: verdict, changes, schedule, plan, overview, grids per type."""
    return _render("report_html", R.render_html, matrix, plan, generated, changes=plain(changes),
                   schedule=plain(schedule) or None)


def host_versions(hostvars, hosts, facts_result_var=FACTS_RESULT_VAR, gather_state_var=GATHER_STATE_VAR):
    """``{host: {kernel, qemu, libvirt, drivers}}`` from the gathered facts of ``hosts``."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("vfio.migration.host_versions: give the list of hosts (ansible_play_hosts_all)")
    return D.host_versions(host_inputs(hostvars, list(hosts), facts_result_var=facts_result_var,
                                       gather_state_var=gather_state_var, name="vfio.migration.host_versions"))


def matrix_changes(matrix, previous=None, plan=None, versions=None, limit=D.DEFAULT_CHANGE_LIMIT):
    """What changed between a previous matrix.json (text or parsed) and this run."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise AnsibleFilterError("vfio.migration.matrix_changes: limit must be a non-negative integer, not %r"
                                 % (limit,))
    try:
        return D.matrix_changes(plain(previous), _checked(plain(matrix)), plain(plan) or None, plain(versions),
                                limit)
    except (ValueError, TypeError, KeyError) as exc:
        raise AnsibleFilterError("vfio.migration.matrix_changes: %s" % exc) from exc


def _checked(matrix):
    R.check_inputs(matrix)
    return matrix


def _written_files(reports_written):
    """``reports_written`` as the list of file names written, or None for a plain yes or no."""
    value = plain(reports_written)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, list) and all(isinstance(name, str) and name for name in value):
        return value
    raise AnsibleFilterError("vfio.migration.readiness_summary: reports_written must be true, false or the list of "
                             "file names written, not %r" % (value,))


def _reports_line(report_dir, written):
    """Where the reports are, naming only the files this run wrote; where they would go when it wrote none."""
    if not written:
        return S._cut("Reports would go to %s" % _text(report_dir), S.LINE_WIDTH * 2)
    first = "report.html" if "report.html" in written else written[0]
    others = [name for name in written if name != first]
    line = "Reports: %s/%s" % (_text(report_dir).rstrip("/"), _text(first))
    if others:
        line += " (%s beside it)" % ", ".join(_text(name) for name in others)
    return S._cut(line, S.LINE_WIDTH * 2)


def readiness_summary(matrix, plan=None, changes=None, report_dir=None, reports_written=False, check_mode=False,
                      max_lines=S.DEFAULT_MAX_LINES, unchanged=False, schedule=None):
    """The terminal summary as a list of plain lines, for a debug msg.

    ``reports_written`` is a yes or no, or the file names written (what the
    matrix role's reports entry point records); given the names, the last
    line names those files only. ``schedule`` (``vfio.migration.rolling_schedule``)
    puts the rolling maintenance's verdict, waves and why not ready first.
    """
    matrix = view(matrix)
    files = _written_files(reports_written)
    report_dir = plain(report_dir)
    try:
        R.check_inputs(matrix, plain(plan) or None)
        schedule = plain(schedule) or None
        R.check_schedule(schedule)
        lines = S.readiness_summary(matrix, plain(plan) or None, plain(changes),
                                    report_dir if files is None else None,
                                    bool(reports_written if files is None else files), bool(check_mode),
                                    plain(max_lines), bool(unchanged), schedule=schedule)
    except (ValueError, TypeError, KeyError) as exc:
        raise AnsibleFilterError("vfio.migration.readiness_summary: %s" % exc) from exc
    if files is not None and report_dir:
        lines.append(_reports_line(report_dir, files))
    if schedule is not None and report_dir:  # the rolling role writes them whatever the formats
        lines.append(S._cut("Schedule %s %s/schedule.json (schedule.md beside it)" % (
            "would go to" if check_mode else "written to", _text(report_dir).rstrip("/")), S.LINE_WIDTH * 2))
    return lines


def readiness_stats(matrix, plan=None, report_dir=None):
    """The run's outcome as data for ``ansible.builtin.set_stats``."""
    try:
        return S.readiness_stats(view(matrix), plain(plan) or None, plain(report_dir))
    except (ValueError, TypeError, KeyError) as exc:
        raise AnsibleFilterError("vfio.migration.readiness_stats: %s" % exc) from exc


def precheck_cases(matrix, plan=None):
    """One test case per planned item and per host that could not be asked (for the junit callback)."""
    try:
        return S.precheck_cases(view(matrix), plain(plan) or None)
    except (ValueError, TypeError, KeyError) as exc:
        raise AnsibleFilterError("vfio.migration.precheck_cases: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {
            "report_json": report_json,
            "report_csv": report_csv,
            "report_markdown": report_markdown,
            "report_html": report_html,
            "readiness_summary": readiness_summary,
            "readiness_stats": readiness_stats,
            "precheck_cases": precheck_cases,
            "matrix_changes": matrix_changes,
            "host_versions": host_versions,
        }
