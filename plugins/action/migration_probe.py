# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs vfio.migration.migration_probe; a managed host whose Python is too old gets a message saying so (see _module_action)."""

from ansible_collections.vfio.migration.plugins.plugin_utils._module_action import ModuleAction


class ActionModule(ModuleAction):
    pass
