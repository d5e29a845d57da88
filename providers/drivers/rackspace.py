"""Rackspace Cloud Servers (next generation) on the OpenStack driver's code.

Deltacloud had a ``rackspace`` driver of its own, so this is its own driver
name (libcloud's ``RackspaceNodeDriver`` subclasses OpenStack's the same way).
What differs: Rackspace Identity v2.0 with ``RAX-KSKEY:apiKeyCredentials``
(username + API key), Rackspace's regions, and images served by Cloud
Servers' Nova ``/images`` API with Rackspace's own statuses (QUEUED,
PREPARING, SAVING, ACTIVE, FAILED, UNKNOWN), shown as the raw state.
"""

from __future__ import annotations

from dataclasses import dataclass

from keystoneauth1.identity.base import BaseIdentityPlugin

from providers.drivers.openstack import OpenStackDriver
from providers.exceptions import AuthFailure, InvalidParameter, ProviderError
from providers.openstack_client import auth_plugin
from providers.params import param

REGIONS = ("DFW", "ORD", "IAD", "LON", "SYD", "HKG")
IDENTITY_URL = "https://identity.api.rackspacecloud.com/v2.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class RackspaceParams:
    """Rackspace Identity's URL (for tests or a private endpoint) and paging."""

    auth_url: str = param("Rackspace Identity v2.0.", default=IDENTITY_URL)
    page_size: int = param("Images (and servers) per page.", default=1000, minimum=1, maximum=1000)
    timeout: float = param("Seconds to wait for each answer.", default=60.0, minimum=0.1, maximum=900)

    def __post_init__(self) -> None:
        if not self.auth_url.startswith(("http://", "https://")):
            raise InvalidParameter("Rackspace parameter 'auth_url' must be an http(s) URL")


@dataclass(frozen=True, slots=True, kw_only=True)
class RackspaceCredentials:
    """A Rackspace user and its API key."""

    username: str = param("Rackspace user name.")
    api_key: str = param("The user's API key (Account Settings in the control panel).", secret=True)


class RackspaceDriver(OpenStackDriver):
    """Cloud Servers images and servers of one Rackspace account in one region."""

    name = "rackspace"
    label = "Rackspace"
    providers = REGIONS
    Params = RackspaceParams
    Credentials = RackspaceCredentials
    # Cloud Servers lists images through Nova, on the public endpoints only, and
    # every Rackspace image is x86_64 (Deltacloud's rackspace driver said so too).
    image_api = "compute"
    interface = "public"
    default_architecture = "x86_64"

    def auth_plugin(self) -> BaseIdentityPlugin:
        if self.provider.upper() not in REGIONS:
            # The account's own setting, not the client's request: a provider-side error (502).
            raise ProviderError(
                f"The account's Rackspace region must be one of {', '.join(REGIONS)}, not {self.provider!r}"
            )
        if not (self.credentials.username and self.credentials.api_key):
            raise AuthFailure("Rackspace logins need a username and an API key")
        return auth_plugin(
            "rax_apikey",
            self.params.auth_url,
            username=self.credentials.username,
            api_key=self.credentials.api_key,
        )
