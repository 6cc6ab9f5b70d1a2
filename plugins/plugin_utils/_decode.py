# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decoding a migration ``version`` string on the controller (the 2019 `version` proposal, docs/proposals.md).

``decode_version`` splits ``<8 hex digits>[-<vendor part>]`` into the PCI
vendor id, the VFIO device API and the vendor's fields; ``looks_decodable``
says whether a string has that shape at all. The ``decode_version`` filter
(``plugins/filter/version.py``) is the user-facing side. Hosts never decode:
they only validate (``module_utils/_version.py``).
"""

from ansible_collections.vfio.migration.plugins.module_utils._version import version_problem
from ansible_collections.vfio.migration.plugins.plugin_utils._text import shorten

# ---------------------------------------------------------------------------
# Decoding the 2019 ``version`` string (the 2019 `version` proposal, docs/proposals.md)
# ---------------------------------------------------------------------------
#
#   <common: 8 hex digits>[-<vendor part>]        e.g. 00028086-193b-i915-GVTg_V5_4
#
# The common part is 32 bits: the low 16 bits are the PCI vendor id, the high
# 16 bits one VFIO_DEVICE_FLAGS_* device-type flag (include/uapi/linux/vfio.h).
# Vendors may also use opaque strings (``mtty-1.2``); those can only be
# compared as a whole, and ``decode_version`` says so with a VersionError.

VFIO_DEVICE_APIS = {
    1 << 1: "vfio-pci",       # VFIO_DEVICE_FLAGS_PCI
    1 << 2: "vfio-platform",  # VFIO_DEVICE_FLAGS_PLATFORM
    1 << 3: "vfio-amba",      # VFIO_DEVICE_FLAGS_AMBA
    1 << 4: "vfio-ccw",       # VFIO_DEVICE_FLAGS_CCW
    1 << 5: "vfio-ap",        # VFIO_DEVICE_FLAGS_AP
}

_COMMON_LEN = 8
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class VersionError(ValueError):
    """A version string that is not in the decodable ``common[-vendor]`` format."""


def _version_format_problem(text):
    """Why ``text`` is not a decodable version, or None. ``text`` is any object."""
    if not isinstance(text, str):
        return "version must be a string, not %s" % type(text).__name__
    if text.endswith("\n"):
        text = text[:-1]  # the one newline ``cat`` shows is not part of the version
    problem = version_problem(text)
    if problem:
        return problem
    common = text.split("-", 1)[0]
    opaque = " (a vendor-defined opaque version can only be compared as a whole string)"
    if len(common) != _COMMON_LEN:
        return ("version '%s' is not decodable: the common part '%s' must be exactly %d hex "
                "digits, not %d characters%s" % (shorten(text), shorten(common, 20), _COMMON_LEN, len(common), opaque))
    if not set(common) <= _HEX_DIGITS:
        return ("version '%s' is not decodable: the common part '%s' is not hexadecimal%s"
                % (shorten(text), common, opaque))
    if text[len(common):] == "-":
        return "version '%s' is not decodable: the vendor part after '-' is empty" % shorten(text)
    return None


def looks_decodable(text):
    """True when ``text`` is a ``common[-vendor]`` version that ``decode_version`` accepts.

    Never raises: any object may be passed. False for vendor-opaque strings
    such as ``mtty-1.2``, which can only be compared as a whole.
    """
    return _version_format_problem(text) is None


def decode_version(text):
    """Decode a 2019 `version` proposal migration version string.

    ``text`` is ``<8 hex digits>`` or ``<8 hex digits>-<vendor part>``; one
    trailing newline (as read from sysfs) is ignored. Returns::

        {"common": "00028086",          # the 8 hex digits, lower case
         "vendor_id": "0x8086",         # low 16 bits: PCI vendor id
         "device_type_flag": 2,         # high 16 bits: VFIO_DEVICE_FLAGS_* value
         "device_api": "vfio-pci",      # None for a flag this code does not know
         "vendor_part": "193b-i915-GVTg_V5_4",   # None without a vendor part
         "fields": ["193b", "i915-GVTg_V5_4"]}   # vendor part split at its first '-'

    For Intel GVT-g the two fields are the device id and the mdev type.
    Raises ``VersionError`` (a ``ValueError``) with a readable message for
    anything else: not a string, not ASCII, empty, over 4096 bytes, NUL or
    line breaks, a common part that is not 8 hex digits, an empty vendor part.
    """
    problem = _version_format_problem(text)
    if problem:
        raise VersionError(problem)
    text = str(text)
    if text.endswith("\n"):
        text = text[:-1]
    common, sep, vendor_part = text.partition("-")
    value = int(common, 16)
    flag = value >> 16
    return {
        "common": common.lower(),
        "vendor_id": "0x%04x" % (value & 0xFFFF),
        "device_type_flag": flag,
        "device_api": VFIO_DEVICE_APIS.get(flag),
        "vendor_part": vendor_part if sep else None,
        "fields": vendor_part.split("-", 1) if sep else [],
    }
