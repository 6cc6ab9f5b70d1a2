"""Nothing lost: ansible-playbook killed with SIGKILL while it writes leaves whole files only.

Two plays drive the roles' own write tasks: the facts role with
``vfio_migration_persist_facts`` (one ``vfio_mdev.fact`` per host) and the
matrix role's ``reports.yml`` writing the four reports of a large matrix.
Each attempt changes what is to be written (a type description in every
host's sysfs; the reports' generation time) and, at a random moment after the
first file was replaced (reports: while matrix.md is being written), freezes and
SIGKILLs ansible-playbook and every process it started. Afterwards every fact
file and every report is either the old complete file or the new complete
one: never absent, never cut. A last, uninterrupted run gives the first run's
reports again, apart from the generation time.
"""

import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from ansible_collections.vfio.migration.plugins.module_utils._gather import gather
from ansible_collections.vfio.migration.plugins.plugin_utils._report import render_json
from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from tests.ansible_runner import write_inventory
from tests.conftest import REPO, ansible_bin
from tests.reliability import fleets as F

pytestmark = pytest.mark.ansible

REPORTS = ("matrix.json", "matrix.csv", "matrix.md", "report.html")
ATTEMPTS = 4  # alternately while fact files and while reports are written
TRIES = 3  # runs per attempt at most, until its kill lands before the play ends
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

FACTS_PLAY = """
- name: Persist the facts of every host
  hosts: all
  gather_facts: false
  roles:
    - role: vfio.migration.facts
"""
REPORTS_PLAY = """
- name: Write the reports of a stored matrix
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Load the matrix
      ansible.builtin.set_fact:
        vfio_migration_matrix: "{{ lookup('ansible.builtin.file', matrix_file) | from_json }}"
    - name: Write the reports as the matrix role does
      ansible.builtin.include_role:
        name: vfio.migration.matrix
        tasks_from: reports
"""


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    base = tmp_path_factory.mktemp("atomic")
    trees = F.large_fleet(str(base / "src"))
    names = sorted(os.path.basename(d) for d in trees)
    hosts = {n: {"vfio_migration_sysfs_root": str(base / "src" / n / "sys"),
                 "vfio_migration_host_root": str(base / "src" / n / "root"),
                 "vfio_migration_facts_dir": str(base / "facts" / n)} for n in names}
    hosts["localhost"] = {}
    inv = write_inventory(str(base / "hosts.json"), hosts, {
        "vfio_migration_use_udev": False, "vfio_migration_persist_facts": True,
        "vfio_migration_report_dir": str(base / "report"), "matrix_file": str(base / "matrix.json"),
        # every run compares with the same matrix.json, so its reports differ from the first run's only in their time
        "vfio_migration_previous_matrix": str(base / "previous.json")})
    matrix = M.compat_matrix({n: {"state": "ok", "reason": None, "probe": None, "facts": gather(
        hosts[n]["vfio_migration_sysfs_root"], use_udev=False, host_root=hosts[n]["vfio_migration_host_root"])}
        for n in names})
    (base / "matrix.json").write_text(json.dumps(matrix))
    (base / "previous.json").write_text(render_json(matrix, None, None))
    (base / "facts.yml").write_text(FACTS_PLAY)
    (base / "reports.yml").write_text(REPORTS_PLAY)
    return {"base": base, "inv": inv, "hosts": names, "trees": sorted(trees),
            "facts": [str(base / "facts" / n / "vfio_mdev.fact") for n in names],
            "reports": [str(base / "report" / r) for r in REPORTS]}


