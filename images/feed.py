"""The delta feed: what changed in an account's catalog since a token.

Every write that changes image rows does so under the account's row lock
and stamps the rows it changes with the account's next ``catalog_version``
in the same transaction (sync's merge, ``services.catalog_touch`` for API
writes and lookups). Versions are therefore committed in order, all rows
of one version at once, and a version stays in the database across
restarts. The change sequence of a row is ``(changed_version, id)``: one
sync may change many rows under one version, and the id orders them.

A token says "the client has seen every change up to here": either a whole
version (``(version, None)``) or, when a page was cut by ``limit``, a row
of it (``(version, id)``). Vanished and deleted rows stay as tombstones
until sync purges them after the retention; the purge raises the account's
``feed_floor`` to the newest version it forgot, so a token below the floor
may have missed a row that no longer exists: ``TokenExpired``.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from typing import NamedTuple

from django.conf import settings
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.expressions import RawSQL
from django.utils.crypto import salted_hmac

from images.models import Image, ProviderAccount

_SALT = "deltaweb.images.feed"
_MAC_BYTES = 8
_GONE = "_feed_gone"
_AFTER_SQL = f"({Image._meta.db_table}.changed_version, {Image._meta.db_table}.id) > (%s, %s)"


class BadToken(ValueError):
    """Not a token this server issued for this account (malformed, forged, another account's)."""


class TokenExpired(Exception):
    """The changes since the token are no longer all known: list the collection again."""


class Changes(NamedTuple):
    # values_list(*fields, gone) of the changed images, in change order
    rows: list[tuple]
    # where the next call continues
    token: str
    # True when ``limit`` cut the list; ``token`` then points at the last row returned
    more: bool


def _mac(payload: bytes, secret: str) -> bytes:
    return salted_hmac(_SALT, payload, secret=secret, algorithm="sha256").digest()[:_MAC_BYTES]


def encode_token(account_id: int, version: int, row_id: int | None = None) -> str:
    """An opaque, account-bound token (base64url of the position and its MAC)."""
    payload = f"{account_id}:{version}" + (f":{row_id}" if row_id is not None else "")
    raw = payload.encode() + _mac(payload.encode(), settings.SECRET_KEY)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, *, account_id: int) -> tuple[int, int | None]:
    """The (version, row id) a token points at; ``BadToken`` unless this account's."""
    if not isinstance(token, str) or not 0 < len(token) <= 128:
        raise BadToken("The change token is malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        raise BadToken("The change token is malformed") from None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if len(raw) <= _MAC_BYTES or not any(hmac.compare_digest(mac, _mac(payload, s)) for s in secrets):
        raise BadToken("The change token is malformed or was not issued by this server")
    parts = payload.decode("ascii", "replace").split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise BadToken("The change token is malformed") from None
    if len(numbers) not in (2, 3) or numbers[0] != account_id:
        raise BadToken("The change token belongs to another account")
    return numbers[1], (numbers[2] if len(numbers) == 3 else None)


def current_token(*, account: ProviderAccount) -> str:
    """A token for "now": changes after it are those written from here on."""
    version = ProviderAccount.objects.filter(pk=account.pk).values_list("catalog_version", flat=True).get()
    return encode_token(account.pk, version)


def token_at(*, account: ProviderAccount) -> str:
    """The token for the catalog version ``account`` was loaded with; no query.

    For a full listing read after the account row (as every request loads
    it first): the listing shows at least that version, so nothing after the
    token is missed, at worst a change is reported again.
    """
    return encode_token(account.pk, account.catalog_version)


def changes(
    *, account: ProviderAccount, token: str | None, q: Q, fields: Sequence[str], limit: int | None = None
) -> Changes:
    """The account's images changed after ``token`` (None: every row it still knows).

    Each row is ``values_list(*fields, gone)``; ``gone`` is True for a vanished
    or deleted image. ``q`` filters the rows (filters combine with the feed).
    Two queries: the account's version, then the rows changed up to it.
    """
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    position = decode_token(token, account_id=account.pk) if token is not None else None
    version, floor = (
        ProviderAccount.objects.filter(pk=account.pk).values_list("catalog_version", "feed_floor").get()
    )
    if position is not None:
        since, after_id = position
        # Purged rows had versions up to the floor: a token inside the floor's
        # version (cut by a limit) may have missed some of them too.
        if since < floor or (since == floor and after_id is not None):
            raise TokenExpired(
                "The change token is older than the changes this server keeps; list the images again"
            )
        if since > version:
            raise TokenExpired("The change token is newer than the catalog; list the images again")
    # Every row of a version is committed with the version itself: reading the
    # version first and no row past it never skips a row committed meanwhile.
    rows = Image.objects.filter(q, account_id=account.pk, changed_version__lte=version)
    if position is not None:
        since, after_id = position
        if after_id is None:
            rows = rows.filter(changed_version__gt=since)
        else:
            # A row comparison, so the index bounds the scan at the position
            # (an OR of the two cases would scan the version from its start).
            rows = rows.filter(RawSQL(_AFTER_SQL, (since, after_id), output_field=BooleanField()))
    gone = ExpressionWrapper(
        Q(missing_since__isnull=False) | Q(deleted_at__isnull=False), output_field=BooleanField()
    )
    rows = rows.annotate(**{_GONE: gone}).order_by("changed_version", "pk")
    rows = rows.values_list(*fields, _GONE, "changed_version", "pk")
    if limit is not None:
        found = list(rows[: limit + 1])
        more = len(found) > limit
        found = found[:limit]
    else:
        found, more = list(rows), False
    if more:
        token_out = encode_token(account.pk, found[-1][-2], found[-1][-1])
    else:
        token_out = encode_token(account.pk, version)
    return Changes(rows=[tuple(r[:-2]) for r in found], token=token_out, more=more)
