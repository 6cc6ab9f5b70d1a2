"""Real Debian 6.1 kernels with the patched mtty sample, reached over SSH.

What each guest must show (tests/kernel/lab.py ``LAB_VMS``):

| host  | mtty parameters                       | mdev instances | handshake                  |
|-------|---------------------------------------|----------------|----------------------------|
| kvm-a | migration=1 migration_version=mtty-1.2 | one mtty-2     | takes 1.0-1.2, refuses 1.3 |
| kvm-b | migration=1 migration_version=mtty-1.3 | none           | takes kvm-a's 1.2          |
| kvm-c | migration=1 migration_version=mtty-2.0 | one mtty-2     | other major: refuses 1.x   |
| kvm-d | migration=0                           | none           | no migration_version file  |

Then Ansible reaches all four (ping), and ``vfio.migration.mdev_facts``
reports what sysfs and Debian's ``mdevctl`` (run inside each guest) report.
"""

import errno
import json
import os
import time

import pytest

from tests.ansible_runner import adhoc
from tests.kernel import lab as L
from tests.mdevctl_view import from_facts, from_mdevctl

pytestmark = pytest.mark.kernel

TYPES_DIR = "/sys/class/mdev_bus/mtty/mdev_supported_types"

# Runs in the guest (its /usr/bin/python3): everything sysfs says about mdev.
SYSFS_VIEW = r'''
import json, os
def read(p):
    try:
        with open(p, "rb") as f:
            return {"text": f.read().decode("ascii", "replace")}
    except OSError as e:
        return {"errno": e.errno}
out = {"release": os.uname().release, "nodename": os.uname().nodename,
       "parents": {}, "devices": {}, "params": {}}
cls = "/sys/class/mdev_bus"
for parent in sorted(os.listdir(cls)) if os.path.isdir(cls) else []:
    pdir = os.path.join(cls, parent)
    types = {}
    tdir = os.path.join(pdir, "mdev_supported_types")
    for t in sorted(os.listdir(tdir)):
        d = os.path.join(tdir, t)
        entry = {"files": sorted(os.listdir(d)), "devices": sorted(os.listdir(os.path.join(d, "devices")))}
        for a in ("name", "description", "device_api", "available_instances", "migration_version"):
            if os.path.exists(os.path.join(d, a)):
                entry[a] = read(os.path.join(d, a))
        types[t] = entry
    out["parents"][parent] = {"realpath": os.path.realpath(pdir), "types": types}
bus = "/sys/bus/mdev/devices"
for uuid in sorted(os.listdir(bus)) if os.path.isdir(bus) else []:
    d = os.path.join(bus, uuid)
    real = os.path.realpath(d)
    entry = {"realpath": real, "parent": os.path.basename(os.path.dirname(real)),
             "mdev_type": os.path.basename(os.path.realpath(os.path.join(d, "mdev_type"))),
             "driver": os.path.basename(os.path.realpath(os.path.join(d, "driver"))),
             "files": sorted(os.listdir(d))}
    if os.path.exists(os.path.join(d, "migration_version")):
        entry["migration_version"] = read(os.path.join(d, "migration_version"))
    out["devices"][uuid] = entry
pdir = "/sys/module/mtty/parameters"
for p in sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []:
    out["params"][p] = read(os.path.join(pdir, p)).get("text", "").rstrip("\n")
print(json.dumps(out))
'''

# Runs in the guest: write each string (one write(2) each) to one attribute;
# prints the errno of each (0: the whole string was accepted).
WRITE_PROBE = r'''
import json, os, sys
path, items = sys.argv[1], json.loads(sys.argv[2])
res = []
for s in items:
    data = s.encode()
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        res.append(e.errno)
        continue
    try:
        n = os.write(fd, data)
        res.append(0 if n == len(data) else -n)
    except OSError as e:
        res.append(e.errno)
    finally:
        os.close(fd)
print(json.dumps(res))
'''


def write_attr(lab, host, path, strings):
    """``{string: errno}`` for writes of ``strings`` to ``path`` in ``host``."""
    codes = lab.python(host, WRITE_PROBE, path, json.dumps(list(strings)))
    return dict(zip(strings, codes))


