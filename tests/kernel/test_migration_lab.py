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
Then ``vfio.migration.precheck`` plans a drain and the plan is executed:
each VM owning a placed instance is migrated to the planned target.
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


def migrate(lab, source, target, dom, persistent=False, offline=False):
    """``virsh migrate`` from this machine between two guests' libvirtds; (rc, output, seconds)."""
    args = ["virsh", "-q", "-c", lab.uri(source), "migrate"]
    if offline:
        args += ["--offline", "--persistent", "--undefinesource", dom, lab.uri(target)]
    else:
        args += ["--live"] + (["--persistent", "--undefinesource"] if persistent else [])
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
    """``{mdev uuid: (domain, state)}`` from the libvirtd of ``host``."""
    out = {}
    for dom in lab.virsh(host, "list", "--all", "--name").stdout.split():
        xml = lab.virsh(host, "dumpxml", dom).stdout
        state = domstate(lab, host, dom)
        for uuid in re.findall(r"<address uuid='([0-9a-f-]{36})'", xml):
            out[uuid] = (dom, state)
    return out


@pytest.fixture(scope="module")
def executed_plan(mig_lab, truth):
    """``vfio.migration.precheck`` for DRAIN, then its plan carried out VM by VM."""
    lab = mig_lab
    proc, matrix = run_playbook(lab, "vfio.migration.precheck", "precheck", vfio_migration_drain_hosts=DRAIN)
    assert matrix is not None and matrix["plan"], proc.stdout[-5000:] + proc.stderr[-2000:]
    plan = matrix["plan"]
    t0 = time.monotonic()
    owner = {}
    for host in DRAIN:
        for uuid, (dom, state) in owners(lab, host).items():
            owner[uuid] = (host, dom, state)
    by_vm, moves = {}, []
    for p in plan["placements"]:
        if p["device"] in owner:
            by_vm.setdefault(owner[p["device"]][:2], []).append(p)
        else:
            # a free instance: nothing to migrate; the manager makes its twin on the target
            lab.mdev_create(p["target_host"], p["device"], p["mdev_type"])
            moves.append({"vm": None, "devices": [p["device"]], "source": p["source_host"],
                          "target": p["target_host"], "planned": [p["target_host"]],
                          "result": "free instance: created on the target", "arrived": True})
    for (host, dom), placements in sorted(by_vm.items()):
        targets = sorted({p["target_host"] for p in placements})
        state = owner[placements[0]["device"]][2]
        move = {"vm": dom, "state": state, "devices": [p["device"] for p in placements],
                "source": host, "planned": targets, "target": targets[0]}
        moves.append(move)
        if len(targets) != 1:
            move.update(result="plan splits the VM over %s" % ", ".join(targets), arrived=False)
            continue
        target = targets[0]
        for p in placements:
            lab.mdev_create(target, p["device"], p["mdev_type"])
        rc, out, secs = migrate(lab, host, target, dom, persistent=True, offline=state != "running")
        arrived_state = domstate(lab, target, dom)
        move.update(rc=rc, seconds=round(secs, 1), error=None if rc == 0 else _first_error(out),
                    result="migrated" if rc == 0 else "failed", target_state=arrived_state,
                    left_on_source=domstate(lab, host, dom),
                    arrived=rc == 0 and arrived_state == state)
    lab.timings["drain plan executed (%d moves)" % len(moves)] = time.monotonic() - t0
    result = {"plan": plan, "moves": moves, "precheck_rc": proc.returncode}
    SUMMARY["plan"] = result
    with open(os.path.join(lab.run_dir, "plan.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def test_drain_plan_executes(executed_plan, truth):
    plan, moves = executed_plan["plan"], executed_plan["moves"]
    assert plan["placements"], plan
    for m in moves:
        assert m["arrived"], m
        if m["vm"]:
            assert m["left_on_source"] is None, m
    # a stranded instance is one that really cannot go anywhere outside the drain set
    for s in plan["stranded"]:
        tried = [c for c in truth if c["source"] == s["source_host"] and c["type"] == s["mdev_type"]
                 and c["target"] not in DRAIN]
        assert tried and not any(c["migrated"] for c in tried), (s, tried)
    # the precheck fails exactly when something is stranded
    assert (executed_plan["precheck_rc"] == 0) == plan["ready"], executed_plan["precheck_rc"]


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
        out.append("drain %s: ready=%s, stranded %s" % (
            DRAIN, plan["plan"]["ready"], [s["device"] for s in plan["plan"]["stranded"]]))
        for m in plan["moves"]:
            out.append("  %s %s -> planned %s: %s%s" % (
                m["vm"] or "(no VM)", m["devices"], m["planned"], m["result"],
                "" if m.get("error") is None else " (%s)" % m["error"]))
    with open(os.path.join(lab.run_dir, "summary.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    return out
