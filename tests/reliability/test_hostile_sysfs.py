"""Hostile sysfs content: discovery finishes with what it could read, says what it could not,
and every report shows hostile strings inert.

The hostile host (``fleets.hostile_host``) is served by the FUSE emulator, so
unreadable files, unplugged devices and I/O errors fail with real errno values.
"""

import html.parser
import json
import os
import time

import pytest

from ansible_collections.vfio.migration.plugins.module_utils._gather import gather
from ansible_collections.vfio.migration.plugins.module_utils._sysfs import ATTR_READ_MAX
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils import _report as R
from tests.ansible_runner import adhoc, playbook, write_inventory
from tests.conftest import REPO
from tests.emulator.mount import EmulatorMount, fuse_unavailable
from tests.reliability import fleets as F

pytestmark = [pytest.mark.emulator,
              pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))]

GVT = "devices/pci0000:00/0000:00:02.0/mdev_supported_types/"
# what discovery cannot read, and must say so: (path below sys/, errno name or None for "truncated")
UNREADABLE = {
    (GVT + "i915-GVTg_V5_1/description", "EACCES"),
    (GVT + "i915-GVTg_V5_1/available_instances", "EIO"),
    (GVT + "i915-GVTg_V5_2/description", None),
    ("devices/pci0000:5e/%s/vendor" % F.UNPLUGGED, "ENODEV"),
    ("devices/pci0000:5e/%s/device" % F.UNPLUGGED, "ENODEV"),
    ("devices/pci0000:5e/%s/numa_node" % F.UNPLUGGED, "ENODEV"),
    ("devices/pci0000:5e/%s/mdev_supported_types/nvidia-257/name" % F.UNPLUGGED, "ENODEV"),
    ("devices/pci0000:5e/%s/mdev_supported_types/nvidia-257/description" % F.UNPLUGGED, "ENODEV"),
    ("devices/pci0000:5e/%s/mdev_supported_types/nvidia-257/available_instances" % F.UNPLUGGED, "ENODEV"),
    ("class/mdev_bus/" + F.GONE, "ENOENT"),
    ("class/mdev_bus/loop", "ENOENT"),
    ("bus/mdev/devices/" + F.GONE_UUID, "ENOENT"),
    ("bus/mdev/devices/" + F.LOOP_UUID, "ENOENT"),
}
HOSTILE_TEXT = (F.SCRIPT, F.IMG, F.SVG, F.HOSTILE_VERSION)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    marker = base / "MARKER"
    F.hostile_host(str(base / "src" / "hostile"), str(marker))
    F.hostile_peer(str(base / "src" / "peer"))
    with EmulatorMount(str(base / "src"), str(base / "mnt"), str(base / "writes.log")) as emu:
        yield {"emu": emu, "base": base, "marker": marker}


def facts_of(fleet, host):
    emu = fleet["emu"]
    return gather(emu.path(host, "sys"), use_udev=False, host_root=emu.path(host, "root"))


def errors_below(facts):
    root = facts["sysfs_root"] + "/"
    return {(e["path"][len(root):], e["errno_name"]) for e in facts["errors"]}


def test_discovery_reads_what_it_can_and_lists_what_it_cannot(fleet):
    start = time.monotonic()
    facts = facts_of(fleet, "hostile")
    assert time.monotonic() - start < 10  # 1 MiB attributes are read bounded, loops end
    assert errors_below(facts) == UNREADABLE
    assert all(e["message"] for e in facts["errors"])
    # the parents still there are all reported; the vanished and looping ones are not guessed at
    assert sorted(facts["parents"]) == sorted(["0000:00:02.0", "0000:3b:00.0", F.UNPLUGGED, F.SVG])
    assert facts["devices"] == {}
    gvt = facts["parents"]["0000:00:02.0"]["types"]
    # hostile strings are kept as data, exactly
    assert gvt["i915-GVTg_V5_4"]["name"] == F.SCRIPT
    assert gvt["i915-GVTg_V5_4"]["description"] == "%sred\n%s\nweight: 4" % (F.ESC, F.IMG)
    assert gvt["i915-GVTg_V5_2"]["description"] == "A" * ATTR_READ_MAX
    # unreadable values are null, the rest of the type is read
    v51 = gvt["i915-GVTg_V5_1"]
    assert (v51["description"], v51["available_instances"], v51["name"]) == (None, None, "GVTg_V5_1")
    assert v51["migration"]["version"] == "00028086-193b-i915-GVTg_V5_1"
    # a 1 MiB version is refused with the reason, not truncated into a version
    v58 = gvt["i915-GVTg_V5_8"]["migration"]
    assert (v58["supported"], v58["version"]) == (False, None) and "limit is 4096" in v58["error"]["message"]
    unplugged = facts["parents"][F.UNPLUGGED]
    assert (unplugged["vendor"], unplugged["numa_node"]) == (None, None)
    gone = unplugged["types"]["nvidia-257"]["migration"]
    assert (gone["supported"], gone["error"]["errno_name"]) == (False, "ENODEV")
    evil = facts["parents"][F.SVG]["types"]
    assert evil[F.IMG]["migration"]["version"] == F.HOSTILE_VERSION
    assert evil["esc" + F.ESC]["description"] == F.ESC
    jinja = facts["parents"]["0000:3b:00.0"]["types"]["nvidia-257"]["migration"]
    assert jinja["version"] == F.JINJA % fleet["marker"]
    assert fleet["emu"].writes() == []  # discovery never writes


