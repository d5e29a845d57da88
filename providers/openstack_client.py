"""openstacksdk connections for the OpenStack and Rackspace drivers.

Keystone plugins for each way an account may log in (v3 password, v3
application credential, v2.0 password, Rackspace's v2.0 API key), one
keystoneauth session per driver, and a ``Connection`` bound to the account's
region and endpoint interface. keystoneauth re-authenticates once when a
service answers 401 to a token it believed valid (a token expired or revoked
cloud-side), which is the "token expiry mid-sync" case.

``translated`` is where keystoneauth's and openstacksdk's exceptions become
``providers.exceptions``, with each service's own error message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import openstack.connection
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v2, v3
from keystoneauth1.identity.base import BaseIdentityPlugin
from openstack import exceptions as os_exceptions

from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    ProviderTimeout,
    Throttled,
    Unavailable,
)
from providers.openstack_wire import error_message, retry_after

AUTH_TYPES = ("password", "v3applicationcredential", "v2password", "rax_apikey")


class RaxApiKey(v2.Auth):
    """Rackspace Identity v2.0 with ``RAX-KSKEY:apiKeyCredentials`` (username + API key)."""

    def __init__(self, auth_url: str, *, username: str, api_key: str, tenant_id: str | None = None) -> None:
        super().__init__(auth_url, tenant_id=tenant_id)
        self.username = username
        self.api_key = api_key

    def get_auth_data(self, headers: MutableMapping[str, str] | None = None) -> dict[str, object]:
        return {"RAX-KSKEY:apiKeyCredentials": {"username": self.username, "apiKey": self.api_key}}

    def __repr__(self) -> str:  # never show the key
        return f"<RaxApiKey username={self.username!r}>"


def versioned(auth_url: str, version: str) -> str:
    """The auth URL with its Keystone version, however the operator wrote it."""
    url = auth_url.rstrip("/")
    for known in ("/v3", "/v2.0"):
        if url.endswith(known):
            url = url[: -len(known)]
    return f"{url}/{version}"


def auth_plugin(
    auth_type: str,
    auth_url: str,
    *,
    username: str = "",
    password: str = "",
    api_key: str = "",
    project_name: str = "",
    project_id: str = "",
    user_domain_name: str = "Default",
    project_domain_name: str = "Default",
    application_credential_id: str = "",
    application_credential_secret: str = "",
) -> BaseIdentityPlugin:
    """The keystoneauth plugin for one account's way of logging in."""
    if auth_type == "password":
        return v3.Password(
            auth_url=versioned(auth_url, "v3"),
            username=username,
            password=password,
            user_domain_name=user_domain_name,
            project_name=project_name or None,
            project_id=project_id or None,
            project_domain_name=project_domain_name if project_name else None,
        )
    if auth_type == "v3applicationcredential":
        return v3.ApplicationCredential(
            auth_url=versioned(auth_url, "v3"),
            application_credential_id=application_credential_id,
            application_credential_secret=application_credential_secret,
        )
    if auth_type == "v2password":
        return v2.Password(
            auth_url=versioned(auth_url, "v2.0"),
            username=username,
            password=password,
            tenant_name=project_name or None,
            tenant_id=project_id or None,
        )
    if auth_type == "rax_apikey":
        return RaxApiKey(
            versioned(auth_url, "v2.0"), username=username, api_key=api_key, tenant_id=project_id or None
        )
    raise ValueError(f"Unknown auth_type {auth_type!r}; choose one of {', '.join(AUTH_TYPES)}")


def connect(
    plugin: BaseIdentityPlugin, *, region: str, interface: str, timeout: float, verify: bool | str = True
) -> openstack.connection.Connection:
    """A Connection for one region and interface (this logs in, to read the catalog)."""
    session = ks_session.Session(
        auth=plugin, timeout=timeout, verify=verify, app_name="deltaweb", app_version="1"
    )
    return openstack.connection.Connection(
        session=session,
        region_name=catalog_region(session, plugin, region),
        interface=interface,
        strict_proxies=False,
    )


