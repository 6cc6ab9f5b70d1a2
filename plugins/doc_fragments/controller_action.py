# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """What the modules done by their action plugin on the controller alone share (each says its check mode)."""

    DOCUMENTATION = r"""
attributes:
  action:
    support: full
    details: Everything is done by the action plugin on the controller.
  async:
    support: none
  bypass_host_loop:
    support: none
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Runs on the controller only, whatever host the task runs for; it connects to no host.
"""
