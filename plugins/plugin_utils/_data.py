# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain Python data from the values Ansible hands to a filter.

Since ansible-core 2.19 a variable reaches a filter as a lazy container that
templates each element when it is read. The filters of this collection read
facts, probe results and matrices: data that modules and filters made, in
which nothing is a template. Walking such a container element by element
costs a template call per element (about 3 s for the matrix of 1000 hosts,
once per report); :func:`plain` copies what the container stores instead
(:func:`_ansible_internals.stored`) and keeps every string as it is, so a
``{{ ... }}`` in data is text, never evaluated.

:func:`view` is the read-only way for large data, such as the matrix of a
fleet: it unwraps only the lazy containers on the way, which a variable that
is read for the first time in a task has one of (the variable itself), and
leaves everything else as Ansible stores it. The pure functions of
``plugin_utils`` never change their arguments, and a filter runs in a worker
process of its own task, so what it reads is shared, not copied.
"""

from ansible_collections.vfio.migration.plugins.plugin_utils._ansible_internals import is_lazy, stored


_SCALARS = frozenset((str, int, float, bool, type(None)))


def view(value):
    """``value`` to read, not to change: the lazy containers on the way unwrapped, everything else as stored.

    Costs one step per lazy container (in a variable read for the first time, only the
    variable itself), where :func:`plain` copies every element. Strings stay text.
    """
    if not is_lazy(value):
        return value
    unwrapped = stored(value)
    if is_lazy(unwrapped):  # an ansible-core whose internals differ: copy it the public way
        return plain(value)
    if isinstance(unwrapped, dict):
        for key, item in unwrapped.items():
            if is_lazy(item):
                unwrapped[key] = view(item)
    elif isinstance(unwrapped, list):
        for index, item in enumerate(unwrapped):
            if is_lazy(item):
                unwrapped[index] = view(item)
    return unwrapped


def plain(value):
    """``value`` as plain dicts, lists, str, int, float, bool and None (Ansible's tagged types dropped)."""
    kind = type(value)
    # Facts and results read from the fact caches are builtin containers: the fast way (no lookups)
    if kind is dict:
        return {key if key.__class__ is str else plain(key): plain(item) for key, item in value.items()}
    if kind is list:
        return [plain(item) for item in value]
    if kind in _SCALARS:
        return value
    value = stored(value)
    if isinstance(value, dict) or hasattr(value, "items") and not isinstance(value, (str, bytes)):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    # Ansible's tagged subclasses of str/int/float become the plain type
    if isinstance(value, str) and value.__class__ is not str:
        return str(value)
    if isinstance(value, int) and value.__class__ not in (int, bool):
        return int(value)
    if isinstance(value, float) and value.__class__ is not float:
        return float(value)
    return value
