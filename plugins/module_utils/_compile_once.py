# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Importing this makes Python compile the collection's other ``module_utils`` once per module run, not twice.

A module runs from the AnsiballZ zip, which holds source only, and Python's
``zipimport`` compiles a module's source twice when it imports it: once in
``get_filename``, only to learn the name of the file the code would come from,
and again in ``get_code`` to run it (CPython issue gh-141276, every version to
date). For the probe that is about 4 ms of CPU per host and run, a few per cent
of its module process. ``mdev_facts`` and ``migration_probe`` import this first.

Only the zip importer of this package's own directory is changed, and only
inside the module process: ``get_filename`` keeps the code it compiled and
``get_code`` hands that code over instead of compiling again. Anywhere else
(a unit test importing from a checkout, a controller plugin) nothing changes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from zipimport import zipimporter
except ImportError:  # pragma: no cover - zipimport is part of every CPython
    zipimporter = None


def compile_once(loader):
    """Make ``loader`` (a ``zipimporter``) compile each module it loads once; return whether it did."""
    if zipimporter is None or not isinstance(loader, zipimporter) or getattr(loader, "_vfio_compile_once", False):
        return False
    compiled = {}
    get_code, get_filename = loader.get_code, loader.get_filename

    def filename_of(fullname):
        code = get_code(fullname)
        origin = getattr(code, "co_filename", "")
        if not origin.startswith(loader.archive):  # byte code compiled elsewhere names another file
            return get_filename(fullname)
        compiled[fullname] = code
        return origin

    def code_of(fullname):
        code = compiled.pop(fullname, None)
        return code if code is not None else get_code(fullname)

    try:
        loader.get_filename, loader.get_code = filename_of, code_of
        loader._vfio_compile_once = True  # pylint: disable=protected-access
    except (AttributeError, TypeError):  # an importer whose methods cannot be set compiles as before
        return False
    return True


compile_once(getattr(__spec__, "loader", None))
