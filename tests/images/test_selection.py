"""Account selection by X-Deltacloud-Driver/-Provider headers and /api;driver=..;provider=.. matrix."""

import re

import pytest
from django.contrib.auth import get_user_model

from images import services
from tests.conftest import basic, make_account

pytestmark = pytest.mark.django_db


def image_ids(response):
    assert response.status_code == 200, response.content
    return re.findall(r"<image href='[^']*' id='([^']*)'>", response.content.decode())


@pytest.fixture
def two_accounts(api_user):
    """`a` (default, no provider) and `b` (provider eu-west) whose cloud lost img1."""
    a = make_account("a", users=[api_user], is_default=True)
    b = make_account("b", users=[api_user], provider="eu-west")
    services.build_driver(account=b).destroy_image("img1")
    services.catalog_sync(account=a)
    services.catalog_sync(account=b)
    return a, b


def test_default_account_without_selection(auth_client, two_accounts):
    response = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    assert image_ids(response) == ["img1", "img2", "img3"]
    assert response["X-Deltacloud-Driver"] == "mock"
    assert "X-Deltacloud-Provider" not in response


def test_provider_header_selects_and_is_echoed(auth_client, two_accounts):
    response = auth_client.get(
        "/api/images", HTTP_ACCEPT="application/xml", HTTP_X_DELTACLOUD_PROVIDER="EU-West"
    )
    assert image_ids(response) == ["img2", "img3"]
    assert response["X-Deltacloud-Provider"] == "eu-west"


def test_matrix_parameters_select_on_the_api_root(auth_client, two_accounts):
    response = auth_client.get("/api;driver=mock;provider=eu-west/images", HTTP_ACCEPT="application/xml")
    assert image_ids(response) == ["img2", "img3"]
    assert response["X-Deltacloud-Provider"] == "eu-west"
    # hrefs are canonical, without the matrix parameters
    assert "href='http://testserver/api/images/img2'" in response.content.decode()


def test_entry_point_echoes_a_chosen_provider(client, two_accounts):
    response = client.get("/api;driver=mock;provider=test1", HTTP_ACCEPT="application/xml")
    assert response.status_code == 200
    assert response.content.decode().startswith("<api driver='mock' provider='test1' version='1.1.3'>")
    assert response["X-Deltacloud-Provider"] == "test1"


def test_unknown_driver_is_a_clear_400(auth_client, two_accounts):
    response = auth_client.get(
        "/api/images", HTTP_ACCEPT="application/xml", HTTP_X_DELTACLOUD_DRIVER="nosuchdriver"
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "<backend driver='nosuchdriver' provider='default'></backend>" in body
    assert (
        "Driver &#39;nosuchdriver&#39; is not available" in body
        or "Driver 'nosuchdriver' is not available" in body
    )
    assert response["X-Deltacloud-Driver"] == "nosuchdriver"


def test_provider_without_account_is_403(auth_client, two_accounts):
    response = auth_client.get("/api/images?format=json", HTTP_X_DELTACLOUD_PROVIDER="nowhere")
    assert response.status_code == 403
    assert (
        response.json()["message"] == "No provider account for provider 'nowhere' is available to this user"
    )


def test_accounts_of_other_users_are_not_reachable(client, two_accounts):
    get_user_model().objects.create_user("other", password="pw-other-123")
    response = client.get(
        "/api/images", HTTP_AUTHORIZATION=basic("other", "pw-other-123"), HTTP_ACCEPT="application/xml"
    )
    assert response.status_code == 403


def test_superusers_may_use_every_account(client, two_accounts):
    get_user_model().objects.create_superuser("root", password="pw-root-123")
    response = client.get(
        "/api/images",
        HTTP_AUTHORIZATION=basic("root", "pw-root-123"),
        HTTP_ACCEPT="application/xml",
        HTTP_X_DELTACLOUD_PROVIDER="eu-west",
    )
    assert image_ids(response) == ["img2", "img3"]


def test_disabled_accounts_are_skipped(auth_client, two_accounts):
    a, _ = two_accounts
    a.enabled = False
    a.save()
    response = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    assert response["X-Deltacloud-Provider"] == "eu-west"
