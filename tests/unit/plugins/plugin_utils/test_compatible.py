"""Matching migration/self against templated migration/compatible (plugin_utils._compatible)."""

import json
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.vfio.migration.plugins.module_utils._version import parse_kv_blocks
from ansible_collections.vfio.migration.plugins.plugin_utils._compatible import (
    TemplateError,
    compatible_match,
    parse_compatible,
)
from tests.unit.seeds import SEED_COMPATIBLE, SEED_SELF, SEED_TYPE, seed_self as _self


# -- compatible_match: the seed's example -------------------------------------

def test_seed_example_matches():
    assert compatible_match(SEED_SELF, SEED_COMPATIBLE) == {
        "match": True, "block": 0, "bindings": {"val1": 4}, "reasons": []}


def test_seed_example_wrong_aggregator():
    got = compatible_match(_self(aggregator="1"), SEED_COMPATIBLE)
    assert got == {"match": False, "block": None, "bindings": {}, "reasons": [
        "block 0: aggregator '1' does not match '{val1}/2' (expected '2' with val1=4)"]}


def test_seed_example_type_not_in_the_list():
    got = compatible_match(_self(type="i915-GVTg_V5_3"), SEED_COMPATIBLE)
    assert got["match"] is False
    assert got["reasons"] == ["block 0: type 'i915-GVTg_V5_3' does not match '%s'" % SEED_TYPE]


@pytest.mark.parametrize("val1,aggregator", [(2, "1"), (4, "2"), (8, "4")])
def test_seed_example_every_exact_type(val1, aggregator):
    got = compatible_match(_self(type="i915-GVTg_V5_%d" % val1, aggregator=aggregator), SEED_COMPATIBLE)
    assert got["match"] is True
    assert got["bindings"] == {"val1": val1}


def test_seed_example_inexact_division_never_matches():
    for aggregator in ("0", "1", "0.5"):
        got = compatible_match(_self(type="i915-GVTg_V5_1", aggregator=aggregator), SEED_COMPATIBLE)
        assert got["match"] is False
    assert got["reasons"] == [
        "block 0: aggregator '0.5' does not match '{val1}/2' (1 / 2 is not a whole number with val1=1)"]


def test_seed_example_as_parsed_blocks_and_self_text():
    blocks = parse_kv_blocks(SEED_COMPATIBLE)
    self_text = "\n".join("%s=%s" % kv for kv in SEED_SELF.items())
    assert compatible_match(self_text, blocks)["match"] is True


def test_leading_zero_type_is_not_the_integer():
    assert compatible_match(_self(type="i915-GVTg_V5_04"), SEED_COMPATIBLE)["match"] is False


# -- several blocks -----------------------------------------------------------

TWO_BLOCKS = SEED_COMPATIBLE + "\n" + SEED_COMPATIBLE.replace("software_version=0.1.0", "software_version=0.0.9")


def test_second_block_matches_and_reports_the_first():
    got = compatible_match(_self(software_version="0.0.9"), TWO_BLOCKS)
    assert got["match"] is True
    assert got["block"] == 1
    assert got["reasons"] == ["block 0: software_version '0.0.9' does not match '0.1.0'"]


def test_first_matching_block_wins():
    assert compatible_match(SEED_SELF, TWO_BLOCKS)["block"] == 0


def test_no_block_matches_gives_a_reason_per_block():
    blocks = [
        {"type": SEED_TYPE},
        {"type": SEED_TYPE, "chpid_type": "0x11"},
        {"device_api": "vfio-ccw"},
    ]
    got = compatible_match({"type": "i915-GVTg_V5_3", "device_api": "vfio-pci"}, blocks)
    assert got == {"match": False, "block": None, "bindings": {}, "reasons": [
        "block 0: type 'i915-GVTg_V5_3' does not match '%s'" % SEED_TYPE,
        "block 1: missing key chpid_type in self",
        "block 2: device_api 'vfio-pci' does not match 'vfio-ccw'",
    ]}


def test_missing_keys_are_all_named():
    got = compatible_match({"type": "x"}, [{"type": "x", "aggregator": "1", "pci_id": "1"}])
    assert got["reasons"] == ["block 0: missing keys aggregator, pci_id in self"]


def test_keys_only_in_self_are_ignored():
    assert compatible_match(_self(remote_url="x", chpid_type="y"), SEED_COMPATIBLE)["match"] is True


