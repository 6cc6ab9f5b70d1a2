"""migration_probe, run by Ansible, against drivers that really answer with errno.

One emulated target host offers every vendor rule of the FUSE emulator. The
module runs through ``ansible -m vfio.migration.migration_probe``; verdicts
are checked per parent, and the emulator's write log proves what was and was
not written.
"""

import json
import os
import time

import pytest

from ansible_collections.vfio.migration.plugins.module_utils._probe import standard_message
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix
from tests.ansible_runner import adhoc, playbook, write_inventory
from tests.emulator.mount import EmulatorMount, fuse_unavailable
from tests.fixtures import sysfs_builder as B

pytestmark = [pytest.mark.emulator, pytest.mark.ansible,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

GVT_4 = "00028086-193b-i915-GVTg_V5_4"
NV = "000210de-nvidia-257-%s"
DEV_UUID = "0d0e0f10-1112-4314-8516-171819202122"
VF_VERSION = "000215b3-mlx5-cx7-1.0"


def build_target(hostdir):
    t = B.SysfsTree(hostdir)
    B.intel_gvtg(t, types={"4": B.GVT_TYPES["4"]})
    B.intel_gvtg(t, bdf="0000:00:02.1", device_id="0x3e92", supported=False, types={"2": B.GVT_TYPES["2"]})
    # two NVIDIA parents offering one type at different minor versions
    B.nvidia_vgpu(t, "0000:3b:00.0", minor=3, types={"257": B.NVIDIA_TYPES["257"]},
                  instances=[("257", DEV_UUID)])
    B.nvidia_vgpu(t, "0000:5e:00.0", minor=1, types={"257": B.NVIDIA_TYPES["257"]})
    gpu = "devices/pci0000:af/0000:af:00.0"
    B.nvidia_vgpu(t, "0000:af:00.0", types={"258": B.NVIDIA_TYPES["258"]})
    for type_id, rule in (("odd-enodev", {"rule": "read_enodev"}),
                          ("odd-slow", {"rule": "slow", "delay": 0.5, "inner": {"rule": "exact", "self": "s-1"}}),
                          ("odd-eio", {"rule": "eio", "self": "e-1"}),
                          ("odd-eacces", {"rule": "eacces", "self": "a-1"}),
                          ("odd-hang", {"rule": "hang", "self": "h-1"})):
        t.mdev_type(gpu, type_id, "vfio-pci", 1, migration=rule)
    B.mtty(t)
    B.mlx5_vf(t)
    # hostile links: an attribute that resolves to `remove`, one that leaves the tree
    evil = t.mdev_type(gpu, "odd-evil", "vfio-pci", 1)
    t.link(evil + "/migration_version", gpu + "/remove")
    outside = t.mdev_type(gpu, "odd-outside", "vfio-pci", 1)
    os.symlink("/tmp/vfio-migration-outside/migration_version", t.abs(outside + "/migration_version"))
    return t.save()


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    base = tmp_path_factory.mktemp("probe")
    build_target(str(base / "src" / "target"))
    mnt = base / "mnt"
    mnt.mkdir()
    inv = write_inventory(str(base / "hosts.json"), {"target": {
        "ansible_python_interpreter": os.environ["ANSIBLE_PYTHON_INTERPRETER"],
        "root": str(mnt / "target" / "sys")}})
    with EmulatorMount(str(base / "src"), str(mnt), str(base / "writes.log")) as emu:
        yield {"inv": inv, "emu": emu, "root": str(mnt / "target" / "sys")}


def probe_run(target, checks, check_mode=False, env=None, **opts):
    """Run the module; return ``(result, completed_process)``."""
    args = dict({"sysfs_root": target["root"], "allow_non_sysfs": True, "checks": checks}, **opts)
    results, proc = adhoc(target["inv"], "vfio.migration.migration_probe", args, check=check_mode, env=env)
    return results["target"], proc


def probe(target, checks, check_mode=False, env=None, **opts):
    """Run the module; return its result."""
    return probe_run(target, checks, check_mode, env, **opts)[0]


def by_parent(result, check_id):
    return {r["parent"]: (r["status"], r["errno_name"]) for r in result["results"] if r["id"] == check_id}


# one check for every rule of the emulated drivers, and for what is decided without a write
EVERY_RULE = [
    {"id": "gvt-same", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4},
    {"id": "gvt-other", "mdev_type": "i915-GVTg_V5_4", "version": "00028086-193b-i915-GVTg_V5_2"},
    {"id": "gvt-oldgen", "mdev_type": "i915-GVTg_V5_2", "version": "00028086-3e92-i915-GVTg_V5_2"},
    {"id": "nv-2.2", "mdev_type": "nvidia-257", "version": NV % "2.2"},
    {"id": "nv-3.0", "mdev_type": "nvidia-257", "version": NV % "3.0"},
    {"id": "enodev", "mdev_type": "odd-enodev", "version": "x-1"},
    {"id": "slow", "mdev_type": "odd-slow", "version": "s-1"},
    {"id": "eio", "mdev_type": "odd-eio", "version": "e-1"},
    {"id": "eacces", "mdev_type": "odd-eacces", "version": "a-1"},
    {"id": "mtty", "mdev_type": "mtty-2", "version": "m-1"},
    {"id": "nosuch", "mdev_type": "nvidia-999", "version": NV % "2.3"},
    {"id": "vf", "mdev_type": "pci-15b3:101e", "version": VF_VERSION},
    {"id": "vf-newer", "mdev_type": "pci-15b3:101e", "version": "000215b3-mlx5-cx7-1.7"},
]


def test_every_vendor_rule_gives_its_verdict(target):
    before = len(target["emu"].writes())
    res = probe(target, EVERY_RULE)
    assert res["changed"] is False and "msg" not in res, res
    assert by_parent(res, "gvt-same") == {"0000:00:02.0": ("compatible", None)}
    assert by_parent(res, "gvt-other") == {"0000:00:02.0": ("incompatible", "EINVAL")}
    assert by_parent(res, "gvt-oldgen") == {"0000:00:02.1": ("unsupported", "ENODEV")}
    # several parents offer the type: every one answers for itself
    assert by_parent(res, "nv-2.2") == {"0000:3b:00.0": ("compatible", None),
                                        "0000:5e:00.0": ("incompatible", "EINVAL")}
    assert by_parent(res, "nv-3.0") == {"0000:3b:00.0": ("incompatible", "EPROTO"),
                                        "0000:5e:00.0": ("incompatible", "EPROTO")}
    assert by_parent(res, "enodev") == {"0000:af:00.0": ("unsupported", "ENODEV")}
    assert by_parent(res, "slow") == {"0000:af:00.0": ("compatible", None)}
    assert by_parent(res, "eio") == {"0000:af:00.0": ("error", "EIO")}
    assert by_parent(res, "eacces") == {"0000:af:00.0": ("error", "EACCES")}
    assert by_parent(res, "mtty") == {"mtty": ("unsupported", "ENOENT")}
    assert by_parent(res, "nosuch") == {None: ("missing_type", None)}
    assert by_parent(res, "vf") == {"0000:5e:00.1": ("compatible", None)}
    assert by_parent(res, "vf-newer") == {"0000:5e:00.1": ("incompatible", "EINVAL")}

    written = target["emu"].writes()[before:]
    assert {os.path.basename(w["path"]) for w in written} <= {"migration_version", "version"}
    # each write carries the source version as `echo` writes it
    datas = {w["data"] for w in written}
    assert GVT_4 + "\n" in datas and NV % "2.2" + "\n" in datas
    # nothing is written where the type is missing, the attribute is absent or unreadable
    assert not [w for w in written if "mtty" in w["path"] or "odd-enodev" in w["path"] or "3e92" in w["data"]]


def test_device_level_checks(target):
    res = probe(target, [
        {"id": "dev", "mdev_type": "nvidia-257", "version": NV % "2.0", "device": DEV_UUID},
        {"id": "dev-wrong-type", "mdev_type": "nvidia-258", "version": NV % "2.0", "device": DEV_UUID},
        {"id": "dev-absent", "mdev_type": "nvidia-257", "version": NV % "2.0",
         "device": "99999999-9999-4999-8999-999999999999"},
    ])
    dev = [r for r in res["results"] if r["id"] == "dev"][0]
    assert (dev["status"], dev["device"], dev["parent"]) == ("compatible", DEV_UUID, "0000:3b:00.0")
    assert dev["attribute"].endswith(DEV_UUID + "/migration_version")
    assert by_parent(res, "dev-wrong-type") == {"0000:3b:00.0": ("missing_type", None)}
    assert by_parent(res, "dev-absent") == {None: ("missing_type", None)}


COMPACT_KEYS = {"id", "parent", "status", "device", "errno", "errno_name", "message"}


def test_a_compact_result_gives_the_matrix_the_same_verdicts(target):
    """``compact: true`` (the matrix role's form) against the full result, for every kind of answer."""
    checks = EVERY_RULE + [
        {"id": "hang", "mdev_type": "odd-hang", "version": "h-1"},
        {"id": "evil", "mdev_type": "odd-evil", "version": "v-1"},
        {"id": "dev", "mdev_type": "nvidia-257", "version": NV % "2.0", "device": DEV_UUID},
    ]
    # (the invocation is in a callback's result at -vvv)
    full_result = probe(target, checks, timeout=1.5, env={"ANSIBLE_VERBOSITY": "3"})
    compact_result = probe(target, checks, timeout=1.5, compact=True, env={"ANSIBLE_VERBOSITY": "3"})
    full, compact = full_result["results"], compact_result["results"]
    # the invocation names each check by its id; every other argument is as given
    full_args, compact_args = full_result["invocation"]["module_args"], compact_result["invocation"]["module_args"]
    assert full_args["checks"][0] == dict(checks[0], parent=None, device=None)
    assert compact_args["checks"] == [c["id"] for c in checks]
    assert {k: v for k, v in compact_args.items() if k not in ("checks", "compact")} == \
        {k: v for k, v in full_args.items() if k not in ("checks", "compact")}
    assert [(r["id"], r["parent"]) for r in compact] == [(r["id"], r["parent"]) for r in full]
    statuses = set()
    for f, c in zip(full, compact):
        statuses.add(f["status"])
        assert set(c) <= COMPACT_KEYS, c
        # the same answer, and nothing left out that a reader could not tell from the status and errno
        assert {k: c.get(k) for k in COMPACT_KEYS - {"message"}} == {k: f[k] for k in COMPACT_KEYS - {"message"}}
        assert c.get("message", standard_message(c["status"], c.get("errno_name"))) == f["message"], (f, c)
        # a message is left out only where it is the status's own words
        assert ("message" in c) == (f["message"] != standard_message(f["status"], f["errno_name"])), (f, c)
    assert statuses == {"compatible", "incompatible", "unsupported", "error", "missing_type"}
    assert len([c for c in compact if "message" not in c]) >= 8
    # the controller makes the same verdicts of both
    offered = {c["mdev_type"]: {} for c in checks}
    type_of = {c["id"]: c["mdev_type"] for c in checks}
    assert (_matrix._probed_verdicts(compact, offered, type_of, _matrix._Shared())
            == _matrix._probed_verdicts(full, offered, type_of, _matrix._Shared()))


def test_an_empty_batch_is_skipped_without_asking_the_host(target, tmp_path):
    """No checks: the action skips the task on the controller; the host is not even reached."""
    gone = write_inventory(str(tmp_path / "gone.json"), {"target": {
        "ansible_python_interpreter": "/nonexistent/python3"}})
    args = {"sysfs_root": target["root"], "allow_non_sysfs": True}
    # (the tree callback of adhoc() writes nothing for a skipped host: a play keeps the registered result)
    out = tmp_path / "skipped.json"
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": [
        {"vfio.migration.migration_probe": dict(args, checks=[]), "register": "r"},
        {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(out)}, "delegate_to": "localhost",
         "vars": {"ansible_python_interpreter": os.environ["ANSIBLE_PYTHON_INTERPRETER"]}}]}]))
    proc = playbook(gone, str(play))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    skipped = json.loads(out.read_text())
    assert skipped.get("skipped") is True and "results" not in skipped, skipped
    assert "no checks" in skipped["skip_reason"]
    # the same host with a check: the module is run, and its interpreter is not there
    ran = adhoc(gone, "vfio.migration.migration_probe", dict(args, checks=EVERY_RULE[:1]))[0]["target"]
    assert not ran.get("skipped") and "/nonexistent/python3" in json.dumps(ran), ran


