# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every use of ansible-core's private API in this collection, in one place.

Three shortcuts, each with the public way it falls back to when the private
attribute is missing or looks different. Both ways give the same answer for
the data this collection reads; the shortcut only saves time. Tested with
real ansible-core objects, both ways (``tests/unit/plugins/plugin_utils/test_ansible_internals.py``),
against the ansible-core that ``meta/runtime.yml`` requires (2.19).

:func:`host_values` - reading a few variables of many hosts from ``hostvars``
    Private: ``HostVars._variable_manager`` and that variable manager's
    ``_nonpersistent_fact_cache`` (a dict: host name -> what ``register`` and
    ``set_fact`` set) and ``_fact_cache`` (a cache plugin: host name -> the
    facts modules returned, ``.get(host)``).
    Public way: ``hostvars[host].get(name)``, which merges every variable
    source of the host and templates the value: most of what building a
    1000-host matrix costs.

:func:`stored` - the contents of a lazy container, not templated
    (and :func:`is_lazy`, whether a value is such a container)
    Private: ``type(value)._non_lazy_copy(value)`` (ansible-core 2.19's lazy
    dicts and lists, which template each element when it is read).
    Public way: reading the container element by element.

:func:`used_interpreter` - the interpreter a module was run with
    Private: ``ActionBase._used_interpreter`` (the AnsiballZ shebang).
    Public way: none; the caller says less without it.
"""

# The contract of host_values, for callers: values are returned as stored,
# so only ask it for variables that modules and set_fact made (results,
# facts), in which nothing is a template.


def _fact_caches(hostvars):
    """``(nonpersistent facts, fact cache)`` behind ``hostvars``, or None when either is missing."""
    manager = getattr(hostvars, "_variable_manager", None)
    nonpersistent = getattr(manager, "_nonpersistent_fact_cache", None)
    facts = getattr(manager, "_fact_cache", None)
    if not isinstance(nonpersistent, dict) or not callable(getattr(facts, "get", None)):
        return None
    return nonpersistent, facts


def _from_caches(caches, host, variables, facts, anchor):
    """The fast way for one host, or None when it does not apply to the host."""
    nonpersistent, fact_cache = caches
    registered = nonpersistent.get(host)
    if not isinstance(registered, dict) or anchor not in registered:
        return None
    try:
        host_facts = fact_cache.get(host) or {}
    except KeyError:  # cache plugins raise it for a host they never saw
        host_facts = {}
    if not hasattr(host_facts, "get"):
        return None
    values = {name: registered.get(name) for name in variables}
    values.update((name, host_facts.get(name)) for name in facts)
    return values


def _from_hostvars(hostvars, host, variables, facts):
    """The public way: the host's merged, templated variables."""
    try:
        if host not in hostvars:
            return None
        merged = hostvars[host]
    except (KeyError, TypeError):
        return None
    values = {name: merged.get(name) for name in variables}
    gathered = merged.get("ansible_facts") or {}
    values.update((name, gathered.get(name)) for name in facts)
    return values


def host_values(hostvars, hosts, variables=(), facts=(), anchor=None):
    """Yield ``(host, values)`` for each of ``hosts``, in order.

    ``values`` maps each name in ``variables`` to the host's variable of that
    name and each name in ``facts`` to ``ansible_facts[name]``, None where
    the host has none; ``values`` itself is None for a host that ``hostvars``
    does not know. ``hostvars`` is Ansible's ``hostvars`` or any mapping of
    host name to variables (the tests use plain dicts).

    Fast way, per host: when the variable manager's fact caches are there and
    the host's ``register``/``set_fact`` values include ``anchor`` (a
    variable this play registered, so the host's answers are in the caches),
    variables are read from those values and facts from the fact cache,
    untemplated. Otherwise (no ``anchor``, no caches, a plain mapping, a
    sliced run whose values come from a persistent fact cache) the host goes
    the public way, ``hostvars[host]``.

    The two ways agree for variables set by ``register`` or ``set_fact`` and
    facts returned by modules, which is what this collection reads. They
    differ where a source of higher precedence overrides such a variable for
    the host (extra vars, ``include_params``): the fast way does not see it.
    """
    variables, facts = tuple(variables), tuple(facts)
    caches = _fact_caches(hostvars) if anchor is not None else None
    for host in hosts:
        values = _from_caches(caches, host, variables, facts, anchor) if caches is not None else None
        if values is None:
            values = _from_hostvars(hostvars, host, variables, facts)
        yield host, values


def is_lazy(value):
    """Is ``value`` one of ansible-core's lazy containers (one :func:`stored` unwraps)?"""
    return getattr(type(value), "_non_lazy_copy", None) is not None


def stored(value):
    """A lazy container's stored contents, not templated; any other value unchanged.

    Strings stay as they are, so a ``{{ ... }}`` in module output or in a
    matrix stays text. Without the private copy, the caller walks the
    container, which for such data gives the same values, slower.
    """
    copy = getattr(type(value), "_non_lazy_copy", None)
    if copy is None:
        return value
    try:
        return copy(value)
    except Exception:  # pylint: disable=broad-exception-caught
        return value  # an ansible-core whose internal differs: read it element by element


def used_interpreter(action):
    """The interpreter (path and arguments) the action's last module ran with, or None when unknown."""
    shebang = getattr(action, "_used_interpreter", None)
    if not isinstance(shebang, str) or not shebang.strip("#! "):
        return None
    return shebang.lstrip("#!").strip()
