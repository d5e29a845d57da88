"""HTTP Basic against Django users, with verified credentials remembered safely."""

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.cache import cache

from tests.conftest import basic

pytestmark = pytest.mark.django_db


@pytest.fixture
def verifications(monkeypatch):
    """Counts real password verifications (the hasher still runs)."""
    calls = []
    original = MD5PasswordHasher.verify

    def counting(self, password, encoded):
        calls.append(password)
        return original(self, password, encoded)

    monkeypatch.setattr(MD5PasswordHasher, "verify", counting)
    return calls


def test_missing_credentials_ask_for_basic_auth(client, synced_account):
    response = client.get("/api/images")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="mock-deltacloud@testhost"'
    assert b"<message><![CDATA[Unauthorized]]></message>" in response.content


@pytest.mark.parametrize("credentials", [("mockuser", "wrong"), ("nobody", "mockpassword"), ("", "")])
def test_wrong_credentials_are_401(client, synced_account, credentials):
    response = client.get("/api/images", HTTP_AUTHORIZATION=basic(*credentials))
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_malformed_authorization_header_is_401(client, synced_account):
    response = client.get("/api/images", HTTP_AUTHORIZATION="Basic !!!notbase64")
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/api", "/api/drivers", "/api/hardware_profiles", "/api/instance_states"])
def test_descriptive_routes_need_no_credentials(client, synced_account, path):
    assert client.get(path).status_code == 200
    # and wrong credentials are ignored there, as Deltacloud did
    assert client.get(path, HTTP_AUTHORIZATION=basic("x", "y")).status_code == 200


def test_api_entry_point_ignores_bad_credentials_unless_forced(client, synced_account):
    assert client.get("/api", HTTP_AUTHORIZATION=basic("x", "y")).status_code == 200
    assert client.get("/api?force_auth=1").status_code == 401
    assert client.get("/api?force_auth=1", HTTP_AUTHORIZATION=basic("x", "y")).status_code == 401
    assert client.get("/api?force_auth=1", HTTP_AUTHORIZATION=basic()).status_code == 200


def test_account_routes_need_credentials(client, synced_account):
    for path in ["/api/images", "/api/images/img1", "/api/instances", "/api/instances/inst1", "/api/realms"]:
        assert client.get(path).status_code == 401, path


def test_verified_credentials_are_not_hashed_again(client, synced_account, verifications):
    for _ in range(3):
        assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 200
    assert len(verifications) == 1


def test_cache_never_holds_the_password(client, synced_account):
    client.get("/api/images", HTTP_AUTHORIZATION=basic())
    stored = repr(list(cache._cache.items())) + repr(list(cache._cache.keys()))
    assert "mockpassword" not in stored
    assert any("dw:auth:" in key for key in cache._cache)


def test_password_change_drops_the_remembered_verification(client, synced_account, api_user, verifications):
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 200
    api_user.set_password("n3w-Secret!")
    api_user.save()
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 401
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic("mockuser", "n3w-Secret!")).status_code == 200


def test_deactivated_user_is_refused_even_when_remembered(client, synced_account, api_user):
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 200
    api_user.is_active = False
    api_user.save()
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 401


def test_failed_attempts_are_remembered_without_the_password(client, synced_account, verifications):
    # a wrong credential tried again is refused without hashing it again (issue 8)
    for _ in range(2):
        assert client.get("/api/images", HTTP_AUTHORIZATION=basic("mockuser", "nope")).status_code == 401
    assert len(verifications) == 1
    assert "nope" not in repr(list(cache._cache.items()))


def test_credentials_encrypted_with_another_key_give_a_clear_500(client, synced_account, settings):
    from images import crypto, services

    services._drivers.clear()
    settings.SECRET_KEY = "another-secret-key-" * 3
    crypto._fernet.cache_clear()
    response = client.get("/api/images?format=json", HTTP_AUTHORIZATION=basic())
    crypto._fernet.cache_clear()
    assert response.status_code == 500
    assert response.json()["message"].startswith("Stored provider credentials cannot be decrypted")


def test_rejected_account_credentials_are_502_naming_the_account(client, api_user):
    from images.models import ProviderAccount
    from tests.conftest import make_account

    make_account(
        "stale-keys",
        users=[api_user],
        is_default=True,
        credentials={"username": "mockuser", "password": "expired-Secret"},
    )
    response = client.get("/api/realms?format=json", HTTP_AUTHORIZATION=basic())
    assert response.status_code == 502
    body = response.json()
    assert body["message"] == (
        "The provider rejected the stored credentials of account 'stale-keys': Authentication Failure"
    )
    assert "expired-Secret" not in response.content.decode()
    account = ProviderAccount.objects.get(name="stale-keys")
    assert account.needs_attention and "stale-keys" in account.attention_reason


# -- the remembered verification is confirmed by the request's one query -------------


def _remember(client):
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 200


def test_a_deactivated_user_is_refused_at_once(client, synced_account, api_user):
    _remember(client)
    api_user.is_active = False
    api_user.save()
    for path in ["/api/images", "/api/images/img1", "/api?force_auth=1", "/api;driver=mock?force_auth=1"]:
        assert client.get(path, HTTP_AUTHORIZATION=basic()).status_code == 401, path


def test_a_deleted_user_is_refused_at_once(client, synced_account, api_user):
    _remember(client)
    api_user.delete()
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 401


def test_a_password_change_refuses_even_routes_that_read_no_account(client, synced_account, api_user):
    _remember(client)
    api_user.set_password("n3w-Secret!")
    api_user.save()
    assert client.get("/api;driver=mock/drivers?force_auth=1", HTTP_AUTHORIZATION=basic()).status_code == 401


def test_remembered_users_reach_accounts_through_groups_and_as_superusers(client, db):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from images import sync
    from tests.conftest import make_account

    grouped = get_user_model().objects.create_user("grouped", password="pw-grouped-1")
    get_user_model().objects.create_superuser("boss", password="pw-boss-1")
    team = Group.objects.create(name="team")
    grouped.groups.add(team)
    account = make_account("team-mock")
    account.groups.add(team)
    sync.catalog_sync(account=account)
    for username, password in [("grouped", "pw-grouped-1"), ("boss", "pw-boss-1")]:
        for _ in range(2):  # verified, then remembered
            response = client.get("/api/images", HTTP_AUTHORIZATION=basic(username, password))
            assert response.status_code == 200, username
            assert b"img1" in response.content


def test_a_remembered_user_without_an_account_is_403(client, synced_account):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("lonely", password="pw-lonely-1")
    for _ in range(2):
        assert client.get("/api/images", HTTP_AUTHORIZATION=basic("lonely", "pw-lonely-1")).status_code == 403
    headers = {"HTTP_AUTHORIZATION": basic()}
    assert client.get("/api/images", HTTP_X_DELTACLOUD_DRIVER="ec2", **headers).status_code == 403
    assert client.get("/api/images", HTTP_X_DELTACLOUD_DRIVER="nonsense", **headers).status_code == 400
