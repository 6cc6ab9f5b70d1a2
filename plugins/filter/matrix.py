# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet filters: probe batches, the compatibility matrix, targets and drain plans.

Documentation of each filter is in the YAML file of the same name beside
this one (``ansible-doc -t filter vfio.migration.compat_matrix``). The
filters that take ``hostvars`` read it through
``plugin_utils._ansible_internals.host_values``, the one place that knows how
ansible-core keeps host variables.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix
from ansible_collections.vfio.migration.plugins.plugin_utils import _policy
from ansible_collections.vfio.migration.plugins.plugin_utils._ansible_internals import host_values
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain, view

# the module's fact (ansible_facts.vfio_mdev); fixed by vfio.migration.mdev_facts
FACTS_VAR = "vfio_mdev"
# Where the roles and playbooks put what the filters read; each filter takes
# other names as arguments (facts_result_var, probe_result_var, gather_state_var).
FACTS_RESULT_VAR = "vfio_migration_facts_result"  # the facts role's registered mdev_facts result
PROBE_RESULT_VAR = "vfio_migration_probe_result"  # the matrix role's registered migration_probe result
GATHER_STATE_VAR = "vfio_migration_gather_state"  # how gathering went, cached by playbooks/gather.yml
# what a host missing from hostvars counts as: gathering that did not happen
NOT_IN_HOSTVARS = {"skipped": True, "msg": "not in hostvars"}


def _unreadable(facts):
    """Why facts say nothing about a host's devices (its sysfs_root could not be read), else None."""
    errors = facts.get("errors") if isinstance(facts, dict) else None
    for e in errors or []:
        if isinstance(e, dict) and e.get("what") == "sysfs_root":
            return "nothing could be read: sysfs_root %s: %s" % (e.get("path"), e.get("message") or e.get("errno_name"))
    return None


def gather_state(result, facts=None, cached=None):
    """How fact gathering went on a host: ``{state, reason}`` from its registered mdev_facts result.

    Without a registered result, the state a sliced run kept in the fact cache
    (``cached``) says it; failing that (facts gathered some other way, e.g.
    through ``facts_modules``), a host with ``vfio_mdev`` facts is ``ok``.
    Facts whose sysfs root could not be read at all are ``failed``.
    """
    if not isinstance(result, dict):
        if isinstance(cached, dict) and cached.get("state") in ("ok", "unreachable", "failed", "unknown"):
            if cached["state"] != "ok" or facts:
                return {"state": cached["state"], "reason": cached.get("reason")}
        if facts:
            why = _unreadable(facts)
            return {"state": "failed", "reason": why} if why else {"state": "ok", "reason": None}
        return {"state": "unknown", "reason": "facts were not gathered"}
    if result.get("unreachable"):
        return {"state": "unreachable", "reason": str(result.get("msg") or "host unreachable")[:500]}
    if "timedout" in result:
        return {"state": "failed", "reason": _matrix.timed_out("fact gathering", result)}
    if FACTS_VAR in (result.get("ansible_facts") or {}):
        # a missing or mistyped sysfs root lists no devices: that host is not known to have none
        why = _unreadable(result["ansible_facts"][FACTS_VAR])
        if why:
            return {"state": "failed", "reason": why}
        if result.get("failed"):
            # discovery worked and its facts are usable; what failed after it (the fact file) is kept
            return {"state": "ok", "reason": "facts gathered, but the module failed: %s"
                    % str(result.get("msg") or "no message")[:500]}
        return {"state": "ok", "reason": None}
    if result.get("skipped"):
        return {"state": "unknown", "reason": str(result.get("msg") or "fact gathering was skipped")[:500]}
    return {"state": "failed", "reason": str(result.get("msg") or "fact gathering failed")[:500]}


def _check_hosts(hosts):
    if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) for h in hosts):
        raise AnsibleFilterError("hosts must be a list of inventory host names")


def _check_names(name, **names):
    for arg, value in names.items():
        if not isinstance(value, str) or not value:
            raise AnsibleFilterError("%s: %s must be a variable name, not %r" % (name, arg, value))


def _raw_hosts(hostvars, hosts, facts_result_var, probe_result_var, gather_state_var):
    """``(host, registered facts result, vfio_mdev facts, probe result, cached gathering state)`` per host."""
    _check_hosts(hosts)
    names = (facts_result_var, probe_result_var, gather_state_var)
    for host, values in host_values(hostvars, hosts, variables=names, facts=(FACTS_VAR,),
                                    anchor=facts_result_var):
        if values is None:
            yield host, NOT_IN_HOSTVARS, None, None, None
        else:
            yield host, values[facts_result_var], values[FACTS_VAR], values[probe_result_var], \
                values[gather_state_var]


