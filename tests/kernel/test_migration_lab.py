# Copyright: (c) 2026, vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Truth: every readiness verdict against a real live migration of a real VM.

Four Debian 6.12 guests (``lab612.MIG_VMS``) run libvirt 11.3 and QEMU 10 with
the honest mtty driver (``mtty-612-migration.patch``): mig-a 1.2, mig-b 1.3,
mig-c 2.0, mig-d without migration. ``vfio.migration.readiness`` runs over
them first. Then, for every cell of its matrix (every ordered pair of guests
and each type: both mtty types are on every guest, a source with or without
instances), a fresh VM owning a fresh instance of that type is live-migrated
for real with
``virsh migrate --live`` (the target gets a free instance with the same
uuid, as a manager would make it). Every cell the matrix calls
``compatible`` must have migrated and every other cell must not have.
Then ``vfio.migration.precheck`` plans a drain of mig-a and mig-c in VMs and
the plan is carried out: each placed VM gets its target devices as planned
(an instance created with the source's UUID, or mig-b's one free pre-created
instance used under its own UUID) and live-migrates whole to its target,
where it must run on exactly those instances; the shut-off VM moves offline
and must start there; the stranded VM must have had nowhere to go. Last,
``vfio.migration.rolling`` plans the upgrade of mig-a (a new two-instance VM
runs there) and the first wave of its schedule is carried out the same way.
"""

import json
import os
import re
import subprocess
import threading
import time

import pytest

from tests.ansible_runner import adhoc, playbook
from tests.kernel import lab612 as L

pytestmark = pytest.mark.kernel

# The lab checks the driver's word: no policy cells.
NO_POLICY = {"vfio_migration_policy": {"enabled": False}, "vfio_migration_report_timestamp": False}
DRAIN = ["mig-a", "mig-c"]
ORDER = ["compatible", "incompatible", "unsupported", "missing_type", "error", "unknown"]
SUMMARY = {}


@pytest.fixture(scope="module")
def mig_lab():
    if os.geteuid() != 0:
        pytest.skip("the migration lab installs packages and builds modules: run as root")
    t0 = time.monotonic()
    build = L.build()
    run_dir, lock = L.base.run_dir_for(build.lab_dir, "session612")
    lab = L.boot(build, run_dir)
    lab.timings = dict({"build (packages, mtty.ko, initramfs)": build.seconds}, **lab.timings)
    SUMMARY["lab"] = lab
    try:
        yield lab
    finally:
        t1 = time.monotonic()
        lab.stop()
        lab.timings["shutdown"] = time.monotonic() - t1
        lab.timings["migration lab total"] = time.monotonic() - t0
        lab.write_state()
        if lock:
            lock.__exit__(None, None, None)


def best(matrix, source, target, mdev_type):
    """The matrix's verdict for a source host, target host and type (best over parents)."""
    cells = [c for c in matrix["cells"]
             if (c["source_host"], c["target_host"], c["mdev_type"]) == (source, target, mdev_type)]
    assert cells, (source, target, mdev_type)
    return min(cells, key=lambda c: ORDER.index(c["status"]))


def run_playbook(lab, name, label, **extra):
    t0 = time.monotonic()
    report = os.path.join(lab.run_dir, label)
    proc = playbook(lab.inventory, name, timeout=1200,
                    extra_vars=dict(NO_POLICY, vfio_migration_report_dir=report, **extra))
    lab.timings["%s (ansible-playbook)" % label] = time.monotonic() - t0
    with open(os.path.join(lab.run_dir, "%s.log" % label), "w") as f:
        f.write(proc.stdout + proc.stderr)
    path = os.path.join(report, "matrix.json")
    matrix = None
    if os.path.exists(path):
        with open(path) as f:
            matrix = json.load(f)
    return proc, matrix


@pytest.fixture(scope="module")
def readiness(mig_lab):
    proc, matrix = run_playbook(mig_lab, "vfio.migration.readiness", "readiness")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert matrix is not None
    return matrix


# ------------------------------------------------------------------ real migrations

def _first_error(text):
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("error:") and "Failed to" not in ln[:20]:
            return ln[len("error:"):].strip()
    return " ".join(lines)[-300:]


def blocked_reasons(lab, host, dom):
    """QEMU's own list of why this running VM cannot migrate (QMP query-migrate)."""
    proc = lab.virsh(host, "qemu-monitor-command", dom, '{"execute":"query-migrate"}', check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout).get("return", {}).get("blocked-reasons", [])


