"""Bad input: every hostile option or string gets a clear error or a correct verdict.

The probe core (``Prober``) runs against a target served by the FUSE emulator;
its write log shows every write the probe made. Expected outcomes come from
oracles written here from the seeds (printable ASCII, at most 4096 bytes,
names without ``/`` or ``..``) and from the emulator's own rule classes (what
the driver answers), never from the code under test.
"""

import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.module_utils import _version as V
from ansible_collections.vfio.migration.plugins.module_utils._probe import Prober, ProbeInputError
from ansible_collections.vfio.migration.plugins.plugin_utils import _compatible as C
from ansible_collections.vfio.migration.plugins.plugin_utils import _decode as D
from tests.ansible_runner import adhoc, playbook, write_inventory
from tests.emulator.mount import EmulatorMount, fuse_unavailable
from tests.emulator.rules import build_rule
from tests.reliability import fleets as F

FUSE = pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- oracles -------------------------------------------------------------------------

NAME_OK = re.compile(r"[A-Za-z0-9_.:+@-]{1,255}")
UUID_OK = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
PCI_OK = re.compile(r"[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]")


def version_ok(value):
    """Seed 004: ASCII, at most PATH_MAX (4096) bytes; one trailing newline (``echo``) is not part of it."""
    if not isinstance(value, str):
        return False
    if value.endswith("\n"):
        value = value[:-1]
    return 1 <= len(value) <= 4096 and all(c == "\t" or " " <= c <= "~" for c in value)


def name_ok(value):
    """A single path component that names something: no ``/``, no ``..``, not ``.`` itself."""
    return isinstance(value, str) and NAME_OK.fullmatch(value) is not None and ".." not in value and value != "."


def device_ok(value):
    return value is None or isinstance(value, str) and bool(UUID_OK.fullmatch(value) or PCI_OK.fullmatch(value))


def rule_answer(spec, version):
    """What the emulated driver says to ``version``: compatible or (incompatible, errno name)."""
    try:
        build_rule(spec).write((version + "\n").encode("ascii"))
        return ("compatible", None)
    except OSError as exc:
        return (E.write_error_means(exc.errno), E.errno_name(exc.errno))


# -- the emulated target --------------------------------------------------------------

@pytest.fixture(scope="module")
def target(tmp_path_factory):
    if fuse_unavailable():
        pytest.skip(fuse_unavailable())
    base = tmp_path_factory.mktemp("badinput")
    F.probe_target(str(base / "src"))
    rules = json.loads((base / "src" / "target" / "rules.json").read_text())["attributes"]
    with EmulatorMount(str(base / "src"), str(base / "mnt"), str(base / "writes.log")) as emu:
        yield Target(emu=emu, root=emu.path("target", "sys"), rules=rules)


class Target(dict):
    """The mounted target (a dict with a short repr for hypothesis reports)."""

    def __repr__(self):
        return "<target %s>" % self["root"]


def type_rule(target, parent_dir, mdev_type, attr="migration_version"):
    return target["rules"]["%s/mdev_supported_types/%s/%s" % (parent_dir, mdev_type, attr)]


def expected_parents(target, mdev_type, version):
    """``{parent: (status, errno_name)}`` the probe must report for a valid version without parent/device."""
    stripped = version[:-1] if version.endswith("\n") else version
    if mdev_type == "i915-GVTg_V5_4":
        gvt = type_rule(target, "devices/pci0000:00/0000:00:02.0", mdev_type, "version")
        # "sneaky" leads into the neighbour host: refused, never written
        want = {"0000:00:02.0": rule_answer(gvt, stripped), "sneaky": ("error", None)}
    elif mdev_type == "nvidia-257":
        want = {p: rule_answer(type_rule(target, "devices/pci0000:%s/%s" % (p[5:7], p), mdev_type), stripped)
                for p in ("0000:3b:00.0", "0000:5e:00.0")}
    else:
        want = {"0000:af:00.0": rule_answer(type_rule(target, "devices/pci0000:af/0000:af:00.0", mdev_type),
                                            stripped)}
    if len(stripped) == 4096:  # with its newline it does not fit one sysfs store: not asked
        want = {p: ("error", None) for p in want}
    return want


