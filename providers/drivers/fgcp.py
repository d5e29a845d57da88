"""Fujitsu Global Cloud Platform (FGCP) through our own signed client.

One account is one FGCP user certificate in one region (the provider,
``X-Deltacloud-Provider``: au, de, jp-east, jp-west, sg, uk, us). Images are
the disk images ListDiskImage shows; instances are the vservers of every
virtual system. FGCP's RegisterPrivateDiskImage returns no id, so creating an
image answers ``PENDING-<name>`` and the worker finds the new image with
``find_created_images``: our name, our registrant, an id that did not exist
before the call. All provider errors are already typed by
``providers.fgcp_client`` (its ``_call`` is the single translation point).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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
    Transition,
)
from providers.exceptions import InvalidParameter, InvalidState, NotFound
from providers.fgcp_client import ENDPOINTS, VERSIONS, FGCPClient
from providers.fgcp_identity import ClientIdentity
from providers.fgcp_xml import DiskImage, VServer, vsys_id_of
from providers.params import param

# FGCP vserver states, as Deltacloud mapped them.
INSTANCE_STATES: Mapping[str, str] = {
    "DEPLOYING": "PENDING",
    "RUNNING": "RUNNING",
    "STOPPING": "STOPPING",
    "STOPPED": "STOPPED",
    "STARTING": "PENDING",
    "FAILOVER": "RUNNING",
    "UNEXPECTED_STOP": "STOPPED",
    "RESTORING": "PENDING",
    "BACKUP_ING": "PENDING",
    "ERROR": "ERROR",
    "START_ERROR": "STOPPED",
    "STOP_ERROR": "RUNNING",
    "REGISTERING": "PENDING",
    "CHANGE_TYPE": "PENDING",
}
# "32bit" somewhere in the OS name means i386; everything else is x86_64 (Deltacloud's guess).
_32_BIT = re.compile(r"32.?bit", re.IGNORECASE)
_CENTOS_RHEL = re.compile(r"CentOS|Red Hat")


def _server_type(type_id: str, cpus: int, perf: float, memory_gb: float) -> HardwareProfile:
    """An FGCP server type as Deltacloud showed it: cpu = performance x count, memory in MB."""
    cpu = perf * cpus
    return HardwareProfile(
        type_id,
        (
            HardwareProperty("cpu", "fixed", "count", f"{cpu:g}"),
            HardwareProperty("memory", "fixed", "MB", f"{memory_gb * 1024:g}"),
            HardwareProperty("architecture", "fixed", "label", "x86_64"),
        ),
    )


# The server types of the recorded ListServerType answer (tests/fixtures/fgcp).
HARDWARE_PROFILES: tuple[HardwareProfile, ...] = (
    _server_type("advanced", 1, 4.0, 7.5),
    _server_type("economy", 1, 1.0, 1.7),
    _server_type("high_performance", 2, 4.0, 15.0),
    _server_type("standard", 1, 2.0, 3.4),
    _server_type("w_high", 4, 4.0, 30.0),
)

CAPABILITIES = Capabilities(
    create_image=True,
    destroy_image=True,
    create_returns_id=False,
    honours_image_name=True,
    honours_image_description=True,
    unique_image_names=False,
    create_instance=False,
    run_on_instance=False,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FGCPParams:
    """Where the account's FGCP endpoint is and how to talk to it (the region is the provider)."""

    endpoint_url: str = param(
        "An endpoint instead of the region's (https://.../ovissapi/endpoint).", default=""
    )
    ca_cert: str = param(
        "PEM certificates of the CA(s) to trust for the endpoint, instead of the public CAs.", default=""
    )
    api_version: Literal["2011-01-31", "2015-01-30"] = param(
        "The API version sent with every call.", default=VERSIONS[0]
    )
    locale: Literal["en", "ja"] = param("The language of FGCP's messages and image names.", default="en")
    timezone: str = param("The time zone named in the signed AccessKeyId.", default="UTC")
    user: str = param("Our registrant (owner id); empty means the certificate's common name.", default="")
    page_size: int = param(
        "Images handed to sync at a time while ListDiskImage streams in (FGCP itself does not page).",
        default=500,
        minimum=1,
        maximum=10000,
    )
    connect_timeout: float = param(
        "Seconds to wait for a connection.", default=10.0, minimum=0.1, maximum=300
    )
    read_timeout: float = param("Seconds to wait for an answer.", default=60.0, minimum=0.1, maximum=900)


