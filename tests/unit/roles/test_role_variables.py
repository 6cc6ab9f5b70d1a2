"""The README's variable table, the roles' argument specs and their defaults agree.

The rule checked here:

- every option of every entry point in ``roles/*/meta/argument_specs.yml`` is a row of the
  README's variable table, with the same default (an option without a default must be
  ``required`` there, or have the default null);
- every row of the table is such an option, or a playbook variable (``vfio_migration_hosts``,
  read with ``default(...)`` in ``playbooks/*.yml``) with the default the playbooks use;
- a variable documented by several entry points has one default everywhere;
- each variable has its default in exactly one role's ``defaults/main.yml``, equal to the
  documented one, and every default there is documented by some entry point.
"""

import glob
import os
import re

import yaml

from tests.conftest import REPO


def _readme_table():
    """``{variable: default}`` from the README's "Variables" table (backticked YAML values)."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text[text.index("### Variables"):]
    section = section[:section.index("\n\n", section.index("|---"))]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", section, re.M)
    table = {name: yaml.safe_load(default) for name, default in rows}
    assert len(table) == len(rows), "a variable is in the table twice"
    return table


def _specs():
    """``{variable: [(role, entry point, option)]}`` over every role's argument specs."""
    out = {}
    for path in sorted(glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml"))):
        role = path.split(os.sep)[-3]
        with open(path) as f:
            specs = yaml.safe_load(f)["argument_specs"]
        for entry, spec in specs.items():
            for name, option in (spec.get("options") or {}).items():
                out.setdefault(name, []).append((role, entry, option))
    return out


def _defaults():
    """``{variable: [(role, default)]}`` over every role's defaults/main.yml."""
    out = {}
    for path in sorted(glob.glob(os.path.join(REPO, "roles", "*", "defaults", "main.yml"))):
        role = path.split(os.sep)[-3]
        with open(path) as f:
            for name, value in (yaml.safe_load(f) or {}).items():
                out.setdefault(name, []).append((role, value))
    return out


def _playbook_variables():
    """``{variable: default}`` for the vfio_migration_* variables the playbooks read with a default."""
    out = {}
    for path in sorted(glob.glob(os.path.join(REPO, "playbooks", "*.yml"))):
        with open(path) as f:
            for name, default in re.findall(r"(vfio_migration_\w+) \| default\(([^)]*)\)", f.read()):
                value = yaml.safe_load(default)
                assert out.setdefault(name, value) == value, (path, name)
    return out


def _documented_default(name, options):
    """The one default the entry points document for ``name`` (None when none gives one)."""
    given = {repr(option["default"]) for role, entry, option in options if "default" in option}
    assert len(given) <= 1, "%s has several defaults: %s" % (name, sorted(given))
    for role, entry, option in options:
        if "default" not in option and given:
            assert option.get("required"), "%s: %s/%s documents no default and does not require it" % (
                name, role, entry)
    return next((option["default"] for r, e, option in options if "default" in option), None)


def test_every_documented_variable_is_in_the_readme_with_its_default():
    table, specs = _readme_table(), _specs()
    missing = sorted(set(specs) - set(table))
    assert not missing, "README's variable table lacks %s" % missing
    for name, options in specs.items():
        assert table[name] == _documented_default(name, options), name


def test_every_readme_variable_is_an_option_or_a_playbook_variable():
    table, specs, playbooks = _readme_table(), _specs(), _playbook_variables()
    assert "vfio_migration_hosts" in playbooks
    for name, default in table.items():
        assert name in specs or name in playbooks, "README documents %s, which nothing reads" % name
        if name not in specs:
            assert default == playbooks[name], name


def test_each_default_is_declared_once_and_documented():
    specs, defaults = _specs(), _defaults()
    for name, declared in defaults.items():
        assert len(declared) == 1, "%s has a default in several roles: %s" % (name, [r for r, v in declared])
        assert name in specs, "%s has a default but no entry point documents it" % name
        assert declared[0][1] == _documented_default(name, specs[name]), name
    for name, options in specs.items():  # and nothing is documented that no role gives a default or requires
        assert name in defaults or all(o.get("required") for r, e, o in options), name


def test_the_roles_read_only_variables_that_are_declared():
    """Every vfio_migration_* variable the role tasks read has a default, is set by a task or is published."""
    specs, defaults = _specs(), _defaults()
    read, set_here = set(), set()
    for path in glob.glob(os.path.join(REPO, "roles", "*", "tasks", "*.yml")):
        with open(path) as f:
            text = f.read()
        read |= set(re.findall(r"\b(vfio_migration_\w+)\b", text))
        set_here |= set(re.findall(r"^\s+(vfio_migration_\w+):", text, re.M))
        set_here |= set(re.findall(r"(?:register|loop_var): (vfio_migration_\w+)", text))
    unknown = sorted(read - set(defaults) - set(specs) - set_here)
    assert not unknown, unknown