def probe(target, checks, **opts):
    """Run the probe core; return ``(results or the ProbeInputError, new write-log entries)``."""
    before = len(target["emu"].writes())
    prober = Prober(target["root"], allow_non_sysfs=True, timeout=opts.pop("timeout", 5.0), **opts)
    try:
        outcome = prober.run(checks)
    except ProbeInputError as exc:
        outcome = exc
    return outcome, target["emu"].writes()[before:]


def assert_writes_allowed(target, writes, results, version=None):
    """Every write went to a migration attribute of the target, one for each answer a driver gave."""
    for w in writes:
        assert w["path"].startswith("target/sys/"), w
        assert os.path.basename(w["path"]) in F.ALLOWED_ATTRIBUTES, w
        if version is not None:
            assert w["data"] == (version[:-1] if version.endswith("\n") else version) + "\n"
    answered = sorted(r["attribute"] for r in results if r["status"] in ("compatible", "incompatible"))
    assert sorted(target["emu"].path(w["path"]) for w in writes) == answered, (writes, results)


# -- strategies -----------------------------------------------------------------------------

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
KNOWN_VERSIONS = [F.GVT_4, F.GVT_4 + "\n", F.GVT_4 + "\n\n", "\n" + F.GVT_4, F.GVT_4 + "\r", F.GVT_4 + " ",
                  F.NV % "2.0", F.NV % "2.2", F.NV % "2.3", F.NV % "2.4", F.NV % "3.0", F.NV % "2.3\n",
                  F.LONG_SELF, F.LONG_PREFIX + "-2.0", F.LONG_PREFIX + "-2.4", F.LONG_PREFIX + "-3.0",
                  "\t", " ", "-", "0002\x008086", "\x1b[31m", F.SCRIPT, F.JINJA % "/tmp/x", "é", "\u202e"]
versions = st.one_of(
    st.text(max_size=40),  # anything: control characters, NUL, newlines, non-ASCII, surrogates
    st.text(PRINTABLE, min_size=1, max_size=40),  # valid, almost always refused by the driver
    st.sampled_from(KNOWN_VERSIONS),
    # every length around the limit, valid and not
    st.builds(lambda n, c, nl: c * n + ("\n" if nl else ""), st.sampled_from([4094, 4095, 4096, 4097]),
              st.sampled_from(["a", "\t", "\x00", "\u00e9", "\n"]), st.booleans()),
    # 4095- and 4096-byte versions the long-1 driver accepts when asked
    st.builds(lambda extra, minor: F.LONG_PREFIX[len(extra):] + extra + "-2.%d" % minor,
              st.sampled_from(["", "x"]), st.integers(0, 12)),
    st.builds(lambda n: "L" * n + "-2.3", st.integers(4090, 4094)),
)

NAME_TOKENS = ["..", "/", ".", "../", "./", "//", "sneaky", "loop", "i915-GVTg_V5_4", "nvidia-257", "long-1",
               "odd-evil", "odd-outside", "0000:3b:00.0", "0000:00:02.0", "remove", "\x00", "\n", "\t", " ",
               "\u00e9", "<", "%2e%2e", "~", "*", "\\", "a", "-", "mdev_supported_types", F.DEV_UUID,
               F.FOREIGN_UUID]
names = st.one_of(
    st.lists(st.sampled_from(NAME_TOKENS), max_size=5).map("".join),
    st.text(max_size=12),
    st.sampled_from(["a" * 255, "a" * 256, "0000:3b:00.0\n", F.DEV_UUID + "\n", F.DEV_UUID.upper(),
                     "0000:5e:00.1", "sneaky", "loop", F.FOREIGN_UUID]),
)


# -- the probe core under hostile options ----------------------------------------------------------