@dataclass(frozen=True, slots=True, kw_only=True)
class FGCPCredentials:
    """The FGCP user certificate: the PKCS#12 file FGCP issues, or the same in PEM."""

    pkcs12: str = param("Base64 of the user certificate file (UserCert.p12).", default="", secret=True)
    passphrase: str = param(
        "The passphrase of the PKCS#12 file (or of the PEM key).", default="", secret=True
    )
    certificate: str = param("The user certificate in PEM, instead of pkcs12.", default="")
    private_key: str = param("Its RSA private key in PEM, with certificate.", default="", secret=True)

    def __post_init__(self) -> None:
        pem = bool(self.certificate or self.private_key)
        if bool(self.pkcs12) == pem:
            raise ValueError("give 'pkcs12' (and its 'passphrase'), or 'certificate' and 'private_key'")
        if pem and not (self.certificate and self.private_key):
            raise ValueError("'certificate' and 'private_key' go together")

    def as_mapping(self) -> dict[str, str]:
        return {
            "pkcs12": self.pkcs12,
            "passphrase": self.passphrase,
            "certificate": self.certificate,
            "private_key": self.private_key,
        }


def image_architecture(os_name: str) -> str:
    return "i386" if _32_BIT.search(os_name) else "x86_64"


def image_hardware_profiles(os_name: str) -> tuple[str, ...]:
    """32-bit CentOS/RHEL images are refused on types with 16 GB or more (Deltacloud)."""
    small_only = image_architecture(os_name) == "i386" and bool(_CENTOS_RHEL.search(os_name))
    return tuple(
        p.id
        for p in HARDWARE_PROFILES
        if not small_only or float(p.property("memory").value) < 16000  # type: ignore[union-attr]
    )