def test_empty_compatible_never_matches():
    assert compatible_match(SEED_SELF, "") == {
        "match": False, "block": None, "bindings": {}, "reasons": ["compatible has no blocks"]}
    assert compatible_match(SEED_SELF, [])["match"] is False


def test_empty_block_matches_anything():
    assert compatible_match({"a": "1"}, [{}])["match"] is True


# -- derived values -----------------------------------------------------------

@pytest.mark.parametrize("template,value,ok", [
    ("{n}*2+1", "9", True),
    ("{n}*2+1", "10", False),
    ("({n}+2)*3", "18", True),
    ("{n}-5", "-1", True),
    ("{n+1}/5", "1", True),
    ("{(n+1)*2}", "10", True),
    ("{n}/{m}", "2", True),
    ("{n}/{m}-1", "1", True),
    ("{n}/3", "1", False),           # inexact
    ("{n}/({m}-2)", "0", False),     # division by zero
    ("-{n}", "-4", True),
    ("{n}", "4", True),
    ("{n}", "04", False),
    ("{n}", "+4", False),
    ("{n}*{m}", "8", True),
    ("100-{n}*{m}", "92", True),
])
def test_derived_integer_expressions(template, value, ok):
    block = {"a": "{n:int}", "b": "{m:int:2}", "c": template}
    assert compatible_match({"a": "4", "b": "2", "c": value}, [block])["match"] is ok


def test_huge_expression_values_do_not_crash():
    power = "{n" + "*n" * 63 + "}"   # 64-digit n to the 64th power: about 4000 digits
    block = {"a": "{n:int}", "b": "x" + "*".join([power] * 8)}
    got = compatible_match({"a": "9" * 64, "b": "x1"}, [block])
    assert got["match"] is False
    assert got["reasons"][0].startswith("block 0: b 'x1' does not match 'x{n*n*")
    got = compatible_match({"a": "9" * 64, "b": "1"}, [{"a": "{n:int}", "b": "*".join([power] * 8)}])
    assert "expected '<a " in got["reasons"][0]


def test_derived_reason_for_division_by_zero():
    got = compatible_match({"a": "3", "b": "0"}, [{"a": "{p:int}", "b": "{p}/0"}])
    assert got["reasons"] == ["block 0: b '0' does not match '{p}/0' (division by zero with p=3)"]


def test_derived_may_come_before_the_declaration_in_the_block():
    blocks = [{"aggregator": "{val1}/2", "type": SEED_TYPE}]
    assert compatible_match(SEED_SELF, blocks)["bindings"] == {"val1": 4}


def test_references_are_substituted_into_text():
    block = {"type": "vGPU-{n:int:1-4}", "name": "Intel vGPU x{n} ({kind})", "model": "{kind:str:gen8,gen9}"}
    good = {"type": "vGPU-2", "name": "Intel vGPU x2 (gen9)", "model": "gen9"}
    assert compatible_match(good, [block])["bindings"] == {"n": 2, "kind": "gen9"}
    got = compatible_match(dict(good, name="Intel vGPU x3 (gen9)"), [block])
    assert got["reasons"] == ["block 0: name 'Intel vGPU x3 (gen9)' does not match 'Intel vGPU x{n} ({kind})' "
                              "(expected 'Intel vGPU x2 (gen9)' with n=2, kind=gen9)"]


def test_expression_inside_a_pattern():
    block = {"a": "{n:int}", "b": "slot-{n*2}-{m:int}"}
    assert compatible_match({"a": "3", "b": "slot-6-1"}, [block])["bindings"] == {"n": 3, "m": 1}
    assert compatible_match({"a": "3", "b": "slot-3-1"}, [block])["match"] is False


def test_pattern_referring_to_a_later_key_is_ordered():
    block = {"a": "{m:int}-{n}", "b": "{n:int}"}
    assert compatible_match({"a": "3-4", "b": "4"}, [block])["bindings"] == {"m": 3, "n": 4}
    got = compatible_match({"a": "3-4", "b": "5"}, [block])
    assert got["reasons"] == ["block 0: a '3-4' does not match '{m:int}-{n}' with n=5"]


# -- str lists, int ranges, any value ----------------------------------------

