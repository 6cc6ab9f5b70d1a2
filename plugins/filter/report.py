# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report filters: the compatibility matrix as JSON, CSV, Markdown or a self-contained HTML page.

Documentation of each filter is in the YAML file of the same name beside
this one (``ansible-doc -t filter vfio.migration.report_html``). The
rendering itself lives in ``plugin_utils/_report.py``.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain


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


def report_json(matrix, plan=None, generated=None, cell_limit=R.DEFAULT_CELL_LIMIT):
    """The matrix (and plan) as a stable JSON document."""
    return _render("report_json", R.render_json, matrix, plan, generated,
                   cell_limit=_cell_limit("report_json", cell_limit))


def report_csv(matrix, cell_limit=R.DEFAULT_CELL_LIMIT):
    """One CSV row per source parent x target parent cell (per verdict above cell_limit cells)."""
    return _render("report_csv", R.render_csv, matrix, cell_limit=_cell_limit("report_csv", cell_limit))


def report_markdown(matrix, plan=None, generated=None):
    """A Markdown report: summary, host x host tables per type, hosts, drain plan."""
    return _render("report_markdown", R.render_markdown, matrix, plan, generated)


def report_html(matrix, plan=None, generated=None):
    """A self-contained HTML page with colour grids per type, legend, hosts and the drain plan."""
    return _render("report_html", R.render_html, matrix, plan, generated)


class FilterModule(object):
    def filters(self):
        return {
            "report_json": report_json,
            "report_csv": report_csv,
            "report_markdown": report_markdown,
            "report_html": report_html,
        }