class FGCPDriver(Driver):
    """FGCP disk images and vservers for one user certificate in one region."""

    name = "fgcp"
    label = "Fujitsu Global Cloud Platform"
    providers = tuple(sorted(ENDPOINTS))
    features: ClassVar[Mapping[str, tuple[Feature, ...]]] = {
        "instances": (
            Feature("user_name", "create", ("name",)),
            Feature("metrics", "create", ("metrics",)),
            Feature("realm_filter", "index", ("realm_id",)),
            Feature("instance_count", "create", ("instance_count",)),
        ),
    }
    instance_states = (
        ("start", (Transition("pending", "create"),)),
        ("pending", (Transition("stopped", None), Transition("error", None))),
        ("running", (Transition("stopping", "stop"), Transition("error", None))),
        ("stopping", (Transition("stopped", None), Transition("error", None))),
        ("stopped", (Transition("running", "start"), Transition("finish", "destroy"))),
        ("finish", ()),
        ("error", ()),
    )
    hardware_profiles = HARDWARE_PROFILES

    Params = FGCPParams
    Credentials = FGCPCredentials
    params: FGCPParams
    credentials: FGCPCredentials

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = self.params.endpoint_url or ENDPOINTS.get(self.provider, "")
        if not self.endpoint:
            raise InvalidParameter(
                f"FGCP needs a region ({', '.join(sorted(ENDPOINTS))}) as provider, or an endpoint_url"
            )
        self._lock = threading.Lock()
        self._client: FGCPClient | None = None

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} provider={self.provider!r} endpoint={self.endpoint!r}>"

    def client(self) -> FGCPClient:
        """The account's client, built on first use: the certificate is only
        opened when a request really needs FGCP."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    p = self.params
                    identity = ClientIdentity.from_credentials(self.credentials.as_mapping(), user=p.user)
                    self._client = FGCPClient(
                        endpoint=self.endpoint,
                        identity=identity,
                        ca_pem=p.ca_cert or None,
                        version=p.api_version,
                        locale=p.locale,
                        timezone=p.timezone,
                        connect_timeout=p.connect_timeout,
                        read_timeout=p.read_timeout,
                    )
        return self._client

    # -- description ---------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def identity(self) -> str:
        """Our registrant: the certificate's user (or params.user)."""
        return self.client().identity.user

    def realms(self) -> Sequence[Realm]:
        """Each virtual system is a realm, as in Deltacloud (networks are not listed)."""
        return [Realm(id=v.id, name=v.name, limit="[System]") for v in self.client().list_vsys()]

    # -- images --------------------------------------------------------------

    def _image(self, disk: DiskImage) -> ProviderImage:
        return ProviderImage(
            id=disk.id,
            name=disk.name,
            # Listed means usable: FGCP keeps no image state (a registering image is not listed).
            state=ImageState.AVAILABLE,
            raw_state="AVAILABLE",
            description=disk.description or None,
            owner_id=disk.registrant or disk.creator,
            architecture=image_architecture(disk.os_name),
            root_type=RootType.PERSISTENT,
            hardware_profiles=image_hardware_profiles(disk.os_name),
            extra={
                k: v
                for k, v in {
                    "os_name": disk.os_name,
                    "os_type": disk.os_type,
                    "size_gb": disk.size,
                    "license_info": disk.license_info,
                    "creator": disk.creator,
                    "softwares": list(disk.softwares),
                }.items()
                if v
            },
        )

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        # ListDiskImage has no paging; its answer is parsed as it streams in and
        # handed over page_size images at a time.
        images = (self._image(d) for d in self.client().iter_disk_images())
        while page := list(itertools.islice(images, self.params.page_size)):
            yield page

    def get_image(self, image_id: str) -> ProviderImage | None:
        try:
            return self._image(self.client().get_disk_image(image_id))
        except (NotFound, InvalidParameter):
            return None

    def create_image(self, *, instance_id: str, name: str, description: str | None = None) -> ProviderImage:
        if not (name or "").strip():
            raise InvalidParameter("FGCP needs a name for a new image")
        found = self._vserver(instance_id)
        if found is None:
            raise NotFound(f"Instance {instance_id} not found")
        vserver, status = found
        refusal = self._refusal(vserver, status)
        if refusal:
            raise InvalidState(refusal)
        self.client().register_private_disk_image(instance_id, name, description or "")
        return ProviderImage(
            id="",  # FGCP gives none; the worker finds the image (find_created_images)
            name=name,
            state=ImageState.PENDING,
            raw_state="REGISTERING",
            description=description or None,
            owner_id=self.identity(),
            root_type=RootType.PERSISTENT,
            extra={"source_instance_id": instance_id},
        )

    def destroy_image(self, image_id: str) -> None:
        self.client().unregister_disk_image(image_id)

    def find_created_images(self, *, name: str, exclude_ids: frozenset[str]) -> list[ProviderImage]:
        """Our name and our registrant, among ids that existed neither before
        the call nor as another create's result: a colleague's same-named image
        is never taken for ours."""
        me = self.identity()
        return [
            i for i in self.list_images() if i.name == name and i.owner_id == me and i.id not in exclude_ids
        ]

    # -- instances -----------------------------------------------------------

    @staticmethod
    def _refusal(vserver: VServer, status: str) -> str:
        if vserver.is_appliance:
            return f"Instance {vserver.id} is a firewall or load balancer; only vservers can be imaged"
        if status != "STOPPED":
            return f"Instance {vserver.id} is {status}; FGCP registers images only from STOPPED vservers"
        return ""

    def _instance(self, vserver: VServer, status: str) -> ProviderInstance:
        return ProviderInstance(
            id=vserver.id,
            name=vserver.name,
            state=INSTANCE_STATES.get(status, status or "UNKNOWN"),
            owner_id=vserver.creator,
            image_id=vserver.disk_image_id,
            realm_id=vserver.vsys_id,
            hardware_profile_id=vserver.type,
            create_image_refusal=self._refusal(vserver, status),
            private_addresses=tuple(Address(n.private_ip, "ipv4") for n in vserver.vnics if n.private_ip),
            root_type=RootType.PERSISTENT,
            extra={"raw_state": status, "vsys_id": vserver.vsys_id},
        )

    def iter_instance_pages(self) -> Iterator[Sequence[ProviderInstance]]:
        client = self.client()
        for vsys in client.list_vsys():
            try:
                vservers = [v for v in client.list_vservers(vsys.id) if not v.is_appliance]
                page = [self._instance(v, client.get_vserver_status(v.id)) for v in vservers]
            except (NotFound, InvalidParameter):
                continue  # the system was destroyed since ListVSYS
            yield page

    def _vserver(self, instance_id: str) -> tuple[VServer, str] | None:
        if vsys_id_of(instance_id) is None:
            return None
        client = self.client()
        try:
            vserver = client.get_vserver(instance_id)
            return vserver, client.get_vserver_status(instance_id)
        except (NotFound, InvalidParameter):
            return None

    def get_instance(self, instance_id: str) -> ProviderInstance | None:
        found = self._vserver(instance_id)
        return self._instance(*found) if found else None
