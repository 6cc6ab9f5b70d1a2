"""ansible-core's private API, used only by plugin_utils._ansible_internals: both ways, with real objects.

The fast way (the variable manager's fact caches behind ``hostvars``) and the
public way (``hostvars[host]``, the full variable merge) must give the same
matrix; the fast way must really skip ``hostvars[host]`` where it applies,
and a host it does not apply to must still be read. The objects are
ansible-core's own (InventoryManager, VariableManager, HostVars), filled the
way a play fills them (``set_host_facts`` for module facts,
``set_nonpersistent_facts`` for ``register``), and one test runs
ansible-playbook twice over a jsonfile fact cache so that one host is read
each way in the same task.
"""

import collections.abc
import json
import os
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

from ansible_collections.vfio.migration.plugins.filter import matrix as F
from ansible_collections.vfio.migration.plugins.plugin_utils import _ansible_internals as I
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from tests.conftest import COLLECTIONS, ansible_bin
from tests.unit.plugins.plugin_utils.test_report import small_hosts


def _registered(inputs):
    """What the roles register for each host: the mdev_facts and migration_probe results."""
    out = {}
    for host, h in inputs.items():
        if h["state"] == "ok":
            result = {"changed": False, "ansible_facts": {"vfio_mdev": h["facts"]}}
        else:
            result = {"unreachable": True, "msg": h["reason"], "changed": False}
        out[host] = {"facts": result, "probe": h["probe"]}
    return out


def real_hostvars(inputs, register=True, names=(F.FACTS_RESULT_VAR, F.PROBE_RESULT_VAR)):
    """ansible-core's HostVars over an inventory of ``inputs``' hosts, filled as a play would fill it."""
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[",".join(inputs) + ","])
    manager = VariableManager(loader=loader, inventory=inventory)
    hostvars = HostVars(inventory=inventory, variable_manager=manager, loader=loader)
    for host, reg in _registered(inputs).items():
        if "ansible_facts" in reg["facts"]:
            manager.set_host_facts(host, dict(reg["facts"]["ansible_facts"]))
        if register:
            manager.set_nonpersistent_facts(host, {names[0]: reg["facts"], names[1]: reg["probe"]})
    return hostvars


class PublicOnly(collections.abc.Mapping):
    """A hostvars that offers only the Mapping interface: the caches behind it are out of reach."""

    def __init__(self, hostvars):
        self._hostvars = hostvars

    def __getitem__(self, host):
        return self._hostvars[host]

    def __contains__(self, host):
        return host in self._hostvars

    def __iter__(self):
        return iter(self._hostvars)

    def __len__(self):
        return len(self._hostvars)


@pytest.fixture
def lookups(monkeypatch):
    """Count ``HostVars[host]`` lookups (the public way) per host."""
    seen = []
    original = HostVars.__getitem__

    def counting(self, host):
        seen.append(host)
        return original(self, host)

    monkeypatch.setattr(HostVars, "__getitem__", counting)
    return seen


def test_the_fast_way_reads_the_caches_and_gives_the_public_way_s_matrix(lookups):
    inputs = small_hosts()
    hosts = sorted(inputs)
    expected = M.compat_matrix(inputs)
    fast = F.compat_matrix(real_hostvars(inputs), hosts)
    assert lookups == []  # not one host went through hostvars[host]
    public = F.compat_matrix(PublicOnly(real_hostvars(inputs)), hosts)
    assert sorted(lookups) == hosts  # every host went through it, once
    assert fast == public == expected
    assert F.compat_matrix(_plain_hostvars(inputs), hosts) == expected


def _plain_hostvars(inputs):
    """hostvars as plain dicts, the shape the tests and callers without Ansible use."""
    return {host: {F.FACTS_RESULT_VAR: reg["facts"], F.PROBE_RESULT_VAR: reg["probe"],
                   "ansible_facts": reg["facts"].get("ansible_facts", {})}
            for host, reg in _registered(inputs).items()}


