"""Which driver, provider and account a request is about.

The warm authenticated read costs one database round trip: the account the
request means and the user's row (to confirm remembered credentials) come
back from one query.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection

from images.api import auth
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


@functools.cache
def _user_and_account_sql() -> str:
    """The user row and, beside it, the account ``account_resolve`` would pick
    (then, on PostgreSQL, the version: ``Fetched``). The placeholders are named:
    enabled, driver and provider (NULL: any), user."""
    user_meta, account_meta = get_user_model()._meta, ProviderAccount._meta
    users = ProviderAccount.users.through._meta.db_table
    groups = ProviderAccount.groups.through._meta.db_table
    user_groups = get_user_model().groups.through._meta.db_table
    user_columns = [f.column for f in user_meta.concrete_fields]
    account_columns = [f.column for f in account_meta.concrete_fields]
    # The user's columns under names of their own (both tables have an `id`).
    select = ", ".join([*(f"a.{c}" for c in account_columns), *(f"u.{c} AS dw_u_{c}" for c in user_columns)])
    if connection.vendor == "postgresql":
        select += ", " + ", ".join(_VERSION_COLUMNS)
    pick = (
        f"SELECT b.id FROM {account_meta.db_table} b WHERE b.enabled = {{enabled}}"
        f" AND (u.is_superuser"
        f" OR EXISTS (SELECT 1 FROM {users} t WHERE t.provideraccount_id = b.id AND t.user_id = u.id)"
        f" OR EXISTS (SELECT 1 FROM {groups} g JOIN {user_groups} ug ON ug.group_id = g.group_id"
        f" WHERE g.provideraccount_id = b.id AND ug.user_id = u.id))"
        " AND ({driver} IS NULL OR b.driver = {driver}) AND ({provider} IS NULL OR b.provider = {provider})"
        " ORDER BY b.is_default DESC, b.id LIMIT 1"
    )
    tail = (
        f" FROM {user_meta.db_table} u LEFT JOIN {account_meta.db_table} a ON a.id = ({pick})"
        f" WHERE u.{user_meta.pk.column} = {{user}}"
    )
    if connection.vendor == "postgresql":
        # Bound on the server, so a NULL's type must be spelled out.
        marks = {"enabled": "true", "driver": "%(d)s::varchar", "provider": "%(p)s::varchar", "user": "%(u)s"}
    else:
        marks = {"enabled": "%s", "driver": "%s", "provider": "%s", "user": "%s"}
    return f"SELECT {select}{tail}".format(**marks)


def _params(driver: str | None, provider: str | None, user_pk) -> dict | list:
    if connection.vendor == "postgresql":
        return {"d": driver, "p": provider, "u": user_pk}
    return [True, driver, driver, provider, provider, user_pk]


# Each row's xmin and ctid: every update writes a new tuple (another location, and
# another transaction unless it is the same one), so they change with any change.
_VERSION_COLUMNS = ("u.xmin", "u.ctid", "a.id AS dw_a_id", "a.xmin AS dw_a_xmin", "a.ctid AS dw_a_ctid")


class Fetched:
    """The one query's answer: its version at once, the row parsed only when asked.

    The version is what a recorded answer depends on (replay.py): on PostgreSQL
    the rows' ``_VERSION_COLUMNS`` read raw from the result (a repeated read
    parses nothing else), elsewhere the whole row."""

    def __init__(self, selection: tuple, cursor) -> None:
        self.selection = selection  # (driver, provider, user pk)
        self._cursor = cursor
        self._row: tuple | None = None
        if connection.vendor == "postgresql":
            result = cursor.pgresult
            found = result.ntuples > 0
            last = result.nfields
            versions = range(last - len(_VERSION_COLUMNS), last)
            self.version = tuple(result.get_value(0, i) for i in versions) if found else None
        else:
            self._row = cursor.fetchone()
            self.version = self._row

    def row(self) -> tuple | None:
        if self._row is None and self.version is not None:
            self._row = self._cursor.fetchone()
        return self._row


@dataclass(frozen=True)
class _Columns:
    """One model's columns in a row of the query, with the converters the ORM would apply."""

    model: type
    attnames: list[str]
    converters: list[tuple[int, object, list]]
    pk_index: int

    @classmethod
    def of(cls, model) -> _Columns:
        fields = model._meta.concrete_fields
        converters = []
        for index, field in enumerate(fields):
            col = field.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                converters.append((index, col, found))
        pk_index = [f.attname for f in fields].index(model._meta.pk.attname)
        return cls(model, [f.attname for f in fields], converters, pk_index)

    def model_from(self, values) -> object:
        values = list(values)
        for index, col, functions in self.converters:
            for convert in functions:
                values[index] = convert(values[index], col, connection)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values)