@pytest.mark.emulator
@FUSE
@EXAMPLES
@given(version=versions, mdev_type=st.sampled_from(["i915-GVTg_V5_4", "nvidia-257", "long-1"]))
def test_any_version_is_refused_unwritten_or_gets_the_drivers_verdict(target, version, mdev_type):
    outcome, writes = probe(target, [{"id": "v", "mdev_type": mdev_type, "version": version}])
    if not version_ok(version):
        assert isinstance(outcome, ProbeInputError), outcome
        assert str(outcome).startswith("refused, nothing written: checks[0]: version")
        assert writes == []
        return
    assert not isinstance(outcome, Exception), outcome
    got = {r["parent"]: (r["status"], r["errno_name"]) for r in outcome}
    assert got == expected_parents(target, mdev_type, version)
    for r in outcome:
        assert r["message"], r
    assert_writes_allowed(target, writes, outcome, version)


@pytest.mark.emulator
@FUSE
@EXAMPLES
@given(field=st.sampled_from(["id", "mdev_type", "parent", "device"]), value=names)
def test_hostile_names_are_refused_or_never_lead_a_write_astray(target, field, value):
    check = {"id": "n", "mdev_type": "i915-GVTg_V5_4", "version": F.GVT_4, field: value}
    outcome, writes = probe(target, [check])
    ok = device_ok(value) if field == "device" else name_ok(value)
    if not ok:
        assert isinstance(outcome, ProbeInputError), outcome
        assert "refused, nothing written: checks[0]: %s" % field in str(outcome)
        assert writes == []
        return
    assert not isinstance(outcome, Exception), outcome
    assert {r["status"] for r in outcome} <= set(E.STATUSES) - {E.UNKNOWN}
    assert_writes_allowed(target, writes, outcome, F.GVT_4)
    for r in outcome:  # nothing written was outside, and nothing outside was ever called compatible
        if r["attribute"] and r["status"] == "compatible":
            assert os.path.realpath(r["attribute"]).startswith(target["root"] + "/")


@pytest.mark.emulator
@FUSE
def test_links_leading_out_of_the_tree_or_to_other_files_are_never_written(target):
    outcome, writes = probe(target, [
        {"id": "evil", "mdev_type": "odd-evil", "version": "v-1"},           # -> the parent's remove
        {"id": "outside", "mdev_type": "odd-outside", "version": "v-1"},     # -> /tmp/...
        {"id": "sneaky", "mdev_type": "i915-GVTg_V5_4", "parent": "sneaky", "version": F.GVT_4},
        {"id": "foreign", "mdev_type": "i915-GVTg_V5_4", "device": F.FOREIGN_UUID, "version": F.GVT_4},
        {"id": "loop", "mdev_type": "i915-GVTg_V5_4", "parent": "loop", "version": F.GVT_4},
        {"id": "all", "mdev_type": "i915-GVTg_V5_4", "version": F.GVT_4},
    ])
    got = {(r["id"], r["parent"]): (r["status"], (r["message"] or "")[:17]) for r in outcome}
    refused = ("error", "refused to write:")
    assert got == {("evil", "0000:af:00.0"): refused, ("outside", "0000:af:00.0"): refused,
                   ("sneaky", "sneaky"): refused, ("foreign", "0000:00:02.0"): refused,
                   ("loop", "loop"): ("missing_type", "type i915-GVTg_V5"),
                   ("all", "0000:00:02.0"): ("compatible", "target accepted t"), ("all", "sneaky"): refused}
    assert [w["path"] for w in writes] == [
        "target/sys/devices/pci0000:00/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4/version"]
    assert not os.path.exists("/tmp/vfio-migration-outside")


@pytest.mark.emulator
@FUSE
@pytest.mark.parametrize("length,status,written", [(4095, "compatible", 4096), (4096, "error", None)])
def test_versions_at_the_page_limit(target, length, status, written):
    version = "L" * (length - 4) + "-2.3"
    outcome, writes = probe(target, [{"id": "l", "mdev_type": "long-1", "version": version}])
    assert [(r["status"], r["errno_name"]) for r in outcome] == [(status, None)]
    assert [w["length"] for w in writes] == ([written] if written else [])


