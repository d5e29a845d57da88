"""HTTP Basic against Django users, without paying the password hash per request.

Deltacloud clients send Basic credentials on every request and Django's
hasher costs hundreds of milliseconds by design. A successful verification
is remembered in the cache under an HMAC of the credentials (the password
itself is never stored), for a short time, together with a fingerprint of
the user's password hash: changing the password (or deactivating the user)
makes the remembered entry useless at once, in every process.
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


def _mac(*parts: str) -> str:
    message = "\x00".join(parts).encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _cache_key(username: str, password: str) -> str:
    return "dw:auth:" + _mac("basic", username, password)


def _fingerprint(user) -> str:
    return _mac("pwhash", str(user.pk), user.password)[:32]


@functools.cache
def _user_sql() -> str:
    meta = get_user_model()._meta
    return f"SELECT * FROM {meta.db_table} WHERE {meta.pk.column} = %s"


def _load_user(pk):
    """The user row, fresh (its password hash decides), without ORM query building."""
    found = list(get_user_model()._default_manager.raw(_user_sql(), [pk]))
    return found[0] if found else None


class CachedBasicAuthentication(BasicAuthentication):
    """DRF Basic auth whose successful checks are remembered briefly."""

    def authenticate_credentials(self, userid, password, request=None):
        key = _cache_key(userid, password)
        user = self._remembered(key)
        if user is not None:
            return user, None
        # Concurrent requests with one credential: one verifies, the others then find its result.
        with throttle.one_verification(key):
            user = self._remembered(key)
            if user is not None:
                return user, None
            throttle.before_verify(request, userid, password)  # 401/429 without hashing
            user = authenticate(request=request, username=userid, password=password)
            if user is None or not user.is_active:
                throttle.failed(request, userid, password)
                raise exceptions.AuthenticationFailed("Unauthorized")
            cache.set(key, (user.pk, _fingerprint(user)), settings.DELTAWEB_AUTH_CACHE_SECONDS)
            return user, None

    @staticmethod
    def _remembered(key: str):
        remembered = cache.get(key)
        if remembered is not None:
            user = _load_user(remembered[0])
            if user is not None and user.is_active and hmac.compare_digest(_fingerprint(user), remembered[1]):
                return user
            cache.delete(key)
        return None

    def authenticate_header(self, request):
        driver = getattr(request, "dc_driver_hint", None) or settings.DELTAWEB_DEFAULT_DRIVER
        return f'Basic realm="{driver}-deltacloud@{settings.DELTAWEB_HOSTNAME}"'
