# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The records a newcomer meets on the controller, as ``TypedDict``s (annotations only: the code passes
plain dicts, as Ansible hands them over, and nothing checks these types at run time).

Data flows: host facts -> :class:`HostInput` per host -> :class:`SourceRow` per (host, parent, type)
-> :class:`VersionClass` per distinct (type, version, source gates) -> one :class:`Verdict` per
(class, target host, target parent) in the :class:`Matrix` -> :class:`Placement` per VM in the
:class:`Plan`. ``docs/matrix-schema.md`` describes the same records as they appear in ``matrix.json``.
"""

from typing import Any, Dict, List, NotRequired, Optional, TypedDict


class HostInput(TypedDict):
    """What the matrix needs of one inventory host (``filter/matrix.host_inputs``)."""

    state: str  # ok, unreachable, failed, unknown: how fact gathering went
    reason: Optional[str]
    facts: Optional[Dict[str, Any]]  # ansible_facts.vfio_mdev
    probe: Optional[Dict[str, Any]]  # the migration_probe result ({"results": [ProbeResult, ...]})


class Check(TypedDict):
    """One write a target is asked to make (a ``migration_probe`` check)."""

    id: str
    mdev_type: str
    version: str
    parent: NotRequired[Optional[str]]
    device: NotRequired[Optional[str]]


class Reason(TypedDict):
    """One piece of evidence behind a verdict, with what it alone says."""

    evidence: str  # driver, vfio, qemu, policy, none
    status: str
    message: Optional[str]
    errno_name: NotRequired[str]


# ``class`` is a keyword, hence the functional form.
SourceRow = TypedDict("SourceRow", {
    "host": str,
    "parent": str,  # mdev parent, PCI function or vGPU PF
    "mdev_type": str,
    "kind": str,  # mdev, physical, vgpu
    "available_instances": Optional[int],
    "type_name": Optional[str],
    "driver_version": Optional[str],
    "devices": List[str],  # instance UUIDs or PCI addresses
    "key": Optional[str],
    "version": Optional[str],
    "self": Optional[Dict[str, Any]],  # the migration/self layout, for layout classes
    "supported": bool,
    "reason": Optional[str],  # why the source cannot migrate (class is None)
    "class": Optional[str],  # the VersionClass id
    "no_attribute": NotRequired[bool],
    "source_status": NotRequired[str],
    "reason_evidence": NotRequired[str],
})
SourceRow.__doc__ = "One migratable unit a host could send: a (parent, type) with its instances (``_matrix.source_entries``)."


class VersionClass(TypedDict):
    """Sources a target answers alike: one (type, version or layout) with the same source-side gates."""

    id: str  # a content hash: stable across runs
    check: str  # the probe check id, shared by classes that differ only in their gates
    mdev_type: str
    version: Optional[str]  # None for layout (migration/self) and policy classes
    self: Optional[Dict[str, Any]]
    kind: str
    evidence: str  # driver or policy
    source_gate: List[Reason]
    sources: List[str]  # source host names
    policy_source: NotRequired[Dict[str, Any]]


class Verdict(TypedDict):
    """One class on one target parent: a matrix cell in its compact form."""

    parent: Optional[str]  # None when the verdict is for the whole host (unknown, missing_type)
    status: str  # compatible, incompatible, unsupported, missing_type, error, unknown
    message: Optional[str]
    errno: Optional[int]
    errno_name: Optional[str]
    evidence: str
    available_instances: Optional[int]
    reasons: List[Reason]


class Cell(TypedDict):
    """A verdict spread over one source row and target host (``_matrix.expand_cells``, the reports' rows)."""

    source_host: str
    source_parent: str
    mdev_type: str
    source_kind: str
    source_version: Optional[str]
    source_devices: List[str]
    target_host: str
    target_parent: Optional[str]
    status: str
    evidence: str
    errno: Optional[int]
    errno_name: Optional[str]
    message: Optional[str]
    reasons: List[Reason]
    target_available_instances: Optional[int]
    layout: bool


class MatrixHost(TypedDict):
    state: str
    reason: Optional[str]
    probed: bool
    libvirt: NotRequired[bool]
    vms: NotRequired[List[Dict[str, Any]]]  # _plan.host_vms
    room: NotRequired[Dict[str, Any]]  # _plan.host_room


Matrix = TypedDict("Matrix", {
    "schema_version": int,
    "hosts": Dict[str, MatrixHost],
    "classes": Dict[str, VersionClass],
    "sources": List[SourceRow],
    "verdicts": Dict[str, Dict[str, List[Verdict]]],  # class id -> target host -> one verdict per parent
    "policy": Dict[str, Any],
})


class TargetChoice(TypedDict):
    """A compatible target for a source (``_matrix.migration_targets``)."""

    target_host: str
    target_parent: Optional[str]
    mdev_type: str
    available_instances: int
    evidence: str


class TargetDevice(TypedDict):
    """Where one device of a placed VM goes."""

    source: str
    device: str
    action: str  # use (a free instance), create, assign (a function or vGPU VF)
    target_parent: str
    mdev_type: Optional[str]
    uuid_changes: bool
    room_after: int


class Placement(TypedDict):
    """One VM (or, without libvirt, one instance) placed live on a target host."""

    vm: Optional[str]
    vm_uuid: Optional[str]
    state: Optional[str]
    source_host: str
    mdev_type: str
    source_parent: str
    devices: List[Dict[str, Any]]
    target_host: str
    target_parents: List[str]
    target_parent: str
    target_devices: List[TargetDevice]
    target_free_after: int
    device: NotRequired[str]
    source_version: NotRequired[Optional[str]]


class Plan(TypedDict):
    """The drain plan (``_plan.drain_plan``)."""

    drain_hosts: List[str]
    unknown_hosts: List[str]
    ready: bool
    placements: List[Placement]
    stranded: List[Dict[str, Any]]
    cold: List[Dict[str, Any]]
    collisions: List[Dict[str, Any]]
    no_vfio: List[Dict[str, Any]]
    free_instances: List[Dict[str, Any]]