@pytest.mark.emulator
@FUSE
@pytest.mark.parametrize("checks,why", [
    ("not a list", "checks must be a list"),
    ([["id", "x"]], "must be a dict"),
    ([{"id": "a", "mdev_type": "i915-GVTg_V5_4", "version": F.GVT_4, "sysfs_root": "/"}], "unknown keys"),
    ([{"id": "a", "mdev_type": "i915-GVTg_V5_4", "version": F.GVT_4}] * 2, "duplicate id"),
    ([{"id": "a", "mdev_type": "i915-GVTg_V5_4", "version": b"00028086"}], "version must be a string"),
    ([{"id": "a", "mdev_type": "i915-GVTg_V5_4", "version": None}], "version must be a string"),
    ([{"id": "a", "mdev_type": "i915-GVTg_V5_4"}], "version must be a string"),
    ([{"id": 7, "mdev_type": "i915-GVTg_V5_4", "version": F.GVT_4}], "id must be a non-empty string"),
])
def test_malformed_batches_are_refused_whole(target, checks, why):
    good = [{"id": "good", "mdev_type": "i915-GVTg_V5_4", "version": F.GVT_4}]
    outcome, writes = probe(target, good + checks if isinstance(checks, list) else checks)
    assert isinstance(outcome, ProbeInputError) and why in str(outcome), outcome
    assert writes == []


# -- the module through real Ansible: one run, one host alias per case ----------------------------

GOOD = {"id": "good", "mdev_type": "i915-GVTg_V5_4", "version": F.GVT_4}
# the good check's answers: the GVT-g parent accepts; the alias leading into the neighbour is refused
GOOD_ANSWERS = {("good", "0000:00:02.0"): "compatible", ("good", "sneaky"): "error"}
MODULE_CASES = {  # alias: (checks, the refusal text or {(id, parent): status})
    "nul": ([GOOD, dict(GOOD, id="x", version="0002\x008086")], "version contains a NUL byte"),
    "newline": ([GOOD, dict(GOOD, id="x", version="0002\n8086")], "version contains a line break"),
    "escape": ([GOOD, dict(GOOD, id="x", version="\x1b[2J")], "version is not printable ASCII"),
    "non-ascii": ([GOOD, dict(GOOD, id="x", version="00028086-\u00e9")], "version is not ASCII"),
    "len-4097": ([GOOD, dict(GOOD, id="x", version="a" * 4097)], "version is 4097 bytes"),
    "id-slash": ([GOOD, dict(GOOD, id="../x")], "id '../x' must not contain"),
    "type-dotdot": ([GOOD, dict(GOOD, id="x", mdev_type="..")], "mdev_type '..' must not contain"),
    "parent-path": ([GOOD, dict(GOOD, id="x", parent="../../devices")], "parent '../../devices' must not"),
    "device-path": ([GOOD, dict(GOOD, id="x", device="../remove")], "device '../remove' is neither"),
    "type-newline": ([GOOD, dict(GOOD, id="x", mdev_type="i915-GVTg_V5_4\n")], "has characters outside"),
    "len-4095": ([dict(GOOD, id="x", mdev_type="long-1", version="L" * 4091 + "-2.3")],
                 {("x", "0000:af:00.0"): "compatible"}),
    "len-4096": ([dict(GOOD, id="x", mdev_type="long-1", version="L" * 4092 + "-2.3")],
                 {("x", "0000:af:00.0"): "error"}),
    "evil-link": ([GOOD, dict(GOOD, id="x", mdev_type="odd-evil")],
                  {**GOOD_ANSWERS, ("x", "0000:af:00.0"): "error"}),
    "html": ([dict(GOOD, id="x", version=F.SCRIPT)], {("x", "0000:00:02.0"): "incompatible", ("x", "sneaky"): "error"}),
    "good": ([GOOD], GOOD_ANSWERS),
    # a time limit that is none: a hung driver would hang the play
    "timeout-nan": ([GOOD], "timeout must be a finite number > 0"),
    "timeout-inf": ([GOOD], "timeout must be a finite number > 0"),
    "timeout-zero": ([GOOD], "timeout must be a finite number > 0"),
    "parallel-zero": ([GOOD], "parallel >= 1"),
}
MODULE_OPTIONS = {"timeout-nan": {"probe_timeout": "nan"}, "timeout-inf": {"probe_timeout": "inf"},
                  "timeout-zero": {"probe_timeout": 0}, "parallel-zero": {"probe_parallel": 0}}