def domstate(lab, host, dom):
    proc = lab.virsh(host, "domstate", dom, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def migrate(lab, source, target, dom, persistent=False, offline=False, xml=None, persistent_xml=None):
    """``virsh migrate`` from this machine between two guests' libvirtds; (rc, output, seconds).

    ``xml`` / ``persistent_xml``: files with the domain as the target must run / keep it
    (``--xml`` / ``--persistent-xml``), for a target whose instances have other UUIDs.
    """
    args = ["virsh", "-q", "-c", lab.uri(source), "migrate"]
    if offline:
        args += ["--offline", "--persistent", "--undefinesource", dom, lab.uri(target)]
    else:
        args += ["--live"] + (["--persistent", "--undefinesource"] if persistent else [])
        args += ["--xml", xml] if xml else []
        args += ["--persistent-xml", persistent_xml] if persistent_xml else []
        args += [dom, lab.uri(target), "tcp://10.0.2.2:%d" % lab.mig_ports[target]]
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0


def truth_cell(lab, source, target, mdev_type):
    """One real live migration of a fresh VM owning a fresh ``mdev_type`` instance."""
    uuid = L._uuid_for("probe", source, target, mdev_type)  # pylint: disable=protected-access
    dom = "probe-%s-%s-%s" % (source, target, mdev_type)
    cell = {"source": source, "target": target, "type": mdev_type, "vm": dom, "uuid": uuid}
    try:
        lab.mdev_create(source, uuid, mdev_type)
        lab.mdev_create(target, uuid, mdev_type)
        lab.virsh(source, "create", "/dev/stdin", input=lab.domain_xml(dom, (uuid,), source))
        cell["blocked_reasons"] = blocked_reasons(lab, source, dom)
        rc, out, secs = migrate(lab, source, target, dom)
        cell.update(rc=rc, seconds=round(secs, 1), error=None if rc == 0 else _first_error(out))
        on_target, on_source = domstate(lab, target, dom), domstate(lab, source, dom)
        cell.update(on_target=on_target, on_source=on_source,
                    migrated=on_target == "running" and on_source is None)
    finally:
        for host in (source, target):
            lab.virsh(host, "destroy", dom, check=False)
            lab.mdev_remove(host, uuid)
    return cell


def judged(matrix):
    """Every (source host, target host, type) the matrix gave a verdict for: what is migrated."""
    return sorted({(c["source_host"], c["target_host"], c["mdev_type"]) for c in matrix["cells"]})


def _rounds(hosts):
    """Ordered host pairs in rounds: within a round no two pairs share a guest."""
    hosts = list(hosts)
    if len(hosts) % 2:
        hosts.append(None)
    n, rounds = len(hosts), []
    for r in range(n - 1):
        pairs = []
        for i in range(n // 2):
            a, b = hosts[i], hosts[n - 1 - i]
            if a and b:
                pairs.append((a, b))
        rounds.append(pairs)
        hosts = [hosts[0], hosts[-1]] + hosts[1:-1]
    return rounds


@pytest.fixture(scope="module")
def truth(mig_lab, readiness):
    """Every (source, target, type) cell migrated for real; list of outcome dicts."""
    lab, cells, errors = mig_lab, [], []
    t0 = time.monotonic()

    todo = judged(readiness)

    def direction(source, target):
        for mdev_type in [t for s, d, t in todo if (s, d) == (source, target)]:
            try:
                cells.append(truth_cell(lab, source, target, mdev_type))
            except Exception as exc:  # pylint: disable=broad-except
                errors.append("%s -> %s %s: %s" % (source, target, mdev_type, exc))

    for pairs in _rounds(lab.hosts):
        threads = []
        for a, b in pairs:
            threads += [threading.Thread(target=direction, args=(a, b)),
                        threading.Thread(target=direction, args=(b, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lab.timings["real migrations (%d cells)" % len(cells)] = time.monotonic() - t0
    assert not errors, "\n".join(errors)
    for c in cells:
        v = best(readiness, c["source"], c["target"], c["type"])
        c.update(predicted=v["status"], errno_name=v["errno_name"], evidence=v["evidence"])
    cells.sort(key=lambda c: (c["source"], c["target"], c["type"]))
    SUMMARY["truth"] = cells
    with open(os.path.join(lab.run_dir, "truth.json"), "w") as f:
        json.dump(cells, f, indent=1)
    return cells


# ------------------------------------------------------------------ the guests

def test_guests_run_6_12_libvirt_and_the_lab_vms(mig_lab):
    lab = mig_lab
    for name in lab.hosts:
        out = lab.ssh(name, "uname -r; cat /sys/module/mtty/parameters/migration").stdout.split()
        assert out == [L.KV, str(lab.vm(name).migration)], (name, out)
        version = lab.virsh(name, "version").stdout
        assert re.search(r"libvirt 11\.", version) and re.search(r"QEMU 10\.", version), version
        listed = lab.virsh(name, "list", "--all").stdout
        for d in L.DOMAINS:
            if d.host == name:
                state = "running" if d.running else "shut off"
                assert re.search(r"\b%s\s+%s" % (re.escape(d.name), state), listed), (name, listed)
        assert lab.mdev_list(name) == sorted(u for u, _t in lab.vm(name).mdevs)
    # the VM with two instances owns both; the free instance is nobody's
    xml = lab.virsh("mig-a", "dumpxml", "vm-a1").stdout
    assert all(u in xml for u in L.DOMAINS[0].mdevs) and "enable-migration" in xml
    owned = "".join(lab.virsh(d.host, "dumpxml", d.name).stdout for d in L.DOMAINS)
    assert all(u not in owned for u in L.FREE_INSTANCES)


def test_attribute_is_absent_without_migration(mig_lab):
    lab = mig_lab
    path = "/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/migration_version"
    assert lab.ssh("mig-a", "cat %s" % path).stdout == "mtty-1.2\n"
    assert lab.ssh("mig-d", "test -e %s" % path, check=False).returncode == 1
    # QEMU's blocker list on a host whose driver offers no VFIO migration
    reasons = blocked_reasons(lab, "mig-d", "vm-d1")
    assert reasons and any("VFIO" in r or "vfio" in r for r in reasons), reasons
    assert blocked_reasons(lab, "mig-b", "vm-b1") == []


def test_mdev_facts_read_the_kernel_libvirt_and_qemu(mig_lab):
    """What the verdicts and the plan rest on, read from the real guests by mdev_facts.

    The kernel's migration capability of the free instances (the honest 6.12 mtty offers
    STOP_COPY), every libvirt domain as virsh lists it with its mdev instances, and QEMU's
    own blockers as query-migrate gives them.
    """
    lab = mig_lab
    results, proc = adhoc(lab.inventory, "vfio.migration.mdev_facts", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    facts = {host: r["ansible_facts"]["vfio_mdev"] for host, r in results.items()}
    types = facts["mig-a"]["parents"]["mtty"]["types"]
    for type_id in ("mtty-1", "mtty-2"):  # the free instance (mtty-1) and the shut-off VM's (mtty-2)
        cap = types[type_id]["vfio_migration"]
        assert (cap["checked"], cap["migratable"], cap["in_use"]) == (True, True, False), (type_id, cap)
        assert "STOP_COPY" in cap["flags"], cap
        assert cap["device"] in (L.U["a-free"], L.U["a2"])
    # mig-b's free pre-created mtty-1: no domain names it, and the kernel says it can migrate
    b = facts["mig-b"]
    assert b["devices"][L.U["b-free"]]["mdev_type"] == "mtty-1", b["devices"]
    assert all(L.U["b-free"] not in [m["uuid"] for m in vm["mdevs"]] for vm in b["vms"].values()), b["vms"]
    cap = b["parents"]["mtty"]["types"]["mtty-1"]["vfio_migration"]
    assert (cap["device"], cap["migratable"]) == (L.U["b-free"], True), cap
    for name in lab.hosts:
        vms = facts[name]["vms"]
        assert sorted(vms) == sorted(lab.virsh(name, "list", "--all", "--name").stdout.split()), name
        for d in L.DOMAINS:
            if d.host != name:
                continue
            vm = vms[d.name]
            assert vm["state"] == ("running" if d.running else "shutoff"), (d.name, vm["state"])
            assert sorted(m["uuid"] for m in vm["mdevs"]) == sorted(d.mdevs), d.name
            assert all(m["present"] and m["parent"] == "mtty" for m in vm["mdevs"]), vm["mdevs"]
            assert vm["qemu"]["asked"] is d.running, (d.name, vm["qemu"])
    d1 = facts["mig-d"]["vms"]["vm-d1"]["qemu"]
    assert d1["blocked"] is True and d1["reasons"] == blocked_reasons(lab, "mig-d", "vm-d1")
    assert facts["mig-b"]["vms"]["vm-b1"]["qemu"] == {"asked": True, "blocked": False, "reasons": [],
                                                      "message": None}


def test_readiness_reads_the_6_12_guests(readiness):
    assert all(h["state"] == "ok" for h in readiness["hosts"].values()), readiness["hosts"]
    assert best(readiness, "mig-a", "mig-b", "mtty-2")["status"] == "compatible"


def test_every_verdict_matches_a_real_migration(mig_lab, readiness, truth):
    n = len(mig_lab.hosts)
    assert len(truth) == n * (n - 1) * len(L.base.MTTY_TYPES)     # every ordered pair, both types
    assert sorted((c["source"], c["target"], c["type"]) for c in truth) == judged(readiness)
    wrong = [c for c in truth if (c["predicted"] == "compatible") != c["migrated"]]
    assert not wrong, "predicted and real disagree:\n" + "\n".join(
        "%s -> %s %s: predicted %s, real %s (%s)" % (
            c["source"], c["target"], c["type"], c["predicted"],
            "migrated" if c["migrated"] else "failed", c["error"]) for c in wrong)
    # a failed migration leaves the VM running where it was
    for c in truth:
        if not c["migrated"]:
            assert c["on_source"] == "running" and c["on_target"] is None, c


# ------------------------------------------------------------------ the drain plan, executed

def owners(lab, host):
    """``{mdev uuid: (domain, state)}`` from the libvirtd of ``host`` (live and persistent definitions)."""
    out = {}
    for dom in lab.virsh(host, "list", "--all", "--name").stdout.split():
        state = domstate(lab, host, dom)
        for flags in ([], ["--inactive"]):
            xml = lab.virsh(host, "dumpxml", *flags, dom).stdout
            for uuid in re.findall(r"<address uuid='([0-9a-f-]{36})'", xml):
                out[uuid] = (dom, state)
    return out


def named_mdevs(lab, host, dom, inactive=False):
    xml = lab.virsh(host, "dumpxml", *(["--inactive"] if inactive else []), dom).stdout
    return sorted(re.findall(r"<address uuid='([0-9a-f-]{36})'", xml))


def dest_xml(lab, host, dom, renames, inactive=False):
    """``dom``'s migratable XML with each source mdev UUID replaced by the target's (``renames``)."""
    xml = lab.virsh(host, "dumpxml", "--migratable", *(["--inactive"] if inactive else []), dom).stdout
    for old, new in renames.items():
        tag = "<address uuid='%s'/>"
        assert xml.count(tag % old) == 1, (dom, old, xml)
        xml = xml.replace(tag % old, tag % new)
    return xml


def carry_out(lab, p):
    """One placement: the target's devices as the plan says, then ``virsh migrate --live`` to its target."""
    vm, source, target = p["vm"], p["source_host"], p["target_host"]
    move = {"vm": vm, "how": "live", "source": source, "planned": target,
            "planned_parents": p["target_parents"], "devices": [d["id"] for d in p["devices"]],
            "target_devices": [{k: d[k] for k in ("source", "device", "action", "target_parent", "mdev_type",
                                                  "uuid_changes")} for d in p["target_devices"]]}
    where, held = lab.mdev_where(target), owners(lab, target)
    move["target_free_before"] = sorted("%s %s" % (where[u][1], u) for u in where if u not in held)
    renames, problems = {}, []
    for d in p["target_devices"]:
        if d["action"] == "create":
            if d["device"] in where:
                problems.append("create %s: already on %s" % (d["device"], target))
            lab.mdev_create(target, d["device"], d["mdev_type"], d["target_parent"])
        elif d["action"] == "use":
            # the free pre-created instance: there, of the type, on the parent, named by no domain
            if where.get(d["device"]) != (d["target_parent"], d["mdev_type"]) or d["device"] in held:
                problems.append("use %s: on %s it is %s, held by %s" % (
                    d["device"], target, where.get(d["device"]), held.get(d["device"])))
        else:
            problems.append("action %s: the lab has no VFs or PCI functions" % d["action"])
        if d["device"] != d["source"]:
            renames[d["source"]] = d["device"]
    move["prepared"] = problems or "ok"
    files = {}
    if renames:  # the domain must name the target's instances, live and persistent (see README)
        for kind, inactive in (("xml", False), ("persistent_xml", True)):
            files[kind] = os.path.join(lab.run_dir, "%s-%s.%s.xml" % (vm, target, kind))
            with open(files[kind], "w") as f:
                f.write(dest_xml(lab, source, vm, renames, inactive))
    rc, out, secs = migrate(lab, source, target, vm, persistent=True, **files)
    state = domstate(lab, target, vm)
    expected = sorted(d["device"] for d in p["target_devices"])
    move.update(rc=rc, seconds=round(secs, 1), error=None if rc == 0 else _first_error(out),
                uuid_xml=bool(renames), target_state=state, left_on_source=domstate(lab, source, vm))
    if state == "running":
        where, held = lab.mdev_where(target), owners(lab, target)
        move.update(live_names=named_mdevs(lab, target, vm), persistent_names=named_mdevs(lab, target, vm, True),
                    qemu_opened=lab.qemu_mdevs(target, vm),
                    landed={d: where.get(d) for d in expected})
        # the room the plan said is left, against the driver's: what the parent can still create
        # plus the free instances of the type there that no domain names
        move["room_after"] = []
        for d in p["target_devices"]:
            free = [u for u, pt in where.items() if pt == (d["target_parent"], d["mdev_type"]) and u not in held]
            real = lab.available(target, d["target_parent"]).get(d["mdev_type"], 0) + len(free)
            move["room_after"].append({"mdev_type": d["mdev_type"], "target_parent": d["target_parent"],
                                       "planned": d["room_after"], "driver": real})
    move["expected"] = expected
    move["arrived"] = (rc == 0 and not problems and state == "running" and move["left_on_source"] is None
                       and move["live_names"] == move["persistent_names"] == move["qemu_opened"] == expected
                       and all(move["landed"][d["device"]] == (d["target_parent"], d["mdev_type"])
                               for d in p["target_devices"])) if state == "running" else False
    move["result"] = "migrated" if move["arrived"] else ("failed" if rc else "arrived wrong")
    return move


def carry_out_cold(lab, matrix, c):
    """A shut-off VM: ``virsh migrate --offline --persistent`` to its first target host; it must start there."""
    vm, source = c["vm"], c["source_host"]
    move = {"vm": vm, "how": "offline", "source": source, "planned": (c["target_hosts"] or [None])[0],
            "devices": [d["id"] for d in c["devices"]]}
    target = move["planned"]
    if target is None:
        move.update(result="no target host", arrived=False)
        return move
    rc, out, secs = migrate(lab, source, target, vm, offline=True)
    move.update(rc=rc, seconds=round(secs, 1), error=None if rc == 0 else _first_error(out),
                target_state=domstate(lab, target, vm), left_on_source=domstate(lab, source, vm))
    if rc == 0:
        # the plan promises its types can exist there: make its instances on a compatible parent, start it
        for d in c["devices"]:
            parent = next(x["target_parent"] for x in matrix["cells"]
                          if (x["source_host"], x["target_host"], x["mdev_type"]) == (source, target, d["mdev_type"])
                          and x["status"] == "compatible")
            lab.mdev_create(target, d["id"], d["mdev_type"], parent)
        start = lab.virsh(target, "start", vm, check=False)
        move["started"] = start.returncode == 0 and domstate(lab, target, vm) == "running"
        move["start_error"] = None if start.returncode == 0 else _first_error(start.stdout + start.stderr)
        lab.virsh(target, "destroy", vm, check=False)
        move["target_state"] = domstate(lab, target, vm)
    move["arrived"] = (rc == 0 and move["left_on_source"] is None and move.get("started") is True
                       and move["target_state"] == "shut off")
    move["result"] = "moved offline, starts there" if move["arrived"] else "failed"
    return move


def qemu_timed_out(plan):
    """Stranded VMs whose only reason is that QEMU did not answer ``query-migrate`` in mdev_facts' time.

    mdev_facts gives ``virsh qemu-monitor-command`` 10 s (a fixed bound); in a guest of a machine
    at load 25-30 it can take longer, and the VM is stranded as ``unknown``. The lab then runs the
    precheck once more (the first outcome stays in ``plan.json``'s ``attempts``).
    """
    return sorted(s["vm"] for s in plan["stranded"] if s["cause"] == "unknown" and s.get("reasons")
                  and all(r.startswith("QEMU did not answer") and "no answer within" in r for r in s["reasons"]))


@pytest.fixture(scope="module")
def executed_plan(mig_lab, truth):
    """``vfio.migration.precheck`` for DRAIN, then its plan carried out VM by VM."""
    lab = mig_lab
    attempts = []
    for label in ("precheck", "precheck-again"):
        proc, matrix = run_playbook(lab, "vfio.migration.precheck", label, vfio_migration_drain_hosts=DRAIN)
        assert matrix is not None and matrix["plan"], proc.stdout[-5000:] + proc.stderr[-2000:]
        plan = matrix["plan"]
        attempts.append({"label": label, "rc": proc.returncode, "qemu_timed_out": qemu_timed_out(plan)})
        if not attempts[-1]["qemu_timed_out"]:
            break
    t0 = time.monotonic()
    moves = [carry_out(lab, p) for p in plan["placements"]]
    moves += [carry_out_cold(lab, matrix, c) for c in plan["cold"]]
    for s in plan["stranded"]:
        moves.append({"vm": s["vm"], "how": "stranded", "source": s["source_host"], "planned": None,
                      "devices": [d["id"] for d in s["devices"]], "cause": s["cause"], "reasons": s["reasons"],
                      "result": "stays: %s" % s["cause"], "state_after": domstate(lab, s["source_host"], s["vm"])})
    lab.timings["drain plan executed (%d moves)" % len([m for m in moves if m["how"] != "stranded"])] = (
        time.monotonic() - t0)
    result = {"plan": plan, "moves": moves, "precheck_rc": proc.returncode, "attempts": attempts,
              "precheck_output": proc.stdout[-6000:]}
    SUMMARY["plan"] = result
    with open(os.path.join(lab.run_dir, "plan.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def test_drain_plan_is_in_vms(executed_plan):
    """The plan the lab calls for: vm-a1 whole on mig-b using mig-b's free instance, vm-a2 cold, vm-c1 stranded."""
    plan, moves = executed_plan["plan"], executed_plan["moves"]
    placed = {p["vm"]: p for p in plan["placements"]}
    assert sorted(placed) == ["vm-a1"], plan["placements"]
    a1 = placed["vm-a1"]
    assert a1["source_host"] == "mig-a" and a1["target_host"] == "mig-b" and a1["target_parents"] == ["mtty"], a1
    assert sorted(d["id"] for d in a1["devices"]) == sorted(L.DOMAINS[0].mdevs), a1
    by_type = {d["mdev_type"]: d for d in a1["target_devices"]}
    assert sorted(by_type) == ["mtty-1", "mtty-2"], a1
    # the one free pre-created mtty-1 on mig-b is used (under its own UUID), the mtty-2 is created
    assert by_type["mtty-1"]["action"] == "use" and by_type["mtty-1"]["device"] == L.U["b-free"], a1
    assert by_type["mtty-1"]["source"] == L.U["a1-1"] and by_type["mtty-1"]["uuid_changes"] is True, a1
    # ... and it was mig-b's one free pre-created mtty-1 (an instance no domain names)
    free = [m["target_free_before"] for m in moves if m["vm"] == "vm-a1"]
    assert free == [["mtty-1 %s" % L.U["b-free"]]], free
    assert by_type["mtty-2"] == dict(by_type["mtty-2"], action="create", device=L.U["a1-2"], uuid_changes=False), a1
    assert [(c["vm"], c["target_hosts"]) for c in plan["cold"]] == [("vm-a2", ["mig-b"])], plan["cold"]
    assert [(s["vm"], s["source_host"], s["cause"]) for s in plan["stranded"]] == [
        ("vm-c1", "mig-c", "incompatible")], plan["stranded"]
    # mig-a's free instance is no demand; nothing collides
    assert [f["device"] for f in plan["free_instances"]] == [L.U["a-free"]], plan["free_instances"]
    assert plan["collisions"] == [], plan["collisions"]


def test_drain_plan_executes(mig_lab, executed_plan, truth):
    plan, moves = executed_plan["plan"], executed_plan["moves"]
    assert plan["placements"], plan
    for m in moves:
        if m["how"] != "stranded":
            assert m["arrived"], m
    # every VM with two instances lands whole on one target, through the very instances planned
    for p in plan["placements"]:
        assert len({d["target_parent"] for d in p["target_devices"]}) == len(p["target_parents"]), p
    two = [m for m in moves if m["how"] == "live" and len(m["devices"]) > 1]
    assert two, moves
    for m in two:
        assert m["qemu_opened"] == m["expected"] and m["target_state"] == "running", m
    used = [d for m in moves if m["how"] == "live" for d in m["target_devices"] if d["action"] == "use"]
    assert [d["device"] for d in used] == [L.U["b-free"]], used
    # a stranded VM really cannot go anywhere outside the drain set: on every other host some
    # device of it failed its real migration; it still runs where it was
    for s in plan["stranded"]:
        assert s["vm"], s
        for target in sorted(set(mig_lab.hosts) - set(DRAIN) - {s["source_host"]}):
            tried = [c for c in truth for d in s["devices"]
                     if (c["source"], c["target"], c["type"]) == (s["source_host"], target, d["mdev_type"])]
            assert tried and not all(c["migrated"] for c in tried), (s["vm"], target, tried)
    for m in moves:
        if m["how"] == "stranded":
            assert m["state_after"] == "running", m
    # the precheck fails exactly when something is stranded, naming each stranded VM
    stranded = bool(plan["stranded"] or plan["unknown_hosts"])
    assert plan["ready"] is not stranded, plan["ready"]
    assert (executed_plan["precheck_rc"] != 0) == stranded, executed_plan["precheck_rc"]
    for s in plan["stranded"]:
        assert "VM %s on %s" % (s["vm"], s["source_host"]) in executed_plan["precheck_output"], s


class Overpromised(AssertionError):
    """The plan gave a target parent more room than its driver has."""


def test_room_left_after_a_placement_is_not_overpromised(executed_plan):
    """What a placement says its target parent can still take is at most what the driver then offers."""
    rooms = [dict(r, vm=m["vm"]) for m in executed_plan["moves"] if m["how"] == "live" for r in m["room_after"]]
    assert rooms, "no VM moved live: nothing to compare"
    over = [r for r in rooms if r["planned"] > r["driver"]]
    if over:
        raise Overpromised(over)


# ------------------------------------------------------------------ a rolling schedule's first wave, executed

ROLL = {"vm": "vm-roll", "mdevs": (("roll-1", "mtty-1"), ("roll-2", "mtty-2"))}


@pytest.fixture(scope="module")
def rolling_wave(mig_lab, executed_plan):
    """``vfio.migration.rolling`` for mig-a after the drain, then its first wave carried out.

    The drain left mig-a with its free instance only; a new running VM with two instances
    (``vm-roll``) makes the wave's demand. mig-b (1.3) is the only host that accepts mig-a's 1.2.
    """
    del executed_plan  # runs after the drain plan: the lab as that left it
    lab = mig_lab
    uuids = [L._uuid_for("lab", key) for key, _t in ROLL["mdevs"]]  # pylint: disable=protected-access
    for uuid, (_key, mdev_type) in zip(uuids, ROLL["mdevs"]):
        lab.mdev_create("mig-a", uuid, mdev_type)
    lab.virsh("mig-a", "define", "/dev/stdin", input=lab.domain_xml(ROLL["vm"], uuids, "mig-a"))
    lab.virsh("mig-a", "start", ROLL["vm"])
    proc, _matrix = run_playbook(lab, "vfio.migration.rolling", "rolling", vfio_migration_rolling_hosts=["mig-a"],
                                 vfio_migration_rolling_max_wave=1)
    with open(os.path.join(lab.run_dir, "rolling", "schedule.json")) as f:
        schedule = json.load(f)
    t0 = time.monotonic()
    first = schedule["waves"][0] if schedule["waves"] else {"placements": []}
    moves = [carry_out(lab, p) for p in first["placements"]]
    lab.timings["rolling wave 1 executed (%d moves)" % len(moves)] = time.monotonic() - t0
    result = {"rc": proc.returncode, "schedule": schedule, "moves": moves, "uuids": uuids,
              "output": proc.stdout[-4000:]}
    SUMMARY["rolling"] = result
    with open(os.path.join(lab.run_dir, "rolling.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def test_rolling_first_wave_executes(rolling_wave):
    """The schedule's first wave: vm-roll whole to mig-b on the matrix's word, and it arrives there."""
    schedule, moves = rolling_wave["schedule"], rolling_wave["moves"]
    assert rolling_wave["rc"] == 0 and schedule["ready"], (schedule["why"], rolling_wave["output"])
    assert [w["hosts"] for w in schedule["waves"]] == [["mig-a"]], schedule["waves"]
    (p,) = schedule["waves"][0]["placements"]
    assert (p["vm"], p["source_host"], p["target_host"], p["basis"]) == (ROLL["vm"], "mig-a", "mig-b", ["matrix"]), p
    assert sorted(d["id"] for d in p["devices"]) == sorted(rolling_wave["uuids"]), p
    assert not schedule["rests_on_assumptions"] and schedule["must_stop"] == [], schedule
    (m,) = moves
    assert m["arrived"] and m["qemu_opened"] == m["expected"], m
    assert all(r["planned"] <= r["driver"] for r in m["room_after"]), m["room_after"]


# ------------------------------------------------------------------ the table

def short_error(text):
    """What libvirt said, without the wrapping and the repeated QEMU command line."""
    if not text:
        return ""
    if "Message from the destination host:" in text:
        return "target: " + text.rsplit("Message from the destination host:", 1)[1].strip()
    if "QEMU unexpectedly closed the monitor" in text or "process exited while connecting to monitor" in text:
        return "target QEMU exited: " + text.rsplit("}: ", 1)[-1].strip()
    return text


def truth_table(cells):
    lines = ["| source | target | type | predicted | real | seconds | QEMU/libvirt says |",
             "|---|---|---|---|---|---|---|"]
    for c in cells:
        pred = c["predicted"] + (" (%s)" % c["errno_name"] if c["errno_name"] else "")
        real = "migrated" if c["migrated"] else "failed"
        if (c["predicted"] == "compatible") != c["migrated"]:
            real += " **MISMATCH**"
        said = short_error(c["error"])
        if c.get("blocked_reasons"):
            said = "source QEMU blocks it: %s" % "; ".join(c["blocked_reasons"])
        said = re.sub(r"(vfio )?[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}: ", "", said)
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            c["source"], c["target"], c["type"], pred, real, c["seconds"], said.replace("|", "\\|")))
    return lines


def plan_table(moves):
    def short(u):
        return u[:8]
    lines = ["| VM | from | how | planned | target devices | real | seconds | note |",
             "|---|---|---|---|---|---|---|---|"]
    for m in moves:
        devices = ", ".join("%s %s %s%s" % (d["mdev_type"], d["action"], short(d["device"]),
                                            " (was %s)" % short(d["source"]) if d["uuid_changes"] else "")
                            for d in m.get("target_devices") or [])
        if m["how"] == "offline":
            devices = "same UUIDs, made before its start: %s" % ", ".join(short(d) for d in m["devices"])
        stays = m["how"] == "stranded" and m.get("state_after") == "running"
        real = "arrived" if m.get("arrived") else ("stays, running" if stays else m["result"])
        note = m.get("error") or m.get("start_error") or ""
        if m["how"] == "live" and m.get("uuid_xml"):
            note = note or "--xml/--persistent-xml with the target's UUIDs"
        if m["how"] == "stranded":
            note = "%s: %s" % (m["cause"], "; ".join(m.get("reasons") or []))
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            m["vm"], m["source"], m["how"], m["planned"] or "-", devices or "-", real,
            m.get("seconds", "-"), short_error(note).replace("|", "\\|")))
    return lines


def summary_lines():
    lab = SUMMARY.get("lab")
    if not lab:
        return []
    out = ["kernel %s, %d guests (libvirt 11.3, QEMU 10), logs in %s" % (lab.build.kv, len(lab.hosts), lab.run_dir)]
    for name, host in lab.hosts.items():
        out.append("  %-6s ssh %-5d migration port %-5d migration=%d version=%s"
                   % (name, host.port, lab.mig_ports[name], host.vm.migration, host.vm.version))
    for label, secs in lab.timings.items():
        out.append("  %-48s %6.1f s" % (label, secs))
    cells = SUMMARY.get("truth")
    if cells:
        wrong = sum((c["predicted"] == "compatible") != c["migrated"] for c in cells)
        out.append("%d real migrations, %d migrated, %d cells where the matrix and the migration disagree"
                   % (len(cells), sum(c["migrated"] for c in cells), wrong))
        out += truth_table(cells)
    plan = SUMMARY.get("plan")
    if plan:
        out.append("drain %s: ready=%s, precheck rc=%s, stranded %s" % (
            DRAIN, plan["plan"]["ready"], plan["precheck_rc"], [s["vm"] for s in plan["plan"]["stranded"]]))
        for a in plan.get("attempts") or []:
            if a["qemu_timed_out"]:
                out.append("%s: QEMU did not answer in time for %s (stranded as unknown), rc=%s"
                           % (a["label"], ", ".join(a["qemu_timed_out"]), a["rc"]))
        out += plan_table(plan["moves"])
        for m in plan["moves"]:
            if m.get("room_after"):
                out.append("room left on %s after %s: %s" % (m["planned"], m["vm"], "; ".join(
                    "%s/%s planned %s, driver %s" % (r["target_parent"], r["mdev_type"], r["planned"], r["driver"])
                    for r in m["room_after"])))
    rolling = SUMMARY.get("rolling")
    if rolling:
        sched = rolling["schedule"]
        out.append("rolling %s: ready=%s, rc=%s, waves %s, solver %s" % (
            sched["hosts"], sched["ready"], rolling["rc"], [w["hosts"] for w in sched["waves"]],
            (sched.get("solver") or {}).get("used")))
        out += plan_table(rolling["moves"])
    with open(os.path.join(lab.run_dir, "summary.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    return out
