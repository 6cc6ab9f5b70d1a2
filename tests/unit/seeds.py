"""The 2020 `migration/self` proposal example layout, shared by the version, template and filter tests."""

# Seed 001, verbatim apart from the device_api spelling (vfio_pci in the mail).
SEED_SELF = {
    "software_version": "0.1.0",
    "device_api": "vfio-pci",
    "type": "i915-GVTg_V5_4",
    "pci_id": "80865963",
    "aggregator": "2",
}
SEED_COMPATIBLE = """\
software_version=0.1.0
device_api=vfio-pci
type=i915-GVTg_V5_{val1:int:1,2,4,8}
pci_id=80865963
aggregator={val1}/2
"""
SEED_TYPE = "i915-GVTg_V5_{val1:int:1,2,4,8}"


def seed_self(**changes):
    out = dict(SEED_SELF)
    out.update(changes)
    return out
