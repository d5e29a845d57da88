"""OpenStack (Keystone, Nova, Glance) through openstacksdk.

One account is one project in one region (``X-Deltacloud-Provider``) of one
cloud, reached over the endpoint interface it names. openstacksdk builds the
session (Keystone v3 password or application credential, v2.0 for legacy
clouds), reads the catalog, discovers versions and negotiates Nova
microversions; keystoneauth renews a token the cloud expired and retries the
request once. Images come from Glance v2 (or, for clouds without it, Nova's
``/images`` API, which is also how Rackspace serves them: see rackspace.py).

Listings read the services' JSON pages through the SDK's adapters rather than
as SDK resource objects: building an ``openstack.image.v2.image.Image`` costs
about 2.4 ms, four minutes for a 100,000-image catalog, where parsing the page
costs a few seconds. Every call goes through ``_cloud()``, where keystoneauth's
and openstacksdk's exceptions become ``providers.exceptions`` (the mapping
itself is ``providers.openstack_client.translated``, shared with Rackspace).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

from keystoneauth1.identity.base import BaseIdentityPlugin
from openstack import exceptions as os_exceptions
from openstack import utils as os_utils
from openstack.compute.v2.server import Server

from providers import openstack_wire as wire
from providers.base import (
    Capabilities,
    Driver,
    Feature,
    ImageState,
    ProviderImage,
    ProviderInstance,
    Realm,
    Transition,
)
from providers.exceptions import (
    AuthFailure,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    Unavailable,
)
from providers.openstack_client import auth_plugin, connect, translated
from providers.params import param

logger = logging.getLogger(__name__)

# The newest Nova microversion whose answers this driver reads; the SDK
# settles on the highest both sides speak (2.84 adds instance action details).
COMPUTE_MICROVERSION = "2.96"
IMAGE_PROXY_MICROVERSION = "2.35"
IMAGE_NAME_MAX = 255
JSON = {"Accept": "application/json"}
# What Capabilities does not already assume (ids on create, names and descriptions kept).
CAPABILITIES = Capabilities(
    create_image=True, destroy_image=True, image_name_max_length=IMAGE_NAME_MAX, incremental_listing=True
)
# Deltacloud's features: owner_id filters the index; name and description go to createImage
# (the description as the image's "description" property, as Horizon keeps it).
IMAGE_FEATURES = (
    Feature("owner_id", "index", ("owner_id",)),
    Feature("image_name", "create", ("name",)),
    Feature("image_description", "create", ("description",)),
)
# Why a snapshot failed, per image: a failed image stays failed, and sync must
# not ask Nova again every time (nor show a different reason each time).
_failure_reasons: OrderedDict[tuple[str, str, str], str] = OrderedDict()
_FAILURE_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenStackParams:
    """Where the cloud is, which project and region, and what to cache."""

    auth_url: str = param(
        "Keystone's URL, e.g. https://keystone.example.com:5000 (a /v3 or /v2.0 suffix is fine)."
    )
    auth_type: Literal["password", "v3applicationcredential", "v2password"] = param(
        "How the account logs in: Keystone v3 password, a v3 application credential, or v2.0 password "
        "(legacy clouds).",
        default="password",
    )
    project_name: str = param("The project (tenant) whose servers and images the account sees.", default="")
    project_id: str = param("The project's id, instead of its name.", default="")
    user_domain_name: str = param("Keystone v3 domain of the user.", default="Default")
    project_domain_name: str = param("Keystone v3 domain of the project.", default="Default")
    interface: Literal["public", "internal", "admin"] = param(
        "Which of the catalog's endpoints to use.", default="public"
    )
    image_api: Literal["image", "compute"] = param(
        "Where images are listed: Glance v2 ('image'), or Nova's image API ('compute') for clouds "
        "without Glance v2.",
        default="image",
    )
    visibility: Literal["default", "public", "private", "shared", "community", "all"] = param(
        "Which Glance images to cache: 'default' is Glance's own list (public images, the project's, "
        "and shared ones it accepted).",
        default="default",
    )
    page_size: int = param("Images (and servers) per page.", default=1000, minimum=1, maximum=1000)
    timeout: float = param("Seconds to wait for each answer.", default=60.0, minimum=0.1, maximum=900)
    default_architecture: str = param(
        "Architecture of images whose properties name none (Deltacloud said x86_64).", default="x86_64"
    )
    verify_tls: bool = param("Check the cloud's TLS certificates.", default=True)

    def __post_init__(self) -> None:
        if not self.auth_url.startswith(("http://", "https://")):
            raise InvalidParameter("OpenStack parameter 'auth_url' must be an http(s) URL")


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenStackCredentials:
    """A Keystone user and password, or an application credential."""

    username: str = param("Keystone user name (password logins).", default="")
    password: str = param("The user's password.", default="", secret=True)
    application_credential_id: str = param("Application credential id (v3applicationcredential).", default="")
    application_credential_secret: str = param("Application credential secret.", default="", secret=True)


class OpenStackDriver(Driver):
    """Glance images and Nova servers of one project in one region."""

    name = "openstack"
    label = "OpenStack"
    features: ClassVar[Mapping[str, tuple[Feature, ...]]] = {"images": IMAGE_FEATURES}
    # Deltacloud's OpenStack state machine: a stop passes through stopping, and a
    # build can end in ERROR (Nova's "No valid host was found").
    instance_states = (
        ("start", (Transition("pending", "create"),)),
        ("pending", (Transition("running", None), Transition("error", None))),
        ("running", (Transition("running", "reboot"), Transition("stopping", "stop"))),
        ("stopping", (Transition("stopped", None),)),
        ("stopped", (Transition("running", "start"), Transition("finish", None))),
        ("error", ()),
        ("finish", ()),
    )
    Params = OpenStackParams
    Credentials = OpenStackCredentials

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._microversions: dict[str, str | None] = {}
        self._project_id: str | None = None

    # -- what differs between OpenStack accounts and Rackspace -------------------

    @property
    def image_api(self) -> str:
        return self.params.image_api

    @property
    def interface(self) -> str:
        return self.params.interface

    @property
    def default_architecture(self) -> str:
        return self.params.default_architecture

    def auth_plugin(self) -> BaseIdentityPlugin:
        p, c = self.params, self.credentials
        if p.auth_type == "v3applicationcredential":
            if not (c.application_credential_id and c.application_credential_secret):
                raise AuthFailure("OpenStack application credentials need an id and a secret")
        elif not (c.username and c.password):
            raise AuthFailure(f"OpenStack {p.auth_type} logins need a username and a password")
        return auth_plugin(
            p.auth_type,
            p.auth_url,
            username=c.username,
            password=c.password,
            project_name=p.project_name,
            project_id=p.project_id,
            user_domain_name=p.user_domain_name,
            project_domain_name=p.project_domain_name,
            application_credential_id=c.application_credential_id,
            application_credential_secret=c.application_credential_secret,
        )

    # -- connection and errors ---------------------------------------------------------

    def connection(self) -> Any:
        """The account's openstacksdk Connection, built on first use (which logs in, to
        read the catalog): the API builds a driver per request and most never call out."""
        if self._conn is None:
            with self._lock:
                if self._conn is None:
                    self._conn = connect(
                        self.auth_plugin(),
                        region=self.provider,
                        interface=self.interface,
                        timeout=self.params.timeout,
                        verify=getattr(self.params, "verify_tls", True),
                    )
        return self._conn

    def _cloud(self, service: str) -> AbstractContextManager[None]:
        """Every SDK call runs in here: its exceptions leave as ``providers.exceptions``
        (see ``openstack_client.translated``), with the account's secrets scrubbed."""
        where = f"region {self.provider or '(any)'}, {self.interface} interface"
        return translated(service, label=self.label, where=where, scrub=self.scrub)

    def _get(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """One GET through the SDK's adapter for ``service``; the parsed JSON."""
        label = SERVICES[service]
        with self._cloud(label):
            adapter = getattr(self.connection(), service)
            extra = {"microversion": self.compute_microversion(path)} if service == "compute" else {}
            response = adapter.get(path, params=dict(params or {}), headers=JSON, **extra)
            os_exceptions.raise_from_response(response)
            return response.json()

    def compute_microversion(self, path: str) -> str | None:
        """The Nova microversion for ``path``: the newest both sides speak, but
        below 2.36 for the image API, which newer microversions no longer serve."""
        cap = IMAGE_PROXY_MICROVERSION if path.startswith("/images") else COMPUTE_MICROVERSION
        if cap not in self._microversions:
            with self._cloud("compute service"):
                found = os_utils.maximum_supported_microversion(self.connection().compute, cap)
            self._microversions[cap] = found
        return self._microversions[cap]

    # -- description ---------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def identity(self) -> str:
        """The project id (what ``owner_id=self`` means): Glance's ``owner`` of its images."""
        if self._project_id is None:
            with self._cloud("identity service"):
                self._project_id = str(self.connection().current_project_id or "")
        return self._project_id

    def realms(self) -> Sequence[Realm]:
        try:
            zones = self._get("compute", "/os-availability-zone").get("availabilityZoneInfo", [])
        except NotFound:  # clouds without the zone API: the region is the realm
            zones = []
        found = [
            Realm(
                z["zoneName"],
                z["zoneName"],
                "AVAILABLE" if (z.get("zoneState") or {}).get("available") else "UNAVAILABLE",
            )
            for z in zones
            if z.get("zoneName")
        ]
        return found or [Realm(self.provider or "default", self.provider or "default")]

    # -- images --------------------------------------------------------------------------

    def _pages(
        self, service: str, path: str, key: str, params: dict[str, Any]
    ) -> Iterator[list[Mapping[str, Any]]]:
        """Follow a listing's ``next`` links (Glance's ``next``, Nova's ``<key>_links``)."""
        params = {**params, "limit": self.params.page_size}
        while True:
            body = self._get(service, path, params)
            items = body.get(key) or []
            yield items
            links = body.get(f"{key}_links") or []
            href = body.get("next") or next((ln.get("href") for ln in links if ln.get("rel") == "next"), None)
            if not items or not href:
                return
            query = {k: v[-1] for k, v in parse_qs(urlsplit(href).query).items()}
            if query.get("marker") in (None, params.get("marker")):
                raise Unavailable(f"The {SERVICES[service]} sent a next link that goes nowhere: {href}")
            params = {**params, **query}

    def _image_pages(self, changes_since: str | None) -> Iterator[Sequence[ProviderImage]]:
        if self.image_api == "compute":
            params = {"changes-since": changes_since} if changes_since else {}
            pages = self._pages("compute", "/images/detail", "images", params)
        else:
            params = {} if self.params.visibility == "default" else {"visibility": self.params.visibility}
            if changes_since:
                params.update(
                    {"updated_at": f"gte:{changes_since}", "sort_key": "updated_at", "sort_dir": "asc"}
                )
            pages = self._pages("image", "/images", "images", params)
        for raw_page in pages:
            images = [self._image(raw) for raw in raw_page]
            if changes_since:
                # Nova's changes-since also reports deleted images; what vanished is
                # the full listing's to say (Driver.iter_image_changes).
                images = [i for i in images if i.state != ImageState.DELETED]
            yield images

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        yield from self._image_pages(None)

    def iter_image_changes(self, since: str) -> Iterator[Sequence[ProviderImage]]:
        """Glance's ``updated_at=gte:`` (Nova's ``changes-since``) since the newest change seen."""
        yield from self._image_pages(since)

    def _image(self, raw: Mapping[str, Any]) -> ProviderImage:
        nova = self.image_api == "compute"
        failed = wire.failed_snapshot(raw, nova=nova)
        reason = self._failure_reason(str(raw.get("id")), *failed) if failed else ""
        if nova:
            return wire.nova_image(
                raw,
                owner_id=self.identity(),
                default_architecture=self.default_architecture,
                failure_reason=reason,
            )
        return wire.glance_image(raw, default_architecture=self.default_architecture, failure_reason=reason)

    def get_image(self, image_id: str) -> ProviderImage | None:
        service = "compute" if self.image_api == "compute" else "image"
        try:
            raw = self._get(service, f"/images/{image_id}")
        except NotFound:
            return None
        return self._image(raw.get("image", raw) if service == "compute" else raw)

    def _failure_reason(self, image_id: str, status: str, server_id: str, created: str) -> str:
        """Why a snapshot failed: what Nova's createImage instance action says, else
        what the status means. Remembered, so sync asks once and says the same each time."""
        key = (getattr(self.params, "auth_url", ""), self.provider, image_id)
        if key not in _failure_reasons:
            try:
                said = self._nova_says(server_id, created) if server_id else ""
            except ProviderError as exc:
                logger.warning("Could not ask Nova why image %s failed: %s", image_id, exc)
                return wire.status_meaning(status)
            _failure_reasons[key] = said or wire.status_meaning(status)
            while len(_failure_reasons) > _FAILURE_CACHE_SIZE:
                _failure_reasons.popitem(last=False)
        return _failure_reasons[key]

    def _nova_says(self, server_id: str, created: str) -> str:
        try:
            actions = self._get("compute", f"/servers/{server_id}/os-instance-actions")["instanceActions"]
        except NotFound:  # the server is gone, and its actions with it
            return ""
        action = wire.failed_create_image(actions, created)
        if action is None:
            return ""
        detail = self._get("compute", f"/servers/{server_id}/os-instance-actions/{action['request_id']}")
        return self.scrub(wire.action_failure(detail, server_id))

    def create_image(self, *, instance_id: str, name: str, description: str | None = None) -> ProviderImage:
        name = name or ""
        if not name.strip() or len(name) > IMAGE_NAME_MAX:
            raise InvalidParameter(f"Image names must be 1 to {IMAGE_NAME_MAX} characters long")
        if name != name.strip() or any(ord(c) < 32 for c in name):
            raise InvalidParameter(
                "Image names may not start or end with spaces or contain control characters"
            )
        instance = self.get_instance(instance_id)
        if instance is None:
            raise NotFound(f"Instance {instance_id} not found")
        if instance.create_image_refusal:
            raise InvalidState(instance.create_image_refusal)
        metadata = {"description": description} if description else None
        with self._cloud("compute service"):
            image_id = Server(id=instance_id).create_image(self.connection().compute, name, metadata)
        try:
            image = self.get_image(image_id)
        except ProviderError as exc:
            # The image exists; losing its id over a failed read-back is worse than a thin answer.
            logger.warning("%s image %s created but not read back: %s", self.label, image_id, exc)
            image = None
        return image or ProviderImage(
            id=image_id,
            name=name,
            state=ImageState.PENDING,
            raw_state="QUEUED",
            description=description or None,
            owner_id=instance.owner_id,
            architecture=self.default_architecture,
            extra={"instance_uuid": instance_id},
        )

    def destroy_image(self, image_id: str) -> None:
        if self.image_api == "compute":
            with self._cloud("compute service"):
                self.connection().compute.delete_image(image_id, ignore_missing=False)
        else:
            with self._cloud("image service"):
                self.connection().image.delete_image(image_id, ignore_missing=False)

    # -- instances -----------------------------------------------------------------------

    def iter_instance_pages(self) -> Iterator[Sequence[ProviderInstance]]:
        realm = self.provider
        for raw_page in self._pages("compute", "/servers/detail", "servers", {}):
            yield [wire.server(raw, realm=realm) for raw in raw_page]

    def get_instance(self, instance_id: str) -> ProviderInstance | None:
        try:
            raw = self._get("compute", f"/servers/{instance_id}")["server"]
        except NotFound:
            return None
        return wire.server(raw, realm=self.provider)


SERVICES = {"image": "image service", "compute": "compute service"}
