"""Every changelist and change page of the console costs a fixed number of queries,
whatever the number of accounts, images, operations, runs and grants (no N+1).

bench/admin.py times the same pages at 100,000 images on PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from images.models import Image, Instance, Operation, ProviderAccount, SyncRun
from tests.conftest import make_account

pytestmark = pytest.mark.django_db

PAGES = {
    "index": "/admin/",
    "accounts": "/admin/images/provideraccount/",
    "accounts failing": "/admin/images/provideraccount/?health=failing",
    "account": "/admin/images/provideraccount/{account}/change/",
    "account delete": "/admin/images/provideraccount/{account}/delete/",
    "account history": "/admin/images/provideraccount/{account}/history/",
    "images": "/admin/images/image/",
    "images of an account": "/admin/images/image/?account__id__exact={account}&missing_since__isempty=1",
    "images search": "/admin/images/image/?q=gen-0",
    "images by year": "/admin/images/image/?first_seen__year=2026",
    "image": "/admin/images/image/{image}/change/",
    "image delete": "/admin/images/image/{image}/delete/",
    "instances": "/admin/images/instance/",
    "instance": "/admin/images/instance/{instance}/change/",
    "operations": "/admin/images/operation/",
    "operations running": "/admin/images/operation/?status=active",
    "operation": "/admin/images/operation/{operation}/change/",
    "sync runs": "/admin/images/syncrun/",
    "sync run": "/admin/images/syncrun/{run}/change/",
    "users": "/admin/auth/user/",
    "user": "/admin/auth/user/{user}/change/",
    "groups": "/admin/auth/group/",
    "group": "/admin/auth/group/{group}/change/",
}
# Session, user, and the page's own reads; none of them per row.
MAX_QUERIES = 16


class Fleet:
    """Accounts with images, instances, operations, runs, users and grants; ``grow`` adds more."""

    def __init__(self) -> None:
        self.size = 0
        self.group = Group.objects.create(name="ops")
        self.first: dict[str, int] = {}

    def grow(self, accounts: int, per_account: int) -> None:
        now = timezone.now()
        users = get_user_model()
        for _ in range(accounts):
            self.size += 1
            n = self.size
            user = users.objects.create_user(f"user{n}", password="pw")
            user.groups.add(self.group)
            account = make_account(f"acct{n}", provider=f"p{n}", users=[user])
            account.groups.add(self.group)
            ProviderAccount.objects.filter(pk=account.pk).update(
                last_sync_succeeded_at=now, last_sync_error="Unavailable: x" if n % 2 else ""
            )
            images = Image.objects.bulk_create(
                Image(
                    account=account,
                    external_id=f"gen-{n}-{i:04d}",
                    name=f"image {i}",
                    status="AVAILABLE",
                    first_seen=now - timedelta(days=i),
                    last_seen=now,
                    deleted_at=now if i == per_account - 1 else None,
                )
                for i in range(per_account)
            )
            Instance.objects.bulk_create(
                Instance(account=account, external_id=f"inst-{n}-{i}", image_id=f"gen-{n}-{i:04d}")
                for i in range(per_account)
            )
            ops = Operation.objects.bulk_create(
                Operation(
                    account=account,
                    image=images[i % len(images)],
                    kind=Operation.Kind.DELETE_IMAGE,
                    status=[Operation.Status.FAILED, Operation.Status.SUCCEEDED, Operation.Status.POLLING][
                        i % 3
                    ],
                    requested_by=user,
                    external_id=images[i % len(images)].external_id,
                    deadline=now,
                    finished_at=now,
                )
                for i in range(per_account)
            )
            Operation.objects.filter(pk__in=[o.pk for o in ops[1:]]).update(retry_of=ops[0])
            runs = SyncRun.objects.bulk_create(
                SyncRun(
                    account=account,
                    started_at=now - timedelta(minutes=i),
                    finished_at=now,
                    duration=1.5,
                    images_listed=per_account,
                    outcome=SyncRun.Outcome.SUCCEEDED if i % 4 else SyncRun.Outcome.FAILED,
                )
                for i in range(per_account)
            )
            if not self.first:
                self.first = {
                    "account": account.pk,
                    "image": images[0].pk,
                    "instance": Instance.objects.filter(account=account).first().pk,
                    "operation": ops[0].pk,
                    "run": runs[0].pk,
                    "user": user.pk,
                    "group": self.group.pk,
                }


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("admin", password="admin-pw-123"))
    return client


def queries(client, path: str) -> int:
    """Queries of a warm request (per-process caches such as content types filled)."""
    client.get(path)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(ctx.captured_queries)


def test_every_console_page_costs_the_same_queries_at_any_size(admin_client):
    fleet = Fleet()
    fleet.grow(accounts=2, per_account=4)
    paths = {name: path.format(**fleet.first) for name, path in PAGES.items()}
    small = {name: queries(admin_client, path) for name, path in paths.items()}
    fleet.grow(accounts=6, per_account=40)
    large = {name: queries(admin_client, path) for name, path in paths.items()}
    assert large == small
    assert {name: n for name, n in large.items() if n > MAX_QUERIES} == {}


def test_the_account_delete_confirmation_counts_instead_of_collecting(admin_client):
    fleet = Fleet()
    fleet.grow(accounts=1, per_account=300)
    path = PAGES["account delete"].format(**fleet.first)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get(path).content.decode()
    sql = " ".join(q["sql"] for q in ctx.captured_queries)
    assert "gen-1-0001" not in page and "300 cached images" in page
    assert sql.count("COUNT(") >= 4 and 'FROM "images_image"' in sql
    assert not any(q["sql"].lstrip().startswith('SELECT "images_image"."id"') for q in ctx.captured_queries)


@pytest.mark.parametrize("name", ["images", "operations", "sync runs", "instances"])
def test_changelists_never_count_the_whole_table_twice(admin_client, name):
    fleet = Fleet()
    fleet.grow(accounts=1, per_account=5)
    with CaptureQueriesContext(connection) as ctx:
        admin_client.get(PAGES[name])
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) <= 1, counts  # the paginator's; no "show full result count"


needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's statistics and indexes (CI runs it)"
)


@needs_postgresql
def test_an_unfiltered_big_list_shows_the_estimate_instead_of_counting(admin_client, monkeypatch):
    from images.admin import common

    monkeypatch.setattr(common, "ESTIMATE_ABOVE", 10)
    Fleet().grow(accounts=1, per_account=40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE images_image")
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'images_image'")
        estimate = cursor.fetchone()[0]
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get("/admin/images/image/")
    assert response.context["cl"].result_count == estimate == 40
    assert not [q for q in ctx.captured_queries if "COUNT(" in q["sql"]]
    # a filtered list counts exactly
    filtered = admin_client.get("/admin/images/image/?status__exact=AVAILABLE")
    assert filtered.context["cl"].result_count == 40


def test_the_date_drilldown_offers_the_range_between_first_and_last(admin_client):
    fleet = Fleet()
    fleet.grow(accounts=1, per_account=2)
    first = timezone.make_aware(timezone.datetime(2025, 11, 3, 12))
    Image.objects.filter(external_id="gen-1-0000").update(first_seen=first)
    Image.objects.filter(external_id="gen-1-0001").update(first_seen=first.replace(year=2026, month=2))
    page = admin_client.get("/admin/images/image/").content.decode()
    assert "first_seen__year=2025" in page and "first_seen__year=2026" in page
    year = admin_client.get("/admin/images/image/?first_seen__year=2026").content.decode()
    assert "first_seen__month=2" in year and "first_seen__month=1&" not in year
    assert "February 2026" in year
    month = admin_client.get(
        "/admin/images/image/?first_seen__year=2025&first_seen__month=11"
    ).content.decode()
    assert "first_seen__day=3" in month and "November 3" in month
    assert "first_seen__year" not in admin_client.get("/admin/images/image/?q=gen").content.decode()


@needs_postgresql
def test_visible_counts_and_the_owner_filter_read_one_partial_index():
    from images.console import VISIBLE_IMAGES

    account = make_account("counted")
    visible = Image.objects.filter(account=account, **VISIBLE_IMAGES)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plans = []
        for qs in (visible.values("account").annotate(n=Count("*")), visible.filter(owner_id="self")):
            sql, params = qs.query.sql_with_params()
            cursor.execute(f"EXPLAIN {sql}", params)
            plans.append(" ".join(r[0] for r in cursor.fetchall()))
    assert "Index Only Scan using image_visible_owner" in plans[0]
    assert "image_visible_owner" in plans[1]
