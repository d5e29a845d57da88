"""OpenStack's wire JSON to the driver contract's dataclasses (no I/O here).

Glance v2 images, Nova images (the compute ``/images`` API: Rackspace Cloud
Servers and pre-Glance-v2 clouds), Nova servers, and the error bodies each
service writes. Pure functions, so the 2013 recordings and the fake's answers
test them alike.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from providers.base import Address, ImageState, ProviderImage, ProviderInstance

# Glance's statuses (Image API v2.6+ adds uploading/importing).
GLANCE_STATES: Mapping[str, ImageState] = {
    "queued": ImageState.PENDING,
    "saving": ImageState.PENDING,
    "uploading": ImageState.PENDING,
    "importing": ImageState.PENDING,
    "active": ImageState.AVAILABLE,
    "killed": ImageState.FAILED,
    "deleted": ImageState.DELETED,
    "pending_delete": ImageState.DELETING,
    # Kept, but its data cannot be used until an admin reactivates it.
    "deactivated": ImageState.UNKNOWN,
}
# Nova's image API: its mapping of Glance's statuses, plus Rackspace's own
# (QUEUED, PREPARING, FAILED), which Deltacloud showed as they came.
NOVA_IMAGE_STATES: Mapping[str, ImageState] = {
    "ACTIVE": ImageState.AVAILABLE,
    "SAVING": ImageState.PENDING,
    "QUEUED": ImageState.PENDING,
    "PREPARING": ImageState.PENDING,
    "ERROR": ImageState.FAILED,
    "FAILED": ImageState.FAILED,
    "KILLED": ImageState.FAILED,
    "DELETED": ImageState.DELETED,
    "UNKNOWN": ImageState.UNKNOWN,
}
# Nova server status -> Deltacloud instance state.
SERVER_STATES: Mapping[str, str] = {
    "ACTIVE": "RUNNING",
    "BUILD": "PENDING",
    "REBUILD": "PENDING",
    "REBOOT": "RUNNING",
    "HARD_REBOOT": "RUNNING",
    "PASSWORD": "RUNNING",
    "RESIZE": "RUNNING",
    "VERIFY_RESIZE": "RUNNING",
    "REVERT_RESIZE": "RUNNING",
    "MIGRATING": "RUNNING",
    "RESCUE": "RUNNING",
    "SHUTOFF": "STOPPED",
    "STOPPED": "STOPPED",
    "PAUSED": "STOPPED",
    "SUSPENDED": "STOPPED",
    "SHELVED": "STOPPED",
    "SHELVED_OFFLOADED": "STOPPED",
    "ERROR": "ERROR",
    "DELETED": "FINISH",
    "SOFT_DELETED": "FINISH",
}
# Server statuses createImage is offered from (Nova also takes PAUSED and
# SUSPENDED; Deltacloud's contract is a running or stopped instance).
IMAGEABLE = ("ACTIVE", "SHUTOFF")
# The spellings clouds use in an image's architecture property -> one name each.
ARCHITECTURES: Mapping[str, str] = {
    **dict.fromkeys(("x86_64", "amd64", "x64", "x86-64", "em64t", "intel64"), "x86_64"),
    **dict.fromkeys(("i386", "i486", "i586", "i686", "x86", "ia32", "x86_32"), "i386"),
    **dict.fromkeys(("aarch64", "arm64", "armv8", "armv8l"), "aarch64"),
    **dict.fromkeys(("armv7l", "armv7", "armhf", "arm"), "armv7l"),
    **dict.fromkeys(("ppc64le", "ppc64el"), "ppc64le"),
    **dict.fromkeys(("s390x",), "s390x"),
    **dict.fromkeys(("riscv64",), "riscv64"),
}
# Property keys that carry an image's architecture, most specific first.
ARCHITECTURE_KEYS = ("architecture", "hw_architecture", "org.openstack__1__architecture")


def architecture(properties: Mapping[str, Any], default: str) -> str:
    """The canonical architecture an image's properties name, else ``default``."""
    for key in ARCHITECTURE_KEYS:
        value = properties.get(key)
        if isinstance(value, str) and value.strip():
            raw = value.strip().lower()
            return ARCHITECTURES.get(raw, raw)
    return default


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def glance_image(
    raw: Mapping[str, Any], *, default_architecture: str, failure_reason: str = ""
) -> ProviderImage:
    """One Glance v2 image document (base fields and properties side by side)."""
    status = str(raw.get("status") or "")
    state = GLANCE_STATES.get(status, ImageState.UNKNOWN)
    return ProviderImage(
        id=str(raw["id"]),
        name=_text(raw.get("name")) or str(raw["id"]),
        state=state,
        # Upper case, as Deltacloud showed OpenStack's states.
        raw_state=status.upper(),
        description=_text(raw.get("description")),
        owner_id=_text(raw.get("owner")) or "",
        architecture=architecture(raw, default_architecture),
        creation_time=_text(raw.get("created_at")),
        failure_reason=failure_reason if state == ImageState.FAILED else "",
        updated_at=_text(raw.get("updated_at")),
        extra=_present(
            dict(
                visibility=raw.get("visibility"),
                protected=raw.get("protected"),
                size=raw.get("size"),
                disk_format=raw.get("disk_format"),
                container_format=raw.get("container_format"),
                os_distro=raw.get("os_distro"),
                image_type=raw.get("image_type"),
                instance_uuid=raw.get("instance_uuid"),
                min_disk=raw.get("min_disk"),
                min_ram=raw.get("min_ram"),
            )
        ),
    )