def _batches_play(target, tmp_path, batches, play_vars=None, pre_tasks=(), **probe_args):
    """One play over ``target`` and ``gone`` (a host whose Python does not exist): ``pre_tasks``, then the
    probe with ``batches_var``, every result registered and written out; returns ``({host: result}, process)``.
    ``play_vars`` are added to the play's; a probe argument given as None is left out."""
    inv = write_inventory(str(tmp_path / "hosts.json"), {
        "target": {"ansible_python_interpreter": os.environ["ANSIBLE_PYTHON_INTERPRETER"]},
        "gone": {"ansible_python_interpreter": "/nonexistent/python3"}})
    out = tmp_path / "results.json"
    args = dict({"sysfs_root": target["root"], "allow_non_sysfs": True, "batches_var": "fleet_batches"}, **probe_args)
    args = {key: value for key, value in args.items() if value is not None}
    play = tmp_path / "play.yml"
    tasks = list(pre_tasks) + [
        {"vfio.migration.migration_probe": args, "register": "r", "ignore_errors": True},
        {"ansible.builtin.copy": {"content": "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all "
                                             "| map('extract', hostvars, 'r'))) | to_json }}", "dest": str(out)},
         "delegate_to": "localhost", "run_once": True,
         "vars": {"ansible_python_interpreter": os.environ["ANSIBLE_PYTHON_INTERPRETER"]}}]
    play.write_text(json.dumps([{"hosts": "all", "gather_facts": False,
                                 "vars": dict(play_vars or {}, fleet_batches=batches), "tasks": tasks}]))
    proc = playbook(inv, str(play))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc


