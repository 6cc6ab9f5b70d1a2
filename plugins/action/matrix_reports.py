# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes the matrix role's reports on the controller in one task (documentation: modules/matrix_reports.py).

The matrix role's ``reports`` entry point used a dozen tasks for this,
several of them module runs on localhost (a fresh Python each) and one a
``set_fact`` of the rendered matrix.json, which ansible-core 2.19 walks
whole. Here it is one Python call: render everything first, then create the
directory, keep the previous ``matrix.json`` and replace each report
atomically (a temporary file in the same directory, then a rename), so a
run killed at any moment leaves each report either old and whole or new and
whole. A render error writes nothing.

The matrix, plan and schedule are read from the task's variables, not from
its arguments: ansible-core finalizes templated arguments element by element
(seconds for the matrix of a few hundred hosts).
"""

import datetime
import os
import stat
import tempfile
import time

from ansible.errors import AnsibleActionFail, AnsibleError

from ansible_collections.vfio.migration.plugins.filter.report import host_versions
from ansible_collections.vfio.migration.plugins.plugin_utils import _drift as D
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from ansible_collections.vfio.migration.plugins.plugin_utils._controller_action import ControllerAction, play_variable
from ansible_collections.vfio.migration.plugins.plugin_utils._data import plain

NAME = "vfio.migration.matrix_reports"
# format -> file name; changes.json comes with json
FILES = {"json": "matrix.json", "csv": "matrix.csv", "md": "matrix.md", "html": "report.html",
         "changes": "changes.json"}
LAST = "matrix.json"
KEPT = "matrix.previous.json"
FILE_MODE = 0o644
DIR_MODE = 0o755
STALE_SECONDS = 600  # a temporary report file this old was left by a killed run: writing one takes far less
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

ARGUMENT_SPEC = {
    "dir": {"type": "path", "required": True},
    "formats": {"type": "list", "elements": "str", "choices": ["json", "csv", "md", "html"],
                "default": ["json", "csv", "md", "html"]},
    "cell_limit": {"type": "raw", "default": R.DEFAULT_CELL_LIMIT},
    "timestamp": {"type": "bool", "default": True},
    "hosts": {"type": "list", "elements": "str"},
    "previous_matrix": {"type": "path", "default": ""},
    "previous_path": {"type": "str"},
    "previous_same": {"type": "bool", "default": False},
}


def cell_limit_arg(value):
    """``value`` as a non-negative integer (numeric strings too, as the report filters take it)."""
    try:
        if isinstance(value, bool):
            raise TypeError("a boolean")
        limit = int(value)
    except (TypeError, ValueError):
        limit = -1
    if limit < 0:
        raise AnsibleActionFail("%s: cell_limit must be a non-negative integer, not %r" % (NAME, value))
    return limit


def read_bytes(path):
    """The file's bytes, or None when there is no such file."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_previous(path):
    """The text of the matrix.json at ``path`` to compare with, or None for no path."""
    if not path:
        return None
    data = read_bytes(path)
    if data is None:
        raise AnsibleActionFail("%s: the matrix to compare with, %s, does not exist" % (NAME, path))
    return data.decode("utf-8")


def needs_write(path, data):
    """Would writing ``data`` with mode 0644 to ``path`` change anything (what ansible.builtin.copy reports)?"""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return True
    return mode != FILE_MODE or read_bytes(path) != data


def temporaries(directory, name):
    """The temporary files ``write_atomically`` makes for ``name`` in ``directory``."""
    prefix = ".%s." % name
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, e) for e in entries if e.startswith(prefix) and e.endswith(".tmp")]


def remove_stale_temporaries(directory, name, now):
    """Remove what a killed run left of its temporary files for ``name``: those older than STALE_SECONDS.

    A younger one may belong to a run writing at this moment, so it stays.
    """
    for path in temporaries(directory, name):
        try:
            if now - os.lstat(path).st_mtime > STALE_SECONDS:
                os.unlink(path)
        except OSError:  # gone meanwhile, or not ours to remove
            pass