@pytest.mark.parametrize("template,value,ok", [
    ("{k:str:io,passthrough}", "io", True),
    ("{k:str:io,passthrough}", "passthrough", True),
    ("{k:str:io,passthrough}", "pass", False),
    ("vfio_ccw-{k:str:io, pt}", "vfio_ccw-pt", True),
    ("{k:str}", "anything at all", True),
    ("{k:str}", "", False),
    ("nvidia-{k:str}", "nvidia-", False),
    ("{k:str:a,ab}b", "abb", True),            # needs backtracking over the list
    ("{v:int:1-8}", "1", True),
    ("{v:int:1-8}", "8", True),
    ("{v:int:1-8}", "9", False),
    ("{v:int:1-8}", "0", False),
    ("{v:int:1-4,16,32-33}", "16", True),
    ("{v:int:1-4,16,32-33}", "33", True),
    ("{v:int:1-4,16,32-33}", "17", False),
    ("{v:int}", "0", True),
    ("{v:int}", "123456789", True),
    ("{v:int}", "-1", False),
    ("{v:int}", "007", False),
    ("{v:int}", "", False),
    ("{v:int}", "1" * 100, False),             # longer than any integer the matcher takes
    ("nvidia-{v:int:256-300}", "nvidia-257", True),
])
def test_kinds_and_value_lists(template, value, ok):
    assert compatible_match({"k": value}, [{"k": template}])["match"] is ok


def test_int_binding_is_an_int_and_str_binding_a_str():
    got = compatible_match({"t": "mtty-2", "n": "Dual"}, [{"t": "mtty-{p:int}", "n": "{w:str}"}])
    assert got["bindings"] == {"p": 2, "w": "Dual"}


def test_digits_split_between_two_ints():
    got = compatible_match({"a": "123"}, [{"a": "{x:int:1-12}{y:int:3,23}"}])
    assert got["bindings"] == {"x": 12, "y": 3}


def test_one_binding_holds_across_the_block():
    block = {"type": "V5_{n:int:1,2,4,8}", "alias": "vgpu{n:int:1,2,4,8}"}
    assert compatible_match({"type": "V5_4", "alias": "vgpu4"}, [block])["match"] is True
    assert compatible_match({"type": "V5_4", "alias": "vgpu2"}, [block])["match"] is False


def test_backtracks_to_a_binding_that_satisfies_later_keys():
    block = {"a": "{x:int}{y:int}", "b": "{x}"}
    assert compatible_match({"a": "1234", "b": "12"}, [block])["bindings"] == {"x": 12, "y": 34}


# -- software_version ---------------------------------------------------------

@pytest.mark.parametrize("template,value,ok", [
    ("1.1.0", "1.1.0", True),
    ("1.1.0", "1.01.0", True),          # compared by numbers
    ("1.1.0", "1.1.1", False),
    ("1.1", "1.1", True),               # not major.minor.bugfix: exact string
    ("1.1", "1.1.0", False),
    ("1.{m:int:0-3}.{b:int}", "1.3.17", True),
    ("1.{m:int:0-3}.{b:int}", "1.4.0", False),
    ("{v:version:>=1.0.0,<2.0.0}", "1.9.99", True),
    ("{v:version:>=1.0.0,<2.0.0}", "2.0.0", False),
    ("{v:version:>=1.0.0,<2.0.0}", "0.9.9", False),
    ("{v:version:>=1.2.0,!=1.2.3}", "1.2.3", False),
    ("{v:version:>=1.2.0,!=1.2.3}", "1.2.4", True),
    ("{v:version:1.2.3}", "1.2.3", True),
    ("{v:version:==1.2.3}", "1.2.4", False),
    ("{v:version:>1.2.3,<=1.10.0}", "1.10.0", True),
    ("{v:version}", "1.2", False),
    ("{v:version}", "10.20.30", True),
])
def test_software_version(template, value, ok):
    got = compatible_match({"software_version": value}, [{"software_version": template}])
    assert got["match"] is ok


def test_version_variable_binding_and_reuse():
    block = {"software_version": "{v:version:>=1.0.0}", "firmware": "fw-{v}"}
    got = compatible_match({"software_version": "1.4.2", "firmware": "fw-1.4.2"}, [block])
    assert got["bindings"] == {"v": "1.4.2"}


