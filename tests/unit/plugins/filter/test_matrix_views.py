"""The matrix reaches the pure functions as Ansible stores it: read, never walked, never changed.

Since ansible-core 2.19 a variable reaches a filter as a lazy container that
templates each element it hands out; walking the matrix of 1000 hosts that
way cost the drain plan 8 s. The filters that read a matrix unwrap the lazy
containers only (``_data.view``), so the pure function gets the very lists
the variable holds. That is safe only because no pure function changes its
matrix: checked here for each of them on a fleet with instances to move.
The lazy containers are ansible-core's own, made by a real ``Templar``.
"""

import copy
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.vfio.migration.plugins.plugin_utils import _data
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _rolling as R
from ansible_collections.vfio.migration.plugins.plugin_utils import _summary as S
from tests.conftest import COLLECTIONS, REPO
from tests.synthetic import fleet, probe_all

HOSTS = 12


def build_matrix():
    hosts = fleet(HOSTS, instances=2, seed=3)
    probe_all(hosts, M.probe_batches(hosts))
    m = M.compat_matrix(hosts)
    assert any(s["devices"] for s in m["sources"]), "the fleet must have instances to place"
    return m


@pytest.fixture(scope="module")
def matrix():
    return build_matrix()


def _timeless(value):
    if isinstance(value, dict):  # the solver's own timing differs between two runs
        return {k: _timeless(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def canon(value):
    return json.dumps(_timeless(value), sort_keys=True, default=str)


def lazy_inside(value):
    if getattr(type(value), "_non_lazy_copy", None) is not None:
        return True
    if isinstance(value, dict):
        return any(lazy_inside(v) for v in value.values())
    if isinstance(value, list):
        return any(lazy_inside(v) for v in value)
    return False


CALLS = {
    "drain_plan": lambda m: M.drain_plan(m, ["host00000", "host00001"]),
    "migration_targets": lambda m: M.migration_targets(m, "host00002"),
    "expand_cells": M.expand_cells,
    "readiness_stats": lambda m: S.readiness_stats(m, M.drain_plan(m, ["host00000"]), "/srv/r"),
    "readiness_summary": lambda m: S.readiness_summary(m, M.drain_plan(m, ["host00000"]), None, "/srv/r"),
    "precheck_cases": lambda m: S.precheck_cases(m, M.drain_plan(m, ["host00000"])),
    "rolling_schedule": lambda m: R.rolling_schedule(m, max_wave=2),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_pure_function_changes_the_matrix_it_reads(matrix, name):
    given = copy.deepcopy(matrix)
    before = canon(given)
    out = CALLS[name](given)
    assert out is not None
    assert canon(given) == before, "%s changed its matrix" % name


# The template side runs in a fresh interpreter: ansible-core's collection loader must be set up
# before anything imports ansible_collections, which this test module has done already.
TEMPLATED = """
import copy, json, sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
import ansible_collections.vfio.migration.plugins.filter.matrix as FM
import ansible_collections.vfio.migration.plugins.filter.report as FR
import ansible_collections.vfio.migration.plugins.filter.rolling as FRO
from tests.unit.plugins.filter import test_matrix_views as T

matrix = T.build_matrix()
templar = Templar(loader=DataLoader(), variables={"m": matrix})
seen = []
def spy(module, name):
    real = getattr(module, name)
    def wrapper(m, *args, **kwargs):
        seen.append(m)
        return real(m, *args, **kwargs)
    setattr(module, name, wrapper)
for module, name in ((FM._matrix, "drain_plan"), (FM._matrix, "migration_targets"), (FR.S, "readiness_stats"),
                     (FR.S, "readiness_summary"), (FR.S, "precheck_cases"), (FRO.R, "rolling_schedule")):
    spy(module, name)
out = {}
for expr in T.EXPRESSIONS:
    del seen[:]
    got = templar.template(trust_as_template("{{ %s }}" % expr))
    out[expr] = {"got": T.canon(got), "lazy_inside": any(T.lazy_inside(m) for m in seen),
                 "own_lists": bool(seen) and all(m["verdicts"] is matrix["verdicts"] and m["sources"] is matrix["sources"]
                                                 for m in seen)}
json.dump(out, sys.stdout)
"""

EXPRESSIONS = {
    "m | vfio.migration.drain_plan(['host00000', 'host00001'])": "drain_plan",
    "m | vfio.migration.migration_targets('host00002')": "migration_targets",
    "m | vfio.migration.readiness_stats(plan=m | vfio.migration.drain_plan(['host00000']), report_dir='/srv/r')":
        "readiness_stats",
    "m | vfio.migration.readiness_summary(plan=m | vfio.migration.drain_plan(['host00000']), report_dir='/srv/r')":
        "readiness_summary",
    "m | vfio.migration.precheck_cases(plan=m | vfio.migration.drain_plan(['host00000']))": "precheck_cases",
    "m | vfio.migration.rolling_schedule(max_wave=2)": "rolling_schedule",
}


@pytest.fixture(scope="module")
def templated():
    proc = subprocess.run([sys.executable, "-c", TEMPLATED, COLLECTIONS], cwd=REPO, capture_output=True, text=True,
                          check=False, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("expr", sorted(EXPRESSIONS))
def test_through_a_real_template_the_answer_is_the_pure_functions(templated, matrix, expr):
    assert templated[expr]["got"] == canon(CALLS[EXPRESSIONS[expr]](copy.deepcopy(matrix)))


@pytest.mark.parametrize("expr", sorted(EXPRESSIONS))
def test_the_pure_function_gets_the_variables_own_lists(templated, expr):
    """No lazy container reaches the pure function, and nothing was copied on the way:
    the verdicts are the list the variable holds (a walk or a copy would make a new one)."""
    assert not templated[expr]["lazy_inside"]
    assert templated[expr]["own_lists"]


def test_view_of_plain_data_is_the_data_itself(matrix):
    assert _data.view(matrix) is matrix
    assert _data.view("text {{ x }}") == "text {{ x }}"
