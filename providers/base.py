"""The driver contract: what deltaweb asks of a cloud, in plain Python.

Nothing in ``providers`` imports Django. Drivers take plain parameters and
return the frozen dataclasses below; ``images.services`` turns them into rows.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from providers.exceptions import NotFound, NotSupported
from providers.params import NoCredentials, NoParams, secret_values


class ImageState(enum.StrEnum):
    """Normalized image state, kept beside the provider's raw state."""

    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"
    FAILED = "FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self in (ImageState.AVAILABLE, ImageState.FAILED, ImageState.DELETED)


class RootType(enum.StrEnum):
    PERSISTENT = "persistent"
    TRANSIENT = "transient"


@dataclass(frozen=True, slots=True)
class ProviderImage:
    """One image as the provider describes it (libcloud's NodeImage).

    ``id`` is empty only for a create on a provider that returns no id (FGCP).
    ``description``/``creation_time`` are None when the provider has none, which
    the 1.1 JSON dialect shows as ``null``.
    """

    id: str
    name: str
    state: ImageState
    raw_state: str
    description: str | None = None
    owner_id: str = ""
    architecture: str = ""
    root_type: RootType = RootType.TRANSIENT
    creation_time: str | None = None
    # None: the provider says nothing about compatible profiles.
    hardware_profiles: tuple[str, ...] | None = None
    # Why the provider failed the image, when it says.
    failure_reason: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)
    # The provider's own time of the last change (ISO 8601), for drivers with
    # incremental listings: sync keeps the newest one as its next cursor.
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class Address:
    address: str
    type: str = "hostname"


@dataclass(frozen=True, slots=True)
class ProviderInstance:
    """One instance (VM / server / vserver) and whether it can be imaged now.

    ``state`` is Deltacloud's upper-case instance state (RUNNING, STOPPED, ...).
    ``create_image_refusal`` is empty when the driver would image it, otherwise
    the reason it would not (EBS-only, must be stopped, ...).
    """

    id: str
    name: str
    state: str
    owner_id: str = ""
    image_id: str = ""
    realm_id: str = ""
    hardware_profile_id: str = ""
    hardware_profile_overrides: tuple[tuple[str, str], ...] = ()
    actions: tuple[str, ...] = ()
    create_image_refusal: str = ""
    public_addresses: tuple[Address, ...] = ()
    private_addresses: tuple[Address, ...] = ()
    storage_volumes: tuple[str, ...] = ()
    keyname: str | None = None
    launch_time: str | None = None
    network_interfaces: tuple[str, ...] | None = None
    root_type: RootType = RootType.TRANSIENT
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def can_create_image(self) -> bool:
        return not self.create_image_refusal


@dataclass(frozen=True, slots=True)
class HardwareProperty:
    """A hardware profile property: fixed value, a range, or an enumeration."""

    name: str
    kind: str  # fixed | range | enum
    unit: str
    value: str  # the fixed value, or the default of a range/enum
    first: str = ""
    last: str = ""
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    id: str
    properties: tuple[HardwareProperty, ...] = ()

    def property(self, name: str) -> HardwareProperty | None:
        return next((p for p in self.properties if p.name == name), None)


@dataclass(frozen=True, slots=True)
class Realm:
    id: str
    name: str
    state: str = "AVAILABLE"
    limit: str = ""


@dataclass(frozen=True, slots=True)
class Feature:
    """A Deltacloud feature advertised in the /api entry point."""

    name: str
    operation: str
    params: tuple[str, ...] = ()
    constraints: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    to: str
    action: str | None  # None: the transition happens automatically


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an account's driver can do with images; the API and services ask here."""

    create_image: bool = False
    destroy_image: bool = False
    # False: the provider gives no id back (FGCP); we find the image ourselves.
    create_returns_id: bool = True
    honours_image_name: bool = True
    honours_image_description: bool = True
    # Image names are unique within the account (EC2), so a duplicate is a 409.
    unique_image_names: bool = False
    # True: the provider accepts or refuses a delete at once (RHEV-M), so the request makes
    # the call and a refusal (a template VMs still use) is the answer, not a later surprise.
    destroy_in_request: bool = False
    image_name_max_length: int = 128
    create_instance: bool = False
    run_on_instance: bool = False
    # ``iter_image_changes`` works: sync can ask for what changed since a cursor.
    incremental_listing: bool = False


@dataclass(frozen=True, slots=True)
class RunResult:
    instance_id: str
    command: str
    output: str
    public_address: str = ""


