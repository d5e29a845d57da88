"""What a wrong password may cost: bounded per user, per client address, and remembered.

A password hash costs hundreds of milliseconds of CPU by design, so guessing
is a denial of service before it is a break-in. Three rules keep it cheap:

* a failed credential is remembered (under an HMAC of it, never the password)
  with a fingerprint of the user's password hash: trying it again is a 401
  without hashing, until that user's password changes;
* failures are counted per username and per client address in fixed windows;
  past ``DELTAWEB_LOGIN_ATTEMPTS_PER_USER`` / ``..._PER_ADDRESS`` a request
  that would need hashing is a 429 with ``Retry-After``, before any hashing;
* credentials that cannot be a user (NUL or control characters) are refused
  without a database query.

A credential verified earlier (``images.api.auth``'s cache) is never throttled,
so a guessing attacker cannot lock out clients already logged in. The admin
login (``images.api.guard``) counts and refuses the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.cache import cache
from rest_framework import exceptions

PREFIX = "dw:login:"


def _mac(*parts: str) -> str:
    message = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def client_address(request) -> str:
    """The peer address (behind a proxy: the proxy's, unless it rewrites REMOTE_ADDR)."""
    meta = getattr(request, "META", None) or {}
    return str(meta.get("REMOTE_ADDR") or "-")


def _window() -> tuple[int, float]:
    size = max(1, settings.DELTAWEB_LOGIN_WINDOW_SECONDS)
    now = time.time()
    index = int(now // size)
    return index, (index + 1) * size - now


def _counter_keys(address: str, username: str) -> list[tuple[str, int]]:
    index, _ = _window()
    return [
        (f"{PREFIX}addr:{index}:{_mac('addr', address)[:32]}", settings.DELTAWEB_LOGIN_ATTEMPTS_PER_ADDRESS),
        (
            f"{PREFIX}user:{index}:{_mac('user', username.lower())[:32]}",
            settings.DELTAWEB_LOGIN_ATTEMPTS_PER_USER,
        ),
    ]


def count_attempt(address: str, username: str) -> int | None:
    """Counts one login that needs a password hash; the seconds to wait when this address
    or user name is over its limit (the attempt is then refused, before any hashing)."""
    _, remaining = _window()
    ttl = math.ceil(remaining) + 1
    over = False
    for key, limit in _counter_keys(address, username):
        cache.add(key, 0, ttl)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, ttl)
            count = 1
        over = over or count > limit
    return max(1, math.ceil(remaining)) if over else None


def _user_fingerprint(username: str) -> str:
    """Changes when the user's password (or existence, or activity) changes; one indexed read."""
    model = get_user_model()
    row = (
        model._default_manager.filter(**{model.USERNAME_FIELD: username})
        .values_list("pk", "password", "is_active")
        .first()
    )
    return _mac("fp", *(str(v) for v in row))[:32] if row else "none"


def _failure_key(username: str, password: str) -> str:
    return PREFIX + "failed:" + _mac("basic-failed", username, password)


def unusable(username: str, password: str) -> bool:
    """No user name contains control characters, no password NUL (PostgreSQL cannot store them)."""
    if len(username) > 1024 or len(password) > 4096 or "\x00" in password:
        return True
    return any(ord(c) < 32 or ord(c) == 127 for c in username)


_flights: dict[str, list] = {}
_flights_guard = threading.Lock()


@contextmanager
def one_verification(key: str) -> Iterator[None]:
    """Requests verifying the same credential at once in this process go one at a time, so a
    client's burst of first requests costs one hash (and one counted attempt), not one each."""
    with _flights_guard:
        entry = _flights.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _flights_guard:
            entry[1] -= 1
            if entry[1] == 0:
                _flights.pop(key, None)


def before_verify(request, username: str, password: str) -> None:
    """Called before a credential is hashed: raises instead when hashing it is not worth it.

    The attempt is counted first, so clients queueing for the hash cannot exceed the limit.
    """
    if unusable(username, password):
        raise exceptions.AuthenticationFailed("Unauthorized")
    wait = count_attempt(client_address(request), username)
    if wait is not None:
        raise exceptions.Throttled(wait=wait)
    remembered = cache.get(_failure_key(username, password))
    if remembered is not None and hmac.compare_digest(remembered, _user_fingerprint(username)):
        raise exceptions.AuthenticationFailed("Unauthorized")


def failed(request, username: str, password: str) -> None:
    """Called when a hashed credential turned out wrong: remember it (never the password)."""
    cache.set(
        _failure_key(username, password),
        _user_fingerprint(username),
        settings.DELTAWEB_FAILED_LOGIN_MEMORY_SECONDS,
    )


_hash_slot = None


def _niced(function, *args):
    """Runs in a thread of gevent's pool, at the lowest CPU priority (Linux: per thread)."""
    from gevent.monkey import get_original

    try:
        os.setpriority(os.PRIO_PROCESS, get_original("threading", "get_native_id")(), 19)
    except (AttributeError, OSError):
        pass  # not Linux: the hash still runs beside the loop, at normal priority
    return function(*args)


def _off_loop(function, *args):
    """One hash at a time per worker, in a low-priority thread, while the loop serves others."""
    global _hash_slot
    import gevent
    from gevent.lock import BoundedSemaphore

    if _hash_slot is None:
        _hash_slot = BoundedSemaphore(1)
    with _hash_slot:
        return gevent.get_hub().threadpool.apply(_niced, (function, *args))


class PBKDF2OffLoopHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 (same algorithm name, same stored hashes), computed off
    gevent's event loop.

    Under gunicorn's gevent workers a hash computed in the request's greenlet
    would stop every other connection of that worker for its whole duration
    (a second here). ``hashlib.pbkdf2_hmac`` releases the GIL, so in a thread
    of gevent's pool it runs beside the loop instead, one at a time and at the
    lowest priority, so that guessing cannot take the CPU from served requests.
    Elsewhere (no gevent): unchanged.
    """

    def encode(self, password, salt, iterations=None):
        monkey = sys.modules.get("gevent.monkey")
        if monkey is not None and monkey.is_module_patched("threading"):
            return _off_loop(super().encode, password, salt, iterations)
        return super().encode(password, salt, iterations)