def test_version_followed_by_digits():
    assert compatible_match({"a": "1.2.34"}, [{"a": "{v:version:<1.2.10}4"}])["bindings"] == {"v": "1.2.3"}


# -- braces -------------------------------------------------------------------

def test_doubled_braces_are_literal():
    assert compatible_match({"a": "{x}"}, "a={{x}}")["match"] is True
    assert compatible_match({"a": "{3}"}, [{"a": "{{{n:int}}}"}])["bindings"] == {"n": 3}


# -- malformed templates ------------------------------------------------------

@pytest.mark.parametrize("block,message", [
    ({"type": "i915-GVTg_V5_{val1:int:1,2,4,8"}, "key type: unclosed '{' at column 14"),
    ({"type": "V5_{a{b}"}, "unclosed '{'"),
    ({"type": "V5_}"}, "key type: unmatched '}' at column 4"),
    ({"type": "V5_{}"}, "empty placeholder {}"),
    ({"type": "V5_{ }"}, "empty placeholder {}"),
    ({"type": "V5_{n:float}"}, "unknown kind 'float' in {n:float}; use one of int, str, version"),
    ({"type": "V5_{n:}"}, "unknown kind ''"),
    ({"type": "V5_{9n:int}"}, "bad variable name '9n'"),
    ({"type": "V5_{:int}"}, "bad variable name ''"),
    ({"type": "V5_{n:int:}"}, "variable n: empty item in the value list"),
    ({"type": "V5_{n:int:1,,2}"}, "variable n: empty item"),
    ({"type": "V5_{n:int:1,x}"}, "variable n: 'x' is not a non-negative integer or a range like 1-8"),
    ({"type": "V5_{n:int:-1}"}, "is not a non-negative integer"),
    ({"type": "V5_{n:int:8-1}"}, "variable n: range 8-1 is empty (8 > 1)"),
    ({"type": "V5_{n:int:1-2-3}"}, "is not a non-negative integer"),
    ({"v": "{v:version:~1.0}"}, "variable v: '~1.0' is not a comparison like >=1.2.0"),
    ({"v": "{v:version:>=1.0}"}, "not a comparison"),
    ({"type": "V5_{n:int:1,2}", "alias": "{n:int:1,2,4}"},
     "variable n is declared twice with different values: {n:int:1,2} in type and {n:int:1,2,4} in alias"),
    ({"type": "{n:int}", "alias": "{n:str}"}, "variable n is declared twice with different values"),
    ({"type": "{n:int}", "alias": "{n:int:1}"}, "declared twice"),
    ({"aggregator": "{val1}/2"}, "key aggregator: reference to undeclared variable val1 in '{val1}/2'"),
    ({"type": "{n:int}", "x": "{n+m}"}, "reference to undeclared variable m"),
    ({"type": "{n:str}", "x": "{n*2}"}, "key x: variable n is str and cannot be used in arithmetic"),
    ({"a": "{0}"}, "key a: {0} names no variable; write a constant without braces"),
    ({"type": "{n:int}", "x": "{n}-{2*3}"}, "key x: {2*3} names no variable"),
    ({"type": "{n:int}", "x": "{n+}"}, "key x: bad expression {n+}"),
    ({"type": "{n:int}", "x": "{n 2}"}, "bad expression"),
    ({"type": "{n:int}", "x": "{(n}"}, "missing ')'"),
    ({"type": "{n:int}", "x": "{n%2}"}, "unexpected character '%'"),
    ({"type": "{n:int}", "x": "{n}" + "*{n}" * 32}, "more than 32 placeholders"),
    ({"type": "{n:int}", "x": "(" * 40 + "{n}" + ")" * 40}, "nested more than 32 deep"),
    ({"type": "{n:int}", "x": "{n}" + "+1" * 2000}, "key x: expression longer than 128 tokens"),
    ({"type": "{n:int}", "x": "{n" + "+1" * 2000 + "}"}, "expression longer than 128 tokens"),
    ({"type": "{n:int}", "x": "-" * 100 + "{n}"}, "nested more than 32 deep"),
    ({"type": "{n}-{n:int}"}, "key type: {n} is used before it is declared"),
    ({"a": "{x:int}{y}", "b": "{y:int}{x}"}, "keys a, b refer to each other's variables in a circle"),
    ({"a": "{n:int:%s}" % ("9" * 70)}, "is not a non-negative integer"),
    (dict(("k%d" % i, "{v%d:int}" % i) for i in range(65)), "more than 64 variables in one block"),
])
def test_malformed_templates(block, message):
    with pytest.raises(TemplateError) as err:
        compatible_match(SEED_SELF, [block])
    assert message in str(err.value)
    assert str(err.value).startswith("compatible block 0: ")
    with pytest.raises(TemplateError):
        parse_compatible([block])


