"""Decoding 2019 `version` proposal version strings on the controller (plugin_utils._decode)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.vfio.migration.plugins.plugin_utils._decode import (
    VersionError,
    decode_version,
    looks_decodable,
)


# -- decode_version -----------------------------------------------------------

def test_decode_gvt_version_from_the_seed():
    assert decode_version("00028086-193b-i915-GVTg_V5_4") == {
        "common": "00028086",
        "vendor_id": "0x8086",
        "device_type_flag": 2,
        "device_api": "vfio-pci",
        "vendor_part": "193b-i915-GVTg_V5_4",
        "fields": ["193b", "i915-GVTg_V5_4"],
    }


@pytest.mark.parametrize("flag,api", [
    (1 << 1, "vfio-pci"),
    (1 << 2, "vfio-platform"),
    (1 << 3, "vfio-amba"),
    (1 << 4, "vfio-ccw"),
    (1 << 5, "vfio-ap"),
])
def test_decode_each_device_type_flag(flag, api):
    text = "%04x1014-rest" % flag
    got = decode_version(text)
    assert got["device_type_flag"] == flag
    assert got["device_api"] == api
    assert got["vendor_id"] == "0x1014"
    assert got["common"] == text[:8]


@pytest.mark.parametrize("common,flag", [("00008086", 0), ("00408086", 0x40), ("00068086", 6), ("ffff8086", 0xFFFF)])
def test_decode_unknown_flag_keeps_the_number(common, flag):
    got = decode_version(common + "-x")
    assert got["device_api"] is None
    assert got["device_type_flag"] == flag


def test_decode_without_vendor_part():
    assert decode_version("00108086") == {
        "common": "00108086", "vendor_id": "0x8086", "device_type_flag": 16,
        "device_api": "vfio-ccw", "vendor_part": None, "fields": [],
    }


def test_decode_normalises_hex_case_and_keeps_the_vendor_part():
    got = decode_version("000215B3-mlx5-cx7-1.3")
    assert got["common"] == "000215b3"
    assert got["vendor_id"] == "0x15b3"
    assert got["vendor_part"] == "mlx5-cx7-1.3"
    assert got["fields"] == ["mlx5", "cx7-1.3"]


def test_decode_single_vendor_field_and_trailing_newline():
    assert decode_version("00028086-193b\n")["fields"] == ["193b"]


@pytest.mark.parametrize("value,message", [
    (None, "version must be a string, not NoneType"),
    (28086, "version must be a string, not int"),
    (b"00028086-x", "version must be a string, not bytes"),
    (["00028086"], "version must be a string, not list"),
    ("", "version is empty"),
    ("\n", "version is empty"),
    ("0002808-193b", "common part '0002808' must be exactly 8 hex digits, not 7 characters"),
    ("000280866-193b", "must be exactly 8 hex digits, not 9 characters"),
    ("0002808g-193b", "common part '0002808g' is not hexadecimal"),
    ("0x028086-193b", "is not hexadecimal"),
    ("mtty-1.2", "common part 'mtty' must be exactly 8 hex digits"),
    ("00028086-", "the vendor part after '-' is empty"),
    ("0002\x008086-x", "NUL byte"),
    ("00028086-a\nb", "line break"),
    ("00028086-a\n\n", "line break"),
    ("00028086-\u00e9", "not ASCII"),
    ("00028086-\x07", "not printable ASCII"),
    ("00028086-" + "x" * 4088, "version is 4097 bytes; the limit is 4096 (PATH_MAX)"),
])
def test_decode_rejects_garbage_with_a_clear_message(value, message):
    with pytest.raises(VersionError) as err:
        decode_version(value)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)
    assert looks_decodable(value) is False


def test_opaque_version_message_says_to_compare_whole_strings():
    with pytest.raises(VersionError, match="opaque version can only be compared as a whole string"):
        decode_version("mtty-1.2")


def test_longest_allowed_version_decodes():
    text = "00028086-" + "x" * (4096 - 9)
    assert decode_version(text)["vendor_part"] == "x" * 4087


@pytest.mark.parametrize("value,want", [
    ("00028086-193b-i915-GVTg_V5_4", True),
    ("00028086", True),
    ("000215b3-mlx5-cx7-1.0\n", True),
    ("mtty-1.2", False),
    ("nvidia-257", False),
    ("", False),
    (None, False),
    (12345678, False),
])
def test_looks_decodable(value, want):
    assert looks_decodable(value) is want


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.binary(max_size=20), st.integers(), st.none(),
                 st.text("0123456789abcdefABCDEF-xyz_.\n", max_size=30)))
def test_property_decode_version(value):
    try:
        got = decode_version(value)
    except VersionError as exc:
        assert str(exc)
        assert not looks_decodable(value)
        return
    assert looks_decodable(value)
    assert set(got) == {"common", "vendor_id", "device_type_flag", "device_api", "vendor_part", "fields"}
    assert int(got["common"], 16) == (got["device_type_flag"] << 16) | int(got["vendor_id"], 16)
