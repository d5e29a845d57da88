"""The delta feed (images.feed): what changed in an account's catalog since a token."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from images import feed, operations, services, sync
from images.feed import BadToken, TokenExpired, changes, current_token
from images.models import Image, Operation, ProviderAccount
from tests.conftest import make_account

pytestmark = pytest.mark.django_db

FIELDS = ("external_id", "name")
EVERYTHING = Q()


def ids(result) -> list[tuple[str, bool]]:
    """(external_id, gone) of each row, in feed order."""
    return [(row[0], row[-1]) for row in result.rows]


def fresh(account: ProviderAccount) -> ProviderAccount:
    return ProviderAccount.objects.get(pk=account.pk)


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(operations, "_enqueue", lambda *args, **kwargs: None)


def test_no_token_lists_every_known_row_and_a_token_for_now(synced_account):
    result = changes(account=synced_account, token=None, q=EVERYTHING, fields=FIELDS)
    assert sorted(ids(result)) == [("img1", False), ("img2", False), ("img3", False)]
    assert result.more is False
    assert result.rows[0] == (result.rows[0][0], Image.objects.get(external_id=result.rows[0][0]).name, False)
    # nothing changed since: the token it gave lists nothing, and it is the current token
    again = changes(account=synced_account, token=result.token, q=EVERYTHING, fields=FIELDS)
    assert again.rows == [] and again.token == result.token == current_token(account=synced_account)


def test_the_token_of_a_loaded_account_costs_no_query(synced_account, django_assert_num_queries):
    account = fresh(synced_account)
    with django_assert_num_queries(0):
        token = feed.token_at(account=account)
    assert token == current_token(account=account)
    services.build_driver(account=account).destroy_image("img1")
    sync.catalog_sync(account=fresh(account))
    # the listing read after that account row showed at least its version
    assert ids(changes(account=account, token=token, q=EVERYTHING, fields=FIELDS)) == [("img1", True)]


def test_a_create_through_the_api_is_a_change(synced_account, api_user):
    token = current_token(account=synced_account)
    image, _op = operations.image_create(
        account=synced_account, user=api_user, instance_id="inst1", name="fresh-image", description=None
    )
    result = changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS)
    assert result.rows == [(image.external_id, "fresh-image", False)]
    assert result.token != token


def test_a_sync_change_and_a_sync_vanish_are_changes(synced_account):
    token = current_token(account=synced_account)
    driver = services.build_driver(account=synced_account)
    with driver.store.locked():
        obj = driver.store.get("images", "img3")
        obj["name"] = "renamed by the provider"
        driver.store.put("images", obj)
    driver.destroy_image("img2")

    sync.catalog_sync(account=synced_account)

    result = changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS)
    assert sorted(result.rows) == [("img2", "img2", True), ("img3", "renamed by the provider", False)]
    # an unchanged sync writes no change
    sync.catalog_sync(account=synced_account)
    assert changes(account=fresh(synced_account), token=result.token, q=EVERYTHING, fields=FIELDS).rows == []


def test_a_delete_is_a_change_with_the_row_gone(synced_account, api_user):
    token = current_token(account=synced_account)
    operations.image_delete(account=synced_account, user=api_user, external_id="img1")
    result = changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS)
    assert ids(result) == [("img1", True)]


def test_the_placeholder_of_a_create_without_ids_is_reported_gone_once_adopted(api_user):
    # given: an FGCP-like cloud answered a create with PENDING-<name>
    account = make_account(
        "cloud", users=[api_user], is_default=True, params={"profile": "fgcp", "create_delay": 0}
    )
    sync.catalog_sync(account=account)
    driver = services.build_driver(account=account)
    driver.instance_action("inst1", "stop")
    _image, op = operations.image_create(
        account=account, user=api_user, instance_id="inst1", name="later", description=None
    )
    token = current_token(account=account)
    # when: the worker makes the call and finds the image
    operations.image_create_run(op=operation_for(op.pk))
    operations.image_poll_run(op=operation_for(op.pk))
    op.refresh_from_db()
    # then: the real id is a change and the provisional id is gone
    result = changes(account=fresh(account), token=token, q=EVERYTHING, fields=FIELDS)
    assert op.external_id
    assert sorted(ids(result)) == sorted([(op.external_id, False), ("PENDING-later", True)])


def operation_for(pk: int) -> Operation:
    return Operation.objects.select_related("account", "image").get(pk=pk)


def test_a_token_older_than_the_purged_tombstones_has_expired(synced_account, settings):
    token = current_token(account=synced_account)
    services.build_driver(account=synced_account).destroy_image("img2")
    sync.catalog_sync(account=synced_account)
    mid = current_token(account=synced_account)  # taken after the vanish: still good after the purge
    Image.objects.filter(external_id="img2").update(missing_since=timezone.now() - timedelta(days=30))
    settings.DELTAWEB_VANISHED_RETENTION_SECONDS = 7 * 24 * 3600

    sync.catalog_sync(account=synced_account)  # purges img2

    assert not Image.objects.filter(external_id="img2").exists()
    with pytest.raises(TokenExpired, match="list the images again"):
        changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS)
    assert changes(account=fresh(synced_account), token=mid, q=EVERYTHING, fields=FIELDS).rows == []
    # a token cut inside the purged version may have missed a purged row too
    floor = fresh(synced_account).feed_floor
    with pytest.raises(TokenExpired):
        changes(
            account=fresh(synced_account),
            token=feed.encode_token(synced_account.pk, floor, 0),
            q=EVERYTHING,
            fields=FIELDS,
        )


@pytest.mark.parametrize(
    "token",
    ["", "not-a-token", "!!!!", "a" * 500, base64.urlsafe_b64encode(b"1:5").decode(), "\x00"],
)
def test_malformed_tokens_are_bad(synced_account, token):
    with pytest.raises(BadToken):
        changes(account=synced_account, token=token, q=EVERYTHING, fields=FIELDS)


def test_another_accounts_token_and_a_forged_one_are_bad(synced_account, api_user):
    other = make_account("other", users=[api_user])
    with pytest.raises(BadToken, match="another account"):
        changes(account=synced_account, token=current_token(account=other), q=EVERYTHING, fields=FIELDS)
    # the same position for this account, without the server's MAC
    raw = base64.urlsafe_b64decode(current_token(account=synced_account) + "==")
    forged = base64.urlsafe_b64encode(raw[:-8] + b"\x00" * 8).decode().rstrip("=")
    with pytest.raises(BadToken):
        changes(account=synced_account, token=forged, q=EVERYTHING, fields=FIELDS)


def test_a_token_from_the_future_has_expired(synced_account):
    # e.g. the database was restored from a backup: the client must list again
    with pytest.raises(TokenExpired):
        changes(
            account=synced_account,
            token=feed.encode_token(synced_account.pk, synced_account.catalog_version + 5),
            q=EVERYTHING,
            fields=FIELDS,
        )


def test_filters_combine_with_the_feed(synced_account):
    token = current_token(account=synced_account)
    driver = services.build_driver(account=synced_account)
    with driver.store.locked():
        for image_id in ("img1", "img3"):
            obj = driver.store.get("images", image_id)
            obj["description"] = "changed"
            driver.store.put("images", obj)
    sync.catalog_sync(account=synced_account)
    arch = Image.objects.get(external_id="img3").architecture
    result = changes(account=fresh(synced_account), token=token, q=Q(architecture=arch), fields=FIELDS)
    expected = sorted(
        eid for eid in ("img1", "img3") if Image.objects.get(external_id=eid).architecture == arch
    )
    assert sorted(r[0] for r in result.rows) == expected
    assert (
        changes(account=fresh(synced_account), token=token, q=Q(external_id="img2"), fields=FIELDS).rows == []
    )


def test_pages_cut_by_limit_continue_without_skipping_or_repeating(synced_account, api_user):
    # given: a token, then many changes in one version (a sync) and one in another (a delete)
    token = current_token(account=synced_account)
    driver = services.build_driver(account=synced_account)
    with driver.store.locked():
        for n in range(7):
            driver.store.put("images", {"id": f"bulk{n}", "name": f"bulk{n}", "owner_id": "mockuser"})
    sync.catalog_sync(account=synced_account)
    operations.image_delete(account=fresh(synced_account), user=api_user, external_id="img1")

    # when: read two rows at a time
    seen: list[tuple[str, bool]] = []
    for _ in range(20):
        page = changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS, limit=2)
        seen += ids(page)
        token = page.token
        if not page.more:
            break
        assert len(page.rows) == 2

    # then: every change once, in change order (the sync's rows, then the delete)
    assert seen == [(f"bulk{n}", False) for n in range(7)] + [("img1", True)]
    assert changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS).rows == []


def test_a_row_changed_again_between_pages_comes_again_later(synced_account, api_user):
    token = current_token(account=synced_account)
    driver = services.build_driver(account=synced_account)
    with driver.store.locked():
        for n in range(3):
            driver.store.put("images", {"id": f"bulk{n}", "name": f"bulk{n}", "owner_id": "mockuser"})
    sync.catalog_sync(account=synced_account)
    first = changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS, limit=1)
    assert ids(first) == [("bulk0", False)] and first.more
    operations.image_delete(account=fresh(synced_account), user=api_user, external_id="bulk0")
    rest = changes(account=fresh(synced_account), token=first.token, q=EVERYTHING, fields=FIELDS)
    assert ids(rest) == [("bulk1", False), ("bulk2", False), ("bulk0", True)]


def test_a_limit_below_one_is_refused(synced_account):
    with pytest.raises(ValueError):
        changes(account=synced_account, token=None, q=EVERYTHING, fields=FIELDS, limit=0)


@pytest.mark.django_db(transaction=True)
def test_tokens_survive_a_restart(synced_account):
    # given: a token handed out, then a change
    token = current_token(account=synced_account)
    services.build_driver(account=synced_account).destroy_image("img3")
    sync.catalog_sync(account=synced_account)
    # when: a new process (a new connection, nothing cached in memory) reads the feed
    connection.close()
    services._drivers.clear()
    result = changes(account=fresh(synced_account), token=token, q=EVERYTHING, fields=FIELDS)
    # then: the token means the same position (it is only database state, signed)
    assert ids(result) == [("img3", True)]


def test_the_feed_costs_two_queries(synced_account, django_assert_num_queries):
    token = current_token(account=synced_account)
    with django_assert_num_queries(2):
        changes(account=synced_account, token=token, q=EVERYTHING, fields=FIELDS, limit=50)
    with django_assert_num_queries(1):
        current_token(account=synced_account)


def test_change_positions_only_grow_under_the_bulk_sync_path(synced_account):
    """On PostgreSQL this is the set-based merge (one statement per batch)."""
    driver = services.build_driver(account=synced_account)
    token = current_token(account=synced_account)
    positions: list[tuple[int, int]] = []
    tokens = [feed.decode_token(token, account_id=synced_account.pk)]
    for round_ in range(4):
        with driver.store.locked():
            for n in range(40):
                driver.store.put(
                    "images", {"id": f"bulk{n}", "name": f"bulk{n}-{round_ if n % 2 else 0}", "owner_id": "x"}
                )
        sync.catalog_sync(account=synced_account)
        result = changes(
            account=fresh(synced_account), token=token, q=EVERYTHING, fields=("pk", "changed_version")
        )
        positions += [(row[1], row[0]) for row in result.rows]
        assert result.rows, "every round changes rows"
        token = result.token
        tokens.append(feed.decode_token(token, account_id=synced_account.pk))
    # then: within a read and across reads, each change comes after the last one seen
    assert positions == sorted(positions)
    assert [t[0] for t in tokens] == sorted({t[0] for t in tokens})
    # a round that rewrote only half the rows reports only those
    assert len(positions) == 40 + 3 * 20
