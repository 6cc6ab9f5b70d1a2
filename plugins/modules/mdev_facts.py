#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: mdev_facts
short_description: Discover VFIO mediated devices and their live-migration attributes
version_added: 0.1.0
description:
  - Reads, and never writes, the sysfs attributes that decide whether a VM with a
    VFIO mediated device (vGPU, mdev serial or crypto device) or a migratable VFIO PCI
    function can be live-migrated to another host.
  - Enumerates mdev parents (C(class/mdev_bus/*)), each parent's supported types with
    C(name), C(description), C(device_api), C(available_instances) and instances, the
    mdev instances under C(bus/mdev/devices), and PCI functions bound to C(vfio-pci) or a
    vfio-pci variant driver such as C(mlx5_vfio_pci).
  - Reads every migration attribute the kernel proposals define, C(migration_version)
    and the older C(version) at the type, C(migration_version) at the device, and the
    proposed C(migration/self) and C(migration/compatible) layout.
  - A read that fails is reported as data with its errno (for example C(ENODEV)) and
    what it means (C(unsupported) or C(error)); discovery always finishes with what it
    could read and lists what it could not under C(errors).
  - Also reports vendor-VFIO vGPUs that have no mdev (NVIDIA vGPU 17 and later) - per SR-IOV
    VF the creatable vGPU types (C(nvidia/creatable_vgpu_types)) and the current one
    (C(nvidia/current_vgpu_type), 0 for none), per PF its VFs - and the host stack - kernel
    release, vGPU and VFIO module versions, QEMU and libvirt versions - read without running
    anything that changes state.
  - Where the managed host has C(pyudev) and O(sysfs_root) is C(/sys), hwdb vendor and
    model names are added to each parent. C(pyudev) is never required.
  - Can run as a fact module of M(ansible.builtin.gather_facts) through the
    C(facts_modules) setting.
author:
  - vfio.migration maintainers (@vfio-migration)
options:
  host_root:
    description:
      - Where the host's root file system is, for the host stack (kernel release from
        C(proc/sys/kernel/osrelease), QEMU and libvirt versions from the dpkg database or,
        on the real root only, from C(rpm -q)). Point it at a test tree beside O(sysfs_root).
    type: path
    default: /
  use_udev:
    description:
      - Add udev hwdb names of parent devices when C(pyudev) is importable and
        O(sysfs_root) is C(/sys).
    type: bool
    default: true
  check_vfio_capability:
    description:
      - Whether to ask the kernel if free VFIO devices can migrate at all, through the merged
        VFIO uAPI (C(VFIO_DEVICE_FEATURE) with C(GET|MIGRATION) on a device opened through its
        IOMMU group). The answer is C(vfio_migration) on every mdev type and VFIO PCI function.
      - A device some process holds open (a VM) is never opened; the kernel's one-opener rule
        for groups is a second guard (C(EBUSY) is reported as in use, not as an answer). Each
        check runs in a child process with a time limit of 5 seconds.
      - C(auto) opens only devices whose driver does nothing on open and close (the C(mtty)
        sample). C(always) also opens free devices of drivers with effects on open (vfio-pci
        and its variants reset the function, Intel GVT-g activates the vGPU, NVIDIA starts its
        vGPU manager, vfio-ccw enables the subchannel). C(never) opens nothing.
      - Devices are opened only when O(sysfs_root) is C(/sys).
    type: str
    choices: [auto, always, never]
    default: auto
  query_qemu:
    description:
      - For every running libvirt domain, ask QEMU why it could not migrate now (QMP
        C(query-migrate), its C(blocked-reasons)) through C(virsh qemu-monitor-command),
        at most 10 seconds a VM. C(query-migrate) changes nothing; libvirt records the use
        of C(qemu-monitor-command) as a C(custom-monitor) taint of the domain.
      - Only on the host's real root (O(host_root) C(/)) and where C(virsh) is installed.
    type: bool
    default: true
  persist_dir:
    description:
      - Also write the facts as JSON to C(vfio_mdev.fact) in this directory (created with
        mode 0755 when missing), so later plays and other roles read them as
        C(ansible_local.vfio_mdev). The file is replaced atomically (written beside it, then
        renamed) and only when its content changes, which is what RV(ignore:changed) says.
      - Omitted, or with O(persist=false), nothing is written.
    type: path
  persist:
    description:
      - Write the fact file to O(persist_dir). With V(false) nothing is written, so a role can
        always pass its directory and switch writing with one boolean variable.
    type: bool
    default: true
    version_added: 0.2.0
attributes:
  check_mode:
    support: full
    description: Discovery only reads. With O(persist_dir), check mode says whether the fact file
      would change and writes nothing.
  diff_mode:
    support: none
    description: No diff of the fact file is shown.
  facts:
    support: full
    description: Returns C(ansible_facts.vfio_mdev) and works as a C(facts_modules) entry.
notes:
  - The facts are also the input of the C(vfio.migration.matrix) role and the
    C(vfio.migration.compat_matrix) filter.
extends_documentation_fragment:
  - vfio.migration.managed_host
seealso:
  - module: vfio.migration.migration_probe
"""

EXAMPLES = r"""
- name: Discover mdev parents, types and instances
  vfio.migration.mdev_facts:

- name: Show the migration version of each Intel GVT-g type
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.migration.version }}"
  loop: "{{ ansible_facts.vfio_mdev.parents['0000:00:02.0'].types | dict2items }}"

- name: Discover and keep the facts for later plays as ansible_local.vfio_mdev
  vfio.migration.mdev_facts:
    persist_dir: /etc/ansible/facts.d

- name: Read an emulated tree instead of the host's sysfs
  vfio.migration.mdev_facts:
    sysfs_root: /srv/fixtures/host1/sys

- name: Options from each host's variables, read as stored (no template for each host to compile)
  vfio.migration.mdev_facts:
    option_vars:
      sysfs_root: lab_sysfs_root
      persist_dir: lab_facts_dir

# In ansible.cfg, gather these facts with the usual fact gathering:
# [defaults]
# facts_modules = ansible.builtin.setup, vfio.migration.mdev_facts
"""

RETURN = r"""
fact_file:
  description: The fact file written (or, in check mode, that would be written); null without O(persist_dir).
  type: str
  returned: always
  sample: /etc/ansible/facts.d/vfio_mdev.fact
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: dict
  contains:
    vfio_mdev:
      description: What the host offers for VFIO live migration.
      returned: always
      type: dict
      contains:
        schema_version:
          description: Version of this structure; grows only when it changes incompatibly.
          type: int
          returned: always
          sample: 1
        sysfs_root:
          description: The sysfs root that was read.
          type: str
          returned: always
          sample: /sys
        parents:
          description:
            - mdev parent devices by name (the entry under C(class/mdev_bus)), each with its
              identity (C(path), C(bus), C(vendor), C(device), C(subsystem_vendor),
              C(subsystem_device), C(class), C(driver), C(driver_version), C(numa_node),
              C(iommu_group), C(udev)) and C(types).
            - Each type by type id has C(name), C(description), C(device_api),
              C(available_instances), C(devices) (instance uuids), C(migration) and
              C(vfio_migration).
            - C(vfio_migration) is the kernel's answer for a free instance of the type (see
              O(check_vfio_capability)) - C(checked) (an answer was read), C(migratable) (true,
              false, or null when not known), C(flags) (C(STOP_COPY), C(P2P), C(PRE_COPY)),
              C(device) (the instance asked), C(in_use), C(errno), C(errno_name), C(message).
            - C(migration) has C(attribute) (C(migration_version), C(version),
              C(migration/self) or null), C(path), C(supported) (true, false, or null when
              a read failed for a reason that tells nothing, such as EACCES),
              C(version), C(error) (C(errno), C(errno_name), C(message), C(means)),
              C(attributes) (every migration attribute found, by name), C(self) and
              C(compatible) (the parsed proposal layout, when present).
          type: dict
          returned: always
          sample:
            "0000:00:02.0":
              vendor: "0x8086"
              device: "0x193b"
              driver: i915
              driver_version: null
              numa_node: 0
              types:
                i915-GVTg_V5_4:
                  name: GVTg_V5_4
                  device_api: vfio-pci
                  available_instances: 2
                  devices: ["5ac1fb20-2bbf-4842-bb7e-36c58c3be9cd"]
                  migration:
                    attribute: version
                    supported: true
                    version: 00028086-193b-i915-GVTg_V5_4
                    error: null
        devices:
          description:
            - mdev instances by uuid with C(parent), C(mdev_type), C(iommu_group), C(driver),
              C(path) and C(migration) (the device-level C(migration_version) and layout).
          type: dict
          returned: always
          sample:
            5ac1fb20-2bbf-4842-bb7e-36c58c3be9cd:
              parent: "0000:00:02.0"
              mdev_type: i915-GVTg_V5_4
              iommu_group: "1"
              migration: {attribute: null, supported: false, version: null, error: null}
        physical:
          description:
            - PCI functions bound to vfio-pci or a vfio-pci variant driver, by PCI address,
              with identity, C(type) (a C(pci-VVVV:DDDD) signature that stands in for the
              mdev type), C(migration) at the device node and C(vfio_migration) (as for mdev
              types; a function bound to plain C(vfio-pci) has C(migratable) false).
          type: dict
          returned: always
        vendor_vgpu:
          description:
            - Vendor-VFIO vGPUs without mdev. C(vfs) by PCI address with C(physfn), C(creatable)
              (list of C(id), C(name)), C(current) (C(id), C(name), or null when no type is set),
              C(driver), C(driver_version); C(pfs) by PCI address with identity,
              C(sriov_totalvfs), C(sriov_numvfs) and C(vfs).
          type: dict
          returned: always
          sample:
            vfs:
              "0000:41:00.4":
                physfn: "0000:41:00.0"
                creatable: [{id: 1414, name: NVIDIA H200X-1-18C}]
                current: {id: 1414, name: NVIDIA H200X-1-18C}
                driver: nvidia
                driver_version: 550.90.07
            pfs: {}
        stack:
          description:
            - The virtualization stack, C(kernel), C(qemu), C(libvirt) (upstream versions or null),
              C(modules) (module name to version, for example C(nvidia)), and C(sources) (where
              each version was read).
          type: dict
          returned: always
          sample: {kernel: 6.1.0-27-amd64, qemu: "8.2.2", libvirt: "9.0.0", modules: {nvidia: 550.90.07}}
        vms:
          description:
            - The host's libvirt domains by name, read from libvirt's QEMU state files (the persistent
              definitions under C(etc/libvirt/qemu) and the live status under C(run/libvirt/qemu) below
              O(host_root)) without asking the daemon.
            - Each has C(name), C(uuid), C(state) (libvirt's word - C(running), C(paused), C(shutoff),
              ...), C(persistent), C(mdevs) (C(uuid), C(model), C(alias), and from discovery
              C(mdev_type), C(parent), C(present)), C(pci) (C(address), C(managed), C(driver), C(type),
              C(vgpu) for a vendor-VFIO vGPU VF), C(viommu) (the domain has an C(<iommu>)),
              C(differences) (live VFIO devices that differ from the persistent definition) and
              C(qemu) (C(asked), C(blocked), C(reasons) - QEMU's blockers - and C(message); see
              O(query_qemu)).
          type: dict
          returned: always
          sample:
            vm-a:
              name: vm-a
              uuid: 9d1c1f4e-5b8c-4a0e-8e1d-0a0000000a01
              state: running
              persistent: true
              mdevs: [{uuid: 4b1f0a52-7d3e-4c59-9b7a-0a0000000a01, model: vfio-pci, alias: hostdev0,
                       mdev_type: mtty-2, parent: mtty, present: true}]
              pci: []
              viommu: false
              differences: []
              qemu: {asked: true, blocked: false, reasons: [], message: null}
        libvirt:
          description: Whether libvirt's QEMU state directories exist (C(present)), what could not be read
            (C(errors)) and, without libvirt, a C(message) saying the host has no VMs.
          type: dict
          returned: always
        udev:
          description: Whether udev hwdb names were added.
          type: bool
          returned: always
        errors:
          description:
            - What could not be read, each with C(path), C(what), C(errno), C(errno_name)
              and C(message). Failed migration attribute reads are reported at the
              attribute instead.
          type: list
          elements: dict
          returned: always
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

# first: Python then compiles each module_utils below once, not twice (see there)
from ansible_collections.vfio.migration.plugins.module_utils import _compile_once  # noqa: F401 pylint: disable=unused-import
from ansible_collections.vfio.migration.plugins.module_utils._gather import gather


FACT_FILE = "vfio_mdev.fact"


def persist(module, path, facts):
    """Replace ``path`` with the facts as JSON when its content differs; return whether it did (would).

    The JSON goes to a temporary file beside ``path``, which ``module.atomic_move``
    renames over it (keeping an existing file's owner, mode and SELinux context).
    """
    text = json.dumps(facts, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    if module.check_mode:
        return True
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix=".vfio_mdev.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        module.atomic_move(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sysfs_root=dict(type="path", default="/sys"),
            host_root=dict(type="path", default="/"),
            use_udev=dict(type="bool", default=True),
            check_vfio_capability=dict(type="str", default="auto", choices=["auto", "always", "never"]),
            query_qemu=dict(type="bool", default=True),
            persist_dir=dict(type="path"),
            persist=dict(type="bool", default=True),
            option_vars=dict(type="dict"),  # read by the action plugin, never sent
        ),
        supports_check_mode=True,
    )
    if module.params["option_vars"] is not None:
        module.fail_json(msg="option_vars is read on the controller by the module's action plugin, which sends the "
                             "options' values; this run got the variables' names instead; nothing read")

    def run(cmd):
        """Read-only commands only (``rpm -q``); None when absent or failing."""
        path = module.get_bin_path(cmd[0])
        if not path:
            return None
        rc, out, dummy = module.run_command([path] + cmd[1:], check_rc=False)
        return out if rc == 0 else None

    def run_timed(cmd, limit=10):
        """A read-only command under coreutils' ``timeout``: ``(rc, out, err)``, rc None when absent."""
        path, timeout = module.get_bin_path(cmd[0]), module.get_bin_path("timeout")
        if not path:
            return None, "", "%s is not installed" % cmd[0]
        prefix = [timeout, "--kill-after=2", str(limit)] if timeout else []
        rc, out, err = module.run_command(prefix + [path] + cmd[1:], check_rc=False)
        if timeout and rc in (124, 137):
            return rc, out, "no answer within %d s" % limit
        return rc, out, err

    facts = gather(module.params["sysfs_root"], use_udev=module.params["use_udev"],
                   host_root=module.params["host_root"], run=run,
                   check_vfio_capability=module.params["check_vfio_capability"],
                   run_timed=run_timed if module.params["query_qemu"] else None)
    fact_file, changed = None, False
    if module.params["persist_dir"] and module.params["persist"]:
        fact_file = os.path.join(module.params["persist_dir"], FACT_FILE)
        # atomic_move raises a plain Exception (with the OSError as its cause) when it cannot rename
        try:
            changed = persist(module, fact_file, facts)
        except Exception as exc:  # pylint: disable=broad-except
            cause = exc.__cause__ if exc.__cause__ is not None and str(exc.__cause__) not in str(exc) else None
            why = "%s (%s)" % (exc, cause) if cause is not None else str(exc)
            module.fail_json(msg="writing %s failed: %s" % (fact_file, why), fact_file=fact_file,
                             ansible_facts={"vfio_mdev": facts})
    module.exit_json(changed=changed, fact_file=fact_file, ansible_facts={"vfio_mdev": facts})


if __name__ == "__main__":
    main()