@pytest.mark.ansible
def test_mdev_facts_through_ansible_matches_and_prints_no_raw_escapes(fleet, tmp_path):
    inv = write_inventory(str(tmp_path / "hosts.json"), {"hostile": {"tree": fleet["emu"].path("hostile", "sys"),
                                                                     "root": fleet["emu"].path("hostile", "root")}})
    results, proc = adhoc(inv, "vfio.migration.mdev_facts", "sysfs_root={{ tree }} host_root={{ root }} use_udev=false")
    assert proc.returncode == 0, proc.stdout[-2000:]
    res = results["hostile"]
    assert res["changed"] is False and "exception" not in res
    assert res["ansible_facts"]["vfio_mdev"] == facts_of(fleet, "hostile")
    assert "\x1b" not in proc.stdout + proc.stderr and "\\u001b" in proc.stdout


class Inventory(html.parser.HTMLParser):
    """Every element and attribute of a page, and its text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.extend(attrs)
        self.text.extend(pair[1] for pair in attrs if pair[1])

    def handle_data(self, data):
        self.text.append(data)


def assert_inert_html(page):
    doc = Inventory()
    doc.feed(page)
    doc.close()
    assert not doc.tags & {"img", "svg", "iframe", "object", "embed"}, doc.tags
    assert not [a for a in doc.attrs if a[0].startswith("on")]
    text = "\n".join(doc.text)
    for hostile in HOSTILE_TEXT:
        assert hostile in text, hostile  # shown, as text
        assert hostile not in page, hostile  # never raw markup


def hostile_matrix(fleet):
    hosts = {h: {"state": "ok", "reason": None, "facts": facts_of(fleet, h), "probe": None}
             for h in ("hostile", "peer")}
    return M.compat_matrix(hosts)


def test_html_report_shows_hostile_names_and_versions_as_text(fleet):
    assert_inert_html(R.render_html(hostile_matrix(fleet), None, None))


def test_reports_carry_no_raw_terminal_escapes(fleet):
    """A type id holding ESC/BEL must not reach a report raw: `cat report.html` would run it.

    JSON escapes it (\\u001b); the HTML, Markdown and CSV renderers must escape it too.
    """
    matrix = hostile_matrix(fleet)
    raw = {}
    for name, text in (("json", R.render_json(matrix, None, None)), ("html", R.render_html(matrix, None, None)),
                       ("md", R.render_markdown(matrix, None, None)), ("csv", R.render_csv(matrix))):
        found = sorted({c for c in text if ord(c) < 0x20 and c not in "\t\n\r" or c == "\x7f"})
        if found:
            raw[name] = found
    assert raw == {}, "reports holding raw control characters: %r" % raw


@pytest.mark.ansible
def test_readiness_over_hostile_hosts_never_evaluates_and_escapes(fleet, tmp_path):
    emu = fleet["emu"]
    hosts = {h: {"vfio_migration_sysfs_root": emu.path(h, "sys"), "vfio_migration_host_root": emu.path(h, "root")}
             for h in ("hostile", "peer")}
    report = tmp_path / "report"
    inv = write_inventory(str(tmp_path / "hosts.json"), hosts, {
        "vfio_migration_allow_non_sysfs": True, "vfio_migration_use_udev": False,
        "vfio_migration_report_dir": str(report), "vfio_migration_report_timestamp": False})
    before = len(emu.writes())
    proc = playbook(inv, os.path.join(REPO, "playbooks", "readiness.yml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "\x1b" not in proc.stdout + proc.stderr
    # the Jinja text in a version was data all the way: never evaluated, written to the peer as is
    assert not fleet["marker"].exists()
    written = [w for w in emu.writes()[before:] if w["path"].startswith("peer/")]
    nv = "peer/sys/devices/pci0000:3b/0000:3b:00.0/mdev_supported_types/nvidia-257/migration_version"
    assert (F.JINJA % fleet["marker"]) + "\n" in [w["data"] for w in written if w["path"] == nv]
    assert all(os.path.basename(w["path"]) in F.ALLOWED_ATTRIBUTES for w in emu.writes()[before:])
    cells = json.loads((report / "matrix.json").read_text())["cells"]
    verdict = {(c["source_host"], c["mdev_type"], c["source_version"], c["target_host"]): (c["status"], c["errno_name"])
               for c in cells}
    # the peer's driver judged the Jinja version (and refused it); the HTML version type is not offered there
    assert verdict[("hostile", "nvidia-257", F.JINJA % fleet["marker"], "peer")] == ("incompatible", "EINVAL")
    assert verdict[("hostile", F.IMG, F.HOSTILE_VERSION, "peer")] == ("missing_type", None)
    assert_inert_html((report / "report.html").read_text())
