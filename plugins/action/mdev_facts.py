# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs vfio.migration.mdev_facts: its options read from variables (option_vars), and a message for a managed
host whose Python is too old (see _module_action)."""

from ansible_collections.vfio.migration.plugins.plugin_utils._module_action import ModuleAction


class ActionModule(ModuleAction):
    MODULE = "vfio.migration.mdev_facts"
    VAR_OPTIONS = ("sysfs_root", "host_root", "use_udev", "check_vfio_capability", "query_qemu", "persist_dir",
                   "persist")