def test_a_bad_block_fails_even_after_a_matching_one():
    with pytest.raises(TemplateError, match="compatible block 1: key type: unclosed"):
        compatible_match(SEED_SELF, [{}, {"type": "{"}])


def test_same_declaration_twice_is_one_variable():
    block = {"type": "V5_{n:int:1,2}", "alias": "{n:int:2,1}"}
    assert compatible_match({"type": "V5_2", "alias": "2"}, [block])["bindings"] == {"n": 2}


@pytest.mark.parametrize("self_block,compatible,message", [
    (SEED_SELF, "type\n", "compatible: line 1: expected key=value"),
    (SEED_SELF, "=x", "compatible: line 1: bad key"),
    (SEED_SELF, 42, "compatible must be key=value text or a list of mappings, not int"),
    (SEED_SELF, ["type=x"], "compatible: block 0 must be a mapping of key=value, not str"),
    (SEED_SELF, [{"type": ["a"]}], "compatible block 0: value of key type must be a string, not list"),
    (SEED_SELF, [{"bad key": "a"}], "compatible block 0: bad key 'bad key'"),
    (SEED_SELF, [{1: "a"}], "bad key"),
    ("a=1\n\na=2", [], "self must be exactly one block of key=value lines, found 2"),
    ("", [], "found 0"),
    ("garbage", [], "self: line 1: expected key=value"),
    (["a=1"], [], "self must be key=value text or a mapping, not list"),
    (None, [], "not NoneType"),
    ({"a": None}, [], "self: value of key a must be a string, not NoneType"),
    ({"a": True}, [], "not bool"),
    ({1: "a"}, [], "self: key '1' must be a string"),
])
def test_bad_layouts(self_block, compatible, message):
    with pytest.raises(TemplateError) as err:
        compatible_match(self_block, compatible)
    assert message in str(err.value)


def test_a_trailing_newline_in_a_value_is_not_ignored():
    assert compatible_match({"a": "4", "b": "2\n"}, [{"a": "{n:int}", "b": "{n}/2"}])["match"] is False
    assert compatible_match({"a": "4\n"}, [{"a": "{n:int}"}])["match"] is False
    assert compatible_match({"software_version": "1.1.0\n"}, [{"software_version": "1.1.0"}])["match"] is False
    with pytest.raises(TemplateError, match="bad key"):
        compatible_match({}, [{"type\n": "x"}])


def test_integer_values_are_taken_as_text():
    got = compatible_match(_self(aggregator=2), [{"aggregator": "{v:int}", "n": "{v}/2"}])
    assert got["match"] is False and got["reasons"] == ["block 0: missing key n in self"]
    assert compatible_match({"pci_id": 80865963}, [{"pci_id": 80865963}])["match"] is True


def test_ambiguous_template_is_refused_quickly():
    block = {"a": "{a:str}{b:str}{c:str}y", "b": "{a}"}
    started = time.time()
    with pytest.raises(TemplateError, match="template too ambiguous"):
        compatible_match({"a": "x" * 4000 + "y", "b": "q"}, [block])
    assert time.time() - started < 10


def test_unambiguous_large_inputs_are_fast():
    started = time.time()
    got = compatible_match({"a": "x" * 4000 + "y"}, [{"a": "{a:str}{b:str}{c:str}y"}])
    assert got["match"] is True
    got = compatible_match({"a": "1" * 30 + "y"}, [{"a": "".join("{v%d:int}" % i for i in range(30)) + "y"}])
    assert got["bindings"] == dict(("v%d" % i, 1) for i in range(30))
    assert compatible_match({"a": "x" * 300}, [{"a": "{v0:str}{v1:str}{v2:str}{v3:str}y"}])["match"] is False
    assert time.time() - started < 5


# -- parse_compatible -----------------------------------------------------------

