"""OpenStack's wire formats, parsed: the 2013 recordings of a real cloud
(tests/fixtures/openstack, Nova v1.1 and Keystone v2.0, from Deltacloud's
driver tests) and the bodies each service writes today."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from pathlib import Path

import pytest
import yaml
from keystoneauth1.access import AccessInfoV2

from providers import openstack_wire as wire
from providers.base import ImageState

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openstack"


def recorded(cassette: str, uri_end: str) -> tuple[int, dict]:
    """(status, JSON body) of the first recorded answer to a request ending in ``uri_end``."""
    data = yaml.safe_load((FIXTURES / cassette).read_text())
    for interaction in data["http_interactions"]:
        if interaction["request"]["uri"].endswith(uri_end):
            response = interaction["response"]
            return response["status"]["code"], json.loads(response["body"]["string"])
    raise AssertionError(f"{uri_end} not recorded in {cassette}")


def test_recorded_image_list_parses():
    # given: GET /v1.1/<tenant>/images/detail as an Essex cloud answered it
    status, body = recorded("test_0002_must_return_list_of_images.yml", "/images/detail")

    # when
    (image,) = [
        wire.nova_image(raw, owner_id="e827", default_architecture="x86_64") for raw in body["images"]
    ]

    # then
    assert status == 200
    assert image.id == "bf7ce59a-d9f9-45d4-9313-f45b16436602"
    assert image.name == "f16-jeos"
    assert (image.state, image.raw_state) == (ImageState.AVAILABLE, "ACTIVE")
    assert image.creation_time == "2012-08-24T15:41:42Z" and image.updated_at == "2012-08-24T15:51:45Z"
    # a base image: no owner shown, the default architecture
    assert image.owner_id == "" and image.architecture == "x86_64"
    assert image.extra["progress"] == 100 and image.failure_reason == ""


def test_recorded_single_image_parses_like_the_list():
    _, listed = recorded("test_0002_must_return_list_of_images.yml", "/images/detail")
    _, shown = recorded(
        "test_0004_must_allow_to_retrieve_single_image.yml", "/images/bf7ce59a-d9f9-45d4-9313-f45b16436602"
    )
    as_listed = wire.nova_image(listed["images"][0], owner_id="", default_architecture="x86_64")
    assert wire.nova_image(shown["image"], owner_id="", default_architecture="x86_64") == as_listed


def test_recorded_not_found_body():
    status, body = recorded("test_0003_must_allow_to_filter_images.yml", "/images/unknown")
    assert status == 404
    assert wire.error_message(json.dumps(body), "application/json; charset=UTF-8") == "Image not found."


def test_recorded_token_catalog_reads_with_keystoneauth():
    _, body = recorded("test_0002_must_return_list_of_images.yml", "/v2.0/tokens")
    access = AccessInfoV2(body)
    compute = access.service_catalog.url_for(service_type="compute", region_name="RegionOne")
    assert compute == "http://10.34.32.211:8774/v1.1/e827289fd66f4effb5b9b5012282fdb7"
    assert access.project_id == "e827289fd66f4effb5b9b5012282fdb7"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x86_64", "x86_64"),
        ("amd64", "x86_64"),
        ("X64", "x86_64"),
        ("i686", "i386"),
        ("i386", "i386"),
        ("aarch64", "aarch64"),
        ("arm64", "aarch64"),
        ("armhf", "armv7l"),
        ("ppc64el", "ppc64le"),
        ("s390x", "s390x"),
        ("sparc64", "sparc64"),  # unknown spellings pass through, lower-cased
    ],
)
def test_architecture_property_names_one_architecture(value, expected):
    assert wire.architecture({"architecture": value}, "x86_64") == expected


def test_architecture_keys_and_default():
    assert wire.architecture({}, "x86_64") == "x86_64"
    assert wire.architecture({"architecture": " "}, "") == ""
    assert wire.architecture({"org.openstack__1__architecture": "x64"}, "") == "x86_64"
    assert (
        wire.architecture({"hw_architecture": "aarch64", "org.openstack__1__architecture": "x64"}, "")
        == "aarch64"
    )


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", ImageState.PENDING),
        ("saving", ImageState.PENDING),
        ("uploading", ImageState.PENDING),
        ("importing", ImageState.PENDING),
        ("active", ImageState.AVAILABLE),
        ("killed", ImageState.FAILED),
        ("deleted", ImageState.DELETED),
        ("pending_delete", ImageState.DELETING),
        ("deactivated", ImageState.UNKNOWN),
        ("something-new", ImageState.UNKNOWN),
    ],
)
def test_glance_statuses_normalize_and_keep_the_raw_one(status, state):
    image = wire.glance_image(
        {"id": "i1", "name": "n", "status": status, "owner": "p1", "visibility": "private"},
        default_architecture="x86_64",
        failure_reason="disk full",
    )
    assert image.state == state and image.raw_state == status.upper()
    assert image.failure_reason == ("disk full" if state == ImageState.FAILED else "")


def test_glance_image_fields():
    image = wire.glance_image(
        {
            "id": "i1", "name": None, "status": "active", "owner": "p1", "visibility": "shared",
            "created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-01-03T00:00:00Z",
            "architecture": "aarch64", "description": "golden", "size": 42, "protected": True,
        },
        default_architecture="x86_64",
    )  # fmt: skip
    assert image.name == "i1" and image.owner_id == "p1" and image.architecture == "aarch64"
    assert image.description == "golden" and image.updated_at == "2024-01-03T00:00:00Z"
    assert image.extra == {"visibility": "shared", "protected": True, "size": 42}


@pytest.mark.parametrize(
    "status", ["QUEUED", "PREPARING", "SAVING", "ACTIVE", "FAILED", "UNKNOWN", "DELETED"]
)
def test_rackspace_statuses_are_the_raw_state(status):
    image = wire.nova_image(
        {"id": "r1", "name": "snap", "status": status, "metadata": {"image_type": "snapshot"}},
        owner_id="123456",
        default_architecture="x86_64",
    )
    assert image.raw_state == status and image.owner_id == "123456"
    assert image.state == wire.NOVA_IMAGE_STATES[status]


def test_server_refusals():
    assert wire.server_refusal({"id": "s", "status": "ACTIVE"}) == ""
    assert wire.server_refusal({"id": "s", "status": "SHUTOFF", "OS-EXT-STS:task_state": None}) == ""
    assert "ERROR" in wire.server_refusal({"id": "s", "status": "ERROR"})
    assert "image_uploading" in wire.server_refusal(
        {"id": "s", "status": "ACTIVE", "OS-EXT-STS:task_state": "image_uploading"}
    )


NOVA_404 = '{"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}'
KEYSTONE_401 = (
    '{"error": {"code": 401, "message": "The request you have made requires authentication.", '
    '"title": "Unauthorized"}}'
)
GLANCE_404 = json.dumps(
    {"message": "No image found with ID x<br /><br />\n\n\n", "code": "404 Not Found", "title": "Not Found"}
)
RACKSPACE_401 = '{"unauthorized": {"code": 401, "message": "Username or api key is invalid."}}'


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (NOVA_404, "application/json", "Instance x could not be found."),
        (KEYSTONE_401, "application/json", "The request you have made requires authentication."),
        (GLANCE_404, "application/json", "No image found with ID x"),
        (
            "404 Not Found\n\nNo image found with ID x\n\n   ",
            "text/plain; charset=UTF-8",
            "No image found with ID x",
        ),
        (RACKSPACE_401, "application/json", "Username or api key is invalid."),
        ("<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", "text/html", "502 Bad Gateway nginx"),
    ],
)
def test_error_messages_from_every_service(body, content_type, message):
    assert wire.error_message(body.encode(), content_type) == message


def test_retry_after_in_seconds_dates_and_bodies():
    assert wire.retry_after({"Retry-After": "7"}) == 7
    in_30s = formatdate(time.time() + 30, usegmt=True)
    assert 25 < wire.retry_after({"Retry-After": in_30s}) <= 30
    nova = b'{"overLimit": {"code": 413, "message": "This request was rate-limited.", "retryAfter": "12"}}'
    assert wire.retry_after({}, nova) == 12
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    rackspace = json.dumps({"overLimit": {"code": 413, "retryAfter": soon}}).encode()
    assert 55 < wire.retry_after({}, rackspace) <= 60
    assert wire.retry_after({}, b"") is None
    assert wire.retry_after({"Retry-After": "soon"}) is None
