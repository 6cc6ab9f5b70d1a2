# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Version filters: decode migration version strings, read and match the key=value layout.

Documentation of each filter is in the YAML file of the same name beside
this one (``ansible-doc -t filter vfio.migration.decode_version``).
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.module_utils._version import parse_kv_blocks
from ansible_collections.vfio.migration.plugins.plugin_utils._compatible import (
    TemplateError,
    compatible_match as _compatible_match,
    parse_compatible,
)
from ansible_collections.vfio.migration.plugins.plugin_utils._decode import (
    VersionError,
    decode_version as _decode_version,
)


def decode_version(text):
    """Split a ``version`` string into vendor id, VFIO device API and vendor fields."""
    try:
        return _decode_version(text)
    except VersionError as exc:
        raise AnsibleFilterError("decode_version: %s" % exc)


def parse_migration_layout(text, templates=False):
    """``key=value`` text (``migration/self`` or ``migration/compatible``) as a list of dicts.

    With ``templates=true`` the blocks are returned with their templates
    parsed (the structure ``parse_compatible`` documents).
    """
    if not isinstance(text, str):
        raise AnsibleFilterError("parse_migration_layout: input must be key=value text, not %s"
                                 % type(text).__name__)
    try:
        if templates:
            return parse_compatible(str(text))
        return parse_kv_blocks(str(text))
    except ValueError as exc:
        raise AnsibleFilterError("parse_migration_layout: %s" % exc)


def compatible_match(self_block, compatible):
    """Match a source's ``migration/self`` against a target's ``migration/compatible``."""
    try:
        return _compatible_match(self_block, compatible)
    except TemplateError as exc:
        raise AnsibleFilterError("compatible_match: %s" % exc)


class FilterModule(object):
    """vfio.migration version and layout filters."""

    def filters(self):
        return {
            "decode_version": decode_version,
            "parse_migration_layout": parse_migration_layout,
            "compatible_match": compatible_match,
        }
