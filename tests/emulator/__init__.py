"""FUSE sysfs emulator: vendor-driver answers to migration attribute writes.

``sysfs_emulator.py`` is the file system (run it as a script), ``rules.py``
the per-attribute rules, ``mount.py`` the helper tests and the demo use.
See README.md.
"""

from .mount import EmulatorMount, fuse_unavailable, read_write_log

__all__ = ["EmulatorMount", "fuse_unavailable", "read_write_log"]