@functools.cache
def converted_rows() -> tuple[_Columns, _Columns]:
    """(account, user) columns: a plain cursor row becomes model instances
    without a RawQuerySet's per-query introspection."""
    return _Columns.of(ProviderAccount), _Columns.of(get_user_model())


def _no_account(driver: str | None, provider: str | None) -> NoAccount:
    wanted = " ".join(
        part for part in (driver and f"driver '{driver}'", provider and f"provider '{provider}'") if part
    )
    return NoAccount(f"No provider account{' for ' + wanted if wanted else ''} is available to this user")


def fetch(driver: str | None, provider: str | None, user_pk) -> Fetched:
    """The one query: the account's columns, then the user's (then the version)."""
    sql = _user_and_account_sql()
    if connection.vendor == "postgresql":
        # Prepared by the server: planning it costs several times its execution.
        cursor = connection.prepared_execute(sql, {"d": driver, "p": provider, "u": user_pk})
        return Fetched((driver, provider, user_pk), cursor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [True, driver, driver, provider, provider, user_pk])
        return Fetched((driver, provider, user_pk), cursor)


def resolve(user, driver: str | None, provider: str | None, fetched: Fetched | None = None):
    """(user, account) for the request: one query, which also confirms a
    remembered user's row. Raises NoAccount when the user may use none.
    ``fetched``: what this request has already read (a replay's failed check)."""
    if not auth.is_unconfirmed(user):
        return user, account_resolve(user=user, driver=driver, provider=provider)
    if driver is not None and driver not in DRIVERS:
        raise UnknownDriver(driver)
    if fetched is None or fetched.selection != (driver, provider, user.pk):
        fetched = fetch(driver, provider, user.pk)
    values = fetched.row()
    row = account = None
    if values is not None:
        accounts, users = converted_rows()
        split = len(accounts.attnames)
        row = users.model_from(values[split : split + len(users.attnames)])
        if values[accounts.pk_index] is not None:
            account = accounts.model_from(values[:split])
            # What a recorded answer depends on: replayed only while it is unchanged (replay.py).
            account.dw_version = fetched.version
    confirmed = auth.confirm(user, row)
    if account is None:
        raise _no_account(driver, provider)
    return confirmed, account


def build_context(request, *, needs_account: bool) -> ApiContext:
    """Resolve the request's account (when the view needs one) or just its driver.

    Views that describe a driver (``/api``, hardware profiles, instance
    states) need no account; an authenticated user (``?force_auth``) without
    a driver header still gets the driver of their default account there.
    """
    django_request = getattr(request, "_request", request)
    driver, provider = getattr(django_request, "dc_selection", (None, None))
    urls = Urls(base_url(django_request))
    user = getattr(request, "user", None)
    if needs_account:
        request.user, account = resolve(user, driver, provider, getattr(django_request, "dc_fetched", None))
        django_request.dc_user = request.user
        return ApiContext(account.driver, account.provider or None, account, urls)
    if driver is None and user is not None and user.is_authenticated:
        try:
            request.user, account = resolve(user, None, provider)
        except NoAccount:
            request.user = auth.confirm_alone(user)
        else:
            return ApiContext(account.driver, provider or account.provider or None, account, urls)
    elif user is not None:
        request.user = auth.confirm_alone(user)
    else:
        # Nothing but the request decides this answer: it may be replayed as it is (replay.py).
        django_request.dc_request_only = True
    driver = driver or settings.DELTAWEB_DEFAULT_DRIVER
    if driver not in DRIVERS:
        raise UnknownDriver(driver)
    return ApiContext(driver, provider, None, urls)
