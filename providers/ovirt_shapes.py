"""What an oVirt / RHV engine's objects mean to deltaweb (used by ``drivers/rhevm.py``).

Pure functions over ovirtsdk4 ``types`` objects: template and VM states mapped
to Deltacloud's, the architecture rule, and the engine's fault wording. Kept
apart from the driver so the 2013 RHEV-M recordings can be parsed through the
same code without an engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ovirtsdk4 import types

from providers.base import ImageState, ProviderImage, ProviderInstance, RootType

BLANK_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"

# The engine's own rule, word for word (what it answers to an add from a running VM).
MUST_BE_DOWN = "Cannot add Template. VM must be in Down status."

TEMPLATE_STATES: Mapping[str, ImageState] = {
    "ok": ImageState.AVAILABLE,
    "locked": ImageState.PENDING,
    "illegal": ImageState.FAILED,
}

# Deltacloud's instance states for the engine's VM statuses.
VM_STATES: Mapping[str, str] = {
    "up": "RUNNING",
    "migrating": "RUNNING",
    "reboot_in_progress": "RUNNING",
    "down": "STOPPED",
    "suspended": "STOPPED",
    "paused": "STOPPED",
    "powering_up": "PENDING",
    "wait_for_launch": "PENDING",
    "restoring_state": "PENDING",
    "image_locked": "PENDING",
    "unassigned": "PENDING",
    "powering_down": "STOPPING",
    "saving_state": "STOPPING",
    "not_responding": "UNKNOWN",
    "unknown": "UNKNOWN",
}

# oVirt operating-system ids of 32-bit guests that also exist as a "...x64" id.
_I386_OS_TYPES = frozenset(
    {"rhel_3", "rhel_4", "rhel_5", "rhel_6", "windows_xp", "windows_2003", "windows_7", "windows_8"}
    | {"windows_10"}
)


def _enum(value: object) -> str:
    return str(getattr(value, "value", value) or "")


def architecture(template: types.Template | types.Vm) -> str:
    """The CPU architecture the engine states; i386 where the guest OS says 32-bit.

    Engines before 3.6 state none: RHEV-M ran only x86_64 then (Deltacloud's rule).
    """
    cpu_arch = _enum(template.cpu.architecture) if template.cpu else ""
    os_type = (template.os.type or "").lower() if template.os else ""
    if cpu_arch in ("", "undefined", "x86_64") and os_type in _I386_OS_TYPES:
        return "i386"
    return cpu_arch if cpu_arch not in ("", "undefined") else "x86_64"


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, like the other drivers."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def template_image(template: types.Template, *, owner_id: str, failure_reason: str = "") -> ProviderImage:
    """A template as a Deltacloud image (the raw status is kept beside the mapped one)."""
    status = _enum(template.status)
    state = TEMPLATE_STATES.get(status, ImageState.UNKNOWN)
    extra = {
        "os_type": template.os.type if template.os else None,
        "cluster_id": template.cluster.id if template.cluster else None,
        "vm_type": _enum(template.type) or None,
        "memory": template.memory,
        "version_number": template.version.version_number if template.version else None,
    }
    return ProviderImage(
        id=template.id,
        name=template.name or template.id,
        description=template.description or None,
        owner_id=owner_id,
        architecture=architecture(template),
        state=state,
        # Upper-cased as Deltacloud's RHEV-M driver showed it (OK, LOCKED, ILLEGAL).
        raw_state=status.upper(),
        root_type=RootType.PERSISTENT,
        creation_time=timestamp(template.creation_time),
        failure_reason=failure_reason if state == ImageState.FAILED else "",
        extra={key: value for key, value in extra.items() if value is not None},
    )


def vm_refusal(vm: types.Vm) -> str:
    """Why the engine would refuse to make a template of this VM now ('' if it would not)."""
    return "" if _enum(vm.status) == "down" else MUST_BE_DOWN


def vm_instance(vm: types.Vm, *, owner_id: str, realm_id: str = "") -> ProviderInstance:
    raw = _enum(vm.status)
    extra = {
        "raw_state": raw,
        "cluster_id": vm.cluster.id if vm.cluster else None,
        "architecture": architecture(vm),
        "stop_reason": vm.stop_reason or None,
        "status_detail": vm.status_detail or None,
    }
    return ProviderInstance(
        id=vm.id,
        name=vm.name or vm.id,
        state=VM_STATES.get(raw, raw.upper() or "UNKNOWN"),
        owner_id=owner_id,
        image_id=vm.template.id if vm.template else "",
        realm_id=realm_id,
        create_image_refusal=vm_refusal(vm),
        launch_time=timestamp(vm.start_time),
        root_type=RootType.PERSISTENT,
        extra={key: value for key, value in extra.items() if value is not None},
    )


_BRACKETED = re.compile(r"^\[(.*)\]$", re.S)


def fault_text(fault: types.Fault | None) -> str:
    """The engine's words for a refusal: the detail without its brackets, else the reason."""
    if fault is None:
        return ""
    detail = (fault.detail or "").strip()
    match = _BRACKETED.match(detail)
    return (match.group(1) if match else detail) or (fault.reason or "").strip()


_IN_USE = re.compile(r"Template is being used by the following VMs: ([^.\]]*)")


def vms_using(text: str) -> tuple[str, ...]:
    """The VM names an in-use refusal lists (``...following VMs: web01,db01.``)."""
    match = _IN_USE.search(text)
    return tuple(n.strip() for n in match.group(1).split(",") if n.strip()) if match else ()
