"""The embedded mock cloud: Deltacloud's mock data, stored on disk.

Web and worker are separate processes, so state lives in JSON files under the
driver's ``state_dir`` (one file per object, like Deltacloud's YAML store),
changed under an exclusive ``flock``. A **behaviour profile** makes image
creation act like a real cloud: a delay before the image is ready, a failure
rate, stopped-only / running-only / EBS-only instances, no id returned (FGCP)
or name ignored and the VM turned into the template (vSphere).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from providers.base import (
    Address,
    Capabilities,
    Driver,
    Feature,
    HardwareProfile,
    HardwareProperty,
    ImageState,
    ProviderImage,
    ProviderInstance,
    Realm,
    RootType,
    RunResult,
    Transition,
)
from providers.drivers.mock_profiles import BehaviourProfile, MockParams
from providers.exceptions import (
    AuthFailure,
    BackendError,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    ProviderError,
    ProviderTimeout,
    Unavailable,
)
from providers.params import param

SEED_FILE = Path(__file__).with_name("mock_data.json")
MOCK_USER = "mockuser"
MOCK_PASSWORD = "mockpassword"


@dataclass(frozen=True, slots=True, kw_only=True)
class MockSettings:
    """Where the mock clouds keep their state: a deployment setting, not an account's."""

    storage: str = param("Directory holding one folder per mock cloud.")


@dataclass(frozen=True, slots=True, kw_only=True)
class MockCredentials:
    """Deltacloud's mock accepts exactly mockuser / mockpassword."""

    username: str = param("The mock cloud's user.", default="")
    password: str = param("The mock cloud's password.", default="", secret=True)


def _prop(name: str, unit: str, value: Any) -> HardwareProperty:
    if isinstance(value, range):
        return HardwareProperty(name, "range", unit, str(value.start), str(value.start), str(value.stop))
    if isinstance(value, tuple) and value and value[0] == "range":
        _, first, last, default = value
        return HardwareProperty(name, "range", unit, str(default), str(first), str(last))
    if isinstance(value, list):
        return HardwareProperty(name, "enum", unit, str(value[0]), values=tuple(str(v) for v in value))
    return HardwareProperty(name, "fixed", unit, str(value))


# Deltacloud's mock profiles, property order as defined there.
HARDWARE_PROFILES: tuple[HardwareProfile, ...] = (
    HardwareProfile(
        "m1-small",
        (
            _prop("cpu", "count", 1),
            _prop("memory", "MB", 1740.8),
            _prop("storage", "GB", 160),
            _prop("architecture", "label", "i386"),
        ),
    ),
    HardwareProfile(
        "m1-large",
        (
            _prop("cpu", "count", ("range", 1, 6, 1)),
            _prop("memory", "MB", ("range", 7680, 15360, 10240)),
            _prop("storage", "GB", [850, 1024]),
            _prop("architecture", "label", "x86_64"),
        ),
    ),
    HardwareProfile(
        "m1-xlarge",
        (
            _prop("cpu", "count", 4),
            _prop("memory", "MB", ("range", 12288, 32768, 12288)),
            _prop("storage", "GB", [1024, 2048, 4096]),
            _prop("architecture", "label", "x86_64"),
        ),
    ),
    HardwareProfile("opaque"),
)
HWP_IDS = tuple(p.id for p in HARDWARE_PROFILES)

REALMS = (
    Realm("us", "United States", "AVAILABLE", ""),
    Realm("eu", "Europe", "AVAILABLE", ""),
)
# Deltacloud's error triggers: GET /api/realms/50x raises the matching error.
# (class, message), not instances: re-raising one shared exception object
# grows its traceback on every raise and keeps those frames alive.
REALM_TRIGGERS: dict[str, tuple[type[ProviderError], str]] = {
    "500": (BackendError, "DeltacloudErrorMessage"),
    "501": (NotSupported, "NotImplementedMessage"),
    "502": (ProviderError, "ProviderErrorMessage"),
    "504": (ProviderTimeout, "ProviderTimeoutMessage"),
}