def ename(code):
    return "OK" if code == 0 else errno.errorcode.get(code, str(code))


@pytest.fixture(scope="module")
def sysfs(lab):
    """``{host: SYSFS_VIEW}`` read once from every guest."""
    return {name: lab.python(name, SYSFS_VIEW) for name in lab.hosts}


def expected_available(vm, type_id):
    used = sum(L.MTTY_PORTS[t] for _uuid, t in vm.mdevs)
    return (L.MTTY_MAX_PORTS - used) // L.MTTY_PORTS[type_id]


# ---------------------------------------------------------------- the guests themselves

def test_lab_has_the_four_hosts(lab):
    assert {"kvm-a", "kvm-b", "kvm-c", "kvm-d"} <= set(lab.hosts)
    assert lab.versions["kvm-a"] == "mtty-1.2"
    assert lab.versions["kvm-d"] is None
    with open(lab.inventory) as f:
        text = f.read()
    for name, host in lab.hosts.items():
        assert "ansible_port: %d" % host.port in text
    for var in ("ansible_host: 127.0.0.1", "ansible_user: root", "ansible_ssh_private_key_file",
                "ansible_python_interpreter: /usr/bin/python3", "ansible_ssh_common_args"):
        assert text.count(var) == len(lab.hosts), var


def test_guests_run_the_debian_kernel_with_mtty(lab, sysfs):
    for name, host in lab.hosts.items():
        view, vm = sysfs[name], host.vm
        assert view["release"] == lab.build.kv, name
        assert view["nodename"] == name
        assert list(view["parents"]) == [L.MTTY_PARENT], name
        parent = view["parents"]["mtty"]
        assert parent["realpath"] == "/sys/devices/virtual/mtty/mtty"
        assert set(parent["types"]) == set(L.MTTY_TYPES), name
        for type_id, t in parent["types"].items():
            assert t["name"]["text"] == L.MTTY_TYPES[type_id] + "\n"
            assert t["device_api"]["text"] == "vfio-pci\n"
            assert int(t["available_instances"]["text"]) == expected_available(vm, type_id), (name, type_id)
            assert "description" not in t  # mtty has no show_description
            assert {"create", "devices", "name", "device_api", "available_instances"} <= set(t["files"])
            assert t["devices"] == sorted(u for u, ty in vm.mdevs if ty == type_id)
        assert set(view["devices"]) == {u for u, _type in vm.mdevs}, name
        for uuid, type_id in vm.mdevs:
            d = view["devices"][uuid]
            assert (d["parent"], d["mdev_type"], d["driver"]) == ("mtty", type_id, "mtty")
            assert d["realpath"] == "/sys/devices/virtual/mtty/mtty/" + uuid
            assert {"mdev_type", "remove", "iommu_group", "vendor"} <= set(d["files"])
        assert view["params"]["migration"] == str(vm.migration)


def test_migration_version_is_read_at_type_and_device(lab, sysfs):
    for name, host in lab.hosts.items():
        view, vm = sysfs[name], host.vm
        types = view["parents"]["mtty"]["types"]
        if vm.migration:
            for type_id, t in types.items():
                assert t["migration_version"] == {"text": vm.version + "\n"}, (name, type_id)
            for uuid, _type in vm.mdevs:
                assert view["devices"][uuid]["migration_version"] == {"text": vm.version + "\n"}
            assert view["params"]["migration_version"] == vm.version
        else:
            for type_id, t in types.items():
                assert "migration_version" not in t["files"], (name, type_id)
            for uuid, _type in vm.mdevs:
                assert "migration_version" not in view["devices"][uuid]["files"]


def test_handshake_kvm_b_takes_kvm_a_but_not_the_reverse(lab):
    a, b = lab.versions["kvm-a"], lab.versions["kvm-b"]
    assert write_attr(lab, "kvm-b", TYPES_DIR + "/mtty-2/migration_version", [a]) == {a: 0}
    assert write_attr(lab, "kvm-a", TYPES_DIR + "/mtty-2/migration_version", [b]) == {b: errno.EINVAL}


