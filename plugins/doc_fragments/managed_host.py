# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """What the modules share: the sysfs tree they work on, options read from variables, the managed host."""

    DOCUMENTATION = r"""
options:
  sysfs_root:
    description:
      - Where sysfs is mounted on the managed host. Point it at a copy or an emulated tree for tests.
    type: path
    default: /sys
  option_vars:
    description:
      - "Options to read from variables, each as the variable is stored: a mapping of an option's name to a
        variable's name, for example C({sysfs_root: vfio_migration_sysfs_root}). The action plugin reads them
        on the controller and runs the module with their values; the module never sees this option."
      - "The same as giving C(sysfs_root: '{{ vfio_migration_sysfs_root }}'), without the template that every
        host's task would compile for each such option (the roles use this; BENCHMARKS.md has the cost). A
        variable whose stored value is a string is templated, so a variable that refers to others still works;
        one whose value is C(omit) leaves its option as it would be without it."
      - Any option of the module but O(option_vars) itself (and the probe's C(checks) and C(batches_var)). An
        option named here takes its variable's value over what the task or C(module_defaults) give it, as a
        templated option in the task would. Every variable named must be defined; otherwise, or for an option
        that cannot be named, the task fails on the controller and the module does not run.
    type: dict
    version_added: 0.2.0
requirements:
  - Python 3.8 or later on the managed host (the oldest Python ansible-core 2.19 runs modules on). An older one
    fails with a message saying so.
attributes:
  platform:
    support: full
    platforms: posix
    description: Linux hosts with sysfs; any POSIX host for test trees.
notes:
  - Runs with the Python standard library only.
"""
