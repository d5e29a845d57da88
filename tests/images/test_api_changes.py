"""``GET /api/images?changes_since=<token>``: the delta feed on the wire (issue 9, item 4).

The feed (``images.feed``: the change sequence, tokens, tombstones) is the
data layer's; these tests run once it is present.
"""

from xml.etree import ElementTree

import pytest
from django.db.models import F

pytest.importorskip("images.feed")

from images import services, sync
from images.models import ProviderAccount

pytestmark = pytest.mark.django_db
TOKEN = "X-Deltaweb-Changes-Token"


def feed(client, token, fmt="json", extra=""):
    return client.get(f"/api/images?changes_since={token}{extra}", HTTP_ACCEPT=f"application/{fmt}")


def states(response):
    if response["Content-Type"] == "application/json":
        return {i["id"]: i["state"] for i in response.json()["images"]}
    return {e.get("id"): e.findtext("state") for e in ElementTree.fromstring(response.content)}


def fresh_token(client):
    response = feed(client, "")
    assert response.status_code == 200
    return response[TOKEN]


def test_an_empty_token_lists_everything_with_a_token(auth_client, synced_account):
    response = feed(auth_client, "")
    assert response.status_code == 200
    assert set(states(response)) == {"img1", "img2", "img3"}
    assert response.json()["changes_token"] == response[TOKEN]


def test_nothing_changed_is_an_empty_list(auth_client, synced_account):
    token = fresh_token(auth_client)
    for fmt in ("json", "xml"):
        response = feed(auth_client, token, fmt)
        assert response.status_code == 200
        assert states(response) == {}
        assert response[TOKEN]


def test_create_sync_change_vanish_and_delete_each_show_up_once(auth_client, synced_account):
    driver = services.build_driver(account=synced_account)
    token = fresh_token(auth_client)

    created = auth_client.post("/api/images", {"instance_id": "inst1", "name": "feed-new"})
    assert created.status_code == 201
    new_id = created["Location"].rsplit("/", 1)[1]
    response = feed(auth_client, token)
    assert new_id in states(response) and states(response)[new_id] != "DELETED"
    token = response[TOKEN]

    # sync: one image changes, one vanishes at the provider
    with driver.store.locked():
        changed = driver.store.get("images", "img2")
        driver.store.put("images", {**changed, "name": "renamed at the provider"})
        driver.store.delete("images", "img3")
    sync.catalog_sync(account=synced_account)
    response = feed(auth_client, token)
    assert states(response) == {"img2": "AVAILABLE", "img3": "DELETED"}
    token = response[TOKEN]

    # delete through the API
    assert auth_client.delete(f"/api/images/{new_id}").status_code in (202, 204)
    response = feed(auth_client, token, "xml")
    assert states(response) == {new_id: "DELETED"}
    assert feed(auth_client, response[TOKEN]).json()["images"] == []


def test_filters_combine_with_the_feed(auth_client, synced_account):
    driver = services.build_driver(account=synced_account)
    token = fresh_token(auth_client)
    with driver.store.locked():
        for image_id in ("img1", "img2"):
            driver.store.put("images", {**driver.store.get("images", image_id), "description": "changed"})
    sync.catalog_sync(account=synced_account)
    response = feed(auth_client, token, extra="&id=img2")
    assert set(states(response)) == {"img2"}


def test_a_limit_cuts_the_feed_and_links_the_rest(auth_client, synced_account):
    response = feed(auth_client, "", extra="&limit=2")
    assert len(states(response)) == 2
    assert "changes_since=" in response["Link"] and response.json()["next"]
    rest = auth_client.get(response.json()["next"], HTTP_ACCEPT="application/json")
    assert len(states(rest)) == 1 and "Link" not in rest


def test_an_expired_token_is_410_and_says_to_list_again(auth_client, synced_account):
    token = fresh_token(auth_client)
    auth_client.post("/api/images", {"instance_id": "inst1", "name": "feed-expire"})
    # the purge of old tombstones forgot the changes after the token
    ProviderAccount.objects.filter(pk=synced_account.pk).update(feed_floor=F("catalog_version"))
    for fmt in ("json", "xml"):
        response = feed(auth_client, token, fmt)
        assert response.status_code == 410
        assert "list the images again" in response.content.decode()


@pytest.mark.parametrize("token", ["garbage", "AAAA", "x" * 300])
def test_a_bad_token_is_400(auth_client, synced_account, token):
    response = feed(auth_client, token)
    assert response.status_code == 400
    assert response.json()["code"] == 400


@pytest.mark.parametrize("extra", ["&marker=img1", "&sort=name"])
def test_paging_parameters_do_not_combine_with_the_feed(auth_client, synced_account, extra):
    assert feed(auth_client, "", extra=extra).status_code == 400