@pytest.mark.emulator
@pytest.mark.ansible
@FUSE
def test_module_options_through_ansible(target, tmp_path):
    inv = write_inventory(str(tmp_path / "hosts.json"), {alias: dict(MODULE_OPTIONS.get(alias, {}), checks=case[0])
                                                         for alias, case in MODULE_CASES.items()})
    before = len(target["emu"].writes())
    args = ('{"checks": "{{ checks }}", "sysfs_root": "%s", "allow_non_sysfs": true, '
            '"timeout": "{{ probe_timeout | default(5) }}", "parallel": "{{ probe_parallel | default(8) }}"}'
            % target["root"])
    results, proc = adhoc(inv, "vfio.migration.migration_probe", args, env={"ANSIBLE_FORKS": "8"})
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sorted(results) == sorted(MODULE_CASES)
    for alias, case in MODULE_CASES.items():
        res, want = results[alias], case[1]
        assert "exception" not in res and "module_stderr" not in res, (alias, res)
        if isinstance(want, str):
            assert not res.get("results") and "nothing written" in res["msg"], (alias, res)
            assert want in res["msg"], (alias, res["msg"])
        else:
            assert {(r["id"], r["parent"]): r["status"] for r in res["results"]} == want, (alias, res)
    writes = target["emu"].writes()[before:]
    assert all(os.path.basename(w["path"]) in F.ALLOWED_ATTRIBUTES for w in writes)
    # refused batches wrote nothing, not even their good check: one GVT write each from good and evil-link
    assert sorted(w["data"][:20] for w in writes) == sorted(
        [F.GVT_4[:20]] * 2 + ["L" * 20, F.SCRIPT[:20]])


# -- version strings and migration/compatible texts: the pure functions ------------------------------

HEX = "0123456789abcdefABCDEF"
version_texts = st.one_of(
    st.text(max_size=30),
    st.builds(lambda common, sep, rest: common + sep + rest, st.text(HEX, min_size=7, max_size=9),
              st.sampled_from(["", "-", "_", "--"]), st.text(max_size=20)),
    st.builds(lambda n, c: "00028086-" + c * n, st.integers(4085, 4090), st.sampled_from(["a", "\u00e9", "\x00"])),
    st.sampled_from(["00028086", "00028086-", "00028086\n", "00028086\n\n", "0002808g-x", F.GVT_4, F.SCRIPT]),
)


def decodable(text):
    if not version_ok(text):
        return False
    text = text[:-1] if text.endswith("\n") else text
    common, sep, rest = text.partition("-")
    return len(common) == 8 and all(c in HEX for c in common) and (not sep or rest != "")


@settings(max_examples=1000, deadline=None)
@given(value=st.one_of(version_texts, st.binary(max_size=30), st.integers(), st.none(), st.lists(st.text())))
def test_version_problem_says_exactly_when_a_version_is_invalid(value):
    problem = V.version_problem(value)
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    valid = version_ok(text) and not (isinstance(text, str) and text.endswith("\n"))
    assert (problem is None) == valid, (value, problem)
    assert problem is None or (isinstance(problem, str) and problem)


@settings(max_examples=1000, deadline=None)
@given(text=st.one_of(version_texts, st.integers(), st.none(), st.binary(max_size=12)))
def test_decode_version_decodes_or_says_why(text):
    try:
        got = D.decode_version(text)
    except D.VersionError as exc:
        assert not decodable(text), (text, exc)
        assert str(exc)
        return
    assert decodable(text), (text, got)
    text = text[:-1] if text.endswith("\n") else text
    value = int(text[:8], 16)
    assert got["common"] == text[:8].lower()
    assert got["vendor_id"] == "0x%04x" % (value & 0xFFFF) and got["device_type_flag"] == value >> 16
    assert got["vendor_part"] == (text[9:] if len(text) > 8 else None)