def catalog_region(session: ks_session.Session, plugin: BaseIdentityPlugin, wanted: str) -> str | None:
    """The catalog's own spelling of region ``wanted``.

    Deltacloud providers are lower-cased (``X-Deltacloud-Provider: regionone``)
    where Keystone's region names are case-sensitive (``RegionOne``, ``DFW``).
    """
    if not wanted:
        return None
    names = {
        endpoint.get(key)
        for service in plugin.get_access(session).service_catalog.catalog or ()
        for endpoint in service.get("endpoints") or ()
        for key in ("region_id", "region")
        if endpoint.get(key)
    }
    if wanted in names:
        return wanted
    return next((name for name in sorted(names) if name.lower() == wanted.lower()), wanted)


@contextmanager
def translated(service: str, *, label: str, where: str, scrub: Callable[[str], str]) -> Iterator[None]:
    """Run SDK calls to ``service`` ("image service"...) with their exceptions
    turned into ``providers.exceptions``; ``scrub`` masks the account's secrets."""
    try:
        yield
    except os_exceptions.HttpException as exc:
        raise http_error(service, exc.status_code or 0, exc.response, label=label, scrub=scrub) from None
    except ks_exceptions.HttpError as exc:
        raise http_error(service, exc.http_status or 0, exc.response, label=label, scrub=scrub) from None
    except ks_exceptions.ConnectTimeout as exc:
        raise ProviderTimeout(scrub(f"The {service} did not answer in time: {exc}")) from None
    except (ks_exceptions.ConnectionError, ks_exceptions.DiscoveryFailure) as exc:
        raise Unavailable(scrub(f"The {service} could not be reached: {exc}")) from None
    except (ks_exceptions.EndpointNotFound, os_exceptions.ServiceDisabledException) as exc:
        raise ProviderError(
            f"The cloud's catalog has no {service} for {where}", detail=scrub(str(exc))
        ) from None
    except (ks_exceptions.ClientException, os_exceptions.SDKException) as exc:
        raise ProviderError(scrub(f"{type(exc).__name__}: {exc}")) from None
    except ValueError as exc:  # a body that is not the JSON the service promised
        raise Unavailable(f"The {service} answered with something that is not JSON: {exc}") from None


def http_error(
    service: str, status: int, response: Any, *, label: str, scrub: Callable[[str], str]
) -> ProviderError:
    """The typed error for an HTTP error answer, carrying the service's own words."""
    body = response.content if response is not None else b""
    headers = response.headers if response is not None else {}
    message = scrub(error_message(body, headers.get("Content-Type", ""))) or f"HTTP {status}"
    request_id = headers.get("x-openstack-request-id") or headers.get("x-compute-request-id") or ""
    detail = f"{service}, HTTP {status}" + (f", request {request_id}" if request_id else "")
    if status == 401:
        return AuthFailure(f"{label} rejected the account's credentials: {message}", detail=detail)
    if status in (413, 429):
        wait = retry_after(headers, body)
        return Throttled(f"The {service} asked us to slow down: {message}", detail=detail, retry_after=wait)
    if status == 404:
        return NotFound(message, detail=detail)
    if status == 409:
        # Nova's "Cannot 'createImage' instance X while it is in vm_state Y".
        return (InvalidState if message.startswith("Cannot '") else Conflict)(message, detail=detail)
    if status == 400:
        return InvalidParameter(message, detail=detail)
    if status == 504:
        return ProviderTimeout(f"The {service} timed out: {message}", detail=detail)
    if status >= 500:
        return Unavailable(f"The {service} failed: {message}", detail=detail)
    # 403 (a policy refusal) and the rest: the cloud said no; nothing the client can fix.
    return ProviderError(f"The {service} refused: {message}", detail=detail)
