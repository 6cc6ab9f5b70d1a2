# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """What the modules share: the sysfs tree they work on and the managed host they run on."""

    DOCUMENTATION = r"""
options:
  sysfs_root:
    description:
      - Where sysfs is mounted on the managed host. Point it at a copy or an emulated tree for tests.
    type: path
    default: /sys
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