KV_TOKENS = ["a", "b", "type", "=", "==", " ", "\n", "\n\n", "#", "\r", "\x00", "\x1b", "\u2028", "\u0085",
             "{", "}", "-", ".", "1", "\u00e9", "<b>"]
kv_texts = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(KV_TOKENS), max_size=25).map("".join))


def render_blocks(blocks):
    return "\n\n".join("\n".join("%s=%s" % kv for kv in b.items()) for b in blocks)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(kv_texts, st.integers(), st.none()))
def test_parse_kv_blocks_parses_or_says_which_line(text):
    try:
        blocks = V.parse_kv_blocks(text)
    except ValueError as exc:
        assert str(exc).startswith("line ") or "must be a string" in str(exc), exc
        return
    assert isinstance(text, str)
    for block in blocks:
        assert block and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", k) for k in block)
        assert all(v == v.strip() and len(v.splitlines()) <= 1 for v in block.values())
    assert V.parse_kv_blocks(render_blocks(blocks)) == blocks  # what it read is what the text says


TEMPLATE_TOKENS = ["{", "}", "{{", "}}", "{v:int}", "{v:int:1,2,4,8}", "{v:int:0-99999999999999999999}",
                   "{w:str}", "{w:str:a,b}", "{s:version:>=1.0.0}", "{v}", "{v*2+1}", "{v/0}", "{(((((v)))))}",
                   "{v:int}{w:int}{x:int}{y:int}", "{x:float}", "{:int}", "{v:int:}", "-", "_", "1", "a", "\u00e9",
                   "\x00", "<script>", " "]
templates = st.lists(st.sampled_from(TEMPLATE_TOKENS), max_size=8).map("".join)
self_values = st.text(st.sampled_from("0123456789ab-_.{}"), max_size=24)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.sampled_from(["type", "aggregator", "pci_id", "x"]), min_size=1, max_size=3, unique=True),
       data=st.data())
def test_compatible_match_answers_or_refuses_hostile_templates_quickly(keys, data):
    compat = {k: data.draw(templates, label=k) for k in keys}
    self_block = {k: data.draw(self_values, label="self " + k) for k in keys}
    start = time.monotonic()
    try:
        got = C.compatible_match(self_block, [compat])
    except C.TemplateError as exc:
        assert str(exc).startswith("compatible block 0") or "self" in str(exc), exc
        got = None
    assert time.monotonic() - start < 5
    if got is not None:
        assert set(got) == {"match", "block", "bindings", "reasons"}
        assert got["match"] == (got["block"] == 0) == (got["reasons"] == [])
        if all("{" not in t and "}" not in t for t in compat.values()):  # literal templates: plain equality
            assert got["match"] == all(compat[k] == self_block[k] for k in keys)


@settings(max_examples=200, deadline=None)
@given(self_block=st.dictionaries(st.sampled_from(["type", "pci_id", "aggregator", "b.c", "_x"]),
                                  st.text(PRINTABLE.filter(lambda c: c not in "{}"), min_size=1, max_size=12).map(
                                      str.strip).filter(bool), min_size=1),
       flips=st.sets(st.sampled_from(["type", "pci_id", "aggregator", "b.c", "_x"])))
def test_compatible_match_verdict_on_literal_layouts(self_block, flips):
    """A compatible block copied from self matches; changing any value it names breaks the match."""
    compat = {k: (v + "0" if k in flips else v) for k, v in self_block.items()}
    text = render_blocks([compat])
    assume(V.parse_kv_blocks(text) == [compat])
    got = C.compatible_match(self_block, text)
    assert got["match"] == (not flips & set(self_block)), got


# -- the filters through real Ansible, with untrusted (module-result) input --------------------------

