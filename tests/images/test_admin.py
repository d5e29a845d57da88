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
        "users": [u.pk for u in account.users.all()],
        "is_default": "on",
        "enabled": "on",
        "sync_interval": "300",
        "full_sync_interval": "3600",
        "param__profile": "deltacloud",
        "credential__username": "mockuser",
        "credential__password": "",
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
    form = account_form(synced_account, credential__password="rotated-pw")
    assert admin_client.post(url, form).status_code == 302
    synced_account.refresh_from_db()
    assert synced_account.credentials["password"] == "rotated-pw"
    assert "rotated-pw" not in synced_account.credentials_encrypted


def test_parameters_are_one_field_each_and_stored_without_defaults(admin_client, synced_account):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="param__create_delay"' in page and 'name="param__profile"' in page
    form = account_form(
        synced_account, param__profile="fgcp", param__create_delay="2.5", param__stopped_only="false"
    )
    assert admin_client.post(url, form).status_code == 302
    synced_account.refresh_from_db()
    assert synced_account.params == {"profile": "fgcp", "create_delay": 2.5, "stopped_only": False}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("param__profile", "nosuch", "Select a valid choice"),
        ("param__create_delay", "-1", "Ensure this value is greater than or equal to 0"),
        ("param__failure_rate", "lots", "Enter a number"),
        ("param__raw_states", "one\ntwo", "three distinct names"),
    ],
)
def test_invalid_driver_parameters_are_form_errors(admin_client, synced_account, field, value, message):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    response = admin_client.post(url, account_form(synced_account, **{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    synced_account.refresh_from_db()
    assert synced_account.params == {}


def test_add_page_shows_the_chosen_drivers_fields_and_requires_its_secrets(admin_client):
    page = admin_client.get("/admin/images/provideraccount/add/?driver=ec2").content.decode()
    assert 'name="credential__secret_access_key"' in page and 'name="param__owners"' in page
    assert 'type="password"' in page
    data = {
        "name": "aws",
        "driver": "ec2",
        "provider": "eu-west-1",
        "sync_interval": "300",
        "full_sync_interval": "3600",
        "param__owners": "self\namazon",
        "param__page_size": "500",
        "credential__access_key_id": "AKIAEXAMPLE",
        "enabled": "on",
    }
    missing_secret = admin_client.post("/admin/images/provideraccount/add/?driver=ec2", data)
    assert missing_secret.status_code == 200 and "This field is required" in missing_secret.content.decode()
    data["credential__secret_access_key"] = "wJalrXUtnFEMI-example-secret"
    assert admin_client.post("/admin/images/provideraccount/add/?driver=ec2", data).status_code == 302
    account = ProviderAccount.objects.get(name="aws")
    assert account.params == {"owners": ["self", "amazon"], "page_size": 500}
    assert account.credentials == {
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI-example-secret",
    }
    page = admin_client.get(f"/admin/images/provideraccount/{account.pk}/change/").content.decode()
    assert "wJalrXUtnFEMI-example-secret" not in page


def test_unknown_driver_is_rejected(admin_client, synced_account):
    url = f"/admin/images/provideraccount/{synced_account.pk}/change/"
    response = admin_client.post(url, account_form(synced_account, driver="nosuch"))
    assert response.status_code == 200
    assert ProviderAccount.objects.get(pk=synced_account.pk).driver == "mock"


def test_sync_now_enqueues_one_sync(
    admin_client, synced_account, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(tasks.catalog_sync_task, "apply_async", lambda args, countdown=0: sent.append(*args))
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
    assert "x" * 59 + "…" in page
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/images/operation/", {"action": "poll_now", "_selected_action": [op.pk]})
    assert sent == [(op.pk,)]
    op.refresh_from_db()
    assert op.next_poll_at <= timezone.now()
