#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: migration_probe
short_description: Ask a target host's VFIO drivers whether they accept source migration versions
version_added: 0.1.0
description:
  - Runs on a migration B(target). For each check it writes a source device's
    migration version to the target's C(migration_version) (or older C(version))
    attribute and reports the driver's answer. The write asks; it changes nothing.
  - Without O(checks[].device) the write goes to the type-level attribute of every parent
    offering the type (C(class/mdev_bus/<parent>/mdev_supported_types/<type>/)), the
    check the kernel proposals allow before a device exists. Every such parent is
    checked and reported. With O(checks[].device) it goes to that instance's attribute
    (C(bus/mdev/devices/<uuid>/migration_version)) or a VFIO PCI function's
    (C(bus/pci/devices/<address>/migration_version)).
  - Types must match before anything is written; a target without the type reports
    C(missing_type).
  - "One invocation handles a whole batch: give one check per distinct source
    (type, version) class, not one per source host. Checks that would write the same
    version to the same attribute share one write."
  - "Verdicts: the write returned its length: C(compatible). C(EINVAL) or another vendor
    errno: C(incompatible). No attribute, C(ENODEV), C(ENXIO), C(EOPNOTSUPP), C(ENOSYS), or a
    failed read of the target's own version that says it cannot migrate: C(unsupported).
    C(EACCES), C(EPERM), C(EIO), C(ETIMEDOUT), C(EBUSY), C(EAGAIN) and other signs that
    the driver could not be asked: C(error), never C(incompatible)."
  - "Safety: every check is validated before anything is written and one bad check
    refuses the whole batch. Versions must be 1 to 4096 bytes of printable ASCII without
    NUL or line breaks (one trailing newline is ignored); a 4096-byte version does not fit one
    sysfs store with its newline and gives C(error) without a write. Ids, types and parents must not
    contain C(/) or C(..); devices must be an mdev uuid or a PCI address. Only attributes
    named C(migration_version) or C(version) whose resolved path stays below O(sysfs_root)
    are written, opened without creating or truncating anything. On a file system that is
    not sysfs nothing is written unless O(allow_non_sysfs=true)."
  - The reads of the targets' own versions and the writes run in a worker process, never
    in the module's own, and each has a time limit (O(timeout)), so a driver that hangs in
    a store or a show gives an C(error) result with C(ETIMEDOUT) instead of a hung play.
    One worker reads and writes the whole batch while the drivers answer quickly; a worker
    whose read or write exceeds the limit is killed and the rest of the batch goes on in a
    new one. A worker opens each attribute once, reads the target's version and writes each
    source version with a write of its own, which sysfs hands whole to the driver, so each
    result is that write's answer. Workers do not keep the module's output open, so even a
    worker stuck in the kernel cannot hold up the play.
author:
  - vfio.migration maintainers (@vfio-migration)