def write_atomically(path, data):
    """Replace ``path`` with ``data`` (mode 0644): a temporary file beside it, then a rename."""
    directory, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(prefix=".%s." % name, suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def make_directory(path, check_mode):
    """Create ``path`` and any missing parent with mode 0755, as ansible.builtin.file does; return whether it changed.

    An existing directory gets mode 0755 too. In check mode nothing is touched.
    """
    missing = []
    current = path
    while not os.path.isdir(current):
        if os.path.lexists(current):
            raise AnsibleActionFail("%s: %s is not a directory" % (NAME, current))
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    changed = bool(missing) or stat.S_IMODE(os.stat(path).st_mode) != DIR_MODE
    if check_mode or not changed:
        return changed
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else
            if not os.path.isdir(directory):
                raise
        os.chmod(directory, DIR_MODE)  # whatever the umask
    os.chmod(path, DIR_MODE)
    return True


def choose_previous(real_dir, rendered_json, formats, previous_matrix, check_mode):
    """What this play's reports are compared with: ``(previous_path, same, rotate, last_bytes)``.

    The ``matrix.json`` in the directory is the previous run's; when this run's is
    byte-identical (nothing changed, timestamps off) the comparison that run made
    stands: ``matrix.previous.json``, so re-runs are idempotent. Otherwise, when
    json is written, the previous run's is kept as ``matrix.previous.json``
    (``rotate``) and compared with; in check mode, or without json, it is compared
    where it is. ``previous_matrix`` overrides what is compared with, not the rotation.
    """
    last_path, kept_path = os.path.join(real_dir, LAST), os.path.join(real_dir, KEPT)
    last = read_bytes(last_path)
    same = last is not None and last == rendered_json
    changed = last is not None and not same
    rotate = changed and "json" in formats
    if previous_matrix:
        path = os.path.realpath(previous_matrix)
    elif same and os.path.exists(kept_path):
        path = kept_path
    elif rotate and not check_mode:
        path = kept_path
    elif changed:
        path = last_path
    else:
        path = ""
    return path, same, rotate, last


def write_reports(report_dir, rendered, items, rotation, check_mode):
    """Create the directory, keep the previous matrix.json (``rotation``: its bytes, or None) and write ``items``.

    Returns whether anything changed (in check mode: would change); check mode writes nothing.
    """
    changed = make_directory(report_dir, check_mode)
    writes = [(KEPT, rotation)] if rotation is not None else []
    writes += [(FILES[item], rendered[item].encode("utf-8")) for item in items]
    now = time.time()
    for name, data in writes:
        path = os.path.join(report_dir, name)
        if not check_mode:
            remove_stale_temporaries(report_dir, name, now)
        if needs_write(path, data):
            changed = True
            if not check_mode:
                write_atomically(path, data)
    return changed


class ActionModule(ControllerAction):
    """Renders the reports of ``vfio_migration_matrix`` and writes them on the controller."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars):
        try:
            return self._reports(args, task_vars, bool(self._task.check_mode))
        except (ValueError, TypeError, KeyError) as exc:
            raise AnsibleActionFail("%s: %s" % (NAME, exc)) from exc
        except OSError as exc:
            raise AnsibleActionFail("%s: could not write the reports: %s" % (NAME, exc)) from exc

    def _variable(self, task_vars, name, required=False):
        """A play variable as plain data: a string is templated, anything else is taken as stored (not walked)."""
        if name not in task_vars:
            if required:
                raise AnsibleActionFail("%s: %s is not defined (run the vfio.migration.matrix role first, or load a "
                                        "matrix.json into it)" % (NAME, name))
            return None
        return plain(play_variable(self._templar, task_vars, name))

    def _host_versions(self, args, task_vars):
        hosts = args["hosts"] or plain(task_vars.get("ansible_play_hosts_all")) or []
        try:
            return host_versions(task_vars.get("hostvars") or {}, hosts)
        except AnsibleError as exc:
            raise AnsibleActionFail(str(exc)) from exc

    def _reports(self, args, task_vars, check_mode):
        if not args["dir"]:
            raise AnsibleActionFail("%s: dir must name the report directory" % NAME)
        limit = cell_limit_arg(args["cell_limit"])
        formats = list(args["formats"])
        matrix = self._variable(task_vars, "vfio_migration_matrix", required=True)
        plan = self._variable(task_vars, "vfio_migration_plan") or None
        schedule = self._variable(task_vars, "vfio_migration_schedule") or None
        generated = (datetime.datetime.now(datetime.timezone.utc).strftime(STAMP_FORMAT)
                     if args["timestamp"] else None)
        versions = self._host_versions(args, task_vars)

        # everything is read, rendered and compared before anything is written
        rendered = {"json": R.render_json(matrix, plan, generated, cell_limit=limit, host_versions=versions,
                                          schedule=schedule)}
        real_dir = os.path.realpath(args["dir"])
        if args["previous_path"] is None:  # the first call of this play chooses, and rotates
            previous_path, same, rotate, last = choose_previous(
                real_dir, rendered["json"].encode("utf-8"), formats, args["previous_matrix"], check_mode)
        else:
            previous_path, same, rotate, last = args["previous_path"], args["previous_same"], False, None
        if rotate and previous_path == os.path.join(real_dir, KEPT):
            previous = last.decode("utf-8")  # what the rotation keeps there
        else:
            previous = read_previous(previous_path)
        changes = D.matrix_changes(previous, matrix, plan, versions)
        if "csv" in formats:
            rendered["csv"] = R.render_csv(matrix, cell_limit=limit)
        if "md" in formats:
            rendered["md"] = R.render_markdown(matrix, plan, generated, schedule=schedule)
        if "html" in formats:
            rendered["html"] = R.render_html(matrix, plan, generated, changes=changes, schedule=schedule)
        rendered["changes"] = D.render_changes(changes)
        items = formats + (["changes"] if "json" in formats else [])

        changed = write_reports(args["dir"], rendered, items, last if rotate else None, check_mode)
        return {"changed": changed, "written": [] if check_mode else [FILES[item] for item in items],
                "changes": changes, "previous_path": previous_path, "previous_same": same, "generated": generated,
                "host_versions": versions, "dir": real_dir}
