"""The operators' console: pages render, secrets never show, actions enqueue."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from images import tasks
from images.models import Operation, ProviderAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, synced_account):
    admin = get_user_model().objects.create_superuser("admin", password="admin-pw-123")
    client.force_login(admin)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/images/provideraccount/",
        "/admin/images/image/",
        "/admin/images/instance/",
        "/admin/images/operation/",
        "/admin/images/image/?status__exact=AVAILABLE",
        "/admin/images/image/?q=Fedora",
        "/admin/images/provideraccount/?needs_attention__exact=1",
    ],
)
def test_changelists_render(admin_client, path):
    assert admin_client.get(path).status_code == 200


def test_account_page_never_shows_credentials(admin_client, synced_account):
    page = admin_client.get(f"/admin/images/provideraccount/{synced_account.pk}/change/").content.decode()
    assert "mockpassword" not in page
    assert synced_account.credentials_encrypted not in page
    assert "Credentials stored" in page


def account_form(account, **overrides):
    data = {
        "name": account.name,
        "driver": account.driver,
        "provider": account.provider,
        "params": "{}",
        "users": [u.pk for u in account.users.all()],
        "is_default": "on",
        "enabled": "on",
        "sync_interval": "300",
        "new_credentials": "",
    }
    data.update(overrides)
    return data


def test_blank_credentials_keep_the_stored_ones(admin_client, synced_account):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    response = admin_client.post(url, account_form(synced_account, provider="EU-1"))
    assert response.status_code == 302
    synced_account.refresh_from_db()
    assert synced_account.credentials == {"username": "mockuser", "password": "mockpassword"}
    assert synced_account.provider == "eu-1"


def test_new_credentials_are_encrypted(admin_client, synced_account):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    creds = '{"username": "mockuser", "password": "rotated-pw"}'
    assert admin_client.post(url, account_form(synced_account, new_credentials=creds)).status_code == 302
    synced_account.refresh_from_db()
    assert synced_account.credentials["password"] == "rotated-pw"
    assert "rotated-pw" not in synced_account.credentials_encrypted


@pytest.mark.parametrize("bad", ["not json", "[1, 2]", '{"password": 5}'])
def test_invalid_credentials_are_form_errors(admin_client, synced_account, bad):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    response = admin_client.post(url, account_form(synced_account, new_credentials=bad))
    assert response.status_code == 200
    assert "Credentials must be a JSON object" in response.content.decode()


def test_unknown_driver_is_rejected(admin_client, synced_account):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    response = admin_client.post(url, account_form(synced_account, driver="nosuch"))
    assert response.status_code == 200
    assert ProviderAccount.objects.get(pk=synced_account.pk).driver == "mock"


def test_sync_now_enqueues_one_sync(
    admin_client, synced_account, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(tasks.catalog_sync_task, "delay", lambda pk: sent.append(pk))
    data = {"action": "sync_now", "_selected_action": [synced_account.pk]}
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post("/admin/images/provideraccount/", data).status_code == 302
        assert admin_client.post("/admin/images/provideraccount/", data).status_code == 302
    assert sent == [synced_account.pk]  # the second request merged into the first


def test_operations_show_and_can_be_run_now(
    admin_client, synced_account, monkeypatch, django_capture_on_commit_callbacks
):
    op = Operation.objects.create(
        account=synced_account,
        kind=Operation.Kind.CREATE_IMAGE,
        status=Operation.Status.POLLING,
        external_id="img1",
        last_error="x" * 200,
        deadline=timezone.now(),
        next_poll_at=timezone.now() + timezone.timedelta(hours=1),
    )
    sent = []
    monkeypatch.setattr(tasks.image_poll_task, "apply_async", lambda args, countdown=0: sent.append(args))
    page = admin_client.get("/admin/images/operation/").content.decode()
    assert "x" * 80 + "…" in page
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/images/operation/", {"action": "poll_now", "_selected_action": [op.pk]})
    assert sent == [(op.pk,)]
    op.refresh_from_db()
    assert op.next_poll_at <= timezone.now()


def test_invalid_driver_parameters_are_form_errors(admin_client, synced_account):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    response = admin_client.post(url, account_form(synced_account, params='{"profile": "nosuch"}'))
    assert response.status_code == 200
    assert "Unknown mock profile" in response.content.decode()
    synced_account.refresh_from_db()
    assert synced_account.params == {}
