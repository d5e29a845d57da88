"""HTTP Basic against Django users, without paying the password hash per request.

Deltacloud clients send Basic credentials on every request and Django's
hasher costs hundreds of milliseconds by design. A successful verification
is remembered in the cache under an HMAC of the credentials (the password
itself is never stored), for a short time, together with a fingerprint of
the user's password hash: changing the password (or deactivating the user)
makes the remembered entry useless at once, in every process.

On a remembered hit the user row is not read here: the request's one query
(``images.api.context``: the account together with the user row) reads it,
and ``confirm`` compares the fingerprint before anything else happens. A
request that reads no account confirms with ``confirm_alone`` (one query).
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BasicAuthentication

from images.api import throttle

# Set on a user built from a remembered verification until its row is confirmed.
PENDING = "_deltaweb_unconfirmed"


def _mac(*parts: str) -> str:
    message = "\x00".join(parts).encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def cache_key(username: str, password: str) -> str:
    """Where a verified credential is remembered (an HMAC: never the password)."""
    return "dw:auth:" + _mac("basic", username, password)


def fingerprint(user) -> str:
    """Changes with the user's password hash: a remembered entry outlives no password change."""
    return _mac("pwhash", str(user.pk), user.password)[:32]


@functools.cache
def _user_sql() -> str:
    meta = get_user_model()._meta
    return f"SELECT * FROM {meta.db_table} WHERE {meta.pk.column} = %s"


def _load_user(pk):
    """The user row, fresh (its password hash decides), without ORM query building."""
    found = list(get_user_model()._default_manager.raw(_user_sql(), [pk]))
    return found[0] if found else None


def _remembered_user(key: str, pk, remembered: str, username: str):
    """A stand-in for the user until its row, read with the account, confirms it."""
    user = get_user_model()(pk=pk, username=username)
    user._state.adding = False
    setattr(user, PENDING, (key, remembered))
    return user


def is_unconfirmed(user) -> bool:
    return user is not None and hasattr(user, PENDING)


def confirm(stand_in, row):
    """The fresh user row if it still matches the remembered verification; else 401."""
    key, remembered = getattr(stand_in, PENDING)
    if row is not None and row.is_active and hmac.compare_digest(fingerprint(row), remembered):
        return row
    cache.delete(key)
    raise exceptions.AuthenticationFailed("Unauthorized")


def confirm_alone(user):
    """Confirm a remembered user by reading its row (requests that read no account)."""
    return confirm(user, _load_user(user.pk)) if is_unconfirmed(user) else user


class CachedBasicAuthentication(BasicAuthentication):
    """DRF Basic auth whose successful checks are remembered briefly."""

    def authenticate_credentials(self, userid, password, request=None):
        key = cache_key(userid, password)
        user = self._remembered(key, userid)
        if user is not None:
            return user, None
        # Concurrent requests with one credential: one verifies, the others then find its result.
        with throttle.one_verification(key):
            user = self._remembered(key, userid)
            if user is not None:
                return user, None
            throttle.before_verify(request, userid, password)  # 401/429 without hashing
            user = authenticate(request=request, username=userid, password=password)
            if user is None or not user.is_active:
                throttle.failed(request, userid, password)
                raise exceptions.AuthenticationFailed("Unauthorized")
            cache.set(key, (user.pk, fingerprint(user)), settings.DELTAWEB_AUTH_CACHE_SECONDS)
            return user, None

    @staticmethod
    def _remembered(key: str, userid: str):
        """A stand-in for a recently verified user; the request's one query confirms it."""
        remembered = cache.get(key)
        if remembered is not None:
            return _remembered_user(key, remembered[0], remembered[1], userid)
        return None

    def authenticate_header(self, request):
        driver = getattr(request, "dc_driver_hint", None) or settings.DELTAWEB_DEFAULT_DRIVER
        return f'Basic realm="{driver}-deltacloud@{settings.DELTAWEB_HOSTNAME}"'