def test_handshake_kvm_d_has_no_attribute(lab):
    got = write_attr(lab, "kvm-d", TYPES_DIR + "/mtty-2/migration_version", [lab.versions["kvm-a"]])
    assert got == {lab.versions["kvm-a"]: errno.ENOENT}
    proc = lab.ssh("kvm-d", "cat %s/mtty-2/migration_version" % TYPES_DIR, check=False)
    assert proc.returncode != 0 and "No such file" in proc.stderr


def test_handshake_matrix_follows_the_driver_rule(lab):
    """Every source version (read back with its newline, as userspace would) on every target."""
    sources = [v + "\n" for v in lab.versions.values() if v] + ["mtty-1.0", "mtty-1.99", "mtty-3.0"]
    mismatches, seen = [], {}
    for target, host in lab.hosts.items():
        for type_id in sorted(L.MTTY_TYPES):
            path = "%s/%s/migration_version" % (TYPES_DIR, type_id)
            got = write_attr(lab, target, path, sources)
            for src, code in got.items():
                want = L.expected_write_errno(host.vm, src)
                seen[(src.strip(), target, type_id)] = ename(code)
                if code != want:
                    mismatches.append((src, target, type_id, ename(code), ename(want)))
    assert not mismatches, mismatches
    # the asymmetry and the major boundary, spelled out
    assert seen[("mtty-1.2", "kvm-b", "mtty-2")] == "OK"
    assert seen[("mtty-1.3", "kvm-a", "mtty-2")] == "EINVAL"
    assert seen[("mtty-2.0", "kvm-a", "mtty-2")] == "EINVAL"
    assert seen[("mtty-1.2", "kvm-c", "mtty-2")] == "EINVAL"
    assert seen[("mtty-1.2", "kvm-d", "mtty-2")] == "ENOENT"


def test_write_strips_exactly_one_newline(lab):
    path = TYPES_DIR + "/mtty-1/migration_version"
    got = write_attr(lab, "kvm-b", path, ["mtty-1.2", "mtty-1.2\n", "mtty-1.2\n\n", "mtty-1.2 ",
                                          " mtty-1.2", "mtty-1", "garbage", "mtty-1.3\n"])
    assert {k: ename(v) for k, v in got.items()} == {
        "mtty-1.2": "OK", "mtty-1.2\n": "OK", "mtty-1.2\n\n": "EINVAL", "mtty-1.2 ": "EINVAL",
        " mtty-1.2": "EINVAL", "mtty-1": "EINVAL", "garbage": "EINVAL", "mtty-1.3\n": "OK"}


def test_device_level_handshake(lab):
    for target in ("kvm-a", "kvm-c"):
        vm = lab.vm(target)
        (uuid, _type), = vm.mdevs
        path = "/sys/bus/mdev/devices/%s/migration_version" % uuid
        sources = [v + "\n" for v in lab.versions.values() if v]
        got = write_attr(lab, target, path, sources)
        assert {s: ename(c) for s, c in got.items()} == {
            s: ename(L.expected_write_errno(vm, s)) for s in sources}, target
    # and through the instance's mdev_type link (the `migration_version` v5 proposal's example)
    (uuid, _type), = lab.vm("kvm-a").mdevs
    got = write_attr(lab, "kvm-a", "/sys/bus/mdev/devices/%s/mdev_type/migration_version" % uuid,
                     ["mtty-1.1", "mtty-1.3"])
    assert got == {"mtty-1.1": 0, "mtty-1.3": errno.EINVAL}


def test_driver_logs_refusals(lab):
    write_attr(lab, "kvm-a", TYPES_DIR + "/mtty-1/migration_version", ["mtty-1.3"])
    proc = lab.ssh("kvm-a", "dmesg | grep 'mtty: migration_version' | tail -3")
    assert "mtty-1.2 cannot take a device from mtty-1.3" in proc.stdout


# ---------------------------------------------------------------- Ansible and mdevctl

def test_ansible_ping_reaches_every_guest(lab):
    t0 = time.monotonic()
    results, proc = adhoc(lab.inventory, "ansible.builtin.ping", timeout=600)
    lab.timings["ansible -m ansible.builtin.ping"] = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(results) == set(lab.hosts)
    for host, r in results.items():
        assert r.get("ping") == "pong", (host, r)