def test_batches_var_sends_each_host_its_own_batch_and_skips_a_host_without_one(target, tmp_path):
    """The action takes this host's entry of the named variable: the same writes and verdicts as those
    checks given directly; a host with no entry is skipped without being reached (its Python does not exist)."""
    mine = EVERY_RULE[:4]
    before = len(target["emu"].writes())
    results, dummy = _batches_play(target, tmp_path, {"target": mine, "elsewhere": EVERY_RULE[4:]}, compact=True)
    middle = len(target["emu"].writes())
    got, gone = results["target"], results["gone"]
    assert not got.get("failed") and {r["id"] for r in got["results"]} == {c["id"] for c in mine}, got
    assert got["results"] == probe(target, mine, compact=True)["results"]

    def written(entries):
        return sorted((e["path"], json.dumps(e, sort_keys=True)) for e in entries if "path" in e)
    log = target["emu"].writes()
    assert middle > before and len(written(log[before:middle])) == len(written(log[middle:]))
    assert [e["path"] for e in log[before:middle]] == [e["path"] for e in log[middle:]]
    assert gone.get("skipped") is True and "no checks" in gone["skip_reason"], gone


BAD_BATCHES = {  # (the variable's value, more arguments, the message)
    "not defined": ({"target": EVERY_RULE[:1]}, {"batches_var": "nosuch"}, "batches_var: nosuch is not defined"),
    "not a mapping": (["target"], {}, "batches_var: fleet_batches must map host names to lists of checks, not list"),
    "entry not a list": ({"target": "gvt", "gone": "gvt"}, {}, "fleet_batches['target'] must be a list of checks"),
    "with checks too": ({"target": EVERY_RULE[:1]}, {"checks": EVERY_RULE[:1]}, "give checks or batches_var, not both"),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_a_bad_batches_var_fails_on_the_controller_and_writes_nothing(target, tmp_path, case):
    batches, args, message = BAD_BATCHES[case]
    before = len(target["emu"].writes())
    results, dummy = _batches_play(target, tmp_path, batches, **args)
    for host in ("target", "gone"):  # gone's Python does not exist: failing there too, nothing reached a host
        assert results[host].get("failed") is True and "results" not in results[host], results[host]
        assert message.replace("'target'", repr(host)) in results[host]["msg"], results[host]
    assert target["emu"].writes()[before:] == []


def test_option_vars_read_each_option_from_its_variable(target, tmp_path):
    """option_vars: the same writes and verdicts as the options given directly (the emulator is not sysfs: it
    is refused unless allow_non_sysfs came through); a variable holding a template is templated. That the
    module gets the timeout's value: test_bad_option_vars_fail_clearly_and_write_nothing (refused on the host)."""
    mine = EVERY_RULE[:4]
    direct = probe(target, mine, compact=True, timeout=3)["results"]
    before = len(target["emu"].writes())
    results, dummy = _batches_play(
        target, tmp_path, {"target": mine},
        play_vars={"lab_base": os.path.dirname(target["root"]), "lab_root": "{{ lab_base }}/sys",
                   "lab_allow": True, "lab_timeout": 3},
        sysfs_root=None, allow_non_sysfs=None, compact=True,
        option_vars={"sysfs_root": "lab_root", "allow_non_sysfs": "lab_allow", "timeout": "lab_timeout"})
    got = results["target"]
    assert not got.get("failed") and got["results"] == direct, got
    assert len(target["emu"].writes()) > before


def test_the_probe_asks_in_the_tree_the_hosts_facts_were_read_from(target, tmp_path):
    """Without sysfs_root the action gives the module the sysfs_root of this host's vfio_mdev facts
    (as the matrix role's probe task does): the same verdicts as naming the tree (in /sys, this machine's,
    none of these types exists)."""
    mine = EVERY_RULE[:4]
    gather = {"vfio.migration.mdev_facts": {"sysfs_root": target["root"], "use_udev": False, "query_qemu": False,
                                            "persist": False},
              "when": "inventory_hostname == 'target'"}
    results, dummy = _batches_play(target, tmp_path, {"target": mine}, pre_tasks=[gather], sysfs_root=None,
                                   compact=True)
    got = results["target"]
    assert not got.get("failed"), got
    assert got["results"] == probe(target, mine, compact=True)["results"]
    assert {r["status"] for r in got["results"]} != {"missing_type"}


BAD_OPTION_VARS = {  # (option_vars, more play variables, the message)
    "not defined": ({"timeout": "nosuch"}, {}, "option_vars: timeout: the variable nosuch is not defined"),
    "not an option": ({"checks": "fleet_batches"}, {}, "option_vars: checks is not an option that can be read"),
    "not a mapping": (["timeout"], {}, "option_vars must map option names to variable names, not list"),
    "bad value, checked on the host": ({"timeout": "lab_timeout"}, {"lab_timeout": "soon"},
                                       "argument 'timeout' is of type str"),
    "timeout 0, refused on the host": ({"timeout": "lab_timeout"}, {"lab_timeout": 0},
                                       "timeout must be a finite number > 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTION_VARS))
def test_bad_option_vars_fail_clearly_and_write_nothing(target, tmp_path, case):
    option_vars, play_vars, message = BAD_OPTION_VARS[case]
    before = len(target["emu"].writes())
    results, dummy = _batches_play(target, tmp_path, {"target": EVERY_RULE[:2], "gone": EVERY_RULE[:2]},
                                   play_vars=play_vars, option_vars=option_vars)
    assert results["target"].get("failed") is True and not results["target"].get("results"), results["target"]
    assert message in results["target"]["msg"], results["target"]
    if "on the host" not in case:  # refused on the controller: the missing Python is never run
        assert message in results["gone"]["msg"], results["gone"]
    assert target["emu"].writes()[before:] == []


def test_hung_driver_gives_error_not_a_hung_play(target):
    start = time.monotonic()
    res = probe(target, [{"id": "hang", "mdev_type": "odd-hang", "version": "h-1"},
                         {"id": "ok", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4}], timeout=1.5)
    assert time.monotonic() - start < 30
    assert by_parent(res, "hang") == {"0000:af:00.0": ("error", "ETIMEDOUT")}
    assert by_parent(res, "ok") == {"0000:00:02.0": ("compatible", None)}


def test_links_that_lead_elsewhere_are_never_written(target):
    before = len(target["emu"].writes())
    res = probe(target, [{"id": "evil", "mdev_type": "odd-evil", "version": "v-1"},
                         {"id": "outside", "mdev_type": "odd-outside", "version": "v-1"}])
    for cid in ("evil", "outside"):
        r = [r for r in res["results"] if r["id"] == cid][0]
        assert r["status"] == "error" and "refused to write" in r["message"], r
    assert target["emu"].writes()[before:] == []
    assert not os.path.exists("/tmp/vfio-migration-outside")


def test_check_mode_probes_too_and_changes_nothing(target):
    res = probe(target, [{"id": "c", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4}], check_mode=True)
    assert res["changed"] is False
    assert by_parent(res, "c") == {"0000:00:02.0": ("compatible", None)}


def test_duplicate_versions_share_one_write(target):
    before = len(target["emu"].writes())
    probe(target, [{"id": "one", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4},
                   {"id": "two", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4}])
    assert len(target["emu"].writes()[before:]) == 1


BAD = {
    "empty version": {"id": "x", "mdev_type": "i915-GVTg_V5_4", "version": ""},
    "4097 bytes": {"id": "x", "mdev_type": "i915-GVTg_V5_4", "version": "a" * 4097},
    "not ascii": {"id": "x", "mdev_type": "i915-GVTg_V5_4", "version": "00028086-193b-i915-GVTg_V5_4\u00e9"},
    "NUL inside": {"id": "x", "mdev_type": "i915-GVTg_V5_4", "version": "0002\x008086"},
    "newline inside": {"id": "x", "mdev_type": "i915-GVTg_V5_4", "version": "0002\n8086"},
    "id with slash": {"id": "a/b", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4},
    "type dotdot": {"id": "x", "mdev_type": "..", "version": GVT_4},
    "type path": {"id": "x", "mdev_type": "../../0000:00:02.0/remove", "version": GVT_4},
    "parent path": {"id": "x", "mdev_type": "i915-GVTg_V5_4", "parent": "../../devices", "version": GVT_4},
    "device not uuid": {"id": "x", "mdev_type": "i915-GVTg_V5_4", "device": "../remove", "version": GVT_4},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_clearly_and_writes_nothing(target, case):
    before = len(target["emu"].writes())
    good = {"id": "good", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4}
    res, proc = probe_run(target, [good, BAD[case]])
    assert proc.returncode != 0 and res["results"] == [], res
    assert "nothing written" in res["msg"]
    assert target["emu"].writes()[before:] == []  # not even the good check of the batch


def test_non_sysfs_root_is_refused_without_the_option(target):
    before = len(target["emu"].writes())
    res, proc = probe_run(target, [{"id": "x", "mdev_type": "i915-GVTg_V5_4", "version": GVT_4}], allow_non_sysfs=False)
    assert proc.returncode != 0 and "not sysfs" in res["msg"], res
    assert target["emu"].writes()[before:] == []
