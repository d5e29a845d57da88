"""Account selection by X-Deltacloud-Driver/-Provider headers and /api;driver=..;provider=.. matrix."""

import re

import pytest
from django.contrib.auth import get_user_model

from images import services, sync
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
    sync.catalog_sync(account=a)
    sync.catalog_sync(account=b)
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


def test_group_members_may_use_accounts_granted_to_their_group(client, db):
    # given: an account granted to a group only
    from django.contrib.auth.models import Group

    member = get_user_model().objects.create_user("member", password="member-pw")
    get_user_model().objects.create_user("outsider", password="outsider-pw")
    operators = Group.objects.create(name="operators")
    member.groups.add(operators)
    account = make_account("team", is_default=True)
    account.groups.add(operators)
    sync.catalog_sync(account=account)

    # then
    client.credentials(HTTP_AUTHORIZATION=basic("member", "member-pw"))
    assert image_ids(client.get("/api/images", HTTP_ACCEPT="application/xml")) == ["img1", "img2", "img3"]
    client.credentials(HTTP_AUTHORIZATION=basic("outsider", "outsider-pw"))
    assert client.get("/api/images", HTTP_ACCEPT="application/xml").status_code == 403


def test_an_account_whose_stored_parameters_no_longer_parse_is_a_502_and_flagged(auth_client, api_user):
    # given: parameters written behind the form's back (an old version, a manual edit)
    account = make_account("stale", users=[api_user], is_default=True)
    sync.catalog_sync(account=account)
    type(account).objects.filter(pk=account.pk).update(params={"create_dealy": 1})

    # when
    response = auth_client.post("/api/images?format=json", {"instance_id": "inst1", "name": "x"})

    # then
    assert response.status_code == 502
    message = response.json()["message"]
    assert "Account 'stale' is misconfigured: Unknown mock parameter 'create_dealy'" in message
    account.refresh_from_db()
    assert account.needs_attention and "create_dealy" in account.attention_reason
