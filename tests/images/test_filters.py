"""Deltacloud's image filters: id, owner_id (with self), architecture, state; ANDed, exact."""

import re

import pytest

pytestmark = pytest.mark.django_db


def ids(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r"<image href='[^']*' id='([^']*)'>", response.content.decode())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["img1", "img2", "img3"]),
        ("architecture=i386", ["img2", "img3"]),
        ("architecture=x86_64", ["img1"]),
        ("owner_id=mockuser", ["img3"]),
        ("owner_id=self", ["img3"]),
        ("owner_id=fedoraproject", ["img1", "img2"]),
        ("id=img2", ["img2"]),
        ("id=unknown", []),
        ("architecture=x86_64&owner_id=fedoraproject", ["img1"]),
        ("architecture=i386&owner_id=fedoraproject&id=img2", ["img2"]),
        ("architecture=i386&id=img1", []),
        ("owner_id=", []),
        ("architecture=", []),
        ("state=AVAILABLE", ["img1", "img2", "img3"]),
        ("state=available", ["img1", "img2", "img3"]),
        ("state=PENDING", []),
        ("foo=bar", ["img1", "img2", "img3"]),
        ("id=img1&id=img3", ["img3"]),
    ],
)
def test_filters(auth_client, synced_account, query, expected):
    assert ids(auth_client.get(f"/api/images?{query}", HTTP_ACCEPT="application/xml")) == expected


def test_empty_result_is_the_empty_list_document(auth_client, synced_account):
    response = auth_client.get("/api/images?id=unknown", HTTP_ACCEPT="application/xml")
    assert response.content == b"<?xml version='1.0' encoding='utf-8' ?>\n<images>\n</images>\n"
    json = auth_client.get("/api/images?owner_id=&format=json")
    assert json.json() == {"images": []}


def test_instance_filters(auth_client, synced_account):
    def instance_ids(query):
        body = auth_client.get(f"/api/instances?{query}", HTTP_ACCEPT="application/xml").content.decode()
        return re.findall(r"<instance href='[^']*' id='([^']*)'>", body)

    assert instance_ids("") == ["inst0", "inst1", "inst2", "inst3"]
    assert instance_ids("realm_id=eu") == ["inst3"]
    assert instance_ids("state=running&id=inst1") == ["inst1"]
    assert instance_ids("state=STOPPED") == []