def nova_image(
    raw: Mapping[str, Any], *, owner_id: str, default_architecture: str, failure_reason: str = ""
) -> ProviderImage:
    """One image from Nova's ``/images`` API (``metadata`` holds the properties).

    Nova shows no owner: ``owner_id`` is the caller's for snapshots (only the
    owner sees them) and empty for the cloud's own base images.
    """
    status = str(raw.get("status") or "").upper()
    state = NOVA_IMAGE_STATES.get(status, ImageState.UNKNOWN)
    metadata = raw.get("metadata") or {}
    snapshot = metadata.get("image_type") == "snapshot" or bool(raw.get("server"))
    return ProviderImage(
        id=str(raw["id"]),
        name=_text(raw.get("name")) or str(raw["id"]),
        state=state,
        raw_state=status,
        description=_text(metadata.get("description")),
        owner_id=_text(metadata.get("owner_id")) or (owner_id if snapshot else ""),
        architecture=architecture(metadata, default_architecture),
        creation_time=_text(raw.get("created")),
        failure_reason=failure_reason if state == ImageState.FAILED else "",
        updated_at=_text(raw.get("updated")),
        extra=_present(
            dict(
                progress=raw.get("progress"),
                size=raw.get("OS-EXT-IMG-SIZE:size"),
                min_disk=raw.get("minDisk"),
                min_ram=raw.get("minRam"),
                image_type=metadata.get("image_type"),
                instance_uuid=(raw.get("server") or {}).get("id") or metadata.get("instance_uuid"),
                os_distro=metadata.get("os_distro") or metadata.get("org.openstack__1__os_distro"),
            )
        ),
    )


def failed_snapshot(raw: Mapping[str, Any], *, nova: bool) -> tuple[str, str, str] | None:
    """(status, server id, created) of a failed image (the server empty when no
    server made it), or None when the image has not failed."""
    if nova:
        status = str(raw.get("status") or "").upper()
        if NOVA_IMAGE_STATES.get(status) != ImageState.FAILED:
            return None
        server_id = (raw.get("server") or {}).get("id") or (raw.get("metadata") or {}).get("instance_uuid")
        return status, str(server_id or ""), str(raw.get("created") or "")
    status = str(raw.get("status") or "")
    if GLANCE_STATES.get(status) != ImageState.FAILED:
        return None
    return status, str(raw.get("instance_uuid") or ""), str(raw.get("created_at") or "")


def status_meaning(status: str) -> str:
    return f"The cloud marked the image {status}: its data could not be saved"


def failed_create_image(actions: list[Mapping[str, Any]], created: str) -> Mapping[str, Any] | None:
    """Of a server's instance actions, the failed createImage that made an image
    created at ``created``: the one that started closest to it."""
    failed = [
        a
        for a in actions
        if a.get("action") == "createImage" and a.get("request_id") and a.get("message") == "Error"
    ]
    if not failed:
        return None
    return min(failed, key=lambda a: abs(_seconds(a.get("start_time")) - _seconds(created)))


def action_failure(detail: Mapping[str, Any], server_id: str) -> str:
    """What an instance action's failed event says (microversion 2.84 shows non-admins
    the ``details``), else which request failed."""
    action = detail.get("instanceAction") or {}
    for event in action.get("events") or ():
        if event.get("result") == "Error" and event.get("details"):
            return str(event["details"])
    return f"Nova's createImage of server {server_id} failed ({action.get('request_id', 'no request id')})"


def _seconds(text: Any) -> float:
    """An OpenStack timestamp (with or without ``Z``; Nova's are naive UTC) in epoch seconds."""
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def server_refusal(raw: Mapping[str, Any]) -> str:
    """Why createImage would be refused now, or "" when it would run."""
    sid, status = raw.get("id", ""), str(raw.get("status") or "").upper()
    if status not in IMAGEABLE:
        return f"Server {sid} is {status}; only ACTIVE or SHUTOFF servers can be imaged"
    task = raw.get("OS-EXT-STS:task_state")
    if task:
        return f"Server {sid} is busy ({task}); try again when it is done"
    return ""


