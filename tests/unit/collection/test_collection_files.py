"""What the collection says about itself: the README's plugin table, the license, galaxy.yml, the Makefile."""

import ast
import glob
import os
import re

import yaml

from tests.conftest import REPO


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def filter_names():
    """Every filter a ``filters()`` in plugins/filter/*.py returns (read from the source, as keys of its dict)."""
    names = set()
    for path in glob.glob(os.path.join(REPO, "plugins", "filter", "*.py")):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "filters":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Dict):
                        names.update(k.value for k in inner.keys if isinstance(k, ast.Constant))
    return names


def readme_plugin_table():
    text = read("README.md")
    table = text.split("## What is in the collection", 1)[1].split("\n\n", 2)[1]
    return table


def test_the_readme_lists_every_filter_and_module():
    """Defect: gather_states was missing from the README's plugin table."""
    table = readme_plugin_table()
    listed = set(re.findall(r"`(?:vfio\.migration\.)?([a-z_]+)`", table))
    assert "gather_states" in filter_names()
    assert filter_names() - listed == set()
    modules = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))}
    assert modules - listed == set()


def test_the_license_every_header_names_is_shipped():
    """Defect: every header says GPL-3.0-or-later but no license file was shipped."""
    text = read("COPYING")
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    galaxy = yaml.safe_load(read("galaxy.yml"))
    assert galaxy["license"] == ["GPL-3.0-or-later"] or galaxy.get("license_file") == "COPYING"


def test_galaxy_yml_names_no_placeholder_address():
    """Defect: galaxy.yml named https://example.invalid/vfio/migration as the repository."""
    galaxy = yaml.safe_load(read("galaxy.yml"))
    for key in ("repository", "homepage", "documentation", "issues"):
        value = galaxy.get(key)
        assert value is None or not re.search(r"example\.(invalid|com|org)|placeholder|TODO", value), (key, value)


def makefile_rules():
    rules = {}
    for line in read("Makefile").splitlines():
        m = re.match(r"^([a-z][a-z-]*):(?!=)\s*(.*)$", line)
        if m:
            rules[m.group(1)] = m.group(2).split()
    return rules


def test_make_lint_has_a_rule():
    """Defect: make lint was listed but had no rule."""
    rules = makefile_rules()
    phony = read("Makefile").split(".PHONY:", 1)[1].splitlines()[0].split()
    assert set(phony) <= set(rules), set(phony) - set(rules)
    assert "lint" in rules


def test_make_unit_needs_only_the_venv():
    """Unit tests need no root, FUSE or apt: make unit does not run the apt step."""
    assert makefile_rules()["unit"] == ["venv"]
    assert makefile_rules()["venv"] == ["$(STAMP)-venv"]


def test_every_role_says_what_privileges_it_needs():
    """Defect: the rolling role, added after the become table, had no row in it."""
    roles = set(os.listdir(os.path.join(REPO, "roles")))
    section = read("README.md").split("### Privileges (`become`)", 1)[1].split("\n### ", 1)[0]
    rows = set(re.findall(r"^\| `vfio\.migration\.([a-z_]+)` \|", section, re.M))
    assert rows == roles
    for role in sorted(roles):
        spec = yaml.safe_load(read("roles", role, "meta", "argument_specs.yml"))["argument_specs"]["main"]
        said = " ".join(spec["description"])
        assert re.search(r"\b(root|become|privileges)\b", said), role