class Driver:
    """A cloud back end.

    Subclasses implement ``iter_image_pages``, ``get_image`` and whatever else
    their cloud supports; every other operation raises ``NotSupported``, which
    the API maps to 501. Nothing here lists a whole catalog to answer a
    question about one object: a driver that cannot look one image up says so.

    Drivers are built by ``providers.registry.create`` from an account's
    parameters and credentials, parsed into the driver's ``Params`` and
    ``Credentials`` dataclasses (``providers.params``), plus ``Settings``:
    options of the deployment rather than of an account (the mock's storage).

    Attributes:
        name: registry key, also the ``X-Deltacloud-Driver`` value.
        label: human name shown in ``/api/drivers``.
        providers: known provider ids (regions, data centres) for /api/drivers.
        features: Deltacloud features per collection, in advertised order.
        instance_states: the driver's instance state machine.
        auth_feature: ``key`` or ``password`` when instances carry login data.
        hardware_profiles: the driver's hardware profiles.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    providers: ClassVar[tuple[str, ...]] = ()
    features: ClassVar[Mapping[str, tuple[Feature, ...]]] = {}
    instance_states: ClassVar[tuple[tuple[str, tuple[Transition, ...]], ...]] = ()
    auth_feature: ClassVar[str | None] = None
    # Static per driver, so /api/hardware_profiles needs no account.
    hardware_profiles: ClassVar[tuple[HardwareProfile, ...]] = ()
    # Collections this driver serves besides drivers/instance_states.
    collections: ClassVar[tuple[str, ...]] = ("hardware_profiles", "images", "instances", "realms")
    Params: ClassVar[type[Any]] = NoParams
    Credentials: ClassVar[type[Any]] = NoCredentials
    Settings: ClassVar[type[Any]] = NoParams

    def __init__(self, *, provider: str = "", params: Any, credentials: Any, settings: Any) -> None:
        self.provider = provider
        self.params = params
        self.credentials = credentials
        self.settings = settings
        self._secrets = secret_values(credentials)

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} provider={self.provider!r}>"

    def scrub(self, text: str) -> str:
        """Provider text with the account's credential values masked.

        SDK messages sometimes quote what was sent (a key id in a signature
        error, a password in a URL); everything a driver raises goes through here.
        """
        for value in self._secrets:
            text = text.replace(value, "***")
        return text

    # -- description ---------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def identity(self) -> str:
        """The owner id that ``owner_id=self`` stands for on this account."""
        return ""

    def realms(self) -> Sequence[Realm]:
        raise NotSupported(f"{self.name} cannot list realms")

    def get_realm(self, realm_id: str) -> Realm:
        for realm in self.realms():
            if realm.id == realm_id:
                return realm
        raise NotFound(f"Realm {realm_id} not found")

    # -- images --------------------------------------------------------------

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        """Yield the account's whole catalog, one provider page at a time.

        Sync holds one page in memory at a time, so drivers must not collect
        the catalog before yielding.
        """
        raise NotSupported(f"{self.name} cannot list images")

    def iter_image_changes(self, since: str) -> Iterator[Sequence[ProviderImage]]:
        """Images created or changed at or after ``since`` (a provider time
        taken from ``ProviderImage.updated_at``), page by page.

        Offered when ``capabilities.incremental_listing``; sync runs it between
        full listings, which stay the only way to learn what vanished.
        """
        raise NotSupported(f"{self.name} cannot list changed images")

    def list_images(self) -> list[ProviderImage]:
        return [image for page in self.iter_image_pages() for image in page]

    def get_image(self, image_id: str) -> ProviderImage | None:
        """One image, or None when the provider does not know the id."""
        raise NotSupported(f"{self.name} cannot look up one image")

    def create_image(self, *, instance_id: str, name: str, description: str | None = None) -> ProviderImage:
        """Start imaging an instance. The result's ``id`` is empty when the
        provider returns none (see ``Capabilities.create_returns_id``)."""
        raise NotSupported(f"{self.name} cannot create images")

    def destroy_image(self, image_id: str) -> None:
        raise NotSupported(f"{self.name} cannot destroy images")

    def find_created_images(self, *, name: str, exclude_ids: frozenset[str]) -> list[ProviderImage]:
        """For providers without create ids: images a create may have produced.

        Candidates carry the create's name, belong to this account's identity,
        and are not in ``exclude_ids`` (what existed before the request, or
        was adopted by another create), so an older image with the same name
        is never adopted. The caller picks among several. Only drivers whose
        ``capabilities.create_returns_id`` is False need it.
        """
        raise NotSupported(f"{self.name} returns ids on create; nothing to find")

    # -- instances -----------------------------------------------------------

    def iter_instance_pages(self) -> Iterator[Sequence[ProviderInstance]]:
        raise NotSupported(f"{self.name} cannot list instances")

    def list_instances(self) -> list[ProviderInstance]:
        return [inst for page in self.iter_instance_pages() for inst in page]

    def get_instance(self, instance_id: str) -> ProviderInstance | None:
        """One instance, or None when the provider does not know the id."""
        raise NotSupported(f"{self.name} cannot look up one instance")

    def create_instance(self, *, image_id: str, **options: str) -> ProviderInstance:
        raise NotSupported(f"{self.name} cannot create instances")

    def instance_action(self, instance_id: str, action: str) -> ProviderInstance:
        """Run ``start``/``stop``/``reboot`` on an instance."""
        raise NotSupported(f"{self.name} cannot {action} instances")

    def destroy_instance(self, instance_id: str) -> None:
        raise NotSupported(f"{self.name} cannot destroy instances")

    def run_on_instance(self, instance_id: str, command: str) -> RunResult:
        raise NotSupported(f"{self.name} cannot run commands on instances")
