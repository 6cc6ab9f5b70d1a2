"""option_vars: the modules' options read from variables as stored, by the actions, with a real Templar."""

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.template import Templar, trust_as_template

from ansible_collections.vfio.migration.plugins.action import mdev_facts as facts_action
from ansible_collections.vfio.migration.plugins.action import migration_probe as probe_action
from ansible_collections.vfio.migration.plugins.doc_fragments.managed_host import ModuleDocFragment
from ansible_collections.vfio.migration.plugins.modules import mdev_facts, migration_probe
from ansible_collections.vfio.migration.plugins.plugin_utils._module_action import option_vars_args

ALLOWED = ("sysfs_root", "timeout")


def _read(args, variables, allowed=ALLOWED):
    return option_vars_args(args, allowed, variables, Templar(loader=None, variables=variables), "m")


def test_each_option_comes_from_its_variable_as_stored_and_option_vars_is_not_passed_on():
    variables = {"root": "/srv/a/sys", "limit": 3.5, "compact": True}
    got = _read({"option_vars": {"sysfs_root": "root", "timeout": "limit"}, "compact": True}, variables)
    assert got == {"sysfs_root": "/srv/a/sys", "timeout": 3.5, "compact": True}
    assert got["sysfs_root"].__class__ is str  # plain text, whatever Ansible tagged it with


def test_a_variable_holding_a_template_is_templated_and_one_holding_omit_leaves_the_option_alone():
    variables = {"base": "/srv/b", "root": trust_as_template("{{ base }}/sys"),
                 "nothing": trust_as_template("{{ omit }}")}
    assert _read({"option_vars": {"sysfs_root": "root"}}, variables) == {"sysfs_root": "/srv/b/sys"}
    assert _read({"option_vars": {"timeout": "nothing"}, "timeout": 2}, variables) == {"timeout": 2}
    assert _read({"option_vars": {"timeout": "nothing"}}, variables) == {}


def test_the_variable_wins_over_what_args_has_as_a_templated_option_would():
    """module_defaults are merged into a task's arguments before the action runs; the role's value wins."""
    assert _read({"option_vars": {"sysfs_root": "root"}, "sysfs_root": "/sys"}, {"root": "/x"}) == {"sysfs_root": "/x"}


def test_without_option_vars_the_arguments_are_untouched():
    args = {"sysfs_root": "/sys"}
    assert _read(args, {}) is args


@pytest.mark.parametrize("option_vars, message", [
    (["sysfs_root"], "option_vars must map option names to variable names, not list"),
    ({"checks": "batches"}, "option_vars: checks is not an option that can be read from a variable (those are "
                            "sysfs_root, timeout)"),
    ({"sysfs_root": "nosuch"}, "option_vars: sysfs_root: the variable nosuch is not defined"),
    ({"sysfs_root": ""}, "option_vars: sysfs_root must name a variable, not ''"),
    ({"timeout": 5}, "option_vars: timeout must name a variable, not 5"),
    ({1: "root", "sysfs_root": "root"}, "option_vars: 1 is not an option that can be read from a variable"),
])
def test_bad_option_vars_fail_naming_what_is_wrong(option_vars, message):
    with pytest.raises(AnsibleActionFail) as exc:
        _read({"option_vars": option_vars}, {"batches": {}})
    assert str(exc.value).startswith("m: " + message)


def _documented(module):
    options = dict(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    options.update(yaml.safe_load(module.DOCUMENTATION)["options"])
    return set(options)


@pytest.mark.parametrize("action, module, never", [
    (facts_action, mdev_facts, {"option_vars"}),
    (probe_action, migration_probe, {"option_vars", "checks", "batches_var"}),
])
def test_every_documented_option_but_the_excluded_can_be_read_from_a_variable(action, module, never):
    assert set(action.ActionModule.VAR_OPTIONS) == _documented(module) - never


@pytest.mark.parametrize("task_vars, root", [
    ({"ansible_facts": {"vfio_mdev": {"sysfs_root": "/srv/h1/sys"}}}, "/srv/h1/sys"),
    ({}, None),
    ({"ansible_facts": {}}, None),
    ({"ansible_facts": {"vfio_mdev": {"schema_version": 1}}}, None),
    ({"ansible_facts": {"vfio_mdev": "garbage"}}, None),
    ({"ansible_facts": {"vfio_mdev": {"sysfs_root": ""}}}, None),
])
def test_the_probe_defaults_to_the_tree_of_the_hosts_facts(task_vars, root):
    assert probe_action.facts_sysfs_root(task_vars) == root
