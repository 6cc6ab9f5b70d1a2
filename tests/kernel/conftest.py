"""Fixtures of the real-kernel lab (see tests/kernel/README.md).

``lab`` (session): builds and boots the lab once, yields a ``tests.kernel.lab.Lab``
and stops the VMs when the session ends. What a test gets from it:

* ``lab.inventory``: YAML inventory of the VMs (group ``kernel_lab``), for
  ``ansible``/``ansible-playbook -i``; ``ANSIBLE_COLLECTIONS_PATH`` is set by
  ``tests/conftest.py``.
* ``lab.hosts``: ``{name: Host}``; ``Host.vm`` is the ``VM`` spec
  (``migration``, ``version``, ``mdevs``), ``Host.port``, ``Host.console_log``.
* ``lab.versions``: ``{name: migration_version or None}``.
* ``lab.ssh(name, "shell command")``, ``lab.python(name, script, *args)``.
* ``lab_module.expected_write_errno(vm, source_version)``: the driver's rule.

``lab_mdev_facts`` (session): ``vfio.migration.mdev_facts`` run once through
Ansible over SSH on every VM, ``{host: ansible_facts.vfio_mdev}``.

Readiness/precheck tests against real kernels go in new ``test_*.py`` modules
here and take these fixtures (mark them ``kernel``).
"""

import json
import os
import time

import pytest

from tests.ansible_runner import adhoc
from tests.kernel import lab as lab_module

_SUMMARY = {}


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the kernel lab installs packages and builds modules: run as root")
    t0 = time.monotonic()
    build = lab_module.build()
    run_dir, lock = lab_module.run_dir_for(build.lab_dir, "session")
    running = lab_module.boot(build, run_dir)
    running.timings["build"] = build.seconds
    running.timings["boot (all VMs answer ssh)"] = running.boot_seconds
    _SUMMARY["lab"] = running
    try:
        yield running
    finally:
        running.stop()
        running.timings["lab total (build, boot, tests, shutdown)"] = time.monotonic() - t0
        running.write_state()
        if lock:
            lock.__exit__(None, None, None)


@pytest.fixture(scope="session")
def lab_mdev_facts(lab):
    t0 = time.monotonic()
    results, proc = adhoc(lab.inventory, "vfio.migration.mdev_facts", timeout=600)
    lab.timings["ansible -m vfio.migration.mdev_facts"] = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    facts = {host: r["ansible_facts"]["vfio_mdev"] for host, r in results.items()}
    with open(os.path.join(lab.run_dir, "mdev_facts.json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
    return facts


def pytest_terminal_summary(terminalreporter):
    from tests.kernel import test_migration_lab  # pylint: disable=import-outside-toplevel
    lines = test_migration_lab.summary_lines()
    if lines:
        terminalreporter.section("migration lab (6.12, libvirt, real VMs)")
        for line in lines:
            terminalreporter.write_line(line)
    running = _SUMMARY.get("lab")
    if not running:
        return
    tr = terminalreporter
    tr.section("kernel lab")
    tr.write_line("kernel %s, %d VMs, logs in %s" % (running.build.kv, len(running.hosts), running.run_dir))
    for name, host in running.hosts.items():
        tr.write_line("  %-6s port %-5d ssh up after %5.1f s  migration=%d version=%s mdevs=%d"
                      % (name, host.port, host.boot_seconds or -1, host.vm.migration,
                         host.vm.version, len(host.vm.mdevs)))
    for label, secs in running.timings.items():
        tr.write_line("  %-45s %6.1f s" % (label, secs))