INSTANCE_ACTIONS = {"RUNNING": ("reboot", "stop"), "STOPPED": ("start", "destroy")}
ACTION_RESULT = {"start": "RUNNING", "reboot": "RUNNING", "stop": "STOPPED"}


def _changed_at(obj: Mapping[str, Any]) -> str:
    """When the image last changed, in UTC ISO 8601 (sortable as text): its
    last write, or the moment a pending image became ready."""
    changed = float(obj.get("updated_at", 0))
    ready_at = float(obj.get("ready_at", 0))
    if changed < ready_at <= time.time():
        changed = ready_at
    return datetime.fromtimestamp(changed, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# A file name's limit on the usual file systems, in bytes.
MAX_FILE_NAME_BYTES = 255


def _file_name(object_id: str, suffix: str = "") -> str:
    """The escaped file name of an id; ids too long to be one are bad input, not an OSError."""
    name = quote(object_id, safe="") + suffix
    if len(name.encode()) > MAX_FILE_NAME_BYTES:
        raise InvalidParameter(f"Id is too long for the mock cloud ({len(object_id.encode())} bytes)")
    return name


class MockStore:
    """JSON files per object under ``root``, seeded from Deltacloud's fixtures."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._seed()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _seed(self) -> None:
        if (self.root / "images").is_dir():
            return
        seed = json.loads(SEED_FILE.read_text())
        for collection in ("images", "instances"):
            (self.root / collection).mkdir()
            for obj in seed[collection]:
                self.put(collection, obj)

    def _path(self, collection: str, object_id: str) -> Path:
        return self.root / collection / _file_name(object_id, ".json")

    def all(self, collection: str) -> list[dict[str, Any]]:
        folder = self.root / collection
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def get(self, collection: str, object_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(collection, object_id).read_text())
        except FileNotFoundError:
            return None

    def put(self, collection: str, obj: Mapping[str, Any]) -> None:
        obj = {**obj, "updated_at": time.time()}  # what an incremental listing filters on
        path = self._path(collection, obj["id"])
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(obj, handle)
        os.replace(tmp, path)

    def delete(self, collection: str, object_id: str) -> bool:
        try:
            self._path(collection, object_id).unlink()
        except FileNotFoundError:
            return False
        return True


class MockDriver(Driver):
    """Deltacloud's mock driver, persistent across processes, with behaviour profiles."""

    name = "mock"
    label = "Mock"
    features: ClassVar[Mapping[str, tuple[Feature, ...]]] = {
        "instances": (
            Feature("metrics", "create", ("metrics",)),
            Feature("realm_filter", "index", ("realm_id",)),
            Feature("user_name", "create", ("name",)),
            Feature("authentication_key", "create", ("keyname",)),
        ),
    }
    instance_states = (
        ("start", (Transition("pending", "create"),)),
        ("pending", (Transition("running", None),)),
        ("running", (Transition("running", "reboot"), Transition("stopped", "stop"))),
        ("stopped", (Transition("running", "start"), Transition("finish", "destroy"))),
        ("finish", ()),
    )
    auth_feature = "key"
    hardware_profiles = HARDWARE_PROFILES

    Params = MockParams
    Credentials = MockCredentials
    Settings = MockSettings
    credentials: MockCredentials
    settings: MockSettings

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cloud = self.params.cloud or self.provider or "default"
        self.store = MockStore(Path(self.settings.storage) / _file_name(cloud))
        self.profile: BehaviourProfile = self.params.behaviour()

    # -- description ---------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            create_image=True,
            destroy_image=True,
            create_returns_id=self.profile.returns_id,
            honours_image_name=self.profile.honours_name,
            honours_image_description=self.profile.honours_description,
            unique_image_names=self.profile.unique_names,
            create_instance=True,
            run_on_instance=True,
            incremental_listing=self.profile.incremental,
        )

    def _check_credentials(self) -> None:
        if (self.credentials.username, self.credentials.password) != (
            MOCK_USER,
            MOCK_PASSWORD,
        ):
            raise AuthFailure("Authentication Failure")

    def identity(self) -> str:
        self._check_credentials()
        return MOCK_USER

    def realms(self) -> Sequence[Realm]:
        self._check_credentials()
        return REALMS

    def get_realm(self, realm_id: str) -> Realm:
        self._check_credentials()
        if realm_id in REALM_TRIGGERS:
            error, message = REALM_TRIGGERS[realm_id]
            raise error(message)
        return super().get_realm(realm_id)

    # -- images --------------------------------------------------------------

    def _state(self, obj: Mapping[str, Any]) -> tuple[ImageState, str]:
        pending, available, failed = self.profile.raw_states
        stored = obj.get("state", available)
        if stored not in (pending, available, failed):
            # The seed fixtures store Deltacloud's names; say them in this profile's words.
            stored = {"PENDING": pending, "AVAILABLE": available, "FAILED": failed}.get(stored, stored)
        if stored != pending or time.time() < obj.get("ready_at", 0):
            raw = stored
        else:
            raw = failed if obj.get("outcome") == "FAILED" else available
        normalized = {
            pending: ImageState.PENDING,
            available: ImageState.AVAILABLE,
            failed: ImageState.FAILED,
        }.get(raw, ImageState.UNKNOWN)
        return normalized, raw

    def _visible(self, obj: Mapping[str, Any]) -> bool:
        return not obj.get("hidden_until_ready") or time.time() >= obj.get("ready_at", 0)

    def _image(self, obj: Mapping[str, Any], with_profiles: bool = True) -> ProviderImage:
        state, raw = self._state(obj)
        return ProviderImage(
            id=obj["id"],
            name=obj.get("name") or "",
            description=obj.get("description"),
            owner_id=obj.get("owner_id") or "",
            architecture=obj.get("architecture") or "",
            state=state,
            raw_state=raw,
            root_type=RootType(obj.get("root_type", "transient")),
            creation_time=obj.get("creation_time"),
            hardware_profiles=HWP_IDS if with_profiles else None,
            failure_reason=self.profile.failure_reason if state == ImageState.FAILED else "",
            updated_at=_changed_at(obj) if self.profile.incremental else None,
        )

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        return self._pages(lambda obj: True)

    def iter_image_changes(self, since: str) -> Iterator[Sequence[ProviderImage]]:
        if not self.profile.incremental:
            raise NotSupported("This mock cloud lists whole catalogs only")
        return self._pages(lambda obj: _changed_at(obj) >= since)

    def _pages(self, wanted: Callable[[Mapping[str, Any]], bool]) -> Iterator[Sequence[ProviderImage]]:
        self._check_credentials()
        with self.store.locked():
            objs = [o for o in self.store.all("images") if self._visible(o) and wanted(o)]
        p = self.profile
        for number, start in enumerate(range(0, max(len(objs), 1), p.page_size)):
            if number == p.list_fault_after_pages:
                raise Unavailable(f"The mock provider failed after {number} page(s) of images")
            if p.list_delay:
                time.sleep(p.list_delay)
            yield [self._image(o) for o in objs[start : start + p.page_size]]

    def get_image(self, image_id: str) -> ProviderImage | None:
        self._check_credentials()
        with self.store.locked():
            obj = self.store.get("images", image_id)
        return self._image(obj) if obj and self._visible(obj) else None

    def _creator_id(self) -> str:
        """The owner create_image gives new images."""
        return "root" if self.profile.legacy_create else MOCK_USER

    def _new_image_id(self, name: str, instance_id: str) -> str:
        style = self.profile.id_style
        if style == "name":
            return name
        if style == "instance":
            return instance_id
        if style == "ami":
            return f"ami-{secrets.token_hex(4)}"
        if style == "fgcp":
            return f"IMG_{secrets.token_hex(3)}_{secrets.token_hex(8).upper()}"
        if style == "numeric":
            return str(random.randint(10_000_000, 99_999_999))
        return str(uuid.uuid4())

    def create_image(self, *, instance_id: str, name: str, description: str | None = None) -> ProviderImage:
        self._check_credentials()
        p = self.profile
        with self.store.locked():
            inst = self.store.get("instances", instance_id)
            if inst is None:
                raise NotFound(f"Instance {instance_id} not found")
            refusal = self._refusal(inst)
            if refusal:
                raise InvalidState(refusal)
            if not p.honours_name:
                name = inst.get("name") or instance_id
            if not name:
                name = f"{inst.get('name') or instance_id}-{int(time.time())}"
            if not p.honours_description:
                description = None
            image_id = self._new_image_id(name, instance_id)
            if self.store.get("images", image_id) is not None:
                raise Conflict(f"Image {image_id} already exists")
            if p.unique_names and any(i.get("name") == name for i in self.store.all("images")):
                raise Conflict(f"An image named '{name}' already exists")
            pending, available, _ = p.raw_states
            source = self.store.get("images", inst.get("image_id", "")) or {}
            obj: dict[str, Any] = {
                "id": image_id,
                "name": name,
                "description": description,
                "owner_id": self._creator_id(),
                "architecture": "i386" if p.legacy_create else source.get("architecture", "x86_64"),
                "root_type": inst.get("root_type", "transient") if p.ebs_only else "transient",
                "instance_id": instance_id,
            }
            if not p.legacy_create:
                obj["creation_time"] = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
            if p.create_delay > 0 or p.failure_rate > 0:
                obj.update(
                    state=pending,
                    ready_at=time.time() + p.create_delay,
                    outcome="FAILED" if random.random() < p.failure_rate else "AVAILABLE",
                    hidden_until_ready=not p.returns_id,
                )
            else:
                obj["state"] = available
            self.store.put("images", obj)
            if p.converts_instance:
                self.store.delete("instances", instance_id)
        image = self._image(obj, with_profiles=False)
        return image if p.returns_id else replace(image, id="")

    def destroy_image(self, image_id: str) -> None:
        self._check_credentials()
        with self.store.locked():
            if self.profile.refuse_delete_in_use:
                users = sorted(
                    i.get("name") or i["id"]
                    for i in self.store.all("instances")
                    if i.get("image_id") == image_id
                )
                if users:
                    raise Conflict(
                        "Cannot delete Template. Template is being used by the following VMs: "
                        + ",".join(users)
                        + "."
                    )
            if not self.store.delete("images", image_id):
                raise NotFound(f"Image {image_id} not found")

    def find_created_images(self, *, name: str, exclude_ids: frozenset[str]) -> list[ProviderImage]:
        # FGCP shows a new disk image once registration ends; match by name
        # and owner (the registrant) among ids that did not exist before.
        return [
            i
            for i in self.list_images()
            if i.name == name and i.owner_id == self._creator_id() and i.id not in exclude_ids
        ]

    # -- instances -----------------------------------------------------------

    def _refusal(self, inst: Mapping[str, Any]) -> str:
        p, state, iid = self.profile, inst.get("state"), inst["id"]
        if not inst.get("create_image", True):
            return f"Instance {iid} does not support image creation"
        if p.ebs_only and inst.get("root_type") != "persistent":
            return f"Instance {iid} is instance-store backed; only EBS-backed instances can be imaged"
        if p.stopped_only and state != "STOPPED":
            return f"Instance {iid} is {state}; it must be STOPPED to create an image"
        if p.running_only and state != "RUNNING":
            return f"Instance {iid} is {state}; it must be RUNNING to create an image"
        return ""

    def _instance(self, obj: Mapping[str, Any]) -> ProviderInstance:
        nics = obj.get("network_interfaces")
        return ProviderInstance(
            id=obj["id"],
            name=obj.get("name") or "",
            state=obj["state"],
            owner_id=obj.get("owner_id") or "",
            image_id=obj.get("image_id") or "",
            realm_id=obj.get("realm_id") or "",
            hardware_profile_id=obj.get("hardware_profile_id") or "",
            hardware_profile_overrides=tuple(
                (k, str(v)) for k, v in obj.get("hardware_profile_overrides", ())
            ),
            actions=INSTANCE_ACTIONS.get(obj["state"], ()),
            create_image_refusal=self._refusal(obj),
            public_addresses=tuple(Address(a) for a in obj.get("public_addresses", ())),
            private_addresses=tuple(Address(a) for a in obj.get("private_addresses", ())),
            storage_volumes=tuple(obj.get("storage_volumes", ())),
            keyname=obj.get("keyname"),
            launch_time=obj.get("launch_time"),
            network_interfaces=tuple(nics) if nics is not None else None,
            root_type=RootType(obj.get("root_type", "transient")),
        )

    def iter_instance_pages(self) -> Iterator[Sequence[ProviderInstance]]:
        self._check_credentials()
        with self.store.locked():
            objs = self.store.all("instances")
        yield [self._instance(o) for o in objs]

    def get_instance(self, instance_id: str) -> ProviderInstance | None:
        self._check_credentials()
        with self.store.locked():
            obj = self.store.get("instances", instance_id)
        return self._instance(obj) if obj else None

    def create_instance(self, *, image_id: str, **options: str) -> ProviderInstance:
        self._check_credentials()
        hwp_id = options.get("hwp_id") or "m1-small"
        if hwp_id not in HWP_IDS:
            raise InvalidParameter(f"Hardware profile '{hwp_id}' does not exists.")
        realm_id = options.get("realm_id") or REALMS[0].id
        if realm_id not in {r.id for r in REALMS}:
            raise InvalidParameter(f"Realm '{realm_id}' does not exists.")
        with self.store.locked():
            image = self.store.get("images", image_id)
            if image is None or not self._visible(image):
                raise InvalidParameter(f"Image {image_id} does not exists.")
            if self._state(image)[0] != ImageState.AVAILABLE:
                raise InvalidState(f"Image {image_id} is not available")
            taken = {o["id"] for o in self.store.all("instances")}
            number = next(n for n in range(len(taken) + 1) if f"inst{n}" not in taken)
            instance_id = f"inst{number}"
            obj = {
                "id": instance_id,
                "name": options.get("name") or f"i-{int(time.time())}",
                "owner_id": MOCK_USER,
                "image_id": image_id,
                "realm_id": realm_id,
                "state": "RUNNING",
                "hardware_profile_id": hwp_id,
                "hardware_profile_overrides": [
                    [prop, options[f"hwp_{prop}"]]
                    for prop in ("cpu", "memory", "storage")
                    if options.get(f"hwp_{prop}")
                ],
                "create_image": True,
                "root_type": image.get("root_type", "persistent") if self.profile.ebs_only else "persistent",
                "keyname": options.get("keyname"),
                "launch_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "public_addresses": [f"{image_id}.{instance_id}.public.com"],
                "private_addresses": [f"{image_id}.{instance_id}.private.com"],
                "storage_volumes": [],
            }
            self.store.put("instances", obj)
        return self._instance(obj)

    def instance_action(self, instance_id: str, action: str) -> ProviderInstance:
        self._check_credentials()
        with self.store.locked():
            obj = self.store.get("instances", instance_id)
            if obj is None:
                raise NotFound(f"Instance {instance_id} not found")
            if action not in INSTANCE_ACTIONS.get(obj["state"], ()) or action == "destroy":
                raise InvalidState(f"Instance {instance_id} cannot {action} while {obj['state']}")
            obj["state"] = ACTION_RESULT[action]
            self.store.put("instances", obj)
        return self._instance(obj)

    def destroy_instance(self, instance_id: str) -> None:
        self._check_credentials()
        with self.store.locked():
            obj = self.store.get("instances", instance_id)
            if obj is None:
                raise NotFound(f"Instance {instance_id} not found")
            if "destroy" not in INSTANCE_ACTIONS.get(obj["state"], ()):
                raise InvalidState(f"Instance {instance_id} cannot destroy while {obj['state']}")
            self.store.delete("instances", instance_id)

    def run_on_instance(self, instance_id: str, command: str) -> RunResult:
        inst = self.get_instance(instance_id)
        if inst is None:
            raise NotFound(f"Instance {instance_id} not found")
        return RunResult(
            instance_id=instance_id,
            command=command,
            output=f"This is where the output from '{command}' would appear if this were not a mock provider",
            public_address=inst.public_addresses[0].address if inst.public_addresses else "",
        )
