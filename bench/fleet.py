"""The bench fleet: N emulated hypervisors with a realistic vendor mix.

Every host is a sysfs tree made with the building blocks of
``tests/fixtures/sysfs_builder.py`` (plus a root with a kernel release and a
dpkg database beside it), so the one FUSE emulator process
(``tests/emulator``) serves all of them and answers the probe's writes the
way the vendor drivers do.

The mix is drawn from a seeded generator, so host ``bench-00042`` is the same
machine in every run and at every fleet size (a fleet of 50 is the first 50
hosts of the fleet of 1000):

=============  ======  =============================================================
kind           share   what it holds
=============  ======  =============================================================
nvidia         40 %    1-2 NVIDIA vGPU parents (4 ``nvidia-25x`` types, ``range`` rule),
                       host driver 2.2 / 2.3 / 2.4 / 3.0, 0-3 running vGPUs
intel          20 %    Intel GVT-g (4 types, ``exact`` rule); 1 in 5 is a generation
                       without migration (``ENODEV``); 0-2 running vGPUs
vendor_vfio    10 %    NVIDIA vGPU 17+ (SR-IOV VFs, no mdev, no driver attribute:
                       policy classes, no writes)
s390            10 %   vfio-ccw subchannel + vfio-ap matrix (``exact`` rule)
mlx5            10 %   1-2 migratable VFs on ``mlx5_vfio_pci`` (``range`` rule)
mtty            10 %   the kernel's mtty sample (no migration attribute)
=============  ======  =============================================================

No ``slow``/``eio``/``hang`` rules: the bench measures cost, not timeouts.

VMs: where ``tests/fixtures/sysfs_builder.py`` has ``domain()`` (libvirt
domain XML in the host's root), every mdev instance and every VF with a vGPU
type or a migratable function in use belongs to a running VM of its own, so
``mdev_facts`` reads the libvirt state as it would on a busy hypervisor;
parents, types and VFs without instances stay free. ``.fleet.json`` says
whether a tree was built with VMs (``vms``).

A second shape, ``dense`` (:func:`build_dense_host`), is the fleet many
operators have: every host a GPU server with two NVIDIA parents offering the
same four types, host drivers at six versions (2.0 to 2.4 and 3.0, host ``i``
on version ``i % 6``), so from six hosts on the fleet holds 24 version classes
and every target is asked all 24 on both parents: 48 probe writes per target.
"""

import json
import os
import random
import sys
import uuid as _uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.fixtures import sysfs_builder as B  # noqa: E402

#: bump when the generator changes, so cached trees are rebuilt
FLEET_VERSION = 2
#: libvirt domains in the host roots, when the builder can write them
WITH_VMS = hasattr(B, "domain")
VM_NAMESPACE = _uuid.UUID("5b3f4c1e-9a2d-4e7b-8c61-0d2f3a4b5c6d")

KINDS = (("nvidia", 40), ("intel", 20), ("vendor_vfio", 10), ("s390", 10), ("mlx5", 10), ("mtty", 10))
NVIDIA_DRIVERS = (((2, 2), "535.161.07"), ((2, 3), "550.54.14"), ((2, 4), "550.90.07"), ((3, 0), "570.124.03"))
QEMU = ("1:8.2.2+ds-1", "1:8.2.2+ds-1", "1:9.1.0+ds-2", "1:7.2+dfsg-7+deb12u13")


def host_name(i):
    return "bench-%05d" % i


def _kind(rnd):
    roll, acc = rnd.randrange(100), 0
    for kind, share in KINDS:
        acc += share
        if roll < acc:
            return kind
    return KINDS[-1][0]


def _uuid4(rnd):
    return str(_uuid.UUID(int=rnd.getrandbits(128), version=4))


def build_host(tree, i, seed=6):
    """Build host ``i``'s tree; return a short description (kind and versions)."""
    rnd = random.Random("%d-%d" % (seed, i))
    kind = _kind(rnd)
    desc = {"kind": kind}
    mdevs, pcis = [], []  # what running VMs use (random draws unchanged: VMs take no randomness)
    if kind == "nvidia":
        (major, minor), drv = NVIDIA_DRIVERS[rnd.randrange(len(NVIDIA_DRIVERS))]
        for g, bdf in enumerate(("0000:3b:00.0", "0000:d8:00.0")[:rnd.choice((1, 1, 2))]):
            insts = [(rnd.choice(("256", "257", "258")), _uuid4(rnd)) for dummy in range(rnd.randrange(4) if g == 0 else 0)]
            B.nvidia_vgpu(tree, bdf, driver_version=drv, major=major, minor=minor, instances=insts, numa_node=g)
            mdevs += [u for dummy, u in insts]
        desc["version"] = "%d.%d" % (major, minor)
    elif kind == "intel":
        supported = rnd.randrange(5) != 0
        device_id = "0x193b" if supported else "0x3e92"
        insts = [(rnd.choice(("1", "2", "4")), _uuid4(rnd)) for dummy in range(rnd.randrange(3) if supported else 0)]
        B.intel_gvtg(tree, device_id=device_id, supported=supported, instances=insts)
        mdevs += [u for dummy, u in insts]
        desc["version"] = device_id
    elif kind == "vendor_vfio":
        cur = {0: 1414} if rnd.randrange(2) else {}
        B.vendor_vfio_vgpu(tree, "0000:41:00.0", vfs=4, current=cur,
                           driver_version=rnd.choice(("550.90.07", "550.90.07", "550.54.14")))
        pcis += ["0000:41:00.1"] if cur else []  # VF 0, the one with a vGPU type set
    elif kind == "s390":
        insts = [_uuid4(rnd)] if rnd.randrange(2) else []
        B.s390_ccw(tree, instances=insts)
        B.s390_ap(tree)
        mdevs += [(u, "vfio-ccw") for u in insts]
    elif kind == "mlx5":
        minor = rnd.randrange(2)
        for bdf in ("0000:5e:00.1", "0000:5e:00.2")[:rnd.choice((1, 2))]:
            B.mlx5_vf(tree, bdf=bdf, minor=minor)
        pcis.append("0000:5e:00.1")  # the first VF is in use, a second one is free
        desc["version"] = "1.%d" % minor
    else:
        insts = [_uuid4(rnd)] if rnd.randrange(2) else []
        B.mtty(tree, instances=insts)
        mdevs += insts
    B.host_stack(tree, qemu=rnd.choice(QEMU))
    desc["vms"] = running_vms(tree, i, mdevs, pcis)
    return desc


