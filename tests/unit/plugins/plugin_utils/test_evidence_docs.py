"""Every kind of evidence a cell can rest on is named where operators read it (issue 13, item 4).

``_views.EVIDENCES`` is what the matrix writes into ``evidence``; the schema, the
report's legend and the README's verdict section must each name every one of them,
and the README's verdict table must name the gates that turn a ``compatible`` into
``unsupported``.
"""

import os
import re

import pytest

from ansible_collections.vfio.migration.plugins.plugin_utils import _html, _views
from tests.conftest import REPO


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def readme_verdicts():
    text = read("README.md")
    start = text.index("### Verdicts and the errno mapping")
    return text[start:text.index("\n### ", start + 1)]


@pytest.mark.parametrize("evidence", _views.EVIDENCES)
def test_schema_names_each_evidence(evidence):
    (row,) = [line for line in read("docs", "matrix-schema.md").splitlines() if line.startswith("| `evidence` |")]
    assert "`%s`" % evidence in row


@pytest.mark.parametrize("evidence", _views.EVIDENCES)
def test_report_legend_names_each_evidence(evidence):
    legend = _html._html_legend()  # pylint: disable=protected-access
    named = re.findall(r"<b>(\w+)</b>", legend) + re.findall(r"or (none);", legend)
    assert evidence in named


@pytest.mark.parametrize("evidence", _views.EVIDENCES)
def test_readme_verdict_section_names_each_evidence(evidence):
    assert "`%s`" % evidence in readme_verdicts()


def test_readme_verdict_table_names_the_gates():
    (row,) = [line for line in readme_verdicts().splitlines() if line.startswith("| `unsupported` |")]
    for gate in ("minimums", "VFIO_DEVICE_FEATURE_MIGRATION", "ENOTTY", "plain `vfio-pci`"):
        assert gate in row, gate
    (unknown,) = [line for line in readme_verdicts().splitlines() if line.startswith("| `unknown` |")]
    assert "a stack version a gate needs is not known" in unknown