def host_inputs(hostvars, hosts, facts_result_var=FACTS_RESULT_VAR, probe_result_var=PROBE_RESULT_VAR,
                gather_state_var=GATHER_STATE_VAR, name="compat_matrix"):
    """Extract what the matrix needs from ``hostvars`` for ``hosts``."""
    _check_names(name, facts_result_var=facts_result_var, probe_result_var=probe_result_var,
                 gather_state_var=gather_state_var)
    out = {}
    raw = _raw_hosts(hostvars, hosts, facts_result_var, probe_result_var, gather_state_var)
    for host, registered, facts, probe, cached in raw:
        state = gather_state(registered, facts, cached)
        out[host] = {"state": state["state"], "reason": state["reason"],
                     "facts": plain(facts) if state["state"] == "ok" else None, "probe": plain(probe)}
    return out


def gather_states(hostvars, hosts, facts_result_var=FACTS_RESULT_VAR, gather_state_var=GATHER_STATE_VAR):
    """``{host: {state, reason}}``: how fact gathering went on each host."""
    _check_names("gather_states", facts_result_var=facts_result_var, gather_state_var=gather_state_var)
    return {host: gather_state(registered, facts, cached)
            for host, registered, facts, dummy, cached
            in _raw_hosts(hostvars, hosts, facts_result_var, PROBE_RESULT_VAR, gather_state_var)}


def _hosts_arg(data, hosts, name, **names):
    if hosts is None:
        if isinstance(data, dict) and all(isinstance(v, dict) and "state" in v for v in data.values()):
            return plain(data)  # already host inputs
        raise AnsibleFilterError("%s: give the list of hosts: hostvars | vfio.migration.%s(ansible_play_hosts_all)"
                                 % (name, name))
    return host_inputs(data, hosts, name=name, **names)


def _matrix_arg(matrix, name):
    # read as stored: walking the lazy matrix of 1000 hosts costs seconds per filter call
    matrix = view(matrix)
    if not isinstance(matrix, dict) or matrix.get("schema_version") != _matrix.SCHEMA_VERSION or "verdicts" not in matrix:
        raise AnsibleFilterError("%s expects the output of vfio.migration.compat_matrix" % name)
    return matrix


def probe_batches(data, hosts=None, facts_result_var=FACTS_RESULT_VAR, gather_state_var=GATHER_STATE_VAR):
    """``{target_host: [checks]}``: one check per source version class the target offers."""
    return _matrix.probe_batches(_hosts_arg(data, hosts, "probe_batches", facts_result_var=facts_result_var,
                                            gather_state_var=gather_state_var))


def compat_matrix(data, hosts=None, policy=None, facts_result_var=FACTS_RESULT_VAR,
                  probe_result_var=PROBE_RESULT_VAR, gather_state_var=GATHER_STATE_VAR):
    """The source-class x target matrix from hostvars (facts, probe results, states)."""
    inputs = _hosts_arg(data, hosts, "compat_matrix", facts_result_var=facts_result_var,
                        probe_result_var=probe_result_var, gather_state_var=gather_state_var)
    try:
        return _matrix.compat_matrix(inputs, policy)
    except _policy.PolicyError as exc:
        raise AnsibleFilterError("compat_matrix: bad policy: %s" % exc)


def matrix_cells(matrix):
    """The matrix spread out per source host, parent, type and instances x target host, parent."""
    return _matrix.expand_cells(_matrix_arg(matrix, "matrix_cells"))


def migration_targets(matrix, source_host, device=None, mdev_type=None, exclude=None):
    """Compatible targets of a source host or instance, most free capacity first."""
    m = _matrix_arg(matrix, "migration_targets")
    if source_host not in m["hosts"]:
        raise AnsibleFilterError("migration_targets: %r is not a host of the matrix" % (source_host,))
    return _matrix.migration_targets(m, source_host, device=device, mdev_type=mdev_type, exclude=tuple(exclude or ()))


def drain_plan(matrix, drain_hosts):
    """Placements for every instance on the drained hosts, or why it is stranded."""
    if isinstance(drain_hosts, str):
        drain_hosts = [drain_hosts]
    if not isinstance(drain_hosts, (list, tuple)):
        raise AnsibleFilterError("drain_plan: drain_hosts must be a list of host names")
    return _matrix.drain_plan(_matrix_arg(matrix, "drain_plan"), list(drain_hosts))


def stranded_message(plan):
    """A readable list of every stranded instance and why."""
    return _matrix.stranded_message(plan)


class FilterModule(object):
    def filters(self):
        return {
            "gather_states": gather_states,
            "probe_batches": probe_batches,
            "compat_matrix": compat_matrix,
            "matrix_cells": matrix_cells,
            "migration_targets": migration_targets,
            "drain_plan": drain_plan,
            "stranded_message": stranded_message,
        }
