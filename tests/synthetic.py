"""Synthetic host inputs for the controller-side code (unit tests and bench).

``facts(...)`` builds an ``ansible_facts.vfio_mdev`` of the shape mdev_facts
returns, small enough to make by the thousand; ``probe_all(hosts, rule)``
answers every batch the way a driver rule would, without any host.
"""

import random
import uuid as _uuid


def mig(version=None, supported=None, error=None):
    if supported is None:
        supported = version is not None
    return {"attribute": "migration_version" if version or error else None, "supported": supported,
            "version": version, "error": error, "self": None, "compatible": None}


# A stack that meets the default policy's minimums (kernel 5.18, QEMU 8.1, libvirt 8.6).
STACK = {"kernel": "6.12.95+deb12-amd64", "qemu": "10.0.2", "libvirt": "11.3.0", "modules": {}, "sources": {}}


def facts(parents, stack=None):
    """``parents``: ``{parent: {type: (version, available, [uuids])}}``; ``stack`` defaults to :data:`STACK`."""
    out = {"schema_version": 1, "parents": {}, "devices": {}, "physical": {}, "errors": [],
           "stack": dict(STACK) if stack is None else stack}
    for parent, types in parents.items():
        p = out["parents"][parent] = {"driver": "drv", "types": {}}
        for type_id, (version, avail, devs) in types.items():
            p["types"][type_id] = {"name": type_id, "description": None, "device_api": "vfio-pci",
                                   "available_instances": avail, "devices": list(devs), "migration": mig(version)}
            for d in devs:
                out["devices"][d] = {"parent": parent, "mdev_type": type_id, "migration": mig()}
    return out


def ok(f, probe=None):
    return {"state": "ok", "reason": None, "facts": f, "probe": probe}


def range_rule(source, target):
    """Same prefix and major, source minor not newer than the target's: errno or None."""
    sp, sv = source.rsplit("-", 1)
    tp, tv = target.rsplit("-", 1)
    smaj, smin = sv.split(".")
    tmaj, tmin = tv.split(".")
    if sp != tp:
        return 22  # EINVAL
    if smaj != tmaj:
        return 71  # EPROTO
    return None if int(smin) <= int(tmin) else 22


def probe_all(hosts, batches, rule=range_rule):
    """Fill each host's ``probe`` as migration_probe would answer ``batches``."""
    for name, batch in batches.items():
        results = []
        for check in batch:
            for parent, p in sorted(hosts[name]["facts"]["parents"].items()):
                t = p["types"].get(check["mdev_type"])
                if t is None:
                    continue
                code = rule(check["version"], t["migration"]["version"])
                results.append({"id": check["id"], "mdev_type": check["mdev_type"], "parent": parent,
                                "status": "compatible" if code is None else "incompatible",
                                "errno": code, "errno_name": {22: "EINVAL", 71: "EPROTO"}.get(code),
                                "message": None})
        hosts[name]["probe"] = {"changed": False, "results": results}
    return hosts


def fleet(n_hosts, n_types=4, versions_per_type=4, seed=1, instances=2):
    """``n_hosts`` hosts, each with one parent offering every type at a random version."""
    rnd = random.Random(seed)
    hosts = {}
    for i in range(n_hosts):
        types = {}
        for t in range(n_types):
            v = "prefix%d-1.%d" % (t, rnd.randrange(versions_per_type))
            devs = [str(_uuid.UUID(int=rnd.getrandbits(128))) for count in range(rnd.randrange(instances + 1))]
            types["vendor-%d" % t] = (v, rnd.randrange(0, 8), devs)
        hosts["host%05d" % i] = ok(facts({"0000:3b:00.0": types}))
    return hosts