def test_parse_compatible_structure():
    blocks = parse_compatible(SEED_COMPATIBLE)
    assert blocks == [{
        "index": 0,
        "fields": {
            "software_version": {"template": "0.1.0", "form": "literal", "declares": [], "references": []},
            "device_api": {"template": "vfio-pci", "form": "literal", "declares": [], "references": []},
            "type": {"template": SEED_TYPE, "form": "pattern", "declares": ["val1"], "references": []},
            "pci_id": {"template": "80865963", "form": "literal", "declares": [], "references": []},
            "aggregator": {"template": "{val1}/2", "form": "derived", "declares": [], "references": ["val1"]},
        },
        "variables": {"val1": {"name": "val1", "kind": "int", "spec": "1,2,4,8", "values": [1, 2, 4, 8],
                               "ranges": [], "declared_in": ["type"]}},
    }]
    json.dumps(blocks)  # reports are plain data


def test_parse_compatible_kinds_and_forms():
    (block,) = parse_compatible([{
        "a": "{n:int:1-4,8}", "b": "{s:str:x,y}", "c": "{v:version:>=1.0.0,<2.0.0}",
        "d": "{w:str}", "e": "id-{s}", "f": "{n}*2", "g": "{n:int:8,1-4}",
    }])
    variables, fields = block["variables"], block["fields"]
    assert variables["n"] == {"name": "n", "kind": "int", "spec": "1-4,8", "values": [8], "ranges": [[1, 4]],
                              "declared_in": ["a", "g"]}
    assert variables["s"]["values"] == ["x", "y"]
    assert variables["w"]["values"] is None
    assert variables["v"]["constraints"] == [[">=", "1.0.0"], ["<", "2.0.0"]]
    assert [fields[k]["form"] for k in "abcdefg"] == ["pattern"] * 4 + ["text", "derived", "pattern"]


# -- property: random input gives a result or a clear error ---------------------

TEMPLATE_ALPHABET = "{}:,-=+*/()0123456789abcnv_. \n#" + "intstrversion<>!"
TEMPLATE_PIECES = st.sampled_from([
    "{n:int}", "{n:int:1,2,4}", "{m:int:1-8}", "{s:str}", "{s:str:a,b}", "{v:version}",
    "{v:version:>=1.0.0}", "{n}", "{m}", "{s}", "{v}", "{n*2}", "{n}/2", "{n+m}", "{", "}", "{{", "}}",
    "a", "b", "1", "2", "-", ".", "/", "(", ")", "{x:bad}", "{n:int:}", "{q}",
])


def _random_template():
    return st.one_of(st.text(TEMPLATE_ALPHABET, max_size=40), st.lists(TEMPLATE_PIECES, max_size=6).map("".join))


def _outcome(call):
    try:
        result = call()
    except TemplateError as exc:
        assert str(exc)
        return None
    assert set(result) == {"match", "block", "bindings", "reasons"}
    assert isinstance(result["match"], bool)
    assert (result["block"] is None) is (not result["match"])
    assert all(isinstance(r, str) for r in result["reasons"])
    json.dumps(result)
    return result


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(self_text=st.text(max_size=80), compatible_text=st.text(max_size=200))
def test_property_random_text(self_text, compatible_text):
    _outcome(lambda: compatible_match(self_text, compatible_text))
    try:
        parse_compatible(compatible_text)
    except TemplateError:
        pass


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    templates=st.dictionaries(st.sampled_from(["a", "b", "c", "software_version"]), _random_template(), max_size=4),
    values=st.dictionaries(st.sampled_from(["a", "b", "c", "software_version"]),
                           st.text("0123456789ab.-/", max_size=12), max_size=4),
)
@example(templates={"a": "{0}"}, values={})  # once a traceback: a constant in braces
def test_property_random_templates(templates, values):
    result = _outcome(lambda: compatible_match(values, [templates]))
    if result is not None and result["match"]:
        assert set(result["bindings"]) <= set("nmsv")
        assert all(k in values for k in templates)


@settings(max_examples=200, deadline=None)
@given(n=st.sampled_from([1, 2, 4, 8]), aggregator=st.integers(min_value=0, max_value=10))
def test_property_seed_example(n, aggregator):
    got = compatible_match(_self(type="i915-GVTg_V5_%d" % n, aggregator=str(aggregator)), SEED_COMPATIBLE)
    assert got["match"] is (n % 2 == 0 and aggregator == n // 2)
