"""The console's safe actions, health at a glance, cross-links and grants (Django test client).

tests/browser drives the same in Chromium against gunicorn and a real worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from images import console, operations, services, sync
from images.admin import catalog
from images.console import Health
from images.models import Image, Operation, ProviderAccount, SyncRun
from providers.exceptions import ProviderError
from tests.conftest import basic, make_account
from tests.images.test_operations import drive

pytestmark = pytest.mark.django_db
OP = Operation.Status
ACCOUNTS = "/admin/images/provideraccount/"
OPERATIONS = "/admin/images/operation/"


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("admin", password="admin-pw-123")


@pytest.fixture
def admin_client(client, admin_user, synced_account):
    client.force_login(admin_user)
    return client


def history(obj) -> list[tuple[str, str]]:
    entries = LogEntry.objects.filter(object_id=str(obj.pk)).order_by("pk")
    return [(e.user.username, e.get_change_message()) for e in entries]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# -- synced rows: no add, no edit; operations never deleted ----------------------------------


@pytest.mark.parametrize("model", ["image", "instance", "operation", "syncrun"])
def test_synced_models_have_no_add_page(admin_client, model):
    assert admin_client.get(f"/admin/images/{model}/add/").status_code == 403
    assert admin_client.post(f"/admin/images/{model}/add/", {}).status_code == 403
    changelist = admin_client.get(f"/admin/images/{model}/").content.decode()
    assert f"/admin/images/{model}/add/" not in changelist


def test_operations_cannot_be_deleted(admin_client, synced_account):
    op = Operation.objects.create(
        account=synced_account, kind=Operation.Kind.DELETE_IMAGE, status=OP.FAILED, deadline=timezone.now()
    )
    assert admin_client.get(f"{OPERATIONS}{op.pk}/delete/").status_code == 403
    assert admin_client.post(f"{OPERATIONS}{op.pk}/delete/", {"post": "yes"}).status_code == 403
    page = admin_client.get(OPERATIONS).content.decode()
    assert 'value="delete_selected"' not in page and 'value="retry"' in page
    assert Operation.objects.filter(pk=op.pk).exists()


# -- deleting an image: the API's path ----------------------------------------------------------


def test_image_delete_button_goes_through_the_api_path(
    admin_client, admin_user, synced_account, sent, django_capture_on_commit_callbacks
):
    image = Image.objects.get(account=synced_account, external_id="img2")
    url = f"/admin/images/image/{image.pk}/delete/"
    confirm = admin_client.get(url).content.decode()
    assert "deleted <strong>at its provider</strong>" in confirm
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"}, follow=True)
    # a tombstone and an operation, as DELETE /api/images/img2 makes, requested by the operator
    op = Operation.objects.get()
    assert (op.kind, op.requested_by, op.external_id) == (Operation.Kind.DELETE_IMAGE, admin_user, "img2")
    assert response.redirect_chain[-1][0] == f"{OPERATIONS}{op.pk}/change/"
    assert any("Image img2 is hidden from the API" in m for m in messages_of(response))
    assert Image.objects.get(pk=image.pk).deleted_at is not None
    assert sent == [("image_delete_task", (op.pk,))]
    assert history(image) == [("admin", f"Delete at the provider requested (operation {op.pk})")]
    # the worker's attempt deletes it at the provider
    assert drive(op.pk).status == OP.SUCCEEDED
    assert services.build_driver(account=synced_account).get_image("img2") is None
    # a tombstoned image cannot be deleted twice
    assert admin_client.get(url).status_code == 403


def test_image_delete_refusal_is_shown_to_the_operator(admin_client, synced_account, sent):
    # a create still running at a provider that gives no id: nothing to delete yet
    image = Image.objects.create(account=synced_account, external_id="PENDING-nightly", name="nightly")
    Operation.objects.create(
        account=synced_account,
        image=image,
        kind=Operation.Kind.CREATE_IMAGE,
        provisional_id="PENDING-nightly",
        status=OP.QUEUED,
        deadline=timezone.now() + timedelta(hours=1),
    )
    response = admin_client.post(f"/admin/images/image/{image.pk}/delete/", {"post": "yes"}, follow=True)
    assert any(
        "Image PENDING-nightly was not deleted: Image PENDING-nightly is still being created" in m
        for m in messages_of(response)
    )
    assert Image.objects.get(pk=image.pk).deleted_at is None and sent == []
    assert "Delete at the provider refused" in history(image)[0][1]


def test_bulk_delete_confirms_then_deletes_each_at_the_provider(
    admin_client, synced_account, sent, django_capture_on_commit_callbacks
):
    ids = list(Image.objects.filter(external_id__in=["img1", "img2"]).values_list("pk", flat=True))
    data = {"action": "delete_at_provider", "_selected_action": ids}
    confirm = admin_client.post("/admin/images/image/", data)
    assert confirm.status_code == 200 and "Yes, delete at the provider" in confirm.content.decode()
    assert Operation.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post("/admin/images/image/", {**data, "post": "yes"}, follow=True)
    assert any("2 deletion(s) requested" in m for m in messages_of(done))
    assert sorted(Operation.objects.values_list("external_id", flat=True)) == ["img1", "img2"]
    assert 'value="delete_selected"' not in admin_client.get("/admin/images/image/").content.decode()


def test_bulk_delete_is_bounded(admin_client, synced_account, sent, monkeypatch):
    monkeypatch.setattr(catalog, "BULK_DELETE_LIMIT", 2)
    data = {"action": "delete_at_provider", "select_across": "1", "index": "0", "_selected_action": ["1"]}
    response = admin_client.post("/admin/images/image/", {**data, "post": "yes"}, follow=True)
    assert any("Select at most 2 images" in m for m in messages_of(response))
    assert Operation.objects.count() == 0


# -- Sync now ----------------------------------------------------------------------------------


def test_sync_now_button_queues_and_is_recorded(
    admin_client, synced_account, sent, django_capture_on_commit_callbacks
):
    url = f"{ACCOUNTS}{synced_account.pk}/sync/"
    assert admin_client.get(url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, follow=True)
    assert any("Sync of mock queued." in m for m in messages_of(response))
    assert sent == [("catalog_sync_task", (synced_account.pk,))]
    with django_capture_on_commit_callbacks(execute=True):
        again = admin_client.post(url, follow=True)
    assert any("already queued or running" in m for m in messages_of(again))
    assert len(sent) == 1
    assert history(synced_account) == [
        ("admin", "Sync now: queued"),
        ("admin", "Sync now: joined the sync already queued or running"),
    ]


def test_sync_now_on_a_disabled_account_says_it_is_disabled(admin_client, synced_account, sent):
    ProviderAccount.objects.filter(pk=synced_account.pk).update(enabled=False)
    data = {"action": "sync_now", "_selected_action": [synced_account.pk]}
    for response in (
        admin_client.post(ACCOUNTS, data, follow=True),
        admin_client.post(f"{ACCOUNTS}{synced_account.pk}/sync/", follow=True),
    ):
        assert any("Account mock is disabled: enable it to sync." in m for m in messages_of(response))
    assert sent == []
    assert history(synced_account)[-1] == ("admin", "Sync now refused: the account is disabled")


# -- health ---------------------------------------------------------------------------------------


def fleet_in_every_state() -> dict[str, ProviderAccount]:
    now = timezone.now()
    accounts = {
        name: make_account(name, provider=name)
        for name in (
            "healthy",
            "new",
            "off",
            "busy",
            "queued",
            "failing",
            "flagged",
            "rejected",
            "api-rejected",
        )
    }
    updates = {
        "healthy": {"last_sync_succeeded_at": now},
        "off": {"enabled": False, "needs_attention": True},
        "busy": {"sync_lock_until": now + timedelta(minutes=5), "last_sync_error": "Unavailable: x"},
        "queued": {"sync_requested_at": now - timedelta(seconds=5)},
        "failing": {"last_sync_succeeded_at": now, "last_sync_error": "Unavailable: listing failed"},
        "flagged": {"last_sync_succeeded_at": now, "needs_attention": True, "attention_reason": "3 failures"},
        "rejected": {"last_sync_error": "AuthFailure: Authentication Failure", "needs_attention": True},
        "api-rejected": {
            "last_sync_succeeded_at": now,
            "needs_attention": True,
            "attention_reason": "The provider rejected the stored credentials of account 'x': denied",
        },
    }
    for name, fields in updates.items():
        ProviderAccount.objects.filter(pk=accounts[name].pk).update(**fields)
    return {name: ProviderAccount.objects.get(pk=a.pk) for name, a in accounts.items()}


def test_health_states_and_their_filter_agree(db):
    accounts = fleet_in_every_state()
    expected = {
        "healthy": Health.HEALTHY,
        "new": Health.NEVER_SYNCED,
        "off": Health.DISABLED,
        "busy": Health.SYNCING,
        "queued": Health.SYNCING,
        "failing": Health.FAILING,
        "flagged": Health.FAILING,
        "rejected": Health.CREDENTIALS_REJECTED,
        "api-rejected": Health.CREDENTIALS_REJECTED,
    }
    assert {name: console.account_health(a) for name, a in accounts.items()} == expected
    for health in Health:
        filtered = set(
            ProviderAccount.objects.filter(console.health_filter(health)).values_list("name", flat=True)
        )
        assert filtered == {name for name, h in expected.items() if h == health}, health


def test_health_follows_real_syncs(db):
    broken = make_account("broken", provider="broken", params={"list_fault_after_pages": 0})
    rejected = make_account("rejected", provider="r", credentials={"username": "mockuser", "password": "no"})
    for account in (broken, rejected):
        with pytest.raises(ProviderError):
            sync.catalog_sync(account=account)
        account.refresh_from_db()
    assert console.account_health(broken) == Health.FAILING
    assert console.account_health(rejected) == Health.CREDENTIALS_REJECTED
    # once the operator fixes it, a successful sync makes it healthy again
    broken.params = {}
    broken.save(update_fields=["params"])
    sync.catalog_sync(account=broken)
    broken.refresh_from_db()
    assert console.account_health(broken) == Health.HEALTHY


def test_badges_mean_what_they_say(admin_client, db):
    fleet_in_every_state()
    page = admin_client.get(ACCOUNTS).content.decode()
    assert 'dw-badge--ok" title="">healthy</span>' in page
    assert "dw-badge--bad" in page and ">credentials rejected</span>" in page
    assert 'dw-badge--warn" title="3 failures">failing</span>' in page
    assert ">disabled</span>" in page and ">syncing</span>" in page
    only_failing = admin_client.get(f"{ACCOUNTS}?health=failing").context["cl"].result_list
    assert sorted(a.name for a in only_failing) == ["failing", "flagged"]


def test_the_index_shows_the_fleet_worst_first(admin_client, db):
    fleet_in_every_state()
    page = admin_client.get("/admin/").content.decode()
    overview = page[page.index('id="fleet-overview"') : page.index("app-auth")]
    names = [
        chunk.split('">', 1)[1].split("</a>", 1)[0]
        for chunk in overview.split('<th scope="row"><a href="')[1:]
    ]
    assert names[:2] == ["api-rejected", "rejected"] and names[-1] == "off"
    assert "mock" in names


# -- the account page -------------------------------------------------------------------------------


def test_account_page_health_first_counts_link_charts_and_history(
    admin_client, api_user, synced_account, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        operations.image_delete(account=synced_account, user=api_user, external_id="img3")
    sync.catalog_sync(account=synced_account)
    page = admin_client.get(f"{ACCOUNTS}{synced_account.pk}/change/").content.decode()
    assert page.index(">Health</h2>") < page.index(">History</h2>") < page.index(">Account</h2>")
    pk = synced_account.pk
    assert (
        f'/admin/images/image/?account__id__exact={pk}&amp;missing_since__isempty=1&amp;deleted_at__isempty=1">2<'
        in page
    )
    assert f'/admin/images/instance/?account__id__exact={pk}&amp;missing_since__isempty=1">4<' in page
    assert f'/admin/images/operation/?account__id__exact={pk}&amp;status=active">1<' in page
    assert f'/admin/images/operation/?account__id__exact={pk}&amp;status=FAILED">0<' in page
    assert page.count('<svg class="dw-chart"') == 3 and "<script" not in page.split('id="history"')[1][:5000]
    assert page.count('<tr class="dw-run-succeeded">') == 2
    assert 'id="sync-now"' in page
    # the counts' targets list exactly those rows
    images = admin_client.get(
        f"/admin/images/image/?account__id__exact={pk}&missing_since__isempty=1&deleted_at__isempty=1"
    )
    assert images.context["cl"].result_count == 2
    running = admin_client.get(f"{OPERATIONS}?account__id__exact={pk}&status=active")
    assert running.context["cl"].result_count == 1


def test_account_delete_confirmation_shows_counts_not_rows(admin_client, synced_account):
    now = timezone.now()
    Image.objects.bulk_create(
        Image(account=synced_account, external_id=f"gen-{i:05d}", first_seen=now, last_seen=now)
        for i in range(2000)
    )
    url = f"{ACCOUNTS}{synced_account.pk}/delete/"
    page = admin_client.get(url).content.decode()
    assert "2,003 cached images (not listed one by one" in page and "gen-00001" not in page
    assert len(page) < 40_000
    Operation.objects.create(
        account=synced_account,
        image=Image.objects.get(account=synced_account, external_id="img1"),
        kind=Operation.Kind.DELETE_IMAGE,
        status=OP.FAILED,
        deadline=now,
    )
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not ProviderAccount.objects.exists()
    assert not Image.objects.exists() and not Operation.objects.exists() and not SyncRun.objects.exists()


# -- operations: retry and cancel from the console ---------------------------------------------------


def test_retry_button_on_a_failed_operation(
    admin_client, admin_user, synced_account, sent, django_capture_on_commit_callbacks
):
    image = Image.objects.get(account=synced_account, external_id="img2")
    failed = Operation.objects.create(
        account=synced_account,
        image=image,
        kind=Operation.Kind.DELETE_IMAGE,
        external_id="img2",
        status=OP.FAILED,
        last_error="Unavailable: the cloud was down",
        deadline=timezone.now(),
        finished_at=timezone.now(),
    )
    page = admin_client.get(f"{OPERATIONS}{failed.pk}/change/").content.decode()
    assert 'id="retry-operation"' in page and 'id="cancel-operation"' not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"{OPERATIONS}{failed.pk}/retry/", follow=True)
    retry = Operation.objects.exclude(pk=failed.pk).get()
    assert response.redirect_chain[-1][0] == f"{OPERATIONS}{retry.pk}/change/"
    assert (retry.retry_of, retry.requested_by, retry.status) == (failed, admin_user, OP.QUEUED)
    assert sent == [("image_delete_task", (retry.pk,))]
    assert history(failed) == [("admin", f"Retried as operation {retry.pk}")]
    page = response.content.decode()
    assert f"operation {failed.pk}</a>" in page  # retry of
    assert drive(retry.pk).status == OP.SUCCEEDED


def test_cancel_button_on_a_running_operation(
    admin_client, api_user, sent, django_capture_on_commit_callbacks
):
    account = make_account(
        "ec2ish", users=[api_user], provider="slow", params={"profile": "ec2", "create_delay": 600}
    )
    sync.catalog_sync(account=account)
    with django_capture_on_commit_callbacks(execute=True):
        image, op = operations.image_create(
            account=account, user=api_user, instance_id="inst1", name="slow", description=None
        )
    page = admin_client.get(f"{OPERATIONS}{op.pk}/change/").content.decode()
    assert 'id="cancel-operation"' in page and 'id="retry-operation"' not in page
    response = admin_client.post(f"{OPERATIONS}{op.pk}/cancel/", follow=True)
    assert any(f"Operation {op.pk} cancelled" in m for m in messages_of(response))
    assert Operation.objects.get(pk=op.pk).status == OP.CANCELLED
    assert Image.objects.get(pk=image.pk).status == "FAILED"
    assert history(op) == [("admin", "Cancelled")]
    # a second cancel is refused with the reason
    again = admin_client.post(OPERATIONS, {"action": "cancel", "_selected_action": [op.pk]}, follow=True)
    assert any("only running ones can be cancelled" in m for m in messages_of(again))


def test_retry_action_refuses_what_is_not_failed(admin_client, synced_account):
    done = Operation.objects.create(
        account=synced_account, kind=Operation.Kind.DELETE_IMAGE, status=OP.SUCCEEDED, deadline=timezone.now()
    )
    response = admin_client.post(OPERATIONS, {"action": "retry", "_selected_action": [done.pk]}, follow=True)
    assert any("only failed or cancelled ones can be retried" in m for m in messages_of(response))
    assert Operation.objects.count() == 1


def test_operation_list_links_image_and_requester_and_filters(admin_client, api_user, synced_account, sent):
    op = operations.image_delete(account=synced_account, user=api_user, external_id="img1")
    page = admin_client.get(f"{OPERATIONS}?status=active&q=mock").content.decode()
    image = Image.objects.get(external_id="img1")
    assert f'href="/admin/images/image/{image.pk}/change/">img1</a>' in page
    assert f'href="/admin/auth/user/{api_user.pk}/change/">mockuser</a>' in page
    assert "dw-badge--busy" in page and f">{op.pk}</a>" in page
    assert admin_client.get(f"{OPERATIONS}?status=FAILED").context["cl"].result_count == 0
    assert admin_client.get("/admin/images/image/?q=mock").context["cl"].result_count == 3  # by account name


def test_instance_links_its_image(admin_client, synced_account):
    instance = synced_account.instances.get(external_id="inst0")
    image = Image.objects.get(account=synced_account, external_id=instance.image_id)
    page = admin_client.get(f"/admin/images/instance/{instance.pk}/change/").content.decode()
    assert f'href="/admin/images/image/{image.pk}/change/">{image.external_id}</a>' in page
    listing = admin_client.get("/admin/images/instance/").content.decode()
    assert f"account__id__exact={synced_account.pk}&amp;external_id={image.external_id}" in listing


# -- access: grants from the group's and the user's own pages ----------------------------------------------


def test_grant_an_account_to_a_group_from_the_group_page(admin_client, client, synced_account):
    carol = get_user_model().objects.create_user("carol", password="carol-pw-123")
    team = Group.objects.create(name="ops")
    carol.groups.add(team)
    other = make_account("other", provider="other")
    sync.catalog_sync(account=other)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=basic("carol", "carol-pw-123"))
    assert api.get("/api/images", HTTP_ACCEPT="application/xml").status_code == 403
    response = admin_client.post(
        f"/admin/auth/group/{team.pk}/change/", {"name": "ops", "provider_accounts": [other.pk]}
    )
    assert response.status_code == 302
    assert list(other.groups.all()) == [team]
    assert "Changed Provider accounts" in LogEntry.objects.get(object_id=str(team.pk)).get_change_message()
    page = admin_client.get(f"/admin/auth/group/{team.pk}/change/").content.decode()
    assert f'<option value="{other.pk}" selected>' in page
    # the API honours it for a member
    cache.clear()
    listing = api.get("/api/images", HTTP_ACCEPT="application/xml")
    assert listing.status_code == 200 and listing["X-Deltacloud-Provider"] == "other"


def test_see_and_edit_a_users_accounts_from_the_user_page(admin_client, synced_account, api_user):
    team = Group.objects.create(name="ops")
    api_user.groups.add(team)
    other = make_account("other", provider="other")
    other.groups.add(team)
    url = f"/admin/auth/user/{api_user.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert f'<option value="{synced_account.pk}" selected>' in page  # granted directly
    assert f'href="/admin/images/provideraccount/{other.pk}/change/">other</a> (group ops)' in page
    data = {
        "username": "mockuser",
        "is_active": "on",
        "groups": [team.pk],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "provider_accounts": [other.pk],
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(api_user.provider_accounts.all()) == [other]