@pytest.fixture(scope="module")
def mdevctl_views(lab):
    """``{host: (types, devices)}`` from ``mdevctl types|list --dumpjson`` in each guest.

    The raw JSON is kept in ``<run_dir>/mdevctl/<host>-{types,list}.json``.
    """
    outdir = os.path.join(lab.run_dir, "mdevctl")
    os.makedirs(outdir, exist_ok=True)
    views = {}
    for name in lab.hosts:
        raw = {}
        for what in ("types", "list"):
            proc = lab.ssh(name, "mdevctl %s --dumpjson" % what)
            raw[what] = json.loads(proc.stdout) if proc.stdout.strip() else []
            with open(os.path.join(outdir, "%s-%s.json" % (name, what)), "w") as f:
                f.write(proc.stdout)
        views[name] = from_mdevctl(raw["types"], raw["list"])
    return views


def test_mdevctl_in_the_guest_sees_the_lab(lab, mdevctl_views):
    for name, host in lab.hosts.items():
        types, devices = mdevctl_views[name]
        vm = host.vm
        assert types == {"mtty": {t: {"available_instances": expected_available(vm, t),
                                      "device_api": "vfio-pci", "name": n}
                                  for t, n in L.MTTY_TYPES.items()}}, name
        assert devices == {u: {"parent": "mtty", "mdev_type": t} for u, t in vm.mdevs}, name


def test_mdev_facts_agrees_with_mdevctl_and_sysfs(lab, mdevctl_views, lab_mdev_facts, sysfs):
    assert set(lab_mdev_facts) == set(lab.hosts)
    for name, host in lab.hosts.items():
        facts, vm = lab_mdev_facts[name], host.vm
        want_types, want_devices = mdevctl_views[name]
        got_types, got_devices = from_facts(facts)
        assert got_types == want_types, name
        assert got_devices == want_devices, name
        for uuid, d in facts["devices"].items():
            assert uuid in facts["parents"][d["parent"]]["types"][d["mdev_type"]]["devices"]
        assert facts["errors"] == [], (name, facts["errors"])

        # the migration version the facts report is what the guest's attribute holds
        view = sysfs[name]
        for type_id, t in facts["parents"]["mtty"]["types"].items():
            mig = t["migration"]
            if vm.migration:
                held = view["parents"]["mtty"]["types"][type_id]["migration_version"]["text"]
                assert mig["version"] == held.rstrip("\n") == vm.version, (name, type_id)
                assert (mig["attribute"], mig["supported"], mig["error"]) == ("migration_version", True, None)
            else:
                assert mig["version"] is None and mig["attribute"] is None, (name, type_id, mig)
                assert mig["supported"] is False, (name, type_id, mig)
        for uuid, d in facts["devices"].items():
            mig = d["migration"]
            if vm.migration:
                held = view["devices"][uuid]["migration_version"]["text"]
                assert mig["version"] == held.rstrip("\n") == vm.version, (name, uuid)
            else:
                assert mig["version"] is None and mig["supported"] is False


def test_migration_2_mode_fails_reads_and_writes_with_enodev(lab):
    """mtty's migration=2 (attribute present, device cannot migrate), tried on kvm-d and undone."""
    vm = lab.vm("kvm-d")
    ko = lab.build.mtty_ko  # the same file, seen through the guest's 9p root
    path = TYPES_DIR + "/mtty-2/migration_version"
    read_probe = ("import errno, json\ntry:\n    open(%r).read()\n    print(json.dumps('OK'))\n"
                  "except OSError as e:\n    print(json.dumps(errno.errorcode[e.errno]))\n" % path)
    try:
        lab.ssh("kvm-d", "rmmod mtty && insmod %s migration=2 migration_version=mtty-1.3" % ko)
        assert lab.python("kvm-d", read_probe) == "ENODEV"
        assert write_attr(lab, "kvm-d", path, ["mtty-1.3"]) == {"mtty-1.3": errno.ENODEV}
    finally:
        lab.ssh("kvm-d", "rmmod mtty; insmod %s %s" % (ko, " ".join(vm.mtty_params)))
    assert lab.ssh("kvm-d", "test -e %s" % path, check=False).returncode == 1
    assert lab.ssh("kvm-d", "cat /sys/module/mtty/parameters/migration").stdout == "%d\n" % vm.migration
