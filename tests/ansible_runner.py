"""Run real Ansible commands from tests and read their JSON results."""

import json
import os
import subprocess
import sys
import tempfile
import zipfile

from tests.conftest import REPO, ansible_bin


# The community package whose community.general and ansible.posix match ansible-core 2.19: the
# tests that need a community plugin (a shared fact cache, the json callback) take it from its
# wheel on PyPI; make test installs ansible-core alone.
ANSIBLE_WHEEL = "ansible==12.3.0"


def community_collections(*names):
    """A collections dir holding ``names`` (``community.general``...), extracted under build/."""
    dest = os.path.join(REPO, "build", "community-collections")
    prefixes = ["ansible_collections/%s/" % n.replace(".", "/") for n in names]
    if all(os.path.isdir(os.path.join(dest, p, "plugins")) for p in prefixes):
        return dest
    wheels = os.path.join(REPO, "build", "wheels")
    os.makedirs(wheels, exist_ok=True)
    if not [f for f in os.listdir(wheels) if f.endswith(".whl")]:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", wheels, ANSIBLE_WHEEL],
                       check=True, timeout=900)
    (wheel,) = [os.path.join(wheels, f) for f in os.listdir(wheels) if f.endswith(".whl")]
    with zipfile.ZipFile(wheel) as z:
        z.extractall(dest, [n for n in z.namelist() if n.startswith(tuple(prefixes))])
    return dest


def _env(extra=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    })
    env.update(extra or {})
    return env


def write_inventory(path, hosts, group_vars=None):
    """Write a YAML inventory: ``hosts`` is ``{name: {var: value}}``."""
    inv = {"all": {"hosts": hosts, "vars": dict({"ansible_connection": "local"}, **(group_vars or {}))}}
    with open(path, "w") as f:
        json.dump(inv, f, indent=1)  # JSON is YAML
    return path


def adhoc(inventory, module, args="", limit="all", check=False, env=None, timeout=600):
    """Run ``ansible -m MODULE`` and return ``({host: result}, completed_process)``.

    Results come from ansible-core's ``tree`` callback: one JSON file a host.
    """
    cmd = [ansible_bin("ansible"), limit, "-i", inventory, "-m", module, "-o"]
    if args:
        cmd += ["-a", args if isinstance(args, str) else json.dumps(args)]
    if check:
        cmd.append("--check")
    with tempfile.TemporaryDirectory() as tree:
        e = _env(env)
        e.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
                 ANSIBLE_CALLBACK_TREE_DIR=tree)
        proc = subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout, check=False)
        results = {}
        for host in os.listdir(tree):
            with open(os.path.join(tree, host)) as f:
                results[host] = json.load(f)
    if not results:
        raise AssertionError("ansible returned no results (rc=%s):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return results, proc


def playbook(inventory, playbook_path, extra_vars=None, env=None, timeout=900, check=False):
    """Run ``ansible-playbook`` with the default callback; return the completed process.

    ``extra_vars``: a dict (passed as JSON) or a ``key=value`` string (values are strings, as typed).
    """
    cmd = [ansible_bin("ansible-playbook"), "-i", inventory, playbook_path]
    if extra_vars:
        cmd += ["-e", extra_vars if isinstance(extra_vars, str) else json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    e = dict(os.environ, ANSIBLE_RETRY_FILES_ENABLED="0")
    e.update(env or {})
    return subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout, check=False)
