"""The builder's coupled capacity (tests/fixtures/sysfs_builder.py): what each
driver publishes as ``available_instances`` (or ``creatable_vgpu_types``) given
the instances that already exist on the same parent.

Every expected number below is worked out by hand from the drivers' rules:
NVIDIA time-sliced vGPU runs one type per GPU (unless heterogeneous, where the
framebuffer is shared), GVT-g ``V5_N`` takes 1/N of the GPU, mtty has 24 ports
(``mtty-1`` one, ``mtty-2`` two), a vGPU 17+ PF keeps one type for all its VFs.
"""

import pytest

from tests.fixtures import sysfs_builder as B

T4 = {"256": (1024, 16), "257": (2048, 8), "258": (4096, 4), "259": (8192, 2)}  # framebuffer MB, max_instance
H200 = ((1414, "NVIDIA H200X-1-18C"), (1415, "NVIDIA H200X-2-35C"))  # 18 GB and 35 GB of 141


@pytest.mark.parametrize("used, expected", [
    ({}, {"256": 16, "257": 8, "258": 4, "259": 2}),                 # empty GPU: every type's max_instance
    ({"257": 2}, {"256": 0, "257": 6, "258": 0, "259": 0}),          # one type runs: it alone, 8 - 2
    ({"259": 2}, {"256": 0, "257": 0, "258": 0, "259": 0}),          # full
    ({"256": 1, "258": 0}, {"256": 15, "257": 0, "258": 0, "259": 0}),  # a zero count is no instance
    ({"256": 1, "257": 1}, {"256": 0, "257": 0, "258": 0, "259": 0}),   # a mix the driver would refuse
])
def test_nvidia_one_type_per_gpu(used, expected):
    assert B.nvidia_available(T4, used) == expected


@pytest.mark.parametrize("used, expected", [
    ({}, {"256": 16, "257": 8, "258": 4, "259": 2}),
    # 16384 MB; 1024 + 4096 used: 11264 free -> 11, 5, 2, 1 (256 is also below its 16 - 1)
    ({"256": 1, "258": 1}, {"256": 11, "257": 5, "258": 2, "259": 1}),
    # 3 x 4096 used: 4096 free -> 4, 2, 1 (but 258 has max 4, 3 used: 1), 0
    ({"258": 3}, {"256": 4, "257": 2, "258": 1, "259": 0}),
    ({"259": 1, "257": 4}, {"256": 0, "257": 0, "258": 0, "259": 0}),
])
def test_nvidia_heterogeneous_shares_the_framebuffer(used, expected):
    assert B.nvidia_available(T4, used, heterogeneous=True) == expected


@pytest.mark.parametrize("used, expected", [
    ({}, {"1": 1, "2": 2, "4": 4, "8": 8}),
    ({"4": 1}, {"1": 0, "2": 1, "4": 3, "8": 6}),                 # 3/4 left
    ({"4": 1, "8": 1}, {"1": 0, "2": 1, "4": 2, "8": 5}),         # 5/8 left
    ({"2": 1, "4": 1}, {"1": 0, "2": 0, "4": 1, "8": 2}),         # 1/4 left
    ({"8": 3}, {"1": 0, "2": 1, "4": 2, "8": 5}),                 # 5/8 left
    ({"1": 1}, {"1": 0, "2": 0, "4": 0, "8": 0}),
    ({"1": 1, "8": 1}, {"1": 0, "2": 0, "4": 0, "8": 0}),         # over-committed: never negative
])
def test_gvtg_types_share_one_budget(used, expected):
    assert B.gvtg_available(["1", "2", "4", "8"], used) == expected


@pytest.mark.parametrize("used, expected", [
    ({}, {"mtty-1": 24, "mtty-2": 12}),
    ({"mtty-2": 1}, {"mtty-1": 22, "mtty-2": 11}),
    ({"mtty-1": 3, "mtty-2": 1}, {"mtty-1": 19, "mtty-2": 9}),   # 19 ports free, 9 pairs
    ({"mtty-1": 23}, {"mtty-1": 1, "mtty-2": 0}),
    ({"mtty-2": 12}, {"mtty-1": 0, "mtty-2": 0}),
])
def test_mtty_ports_are_shared(used, expected):
    assert B.mtty_available(used) == expected


@pytest.mark.parametrize("current, heterogeneous, expected", [
    ([0, 0, 0, 0], False, [1414, 1415]),
    ([1415, 0, 0, 0], False, [1415]),                  # a PF running 2-35C offers 2-35C alone
    ([1414] * 6 + [0, 0], False, [1414]),              # 6 x 18 GB: a seventh fits 141 GB
    ([1414] * 7 + [0], False, []),                     # 7 x 18 = 126: no eighth
    ([1415] * 4 + [0], False, []),                     # 4 x 35 = 140
    ([1414, 1415, 0], False, []),                      # a mix without mixed-size mode: nothing
    ([1415, 0], True, [1414, 1415]),                   # mixed-size: 106 GB free
    ([1415, 1415, 1415, 0], True, [1414, 1415]),       # 141 - 105 = 36 GB free: both fit
    ([1415, 1415, 1415, 1414, 0], True, [1414]),       # 141 - 123 = 18 GB free: one more 1-18C
])
def test_vgpu17_free_vfs_offer_what_the_pf_can_still_create(current, heterogeneous, expected):
    got = [tid for tid, name in B.vgpu_creatable(H200, current, heterogeneous)]
    assert got == expected


def test_framebuffer_from_the_type_name():
    assert [B.vgpu_framebuffer(n) for n in ("NVIDIA H200X-1-18C", "NVIDIA H200X-2-35C", "GRID T4-2Q", "custom")] \
        == [18, 35, 2, None]
    with pytest.raises(ValueError):
        B.vgpu_creatable(((7, "custom"),), [7, 0], heterogeneous=True)


def test_trees_publish_the_coupled_numbers(tmp_path):
    """The vendor blocks write what the functions say (plain files, read back)."""
    t = B.SysfsTree(str(tmp_path / "h"))
    nv = B.nvidia_vgpu(t, "0000:3b:00.0", instances=[("258", "00000000-0000-4000-8000-000000000001")])
    gvt = B.intel_gvtg(t, instances=[("2", "00000000-0000-4000-8000-000000000002")])
    mt = B.mtty(t, instances=["00000000-0000-4000-8000-000000000003",
                              ("mtty-1", "00000000-0000-4000-8000-000000000004")])
    pf = B.vendor_vfio_vgpu(t, "0000:41:00.0", vfs=3, current={1: 1415})

    def avail(dev, type_id):
        with open(t.abs("%s/mdev_supported_types/%s/available_instances" % (dev, type_id))) as f:
            return int(f.read())

    assert [avail(nv, "nvidia-%d" % n) for n in (256, 257, 258, 259)] == [0, 0, 3, 0]
    assert [avail(gvt, "i915-GVTg_V5_%d" % n) for n in (1, 2, 4, 8)] == [0, 1, 2, 4]
    assert [avail(mt, "mtty-1"), avail(mt, "mtty-2")] == [21, 10]
    listings = []
    for i in range(3):
        with open(t.abs("%s/virtfn%d/nvidia/creatable_vgpu_types" % (pf, i))) as f:
            listings.append(f.read().splitlines()[1:])
    # the VF running 2-35C lists its own type; the free ones only what the PF still creates: 2-35C
    assert listings == [["1415 : NVIDIA H200X-2-35C"]] * 3