def running_vms(tree, i, mdevs, pcis):
    """One running VM per mdev instance (``uuid`` or ``(uuid, model)``) and per PCI function; return how many.

    Nothing when the builder cannot write libvirt domains (``WITH_VMS``).
    """
    if not WITH_VMS:
        return 0
    devices = [{"mdevs": [m]} for m in mdevs] + [{"pci": [p]} for p in pcis]
    for k, dev in enumerate(devices):
        name = "vm-%05d-%d" % (i, k)
        B.domain(tree, name, str(_uuid.uuid5(VM_NAMESPACE, name)), state="running", **dev)
    return len(devices)


DENSE_VERSIONS = ((2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (3, 0))
DENSE_DRIVERS = ("525.147.05", "535.161.07", "550.54.14", "550.90.07", "550.127.05", "570.124.03")


def build_dense_host(tree, i, seed=6):
    """A GPU server of the ``dense`` shape: two NVIDIA parents, four types each, driver ``i % 6``.

    Each GPU runs one type (as a time-sliced GPU does) with 0 to 3 vGPUs, each
    in a running VM; the versions cycle with the host number so the classes do
    not depend on the seed (only the instances do).
    """
    rnd = random.Random("dense-%d-%d" % (seed, i))
    k = i % len(DENSE_VERSIONS)
    major, minor = DENSE_VERSIONS[k]
    mdevs = []
    for g, bdf in enumerate(("0000:3b:00.0", "0000:d8:00.0")):
        vgpu_type = rnd.choice(("256", "257", "258"))
        insts = [(vgpu_type, _uuid4(rnd)) for dummy in range(rnd.randrange(4))]
        B.nvidia_vgpu(tree, bdf, driver_version=DENSE_DRIVERS[k], major=major, minor=minor, instances=insts,
                      numa_node=g)
        mdevs += [u for dummy, u in insts]
    B.host_stack(tree, qemu=rnd.choice(QEMU))
    return {"kind": "nvidia", "version": "%d.%d" % (major, minor), "parents": 2,
            "vms": running_vms(tree, i, mdevs, [])}


SHAPES = {"mix": build_host, "dense": build_dense_host}


def build(dest, n, seed=6, shape="mix"):
    """Build hosts 0..n-1 of ``shape`` below ``dest`` (reused when already built); return ``{host: hostdir}``."""
    stamp = os.path.join(dest, ".fleet.json")
    want = {"version": FLEET_VERSION, "seed": seed, "vms": WITH_VMS}
    builder = SHAPES[shape]
    have = {}
    if os.path.exists(stamp):
        with open(stamp) as f:
            have = json.load(f)
    # a stamp without a shape is a mix fleet (built before shapes existed)
    if {k: have.get(k) for k in want} != want or have.get("shape", "mix") != shape:
        have = dict(want, shape=shape, hosts={})
        if os.path.isdir(dest):
            import shutil
            shutil.rmtree(dest)
    os.makedirs(dest, exist_ok=True)
    out = {}
    for i in range(n):
        name = host_name(i)
        hostdir = os.path.join(dest, name)
        if name not in have["hosts"] or not os.path.exists(os.path.join(hostdir, "rules.json")):
            if os.path.isdir(hostdir):
                import shutil
                shutil.rmtree(hostdir)
            tree = B.SysfsTree(hostdir)
            have["hosts"][name] = builder(tree, i, seed)
            tree.save()
        out[name] = hostdir
    with open(stamp, "w") as f:
        json.dump(have, f)
    return out


def kinds(dest):
    """``{host: description}`` of what :func:`build` made."""
    with open(os.path.join(dest, ".fleet.json")) as f:
        return json.load(f)["hosts"]


def write_inventory(path, hosts, mount, python, drain=(), extra_vars=None, host_vars=None):
    """A static inventory (JSON is YAML) of ``hosts`` on ``ansible_connection: local``.

    Each host's paths are written out literally, so neither the floor nor the
    readiness run pays for templating inventory variables. ``extra_vars``
    override the group's variables (``ansible_connection: ssh`` ...);
    ``host_vars(host)`` adds variables per host (its sshd endpoint). ``mount`` is
    where the emulator serves the trees, or ``host -> mount`` when several do.
    """
    where = mount if callable(mount) else (lambda host: mount)
    inv = {"all": {
        "vars": dict({
            "ansible_connection": "local",
            "ansible_python_interpreter": python,
            "vfio_migration_allow_non_sysfs": True,
            "vfio_migration_probe_timeout": 5,
            "vfio_migration_drain_hosts": list(drain),
        }, **(extra_vars or {})),
        "hosts": {h: dict({"vfio_migration_sysfs_root": os.path.join(where(h), h, "sys"),
                           "vfio_migration_host_root": os.path.join(where(h), h, "root")},
                          **(host_vars(h) if host_vars else {})) for h in hosts},
    }}
    with open(path, "w") as f:
        json.dump(inv, f, indent=1, sort_keys=True)
    return path