def _addresses(raw: Mapping[str, Any]) -> tuple[tuple[Address, ...], tuple[Address, ...]]:
    public: list[Address] = []
    private: list[Address] = []
    for network, entries in (raw.get("addresses") or {}).items():
        for entry in entries or ():
            addr = entry.get("addr")
            if not addr:
                continue
            kind = "ipv6" if entry.get("version") == 6 else "ipv4"
            floating = entry.get("OS-EXT-IPS:type") == "floating" or network == "public"
            (public if floating else private).append(Address(addr, kind))
    for key, kind in (("accessIPv4", "ipv4"), ("accessIPv6", "ipv6")):
        if raw.get(key) and all(a.address != raw[key] for a in public):
            public.append(Address(raw[key], kind))
    return tuple(public), tuple(private)


def server(raw: Mapping[str, Any], *, realm: str) -> ProviderInstance:
    """One Nova server (detail view, any microversion)."""
    status = str(raw.get("status") or "").upper()
    flavor = raw.get("flavor") or {}
    image = raw.get("image") or {}
    public, private = _addresses(raw)
    volumes = tuple(v["id"] for v in raw.get("os-extended-volumes:volumes_attached") or () if v.get("id"))
    return ProviderInstance(
        id=str(raw["id"]),
        name=str(raw.get("name") or raw["id"]),
        state=SERVER_STATES.get(status, status or "UNKNOWN"),
        owner_id=str(raw.get("tenant_id") or ""),
        image_id=str(image.get("id") or "") if isinstance(image, Mapping) else "",
        realm_id=str(raw.get("OS-EXT-AZ:availability_zone") or realm),
        # 2.47+ embeds the flavor (original_name); before, a reference by id.
        hardware_profile_id=str(flavor.get("original_name") or flavor.get("id") or ""),
        create_image_refusal=server_refusal(raw),
        public_addresses=public,
        private_addresses=private,
        storage_volumes=volumes,
        keyname=_text(raw.get("key_name")),
        launch_time=_text(raw.get("OS-SRV-USG:launched_at")) or _text(raw.get("created")),
        extra=_present(
            dict(
                raw_state=status,
                task_state=raw.get("OS-EXT-STS:task_state"),
                vm_state=raw.get("OS-EXT-STS:vm_state"),
                fault=(raw.get("fault") or {}).get("message"),
                host_id=raw.get("hostId"),
            )
        ),
    )


def _present(values: Mapping[str, object]) -> dict[str, object]:
    """The entries that say something: a missing value and an empty one say nothing."""
    return {key: value for key, value in values.items() if value not in (None, "")}


# -- errors ---------------------------------------------------------------------------


def error_message(body: bytes | str, content_type: str) -> str:
    """The human message in an OpenStack error body, whichever service wrote it.

    Nova: ``{"itemNotFound": {"code": 404, "message": ...}}``; Keystone:
    ``{"error": {"message": ...}}``; Glance (webob): ``{"message": ...}`` or a
    plain-text page; Rackspace: ``{"unauthorized": {"message": ...}}``.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, Mapping):
            found = data.get("message")
            if not isinstance(found, str):
                nested = [v.get("message") for v in data.values() if isinstance(v, Mapping)]
                found = next((m for m in nested if isinstance(m, str)), None)
            if isinstance(found, str):
                return _clean(found)
    if "html" in content_type:
        text = re.sub(r"<[^>]+>", " ", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # webob's plain page: "404 Not Found", a blank line, then the message.
    if len(lines) > 1 and re.match(r"^\d{3} ", lines[0]):
        lines = lines[1:]
    return _clean(" ".join(lines))


def _clean(message: str) -> str:
    return re.sub(r"\s+", " ", message.replace("<br />", " ")).strip()[:1000]


def retry_after(headers: Mapping[str, str], body: bytes | str = b"") -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or an HTTP date) or a Nova
    ``overLimit`` body's ``retryAfter`` (seconds, or Rackspace's timestamp)."""
    candidates: list[Any] = [headers.get("Retry-After") or headers.get("retry-after")]
    try:
        data = json.loads(body or b"null")
        fault = next(iter(data.values())) if isinstance(data, Mapping) and data else None
        if isinstance(fault, Mapping):
            candidates.append(fault.get("retryAfter"))
    except ValueError:
        pass
    for value in candidates:
        if value in (None, ""):
            continue
        text = str(value).strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            pass
        for parse in (parsedate_to_datetime, _iso):
            try:
                return max(0.0, parse(text).timestamp() - time.time())
            except (TypeError, ValueError, IndexError):
                continue
    return None


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