def test_a_host_without_a_registered_result_goes_the_public_way(lookups):
    """Facts from elsewhere (facts_modules, a persistent fact cache): only that host is looked up."""
    inputs = small_hosts()
    hostvars = real_hostvars(inputs)
    manager = hostvars._variable_manager
    manager._nonpersistent_fact_cache.pop("b")  # b's facts are only in the fact cache now
    manager.set_nonpersistent_facts("b", {F.PROBE_RESULT_VAR: inputs["b"]["probe"]})
    states = F.gather_states(hostvars, sorted(inputs))
    assert lookups == ["b"]
    assert states["b"] == {"state": "ok", "reason": None}  # facts present, gathered some other way
    assert F.compat_matrix(hostvars, sorted(inputs)) == M.compat_matrix(inputs)


def test_the_cached_gathering_state_is_read_the_public_way():
    """A sliced run's report phase: no registered result anywhere, states from the fact cache."""
    inputs = small_hosts()
    hostvars = real_hostvars(inputs, register=False)
    manager = hostvars._variable_manager
    manager.set_host_facts("down", {F.GATHER_STATE_VAR: {"state": "unreachable", "reason": "cached: no route"}})
    manager.set_host_facts("a", {F.GATHER_STATE_VAR: {"state": "ok", "reason": "cached: gathered"}})
    states = F.gather_states(hostvars, sorted(inputs))
    assert states["down"] == {"state": "unreachable", "reason": "cached: no route"}
    assert states["a"] == {"state": "ok", "reason": "cached: gathered"}
    assert states["b"] == {"state": "ok", "reason": None}


def test_variable_names_are_arguments(lookups):
    """The filters read the names they are given; the defaults are the roles' register names."""
    inputs = small_hosts()
    hosts = sorted(inputs)
    renamed = real_hostvars(inputs, names=("my_facts", "my_probe"))
    got = F.compat_matrix(renamed, hosts, None, facts_result_var="my_facts", probe_result_var="my_probe")
    assert lookups == [] and got == M.compat_matrix(inputs)
    assert F.probe_batches(renamed, hosts, facts_result_var="my_facts") == M.probe_batches(inputs)
    assert F.gather_states(renamed, hosts, facts_result_var="my_facts")["down"]["state"] == "unreachable"
    # under the default names nothing is registered: facts still count, the down host and the probes are lost
    default = F.compat_matrix(renamed, hosts)
    assert default["hosts"]["down"]["state"] == "unknown"
    assert not any(h.get("probed") for h in default["hosts"].values())


@pytest.mark.parametrize("bad", [None, "", 3, ["x"]])
def test_a_variable_name_must_be_a_name(bad):
    with pytest.raises(AnsibleFilterError, match="compat_matrix: probe_result_var must be a variable name"):
        F.compat_matrix({}, [], None, probe_result_var=bad)
    with pytest.raises(AnsibleFilterError, match="gather_states: facts_result_var must be a variable name"):
        F.gather_states({}, [], facts_result_var=bad)


def test_a_host_hostvars_does_not_know_is_unknown(lookups):
    inputs = small_hosts()
    states = F.gather_states(real_hostvars(inputs), ["a", "elsewhere"])
    assert states["elsewhere"] == {"state": "unknown", "reason": "not in hostvars"}
    assert lookups == []  # a known host went the fast way; the unknown one was never looked up
    assert F.gather_states({"a": {}}, ["elsewhere"]) == {"elsewhere": states["elsewhere"]}  # plain dicts too


def test_the_private_attributes_this_relies_on_are_there():
    """A canary for a new ansible-core: the shortcuts still find what they read (else only speed is lost)."""
    hostvars = real_hostvars(small_hosts())
    assert I._fact_caches(hostvars) is not None
    from ansible._internal._templating._lazy_containers import _AnsibleLazyTemplateDict, _AnsibleLazyTemplateList
    assert callable(getattr(_AnsibleLazyTemplateDict, "_non_lazy_copy", None))
    assert callable(getattr(_AnsibleLazyTemplateList, "_non_lazy_copy", None))


