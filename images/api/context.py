"""Which driver, provider and account a request is about.

The warm authenticated read costs one database round trip: the account the
request means and the user's row (to confirm remembered credentials) come
back from one query.
"""

from __future__ import annotations

import functools
import weakref
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
def _user_and_account_sql() -> tuple[str, list[str], list[str]]:
    """(SQL, user columns, user attnames): the user row and, beside it, the account
    ``account_resolve`` would pick. The placeholders are named: enabled, driver and
    provider (NULL: any), user."""
    user_meta, account_meta = get_user_model()._meta, ProviderAccount._meta
    users = ProviderAccount.users.through._meta.db_table
    groups = ProviderAccount.groups.through._meta.db_table
    user_groups = get_user_model().groups.through._meta.db_table
    user_columns = [f.column for f in user_meta.concrete_fields]
    user_attnames = [f.attname for f in user_meta.concrete_fields]
    account_columns = [f.column for f in account_meta.concrete_fields]
    # The user's columns under names of their own (both tables have an `id`).
    select = ", ".join([*(f"a.{c}" for c in account_columns), *(f"u.{c} AS dw_u_{c}" for c in user_columns)])
    pick = (
        f"SELECT b.id FROM {account_meta.db_table} b WHERE b.enabled = {{enabled}}"
        f" AND (u.is_superuser"
        f" OR EXISTS (SELECT 1 FROM {users} t WHERE t.provideraccount_id = b.id AND t.user_id = u.id)"
        f" OR EXISTS (SELECT 1 FROM {groups} g JOIN {user_groups} ug ON ug.group_id = g.group_id"
        f" WHERE g.provideraccount_id = b.id AND ug.user_id = u.id))"
        " AND ({driver} IS NULL OR b.driver = {driver}) AND ({provider} IS NULL OR b.provider = {provider})"
        " ORDER BY b.is_default DESC, b.id LIMIT 1"
    )
    sql = (
        f"SELECT {select} FROM {user_meta.db_table} u"
        f" LEFT JOIN {account_meta.db_table} a ON a.id = ({pick})"
        f" WHERE u.{user_meta.pk.column} = {{user}}"
    )
    return sql, user_columns, user_attnames


# Raw connections the statement is prepared on: planning it costs several
# times its execution, and this query runs on every authenticated read.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
PREPARED = "deltaweb_user_and_account"


def statement(driver: str | None, provider: str | None, user_pk) -> tuple[str, list]:
    """The SQL and its parameters: EXECUTE of a prepared statement on
    PostgreSQL, the query itself elsewhere."""
    template = _user_and_account_sql()[0]
    if connection.vendor != "postgresql":
        sql = template.format(enabled="%s", driver="%s", provider="%s", user="%s")
        return sql, [True, driver, driver, provider, provider, user_pk]
    connection.ensure_connection()
    raw = connection.connection
    if raw not in _prepared:
        sql = template.format(enabled="$1", driver="$2", provider="$3", user="$4")
        with connection.cursor() as cursor:
            cursor.execute(f"PREPARE {PREPARED} (boolean, varchar, varchar, integer) AS {sql}")
        _prepared[raw] = True
    return f"EXECUTE {PREPARED} (%s, %s, %s, %s)", [True, driver, provider, user_pk]


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


def fetch(driver: str | None, provider: str | None, user_pk) -> tuple | None:
    """The row of the one query: the account's columns, then the user's."""
    sql, params = statement(driver, provider, user_pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def resolve(user, driver: str | None, provider: str | None, fetched: tuple | None = None):
    """(user, account) for the request: one query, which also confirms a
    remembered user's row. Raises NoAccount when the user may use none.
    ``fetched``: (driver, provider, user pk, row) this request already read."""
    if not auth.is_unconfirmed(user):
        return user, account_resolve(user=user, driver=driver, provider=provider)
    if driver is not None and driver not in DRIVERS:
        raise UnknownDriver(driver)
    if fetched is not None and fetched[:3] == (driver, provider, user.pk):
        values = fetched[3]
    else:
        values = fetch(driver, provider, user.pk)
    row = account = None
    if values is not None:
        accounts, users = converted_rows()
        split = len(accounts.attnames)
        row = users.model_from(values[split:])
        if values[accounts.pk_index] is not None:
            account = accounts.model_from(values[:split])
            # The row as read: a recorded answer is replayed only while it is unchanged (replay.py).
            account.dw_row = tuple(values[:split])
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
    driver = driver or settings.DELTAWEB_DEFAULT_DRIVER
    if driver not in DRIVERS:
        raise UnknownDriver(driver)
    return ApiContext(driver, provider, None, urls)
