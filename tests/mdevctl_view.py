"""One normal form for what mdevctl and mdev_facts say, so they can be compared.

Used by the fixture-tree agreement test and by the kernel lab.
"""


def from_mdevctl(types_json, list_json):
    """``mdevctl types --dumpjson`` and ``mdevctl list --dumpjson`` -> ``(types, devices)``.

    ``types``: ``{parent: {type_id: attrs}}``; ``devices``: ``{uuid: {parent, mdev_type}}``.
    """
    types, devices = {}, {}
    for entry in types_json or []:
        for parent, tlist in entry.items():
            for t in tlist:
                for type_id, attrs in t.items():
                    types.setdefault(parent, {})[type_id] = attrs
    for entry in list_json or []:
        for parent, dlist in entry.items():
            for d in dlist:
                for uuid, attrs in d.items():
                    devices[uuid] = {"parent": parent, "mdev_type": attrs["mdev_type"]}
    return types, devices


def from_facts(facts):
    """``ansible_facts.vfio_mdev`` -> the same ``(types, devices)`` form.

    mdevctl prints a multi-line description joined with ", " and leaves out
    attributes the driver does not have.
    """
    types = {}
    for parent, p in facts["parents"].items():
        for type_id, t in p["types"].items():
            row = {"available_instances": t["available_instances"], "device_api": t["device_api"]}
            if t["name"] is not None:
                row["name"] = t["name"]
            if t["description"] is not None:
                row["description"] = ", ".join(t["description"].splitlines())
            types.setdefault(parent, {})[type_id] = row
    devices = {u: {"parent": d["parent"], "mdev_type": d["mdev_type"]} for u, d in facts["devices"].items()}
    return types, devices