def start(big, phase, forks=1):
    """One play in its own process group; one fork, so that files are replaced one after another."""
    play = str(big["base"] / ("%s.yml" % phase))
    limit = ["--limit", "localhost"] if phase == "reports" else ["--limit", "all:!localhost"]
    env = dict(os.environ, ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_FORKS=str(forks))
    return subprocess.Popen([ansible_bin("ansible-playbook"), "-i", big["inv"], play] + limit, cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def complete_run(big, phase):
    assert start(big, phase, forks=5).wait(timeout=900) == 0, phase


def inode(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def snapshot(paths):
    out = {}
    for p in paths:
        try:
            with open(p, "rb") as f:
                out[p] = f.read()
        except FileNotFoundError:
            out[p] = None
    return out


def set_description(big, text):
    for d in big["trees"]:
        with open(os.path.join(d, "sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-000/description"),
                  "w") as f:
            f.write(text + "\n")


def complete_fact(data, description):
    """A whole fact file of this attempt: valid JSON holding the new description."""
    try:
        facts = json.loads(data)
    except ValueError:
        return False
    return facts["parents"]["mtty"]["types"]["mtty-000"]["description"] == description


def complete_report(data, first):
    """A whole report: the first run's, with only the generation time changed."""
    text, was = data.decode("utf-8", "replace"), first.decode("utf-8")
    stamps = set(STAMP.findall(text))
    return len(stamps) == 1 and STAMP.sub(stamps.pop(), was) == text


def process_tree(pid):
    """``pid`` and every process below it, from /proc (Ansible's workers leave the process group)."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def signal_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def kill_tree(pid):
    """SIGKILL a run and every process it started, as a power cut would: freeze them all, then kill.

    Returns the pids killed.
    """
    stopped = set()
    while True:  # stopped processes fork no more: repeat until the tree is complete
        new = set(process_tree(pid)) - stopped
        if not new:
            break
        for p in new:
            signal_quietly(p, signal.SIGSTOP)
        stopped |= new
    for p in stopped:
        signal_quietly(p, signal.SIGKILL)
    return stopped


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def temporaries(directory, name):
    """The temporary files for ``name`` in ``directory`` (``.name.XXXX.tmp``)."""
    try:
        return {entry for entry in os.listdir(directory) if entry.startswith("." + name + ".") and entry.endswith(".tmp")}
    except FileNotFoundError:
        return set()


def kill_during(big, phase, delay):
    """Start a run and SIGKILL it and all its processes while it replaces files.

    Fact files (one module run per host, over a second): ``delay`` seconds after the first
    one is replaced. Reports (one task writes them all within milliseconds): the moment the
    temporary file of matrix.md appears, so matrix.json is new, matrix.md is being written and
    report.html is old (matrix.csv has no generation time: it stays as it is). Returns whether the run had already
    ended (then the kill came too late to test anything).
    """
    paths = big[phase]
    inodes = {p: inode(p) for p in paths}
    report_dir, trigger = os.path.split(big["reports"][2])
    # an earlier killed run may have left its temporary file behind: only a new one is this run's
    left_behind = temporaries(report_dir, trigger)
    proc = start(big, phase)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if phase == "reports":  # the temporary file lives for microseconds: look without pausing
            if temporaries(report_dir, trigger) - left_behind:
                break
            continue
        if any(inode(p) != inodes[p] for p in paths):
            time.sleep(delay)
            break
        time.sleep(0.002)
    finished = proc.poll() is not None
    killed = kill_tree(proc.pid)
    proc.wait()
    deadline = time.monotonic() + 10
    while [p for p in killed if running(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in killed if running(p)], "processes of the killed run are still running"
    return finished


def test_sigkill_while_writing_leaves_old_or_new_whole_files(big):
    complete_run(big, "facts")
    complete_run(big, "reports")
    first = snapshot(big["reports"])
    assert all(snapshot(big["facts"]).values()) and all(first.values())
    assert len(first[big["reports"][0]]) > 50000  # a large report to write
    rng = random.Random(20250101)
    outcomes = []
    landed = 0  # kills that came while their play was still replacing files
    for attempt in range(ATTEMPTS * TRIES):
        if landed == ATTEMPTS:
            break
        description = "description of attempt %d" % attempt
        set_description(big, description)
        phase = ("facts", "reports")[landed % 2]
        time.sleep(1.0)  # the next report's generation time differs from the last one's
        before = snapshot(big["facts"] + big["reports"])
        finished = kill_during(big, phase, rng.uniform(0, 0.6))
        after = snapshot(big["facts"] + big["reports"])
        replaced = 0
        for p in big["facts"] + big["reports"]:
            assert after[p] is not None, (attempt, p)
            if after[p] == before[p]:
                continue
            replaced += 1
            if p in big["facts"]:
                assert complete_fact(after[p], description), (attempt, p, after[p][-300:])
            else:
                assert complete_report(after[p], first[p]), (attempt, p, after[p][-300:])
        outcomes.append({"phase": phase, "finished": finished, "replaced": replaced, "of": len(big[phase])})
        landed += not finished
    # ATTEMPTS kills landed while their play was replacing files (a kill that came after the play had
    # ended is tried again: the reports' window is a few microseconds), and each left some new files
    assert landed == ATTEMPTS and {o["phase"] for o in outcomes if not o["finished"]} == {"facts", "reports"}, outcomes
    assert all(0 < o["replaced"] for o in outcomes), outcomes
    # a killed report run leaves at most its temporary files, which change nothing for the next one
    leftovers = [e for e in os.listdir(os.path.dirname(big["reports"][0])) if e.endswith(".tmp")]
    assert all(e.startswith(".") for e in leftovers), leftovers
    complete_run(big, "reports")
    final = snapshot(big["reports"])
    for p in big["reports"]:
        assert final[p] == first[p] if p.endswith(".csv") else complete_report(final[p], first[p]), p
    # one run, one generation time: the same in matrix.json (its "generated"), matrix.md and report.html
    generated = json.loads(final[big["reports"][0]])["generated"]
    assert {s for p in big["reports"] for s in STAMP.findall(final[p].decode())} == {generated}
