# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration version strings and the ``key=value`` migration layout, as hosts read them.

Only what runs on a managed host lives here, because AnsiballZ ships every
module_utils file a module imports to each host: ``version_problem`` (what the
probe may write, what discovery may report) and ``parse_kv_blocks``
(``migration/self`` and ``migration/compatible`` as read by ``mdev_facts``).
Decoding a version and matching ``migration/compatible`` templates run on the
controller: ``plugins/plugin_utils/_decode.py`` and ``_compatible.py``.
Standard library only; importable by any Python the modules support.
"""

import re

# Seed 004: "It should only contain ascii characters", "MAX Length is PATH_MAX (4096)".
VERSION_MAX = 4096


def version_problem(value):
    """Return why ``value`` (bytes or str) is not a valid migration version, or None.

    Valid: 1..4096 bytes of printable ASCII (tab allowed), no NUL, no newline
    inside. A single trailing newline, as ``echo`` writes and ``cat`` shows,
    is not part of the version and must be removed by the caller.
    """
    if isinstance(value, str):
        try:
            value = value.encode("ascii")
        except UnicodeEncodeError:
            return "version is not ASCII"
    if not isinstance(value, bytes):
        return "version must be a string, not %s" % type(value).__name__
    if not value:
        return "version is empty"
    if len(value) > VERSION_MAX:
        return "version is %d bytes; the limit is %d (PATH_MAX)" % (len(value), VERSION_MAX)
    if b"\x00" in value:
        return "version contains a NUL byte"
    if b"\n" in value or b"\r" in value:
        return "version contains a line break"
    if any(b > 0x7E or (b < 0x20 and b != 0x09) for b in bytearray(value)):
        return "version is not printable ASCII"
    return None


# a layout key: what ``parse_kv_blocks`` accepts left of ``=`` (``_compatible`` checks the same)
LAYOUT_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def parse_kv_blocks(text):
    """Parse ``key=value`` lines into a list of dicts (2020 `migration/self` proposal layout).

    Blank lines separate blocks (several ``compatible`` entries); a line
    that repeats a key already in the current block also starts a new block.
    Lines starting with ``#`` are comments. Raises ``ValueError`` with the
    line number on anything else.
    """
    if not isinstance(text, str):
        raise ValueError("migration layout text must be a string")
    blocks, cur = [], {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        if "=" not in line:
            raise ValueError("line %d: expected key=value, got %r" % (lineno, line[:80]))
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if not LAYOUT_KEY_RE.match(key):
            raise ValueError("line %d: bad key %r" % (lineno, key[:80]))
        if key in cur:
            blocks.append(cur)
            cur = {}
        cur[key] = value
    if cur:
        blocks.append(cur)
    return blocks