options:
  checks:
    description:
      - The source versions to try on this host.
      - An empty list asks nothing, and the task is skipped on the controller without
        connecting to the host.
      - Give this or O(batches_var).
    type: list
    elements: dict
    suboptions:
      id:
        description: Your label for the check, returned with each result.
        type: str
        required: true
      mdev_type:
        description:
          - The source device's mdev type id, for example C(i915-GVTg_V5_4), or for a
            VFIO PCI function its C(pci-VVVV:DDDD) signature from M(vfio.migration.mdev_facts).
        type: str
        required: true
      version:
        description: The source's migration version string, as read from its attribute.
        type: str
        required: true
      parent:
        description: Only check this parent (a name under C(class/mdev_bus), or a PCI address).
        type: str
      device:
        description: Write to this existing instance (mdev uuid) or VFIO PCI function (address).
        type: str
  batches_var:
    description:
      - The name of a play variable that maps host names to their checks, as the
        P(vfio.migration.probe_batches#filter) filter gives them; this host's entry is its O(checks), and a
        host without one is asked nothing (skipped, as for an empty list).
      - The action plugin reads the variable on the controller as it is stored and sends the module only this
        host's checks. Templating C({{ batches[inventory_hostname] }}) in O(checks) instead costs every host's
        task a template to compile, the whole mapping (one entry per host of the fleet) wrapped for the lookup,
        and the batch finalized element by element.
      - Mutually exclusive with O(checks). A variable whose value is a string is templated first.
    type: str
    version_added: 0.2.0
  compact:
    description:
      - Return each result with only what a verdict needs (see RV(results)), for the
        C(vfio.migration.matrix) role and the matrix filters, which read both forms.
      - A compact result has C(id), C(parent) and C(status); C(device) only when the check
        named one; C(errno) and C(errno_name) only when there is an errno; and C(message)
        only when it says more than the status and errno do (for example why nothing was
        written). C(mdev_type), C(attribute) and C(target_version) are left out.
      - The result's C(invocation) (what the module was called with, shown at C(-vvv))
        names each check by its C(id) instead of repeating the whole check, which every
        result entry already names.
      - For a batch of 48 checks the result is under a quarter of the size, less for the worker and
        the controller to take in on every target.
    type: bool
    default: false
    version_added: 0.2.0
  sysfs_root:
    description:
      - Where sysfs is mounted on the managed host. Point it at a copy or an emulated tree for tests.
      - When the task does not give it, the action plugin gives the C(sysfs_root) of this host's
        C(ansible_facts.vfio_mdev) (the tree M(vfio.migration.mdev_facts) read), so a host is asked in
        the tree its facts describe; C(/sys) when the host has no such facts.
    type: path
    default: /sys
  allow_non_sysfs:
    description:
      - Allow writes on a file system that is not sysfs, such as a FUSE emulator or a
        test tree. Off by default so that a mistyped O(sysfs_root) writes nothing.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for one read's or write's answer before reporting C(error).
    type: float
    default: 10
  parallel:
    description:
      - How many reads or writes may be outstanding at once (different attributes), each in its own worker.
      - Another worker starts only while every worker waits on a read or write older than one second
        (or half of O(timeout)), so one slow or hung driver does not hold up the rest of the batch.
    type: int
    default: 8
attributes:
  check_mode:
    support: full
    description:
      - The probe runs in check mode too. Writing a version asks the driver a question
        and changes no state, so C(changed) is always false.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
notes:
  - The C(vfio.migration.matrix) role builds the batches from M(vfio.migration.mdev_facts)
    of the source hosts.
extends_documentation_fragment:
  - vfio.migration.managed_host
seealso:
  - module: vfio.migration.mdev_facts
"""

EXAMPLES = r"""
- name: Would this host take an Intel GVT-g V5_4 vGPU from a gen9 source?
  vfio.migration.migration_probe:
    checks:
      - id: gvt-v5-4
        mdev_type: i915-GVTg_V5_4
        version: 00028086-193b-i915-GVTg_V5_4
  register: probe

- name: Show each parent's answer
  ansible.builtin.debug:
    msg: "{{ item.parent }} {{ item.status }} {{ item.errno_name | default('') }}"
  loop: "{{ probe.results }}"

- name: Ask an existing instance instead of the type
  vfio.migration.migration_probe:
    checks:
      - id: running-vm
        mdev_type: nvidia-257
        version: 000210de-nvidia-257-2.3
        device: 2f8e1a3c-4b5d-4e6f-8a9b-0c1d2e3f4a5b

# What the vfio.migration.matrix role does: one batch per target, made once for the fleet
- name: Work out one probe batch per target
  ansible.builtin.set_fact:
    batches: "{{ hostvars | vfio.migration.probe_batches(ansible_play_hosts_all) }}"
  run_once: true

- name: Ask every target its own batch (a host without one is skipped without a connection)
  vfio.migration.migration_probe:
    batches_var: batches
    compact: true
  register: probe

- name: The same, with options read from play variables (no template for each host to compile)
  vfio.migration.migration_probe:
    batches_var: batches
    option_vars:
      allow_non_sysfs: lab_allow_emulated_sysfs
      timeout: lab_probe_timeout
  register: probe
"""

RETURN = r"""
results:
  description:
    - One entry per check and target parent (several when several parents offer the type).
    - With O(compact=true) each entry has only C(id), C(parent) and C(status), and the
      other keys only when they say something (see O(compact)).
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: The check's id.
      type: str
      sample: gvt-v5-4
    mdev_type:
      description: The check's type.
      type: str
      sample: i915-GVTg_V5_4
    parent:
      description: The target parent that answered, or null when none offers the type.
      type: str
      sample: "0000:00:02.0"
    device:
      description: The instance or PCI function written to, when the check named one.
      type: str
      sample: null
    attribute:
      description: The resolved path written to, or null when nothing was written.
      type: str
      sample: /sys/devices/pci0000:00/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4/version
    status:
      description: C(compatible), C(incompatible), C(unsupported), C(missing_type) or C(error).
      type: str
      sample: compatible
    errno:
      description: The errno of the write (or of the failed read), null on success.
      type: int
      sample: 22
    errno_name:
      description: The symbolic errno name.
      type: str
      sample: EINVAL
    message:
      description: What happened, in words.
      type: str
      sample: target refused the source version (EINVAL)
    target_version:
      description: The target's own version read from the same attribute, when readable.
      type: str
      sample: 00028086-193b-i915-GVTg_V5_4
"""

from ansible.module_utils.basic import AnsibleModule

# first: Python then compiles each module_utils below once, not twice (see there)
from ansible_collections.vfio.migration.plugins.module_utils import _compile_once  # noqa: F401 pylint: disable=unused-import
from ansible_collections.vfio.migration.plugins.module_utils._probe import Prober, ProbeInputError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type="list", elements="dict", options=dict(
                id=dict(type="str", required=True),
                mdev_type=dict(type="str", required=True),
                version=dict(type="str", required=True, no_log=False),
                parent=dict(type="str"),
                device=dict(type="str"),
            )),
            sysfs_root=dict(type="path", default="/sys"),
            allow_non_sysfs=dict(type="bool", default=False),
            timeout=dict(type="float", default=10.0),
            parallel=dict(type="int", default=8),
            compact=dict(type="bool", default=False),
            batches_var=dict(type="str"),
            option_vars=dict(type="dict"),  # read by the action plugin, never sent
        ),
        required_one_of=[("checks", "batches_var")],
        mutually_exclusive=[("checks", "batches_var")],
        supports_check_mode=True,
    )
    params = module.params
    if params["option_vars"] is not None:
        module.fail_json(msg="option_vars is read on the controller by the module's action plugin, which sends the "
                             "options' values; this run got the variables' names instead; nothing written")
    if params["checks"] is None:
        module.fail_json(msg="batches_var is read on the controller by the module's action plugin, which sends the "
                             "host its checks; this run got the variable's name instead; nothing written")
    # not (0 < t < inf): also refuses nan and inf, with which a hung driver would hang the play
    if not 0 < params["timeout"] < float("inf") or params["parallel"] < 1:
        module.fail_json(msg="timeout must be a finite number > 0 and parallel >= 1; nothing written")
    prober = Prober(params["sysfs_root"], allow_non_sysfs=params["allow_non_sysfs"],
                    timeout=params["timeout"], parallel=params["parallel"])
    try:
        results = prober.run(params["checks"], compact=params["compact"])
    except ProbeInputError as exc:
        module.fail_json(msg=str(exc), results=[])
    if params["compact"]:
        # every result names its check's id: the invocation need not repeat the checks
        invocation = dict(params, checks=[check["id"] for check in params["checks"]])
        module.exit_json(changed=False, results=results, invocation={"module_args": invocation})
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
