"""What hosts do with version strings (module_utils._version): validate them, read key=value layouts.

Decoding versions and matching templates run on the controller and are
tested in ``plugin_utils/test_decode.py`` and ``plugin_utils/test_compatible.py``.
"""

import ast
import os

from ansible_collections.vfio.migration.plugins.module_utils import _version as V
from tests.unit.seeds import SEED_COMPATIBLE, SEED_TYPE

MODULE_UTILS = os.path.join(os.path.dirname(os.path.abspath(V.__file__)))


def test_version_problem_and_parse_kv_blocks_unchanged():
    assert V.version_problem("00028086-193b-i915-GVTg_V5_4") is None
    assert V.version_problem(b"a\x00") == "version contains a NUL byte"
    assert V.parse_kv_blocks(SEED_COMPATIBLE + "\n" + SEED_COMPATIBLE) == [
        {"software_version": "0.1.0", "device_api": "vfio-pci", "type": SEED_TYPE,
         "pci_id": "80865963", "aggregator": "{val1}/2"}] * 2


def test_parse_kv_blocks_comments_repeated_keys_and_errors():
    assert V.parse_kv_blocks("# a comment\na=1\nb=2\na=3\n\n\nc=4") == [{"a": "1", "b": "2"}, {"a": "3"}, {"c": "4"}]
    for text, message in (("junk", "line 1: expected key=value"), ("a=1\n9x=2", "line 2: bad key '9x'")):
        try:
            V.parse_kv_blocks(text)
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError("no error for %r" % text)


def test_version_problem_limits():
    assert V.version_problem("a" * V.VERSION_MAX) is None
    assert V.version_problem("a" * (V.VERSION_MAX + 1)) == "version is 4097 bytes; the limit is 4096 (PATH_MAX)"
    assert V.version_problem("a\tb") is None
    assert V.version_problem("a\x1bb") == "version is not printable ASCII"
    assert V.version_problem("\u00e9") == "version is not ASCII"


def test_module_utils_import_no_controller_code():
    """AnsiballZ ships what module_utils imports to every host: never plugin_utils, filters or ansible's controller."""
    for name in sorted(os.listdir(MODULE_UTILS)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(MODULE_UTILS, name)) as f:
            tree = ast.parse(f.read(), name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                assert ".plugin_utils" not in target and ".filter" not in target, (name, target)
                assert not target.startswith("ansible.") or target.startswith("ansible.module_utils"), (name, target)