def test_stored_falls_back_to_the_value_itself():
    class Lazy(dict):
        @staticmethod
        def _non_lazy_copy(value):
            return {"copied": True}

    class Broken(dict):
        @staticmethod
        def _non_lazy_copy(value):
            raise RuntimeError("internal changed")

    assert I.stored(Lazy(a=1)) == {"copied": True}
    broken = Broken(a=1)
    assert I.stored(broken) is broken
    assert I.stored([1]) == [1] and I.stored("{{ x }}") == "{{ x }}"


GATHER = """
- name: Gather every host and keep how it went in the fact cache
  hosts: all
  gather_facts: false
  tasks:
    - vfio.migration.mdev_facts:
        sysfs_root: "{{ tree }}"
        host_root: "{{ tree }}"
        use_udev: false
        query_qemu: false
        check_vfio_capability: never
      register: my_facts
    - ansible.builtin.set_fact:
        my_state: {state: ok, reason: "{{ 'kept in the cache by run 1' }}"}
        cacheable: true
"""

READ = """
- name: Gather one host again, registering its result in this run
  hosts: fast
  gather_facts: false
  tasks:
    - vfio.migration.mdev_facts:
        sysfs_root: "{{ tree }}"
        host_root: "{{ tree }}"
        use_udev: false
        query_qemu: false
        check_vfio_capability: never
      register: my_facts

- name: Read both hosts in one filter call
  hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0644"
        content: >-
          {{ {'states': hostvars | vfio.migration.gather_states(ansible_play_hosts_all, facts_result_var='my_facts',
                                                                gather_state_var='my_state'),
              'matrix': hostvars | vfio.migration.compat_matrix(ansible_play_hosts_all, none,
                                                                facts_result_var='my_facts',
                                                                probe_result_var='my_probe',
                                                                gather_state_var='my_state'),
              'versions': hostvars | vfio.migration.host_versions(ansible_play_hosts_all, 'my_facts', 'my_state')}
             | to_json }}
      delegate_to: localhost
      run_once: true

    - name: The same matrix from the compat_matrix action, registered
      vfio.migration.compat_matrix:
        facts_result_var: my_facts
        probe_result_var: my_probe
        gather_state_var: my_state
      register: action_matrix
      run_once: true

    - name: A policy with an unknown key fails the action, naming it
      vfio.migration.compat_matrix:
        policy: {driver_versions: any}
      register: bad_policy
      ignore_errors: true
      run_once: true

    - ansible.builtin.copy:
        dest: "{{ out }}.action"
        mode: "0644"
        content: "{{ {'matrix': action_matrix, 'bad_policy': bad_policy} | to_json }}"
      delegate_to: localhost
      run_once: true
"""


