"""Which driver, provider and account a request is about."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from images.api.representations.markup import Urls
from images.models import ProviderAccount
from images.services import NoAccount, UnknownDriver, account_resolve
from providers.base import Driver
from providers.registry import DRIVERS, get_driver


@dataclass(frozen=True)
class ApiContext:
    driver: str
    # Echoed in X-Deltacloud-Provider and <api provider=...>; None: not chosen.
    provider: str | None
    account: ProviderAccount | None
    urls: Urls

    @property
    def driver_class(self) -> type[Driver]:
        return get_driver(self.driver)


def base_url(request) -> str:
    return f"{request.scheme}://{request.get_host()}"


def build_context(request, *, needs_account: bool) -> ApiContext:
    """Resolve the request's account (when the view needs one) or just its driver.

    Views that describe a driver (``/api``, hardware profiles, instance
    states) need no account; an authenticated user without a driver header
    still gets the driver of their default account there.
    """
    django_request = getattr(request, "_request", request)
    driver, provider = getattr(django_request, "dc_selection", (None, None))
    urls = Urls(base_url(django_request))
    user = getattr(request, "user", None)
    if needs_account:
        account = account_resolve(user=user, driver=driver, provider=provider)
        return ApiContext(account.driver, account.provider or None, account, urls)
    if driver is None and user is not None and user.is_authenticated:
        try:
            account = account_resolve(user=user, driver=None, provider=provider)
        except NoAccount:
            pass
        else:
            return ApiContext(account.driver, provider or account.provider or None, account, urls)
    driver = driver or settings.DELTAWEB_DEFAULT_DRIVER
    if driver not in DRIVERS:
        raise UnknownDriver(driver)
    return ApiContext(driver, provider, None, urls)
