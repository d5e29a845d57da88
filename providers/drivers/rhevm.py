"""RHEV-M / oVirt / Red Hat Virtualization through the engine's SDK (ovirtsdk4).

One account is one engine (its API URL, a user and password for SSO, and the
engine's CA) optionally scoped to a data center, or a cluster in it, named by
the provider (``X-Deltacloud-Provider``: ``Default`` or ``Default/cluster1``).
Images are templates, instances are VMs. Every SDK call goes through
``_engine()``, the one place where ovirtsdk4's exceptions (and the curl errors
inside them) become the typed errors of ``providers.exceptions``.

The engine's "Blank" template is left out: nobody can create it, delete it or
make it from a VM, so it is not an image of the account's catalog.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import ovirtsdk4 as sdk
import pycurl
from ovirtsdk4 import types

from providers.base import (
    Capabilities,
    Driver,
    Feature,
    ProviderImage,
    ProviderInstance,
    Realm,
    Transition,
)
from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    ProviderTimeout,
    Unavailable,
)
from providers.ovirt_shapes import (
    BLANK_TEMPLATE_ID,
    MUST_BE_DOWN,
    fault_text,
    template_image,
    vm_instance,
    vm_refusal,
)
from providers.params import param

DEFAULT_PAGE_SIZE, MIN_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1, 1000
DEFAULT_TIMEOUT = 60

# curl's codes for a peer it would not trust, or a CA file it could not use.
TLS_CURL_CODES = frozenset(
    {
        pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_PEER_FAILED_VERIFICATION,
        pycurl.E_SSL_CERTPROBLEM,
        pycurl.E_SSL_CACERT,
        pycurl.E_SSL_CACERT_BADFILE,
        getattr(pycurl, "E_SSL_ISSUER_ERROR", 83),
    }
)
UNREACHABLE_CURL_CODES = frozenset(
    {pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_GOT_NOTHING}
    | {pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR}
)
# The SDK reports some transfer errors only as text: "... [(<pycurl.Curl ...>, 28, 'msg')]".
_CURL_IN_TEXT = re.compile(r"\(<pycurl\.Curl object at [^>]*>, (\d+), '([^']*)'\)")

# SSO tokens by engine, user and password digest, so each request need not log in.
_TOKENS: dict[str, str] = {}
_TOKENS_LOCK = threading.Lock()

CAPABILITIES = Capabilities(
    create_image=True,
    destroy_image=True,
    create_returns_id=True,
    honours_image_name=True,
    honours_image_description=True,
    unique_image_names=True,
    destroy_in_request=True,
)


def _curl_error(exc: sdk.Error) -> tuple[int, str] | None:
    """The curl error behind an SDK error, when there is one."""
    context = exc.__context__
    if isinstance(context, pycurl.error) and context.args:
        return int(context.args[0]), str(context.args[1] if len(context.args) > 1 else "")
    match = _CURL_IN_TEXT.search(str(exc))
    return (int(match.group(1)), match.group(2)) if match else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RHEVMParams:
    """Which engine an account talks to, and how it trusts it."""

    url: str = param("The engine's API URL, e.g. https://engine.example.com/ovirt-engine/api.")
    ca_bundle: str = param(
        "The engine's CA certificate, PEM (the engine serves it at /ovirt-engine/services/"
        "pki-resource?resource=ca-certificate&format=X509-PEM-CA). Empty: the system trust store.",
        default="",
    )
    insecure: bool = param("Skip TLS verification (labs only; never the default).", default=False)
    page_size: int = param(
        "Templates or VMs per engine search page.",
        default=DEFAULT_PAGE_SIZE,
        minimum=MIN_PAGE_SIZE,
        maximum=MAX_PAGE_SIZE,
    )
    timeout: int = param(
        "Seconds to wait for the engine to answer.", default=DEFAULT_TIMEOUT, minimum=1, maximum=900
    )

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise InvalidParameter(
                "RHEV-M parameter 'url' must be the engine's API URL (https://.../ovirt-engine/api)"
            )
        if self.ca_bundle and "-----BEGIN CERTIFICATE-----" not in self.ca_bundle:
            raise InvalidParameter("RHEV-M parameter 'ca_bundle' must hold PEM certificates")


@dataclass(frozen=True, slots=True, kw_only=True)
class RHEVMCredentials:
    """An engine user for SSO (password grant)."""

    username: str = param("Engine user with its profile, e.g. admin@internal.")
    password: str = param("The user's password.", secret=True)


class RHEVMDriver(Driver):
    """Templates and VMs of one oVirt / RHV engine, optionally one data center or cluster."""

    name = "rhevm"
    label = "Red Hat Enterprise Virtualization"
    features: ClassVar[Mapping[str, tuple[Feature, ...]]] = {
        "images": (
            Feature("image_name", "create", ("name",)),
            Feature("image_description", "create", ("description",)),
        ),
    }
    instance_states = (
        ("start", (Transition("pending", None),)),
        ("pending", (Transition("stopped", None),)),
        ("stopped", (Transition("running", "start"), Transition("finish", "destroy"))),
        ("running", (Transition("running", "reboot"), Transition("stopping", "stop"))),
        ("stopping", (Transition("stopped", None),)),
        ("finish", ()),
    )

    Params = RHEVMParams
    Credentials = RHEVMCredentials
    params: RHEVMParams
    credentials: RHEVMCredentials

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = self.params.url.rstrip("/")
        self.username = self.credentials.username
        datacenter, _, cluster = self.provider.partition("/")
        self.datacenter, self.cluster = datacenter.strip(), cluster.strip()
        self._connection: sdk.Connection | None = None
        self._clusters: dict[str, str] | None = None  # in-scope cluster id -> data center id

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} url={self.url!r} provider={self.provider!r}>"

    # -- the connection and the one translation point ----------------------------------------

    def _token_key(self) -> str:
        raw = "\0".join((self.url, self.username, self.credentials.password))
        return hashlib.sha256(raw.encode()).hexdigest()

    def _ca_file(self) -> str | None:
        """The PEM bundle as a file, since curl reads CAs from a path."""
        bundle = self.params.ca_bundle
        if not bundle or self.params.insecure:
            return None
        digest = hashlib.sha256(bundle.encode()).hexdigest()[:32]
        path = Path(tempfile.gettempdir()) / "deltaweb-ovirt-ca" / f"{digest}.pem"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                handle.write(bundle)
            os.replace(tmp, path)
        return str(path)

    def _system(self) -> Any:
        if self._connection is None:
            if not self.username or not self.credentials.password:
                raise AuthFailure("The RHEV-M account needs a username and a password")
            with _TOKENS_LOCK:
                token = _TOKENS.get(self._token_key())
            with self._engine():
                connection = sdk.Connection(
                    url=self.url,
                    username=self.username,
                    password=self.credentials.password,
                    token=token,
                    ca_file=self._ca_file(),
                    insecure=self.params.insecure,
                    timeout=self.params.timeout,
                )
                connection.authenticate()  # SSO now, unless a token is remembered
            self._connection = connection
            self._remember_token()
        return self._connection.system_service()

    def _remember_token(self) -> None:
        if self._connection is not None:
            token = self._connection.authenticate()  # the current token; no request once known
            with _TOKENS_LOCK:
                _TOKENS[self._token_key()] = token

    @contextmanager
    def _engine(self) -> Iterator[None]:
        """Turn ovirtsdk4's exceptions into ``providers.exceptions``; the only such place.

        The SDK lets curl's own error through from an SSO login, so both are caught.
        """
        try:
            yield
        except sdk.Error as exc:
            raise self._translate(exc) from None
        except pycurl.error as exc:
            code, message = [*exc.args, 0, ""][:2]
            raise self._curl_failure(int(code), str(message)) from None
        self._remember_token()

    def _translate(self, exc: sdk.Error) -> ProviderError:
        text = self.scrub(fault_text(exc.fault) or str(exc))
        curl = _curl_error(exc)
        if curl is not None:
            return self._curl_failure(*curl)
        if isinstance(exc, sdk.TimeoutError):
            return ProviderTimeout(f"The engine at {self.url} did not answer in time")
        if isinstance(exc, sdk.ConnectionError):
            return Unavailable(f"The engine at {self.url} could not be reached: {text}")
        if isinstance(exc, sdk.AuthError) and exc.code in (None, 401):
            with _TOKENS_LOCK:
                _TOKENS.pop(self._token_key(), None)
            return AuthFailure(f"The engine rejected the account's credentials: {text}")
        if exc.code == 403:
            return ProviderError(f"The engine user may not do this: {text}")
        if isinstance(exc, sdk.NotFoundError) or exc.code == 404:
            return NotFound(text)
        if exc.code == 409:
            return InvalidState(text) if text == MUST_BE_DOWN else Conflict(text)
        if exc.code == 400:
            return Conflict(text) if "is being used by" in text else InvalidParameter(text)
        if exc.code is None and "isn't the expected XML" in text:
            return Unavailable(f"The engine at {self.url} answered with something that is not its API")
        if exc.code and exc.code >= 500:
            return Unavailable(f"The engine failed: {text}")
        return ProviderError(f"The engine refused: {text}")

    def _curl_failure(self, code: int, message: str) -> ProviderError:
        message = self.scrub(message)
        if code in TLS_CURL_CODES:
            return ProviderError(
                f"TLS verification failed for the engine at {self.url}: {message}. "
                "Give the account the engine's CA certificate (ca_bundle), or set insecure."
            )
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return ProviderTimeout(f"The engine at {self.url} did not answer in time ({message})")
        if code in UNREACHABLE_CURL_CODES:
            return Unavailable(f"The engine at {self.url} could not be reached: {message}")
        return Unavailable(f"The engine at {self.url} failed: {message}")

    # -- description --------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def identity(self) -> str:
        """Templates have no owner on the engine: the account's user owns what it sees."""
        return self.username

    def _search(self, *clauses: str) -> str:
        scope = []
        if self.datacenter:
            scope.append(f'datacenter="{self.datacenter}"')
        if self.cluster:
            scope.append(f'cluster="{self.cluster}"')
        return " and ".join([*clauses, *scope])

    def _scope(self) -> dict[str, str]:
        """In-scope cluster ids with their data center ids; fails on a scope the engine lacks."""
        if self._clusters is None:
            system = self._system()
            with self._engine():
                datacenters = system.data_centers_service().list(
                    search=self._named(self.datacenter), case_sensitive=False
                )
                clusters = system.clusters_service().list(search=self._cluster_search(), case_sensitive=False)
            if self.datacenter and not datacenters:
                raise ProviderError(f"The engine has no data center named '{self.datacenter}'")
            if self.cluster and not clusters:
                raise ProviderError(f"The engine has no cluster '{self.cluster}' in '{self.datacenter}'")
            self._clusters = {c.id: (c.data_center.id if c.data_center else "") for c in clusters}
        return self._clusters

    def _cluster_search(self) -> str | None:
        clauses = [f'datacenter="{self.datacenter}"' if self.datacenter else ""]
        clauses.append(f'name="{self.cluster}"' if self.cluster else "")
        return " and ".join(c for c in clauses if c) or None

    @staticmethod
    def _named(name: str) -> str | None:
        return f'name="{name}"' if name else None

    def realms(self) -> Sequence[Realm]:
        """Data centers, as Deltacloud's RHEV-M driver had them."""
        system = self._system()
        with self._engine():
            found = system.data_centers_service().list(
                search=self._named(self.datacenter), case_sensitive=False
            )
        return [
            Realm(
                id=dc.id,
                name=dc.name or dc.id,
                state="AVAILABLE" if getattr(dc.status, "value", "") == "up" else "UNAVAILABLE",
            )
            for dc in found
        ]

    # -- images -------------------------------------------------------------------------------

    def _pages(self, collection: Any) -> Iterator[list[Any]]:
        """One engine search page at a time (``search=... page N`` with ``max``)."""
        self._scope()
        previous: list[str] = []
        for page in itertools.count(1):
            query = f"{self._search()} sortby name asc page {page}".strip()
            with self._engine():
                batch = collection.list(search=query, max=self.params.page_size, case_sensitive=False)
            ids = [item.id for item in batch]
            if ids and ids == previous:
                raise Unavailable("The engine ignored the search page; refusing to loop")
            yield list(batch)
            if len(batch) < self.params.page_size:
                return
            previous = ids

    def _failure(self, template: types.Template) -> str:
        """Why a template went illegal: the engine's audit-log errors about it since it was made."""
        if getattr(template.status, "value", "") != "illegal":
            return ""
        system = self._system()
        with self._engine():
            events = system.events_service().list(search=f'template.name="{template.name}"', max=20)
        since = template.creation_time
        errors = [
            e.description
            for e in events  # newest first
            if getattr(e.severity, "value", "") in ("error", "alert")
            and (since is None or e.time is None or e.time >= since)
        ]
        return "; ".join(reversed(errors[:3])) or "The engine marked the template illegal"

    def _image(self, template: types.Template) -> ProviderImage:
        return template_image(template, owner_id=self.username, failure_reason=self._failure(template))

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        templates = self._system().templates_service()
        for batch in self._pages(templates):
            yield [self._image(t) for t in batch if t.id != BLANK_TEMPLATE_ID]

    def _in_scope(self, cluster: types.Cluster | None) -> bool:
        return cluster is None or cluster.id in self._scope()

    def get_image(self, image_id: str) -> ProviderImage | None:
        if image_id == BLANK_TEMPLATE_ID or not _is_uuid(image_id):
            return None
        service = self._system().templates_service().template_service(image_id)
        try:
            with self._engine():
                template = service.get()
        except NotFound:
            return None
        return self._image(template) if self._in_scope(template.cluster) else None

    def _vm(self, instance_id: str) -> types.Vm | None:
        if not _is_uuid(instance_id):
            return None
        try:
            with self._engine():
                vm = self._system().vms_service().vm_service(instance_id).get()
        except NotFound:
            return None
        return vm if self._in_scope(vm.cluster) else None

    def create_image(self, *, instance_id: str, name: str, description: str | None = None) -> ProviderImage:
        if not (name or "").strip():
            raise InvalidParameter("The engine needs a name for a new template")
        vm = self._vm(instance_id)
        if vm is None:
            raise NotFound(f"Instance {instance_id} not found")
        refusal = vm_refusal(vm)
        if refusal:
            raise InvalidState(refusal)
        request = types.Template(name=name, description=description or None, vm=types.Vm(id=vm.id))
        with self._engine():
            template = self._system().templates_service().add(request)
        return self._image(template)

    def destroy_image(self, image_id: str) -> None:
        if image_id == BLANK_TEMPLATE_ID or not _is_uuid(image_id):
            raise NotFound(f"Image {image_id} not found")
        with self._engine():
            self._system().templates_service().template_service(image_id).remove()

    # -- instances ----------------------------------------------------------------------------

    def _instance(self, vm: types.Vm) -> ProviderInstance:
        realm = self._scope().get(vm.cluster.id, "") if vm.cluster else ""
        return vm_instance(vm, owner_id=self.username, realm_id=realm)

    def iter_instance_pages(self) -> Iterator[Sequence[ProviderInstance]]:
        vms = self._system().vms_service()
        for batch in self._pages(vms):
            yield [self._instance(vm) for vm in batch]

    def get_instance(self, instance_id: str) -> ProviderInstance | None:
        vm = self._vm(instance_id)
        return self._instance(vm) if vm is not None else None


class OVirtDriver(RHEVMDriver):
    """The same driver under oVirt's name (RHEV-M is Red Hat's build of the oVirt engine)."""

    name = "ovirt"
    label = "oVirt"


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