@pytest.mark.ansible
def test_ansible_playbook_reads_a_registered_host_and_a_cached_host_in_one_call(tmp_path):
    """Run 1 gathers both hosts into a jsonfile fact cache; run 2 registers only ``fast``.

    In run 2, ``fast`` has its registered result (the fast way) and ``slow`` only
    what the fact cache kept (the public way, which reads the cached state).
    """
    for host in ("fast", "slow"):
        (tmp_path / host).mkdir()
    inventory = {"all": {"hosts": {h: {"tree": str(tmp_path / h)} for h in ("fast", "slow")},
                         "vars": {"ansible_connection": "local", "out": str(tmp_path / "out.json")}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "gather.yml").write_text(GATHER)
    (tmp_path / "read.yml").write_text(READ)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "cache"), ANSIBLE_RETRY_FILES_ENABLED="0")
    for play in ("gather.yml", "read.yml"):
        proc = subprocess.run([ansible_bin("ansible-playbook"), "-v", "-i", "hosts.json", play], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["states"] == {"fast": {"state": "ok", "reason": None},
                             "slow": {"state": "ok", "reason": "kept in the cache by run 1"}}
    assert {h: s["state"] for h, s in got["matrix"]["hosts"].items()} == {"fast": "ok", "slow": "ok"}
    assert got["matrix"]["hosts"]["slow"]["reason"] == "kept in the cache by run 1"
    assert sorted(got["versions"]) == ["fast", "slow"]
    # the action builds the same matrix, both ways of reading included; registering adds Ansible's two keys
    action = json.loads((tmp_path / "out.json.action").read_text())
    registered = action["matrix"]
    assert registered.pop("changed") is False and registered.pop("failed") is False
    assert registered == got["matrix"]
    bad = action["bad_policy"]
    assert bad["failed"] is True and "schema_version" not in bad
    assert bad["msg"].startswith("vfio.migration.compat_matrix: bad policy: ") and "driver_versions" in bad["msg"]
    # callbacks get no matrix (register keeps it whole, as above), but a failure in full
    out = proc.stdout
    built = out[out.index("TASK [The same matrix from the compat_matrix action"):].split("TASK [", 2)[1]
    assert "ok: [fast]" in built and "verdicts" not in built
    failed = out[out.index("TASK [A policy with an unknown key"):].split("TASK [", 2)[1]
    assert "vfio.migration.compat_matrix: bad policy: " in failed and "censored" not in failed


@pytest.mark.ansible
def test_the_documented_names_are_the_filters_defaults():
    """ansible-doc (with the vfio.migration.hostvars fragment) shows each filter's real defaults."""
    import inspect

    from ansible_collections.vfio.migration.plugins.filter import report as R
    filters = {"gather_states": F.gather_states, "probe_batches": F.probe_batches,
               "compat_matrix": F.compat_matrix, "host_versions": R.host_versions}
    proc = subprocess.run([ansible_bin("ansible-doc"), "-t", "filter", "--json"]
                          + ["vfio.migration." + name for name in filters],
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS), capture_output=True, text=True,
                          timeout=300, check=True)
    docs = json.loads(proc.stdout)
    for name, function in filters.items():
        options = docs["vfio.migration." + name]["doc"]["options"]
        defaults = {p.name: p.default for p in inspect.signature(function).parameters.values()
                    if p.name.endswith("_var")}
        assert defaults and {k: options[k]["default"] for k in defaults} == defaults, name
        assert set(o for o in options if o.endswith("_var")) == set(defaults), name
    # the compat_matrix action documents the same names and defaults as the filter it runs
    from ansible_collections.vfio.migration.plugins.action import compat_matrix as A
    proc = subprocess.run([ansible_bin("ansible-doc"), "-t", "module", "--json", "vfio.migration.compat_matrix"],
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS), capture_output=True, text=True,
                          timeout=300, check=True)
    options = json.loads(proc.stdout)["vfio.migration.compat_matrix"]["doc"]["options"]
    assert set(options) == set(A.ARGUMENT_SPEC)
    for name, spec in A.ARGUMENT_SPEC.items():
        assert options[name].get("default") == spec.get("default") and options[name]["type"] == spec["type"], name


def test_a_host_whose_sysfs_root_could_not_be_read_is_failed_not_empty():
    """A mistyped or missing sysfs root lists no devices: the host is not known to have none."""
    inputs = small_hosts()
    hosts = sorted(inputs)
    hostvars = _plain_hostvars(inputs)
    facts = dict(hostvars["b"]["ansible_facts"]["vfio_mdev"], parents={}, devices={}, errors=[
        {"errno": 2, "errno_name": "ENOENT", "message": "sysfs_root is not a directory", "path": "/nosuch/sys",
         "what": "sysfs_root"}])
    hostvars["b"][F.FACTS_RESULT_VAR] = {"changed": False, "ansible_facts": {"vfio_mdev": facts}}
    hostvars["b"]["ansible_facts"] = {"vfio_mdev": facts}
    reason = "nothing could be read: sysfs_root /nosuch/sys: sysfs_root is not a directory"
    assert F.gather_states(hostvars, hosts)["b"] == {"state": "failed", "reason": reason}
    # gathered some other way (facts_modules): the same
    del hostvars["b"][F.FACTS_RESULT_VAR]
    assert F.gather_states(hostvars, hosts)["b"] == {"state": "failed", "reason": reason}
    matrix = F.compat_matrix(hostvars, hosts)
    assert matrix["hosts"]["b"]["state"] == "failed"
    into_b = [v for per in matrix["verdicts"].values() for t, vs in per.items() if t == "b" for v in vs]
    assert into_b and {v["status"] for v in into_b} == {"unknown"}