FILTER_CASES = {
    "decode_version": ["00028086-193b-i915-GVTg_V5_4", "0002808", "00028086-", "a" * 4097, "0002\x008086",
                       "\x1b[31m00028086", "00028086-\u00e9", "{{ 7 * 7 }}", F.SCRIPT, "00028086\n", "00100000"],
    "parse_migration_layout": ["type=a\naggregator=2", "no equals", "=x", "a=1\n\na=2", "\x1b[2J=1",
                               "{{ 7 * 7 }}=1", "k={{ 7 * 7 }}", ""],
    "compatible_match": [["type=i915-GVTg_V5_4", "type=i915-GVTg_V5_{v:int:1,2,4,8}"],
                         ["type=i915-GVTg_V5_3", "type=i915-GVTg_V5_{v:int:1,2,4,8}"],
                         ["type=x", "type={v:int:1-"], ["type=x", "type={v*}"], ["a=1\n\nb=2", "type=x"],
                         ["type={ 7 * 7 }", "type={{ 7 * 7 }}"], ["type=49", "type={{ 7 * 7 }}"]],
}

FILTER_PLAY = """
- name: Filters on untrusted strings
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the cases as a module result (untrusted, as facts are)
      ansible.builtin.slurp:
        src: "{{ cases_file }}"
      register: raw
    - name: Decode
      ansible.builtin.set_fact:
        cases: "{{ raw.content | b64decode | from_json }}"
    - name: decode_version
      ansible.builtin.debug:
        msg: "{{ item | vfio.migration.decode_version }}"
      loop: "{{ cases.decode_version }}"
      register: r_decode
      ignore_errors: true
    - name: parse_migration_layout
      ansible.builtin.debug:
        msg: "{{ item | vfio.migration.parse_migration_layout }}"
      loop: "{{ cases.parse_migration_layout }}"
      register: r_layout
      ignore_errors: true
    - name: compatible_match
      ansible.builtin.debug:
        msg: "{{ item[0] | vfio.migration.compatible_match(item[1]) }}"
      loop: "{{ cases.compatible_match }}"
      register: r_match
      ignore_errors: true
    - name: Save what each filter said
      ansible.builtin.copy:
        dest: "{{ out_file }}"
        content: "{{ {'decode_version': r_decode.results, 'parse_migration_layout': r_layout.results,
                      'compatible_match': r_match.results} | to_json }}"
        mode: "0644"
"""


def direct(name, case):
    """What the module_utils function says: ``("ok", value)`` or ``("error", message)``."""
    fn = {"decode_version": D.decode_version, "parse_migration_layout": V.parse_kv_blocks,
          "compatible_match": lambda c: C.compatible_match(c[0], c[1])}[name]
    try:
        return "ok", fn(case)
    except ValueError as exc:
        return "error", str(exc)


@pytest.mark.ansible
def test_filters_through_ansible_give_a_verdict_or_a_clear_error(tmp_path):
    (tmp_path / "cases.json").write_text(json.dumps(FILTER_CASES))
    (tmp_path / "play.yml").write_text(FILTER_PLAY)
    inv = write_inventory(str(tmp_path / "hosts.json"), {"localhost": {}})
    proc = playbook(inv, str(tmp_path / "play.yml"),
                    extra_vars={"cases_file": str(tmp_path / "cases.json"), "out_file": str(tmp_path / "out.json")})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    said = json.loads((tmp_path / "out.json").read_text())
    for name, cases in FILTER_CASES.items():
        assert len(said[name]) == len(cases)
        for case, res in zip(cases, said[name]):
            kind, value = direct(name, case)
            assert "Traceback" not in res.get("exception", ""), (name, case, res)
            if kind == "ok":
                assert not res.get("failed") and res["msg"] == value, (name, case, res)
            else:
                assert res.get("failed"), (name, case, res)
                assert res["msg"].endswith("%s: %s" % (name, value)), (name, case, res["msg"])
    # a Jinja expression in data stays text: never evaluated ({{ }} in a template is an escaped brace)
    assert "{{ 7 * 7 }}" in said["decode_version"][7]["msg"]
    assert said["parse_migration_layout"][6]["msg"] == [{"k": "{{ 7 * 7 }}"}]
    assert said["compatible_match"][5]["msg"]["match"] is True
    assert said["compatible_match"][6]["msg"]["match"] is False
