"""The OpenAPI document: served without credentials, equal to a fresh generation
and to the committed snapshot, valid OpenAPI 3.1, and true of real responses.

Every route is called through the Django test client in each format; each
answer's status and media type must be declared, and JSON bodies must
validate against the declared schema (jsonschema, Draft 2020-12 as OpenAPI 3.1
uses it). A route the document describes but no request here exercises fails
the coverage test, so a new route needs a sample request too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from django.conf import settings
from django.http import HttpResponse
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from rest_framework.test import APIClient

from images.api import schema as openapi
from images.api.openapi.operations import OPERATIONS, lookup, undescribed
from images.models import Image
from tests.conftest import basic, make_account

SNAPSHOT = Path(settings.BASE_DIR) / "docs" / "openapi.json"
REGENERATE = (
    "python manage.py spectacular --format openapi-json --file docs/openapi.json --validate --fail-on-warn"
)


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(SNAPSHOT.read_bytes())


def test_served_without_credentials_and_equal_to_a_fresh_generation(client, db):
    # when: no credentials, then wrong ones
    anonymous = client.get("/openapi.json")
    wrong = client.get("/openapi.json", HTTP_AUTHORIZATION=basic("nobody", "wrong"))
    # then: the same document both times, as generated now and as committed
    assert anonymous.status_code == wrong.status_code == 200
    assert anonymous["Content-Type"] == "application/json"
    fresh = openapi.render(openapi.generate())
    assert anonymous.content == wrong.content == fresh
    assert fresh == SNAPSHOT.read_bytes(), f"docs/openapi.json is stale: run `{REGENERATE}`"


def test_revalidation_and_methods(client, db):
    first = client.get("/openapi.json")
    again = client.get("/openapi.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert client.head("/openapi.json").status_code == 200
    assert client.post("/openapi.json").status_code == 405


def test_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["basicAuth"] == {
        "type": "http",
        "scheme": "basic",
        "description": document["components"]["securitySchemes"]["basicAuth"]["description"],
    }


def test_routes_and_table_must_agree():
    with pytest.raises(LookupError, match="not described"):
        lookup("/api/keys", "GET")
    routed = {key for key in OPERATIONS if key != ("/api/realms/{id}", "GET")}
    assert undescribed(routed) == ["GET /api/realms/{id}"]
    with pytest.raises(LookupError, match="not routed"):
        openapi.check_routes({"paths": {"/api": {"get": {}}}}, None, None, True)


def test_pagination_delta_feed_and_selection_are_described(document):
    images = document["paths"]["/api/images"]["get"]
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[1] for p in images["parameters"]}
    assert {"id", "owner_id", "architecture", "state", "limit", "marker", "sort", "changes_since"} <= names
    assert {"format", "driver", "provider"} <= names
    assert "410" in images["responses"] and "Link" in images["responses"]["200"]["headers"]
    sort = next(p for p in images["parameters"] if p.get("name") == "sort")
    assert "-creation_time" in sort["schema"]["enum"]
    headers = {document["components"]["parameters"][n]["name"] for n in ("driver", "provider")}
    assert headers == {"X-Deltacloud-Driver", "X-Deltacloud-Provider"}
    error = document["components"]["responses"]["Error404"]["content"]
    assert set(error) == {"application/xml", "application/json", "text/html"}


# -- real responses against the document --------------------------------------------------


class Checker:
    """Checks responses against the document and records which operations were seen."""

    def __init__(self, document: dict) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:deltaweb-openapi", resource)
        self.routes = sorted(
            (
                (template, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"))
                for template in document["paths"]
            ),
            key=lambda t: t[0].count("{"),
        )
        self.seen: set[tuple[str, str]] = set()
        self.statuses: set[tuple[str, str, str]] = set()

    def operation(self, path: str, method: str) -> tuple[str, dict]:
        for template, pattern in self.routes:
            if pattern.match(path) and method in self.document["paths"][template]:
                return template, self.document["paths"][template][method]
        raise AssertionError(f"{method.upper()} {path} is not in the document")

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            kind, name = node["$ref"].split("/")[2:]
            node = self.document["components"][kind][name]
        return node

    def check(self, response, path: str, method: str = "get"):
        template, op = self.operation(path.split("?", 1)[0], method)
        status = str(response.status_code)
        where = f"{method.upper()} {path} -> {status}"
        assert status in op["responses"], f"{where}: status not declared"
        self.seen.add((template, method))
        self.statuses.add((template, method, status))
        declared = self.resolve(op["responses"][status])
        content = declared.get("content")
        if not content:
            assert not response.content, f"{where}: a body where none is declared"
        else:
            media = response["Content-Type"].split(";")[0]
            assert media in content, f"{where}: {media} not declared ({sorted(content)})"
            validator = jsonschema.Draft202012Validator(
                {"$ref": "urn:deltaweb-openapi" + content[media]["schema"]["$ref"]}, registry=self.registry
            )
            # JSON is checked as data; XML and HTML are documented as strings with a pattern.
            body = json.loads(response.content) if media == "application/json" else response.content.decode()
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
            assert not errors, f"{where}: {errors}"
        for name, header in declared.get("headers", {}).items():
            if self.resolve(header).get("required"):
                assert response.has_header(name), f"{where}: no {name} header"
        return response


@pytest.fixture
def checker(document):
    return Checker(document)


@pytest.fixture
def anonymous():
    return APIClient()


def exercise(client, checker: Checker, method: str, path: str, fmt: str = "json", **kwargs):
    separator = "&" if "?" in path else "?"
    url = f"{path}{separator}format={fmt}" if fmt else path
    response = getattr(client, method)(url, **kwargs)
    return checker.check(response, path, method)


FORMATS = ("json", "xml", "html")


def test_reads_validate_in_every_format(auth_client, anonymous, checker, synced_account):
    for fmt in FORMATS:
        for path in (
            "/api",
            "/api?force_auth=1",
            "/api/drivers",
            "/api/drivers/mock",
            "/api/drivers/nope",
            "/api/hardware_profiles",
            "/api/hardware_profiles/m1-small",
            "/api/hardware_profiles/m1-xlarge",
            "/api/hardware_profiles/nope",
            "/api/instance_states",
            "/api/realms",
            "/api/realms?id=us",
            "/api/realms/us",
            "/api/images",
            "/api/images?owner_id=self&architecture=x86_64",
            "/api/images?state=available",
            "/api/images/img1",
            "/api/images/nope",
            "/api/instances",
            "/api/instances/inst1",
            "/api/instances/nope",
        ):
            exercise(auth_client, checker, "get", path, fmt)
        for path in ("/api", "/api/drivers", "/api/hardware_profiles", "/api/instance_states"):
            exercise(anonymous, checker, "get", path, fmt)
        exercise(anonymous, checker, "get", "/api/images", fmt)  # 401
    # the browser forms, and the JSON they are not
    for path in ("/api/images/new?instance_id=inst1", "/api/instances/new?image_id=img1"):
        exercise(auth_client, checker, "get", path, "html")
        exercise(auth_client, checker, "get", path, "json")
    exercise(auth_client, checker, "get", "/api/images/new", "html")
    # conditional GETs
    first = exercise(auth_client, checker, "get", "/api/images/img1")
    again = auth_client.get("/api/images/img1?format=json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert checker.check(again, "/api/images/img1").status_code == 304


def test_pages_and_the_change_feed_validate(auth_client, checker, synced_account):
    for fmt in FORMATS:
        first = exercise(auth_client, checker, "get", "/api/images?limit=1&sort=-name", fmt)
        assert first.status_code == 200 and 'rel="next"' in first["Link"]
        exercise(auth_client, checker, "get", "/api/images?limit=2&marker=img1", fmt)
        for bad in ("limit=0", "limit=x", "sort=size", "marker=nope&limit=1", "changes_since=garbage"):
            refused = exercise(auth_client, checker, "get", f"/api/images?{bad}", fmt)
            assert refused.status_code == 400, (bad, fmt)
    page = json.loads(exercise(auth_client, checker, "get", "/api/images?limit=1").content)
    assert page["next"].startswith("http")
    # the feed: a full listing of changes, then nothing new since its token
    feed = exercise(auth_client, checker, "get", "/api/images?changes_since=")
    token = feed["X-Deltaweb-Changes-Token"]
    assert json.loads(feed.content)["changes_token"] == token
    since = exercise(auth_client, checker, "get", f"/api/images?changes_since={token}")
    assert json.loads(since.content)["images"] == []
    checker.check(auth_client.get(f"/api/images?changes_since={token}&format=xml"), "/api/images")


def test_failures_are_declared_error_documents(auth_client, anonymous, checker, synced_account, api_user):
    for fmt in FORMATS:
        # 401: wrong credentials, and force_auth without them
        wrong = anonymous.get(f"/api/images?format={fmt}", HTTP_AUTHORIZATION=basic("mockuser", "nope"))
        assert checker.check(wrong, "/api/images").status_code == 401
        assert checker.check(anonymous.get(f"/api?force_auth=1&format={fmt}"), "/api").status_code == 401
        # 400: an unknown driver; 403: a driver the user has no account for
        unknown = auth_client.get(f"/api/images?format={fmt}", HTTP_X_DELTACLOUD_DRIVER="nope")
        assert checker.check(unknown, "/api/images").status_code == 400
        other = auth_client.get(f"/api/images?format={fmt}", HTTP_X_DELTACLOUD_DRIVER="ec2")
        assert checker.check(other, "/api/images").status_code == 403
    # 406: nothing acceptable, no body
    refused = auth_client.get("/api/images", HTTP_ACCEPT="image/png")
    assert checker.check(refused, "/api/images").status_code == 406
    # 503: a catalog never synced
    make_account("fresh", users=[api_user], provider="fresh")
    fresh = auth_client.get("/api/images?format=json", HTTP_X_DELTACLOUD_PROVIDER="fresh")
    assert checker.check(fresh, "/api/images").status_code == 503
    # 405: an action the instance's state does not allow
    running = auth_client.post("/api/instances/inst1/start?format=json")
    assert checker.check(running, "/api/instances/inst1/start", "post").status_code == 405
    # 415: a body in a media type the API does not read
    odd = auth_client.post("/api/images?format=json", b"x", content_type="text/plain")
    assert checker.check(odd, "/api/images", "post").status_code in (400, 415)


def test_writes_validate(auth_client, anonymous, checker, synced_account):
    # POST /api: choose a driver
    moved = anonymous.post("/api?format=json", {"driver": "mock"})
    assert checker.check(moved, "/api", "post").status_code == 301
    assert checker.check(anonymous.post("/api?format=json", {}), "/api", "post").status_code == 400
    # images: create from a form and from JSON, show, delete; refusals
    for fmt in FORMATS:
        made = auth_client.post(f"/api/images?format={fmt}", {"instance_id": "inst1", "name": f"made-{fmt}"})
        assert checker.check(made, "/api/images", "post").status_code == 201
        image_id = made["Location"].rsplit("/", 1)[1]
        exercise(auth_client, checker, "get", f"/api/images/{image_id}", fmt)
        if fmt != "html":  # browsers are redirected to the list instead of a 204
            exercise(auth_client, checker, "delete", f"/api/images/{image_id}", fmt)
    made = auth_client.post(
        "/api/images?format=json", {"instance_id": "inst1", "name": "from-json"}, format="json"
    )
    assert checker.check(made, "/api/images", "post").status_code == 201
    assert made.json()["image"]["name"] == "from-json"
    duplicate = auth_client.post(
        "/api/images?format=json", {"instance_id": "inst1", "name": "from-json"}, format="json"
    )
    assert checker.check(duplicate, "/api/images", "post").status_code == 409
    missing = auth_client.post("/api/images?format=json", {"name": "x"})
    assert checker.check(missing, "/api/images", "post").status_code in (400, 404)
    gone = auth_client.delete("/api/images/nope?format=json")
    assert checker.check(gone, "/api/images/nope", "delete").status_code == 404
    assert Image.objects.filter(name="from-json").exists()
    # instances: launch, act, run a command, destroy
    launched = auth_client.post("/api/instances?format=json", {"image_id": "img1", "name": "box"})
    assert checker.check(launched, "/api/instances", "post").status_code == 201
    instance_id = launched.json()["instance"]["id"]
    for action in ("stop", "start", "reboot"):
        acted = auth_client.post(f"/api/instances/inst1/{action}?format=json")
        assert checker.check(acted, f"/api/instances/inst1/{action}", "post").status_code == 202, action
    ran = auth_client.post("/api/instances/inst1/run?format=json", {"cmd": "uptime"})
    assert checker.check(ran, "/api/instances/inst1/run", "post").status_code == 200
    for fmt in ("xml", "html"):
        ran = auth_client.post(f"/api/instances/inst1/run?format={fmt}", {"cmd": "uptime"})
        assert checker.check(ran, "/api/instances/inst1/run", "post").status_code == 200
    auth_client.post(f"/api/instances/{instance_id}/stop?format=json")
    destroyed = auth_client.delete(f"/api/instances/{instance_id}?format=json")
    assert checker.check(destroyed, f"/api/instances/{instance_id}", "delete").status_code in (204, 405)


def test_the_checker_catches_what_the_document_does_not_say(checker):
    def json_response(status: int, data) -> HttpResponse:
        headers = {"ETag": '"x"', "Cache-Control": "private", "X-Deltaweb-Synced-At": "never"}
        return HttpResponse(json.dumps(data), status=status, content_type="application/json", headers=headers)

    image = {"id": "i", "href": "http://h/api/images/i", "name": "n"}  # most fields missing
    with pytest.raises(AssertionError, match="required property"):
        checker.check(json_response(200, {"image": image}), "/api/images/i")
    with pytest.raises(AssertionError, match="not declared"):
        checker.check(json_response(418, {}), "/api/images")
    with pytest.raises(AssertionError, match="not declared"):
        checker.check(HttpResponse("x", content_type="text/plain"), "/api/images")
    with pytest.raises(AssertionError, match="'error' is a required property"):
        checker.check(json_response(404, {"code": 404, "message": "Not Found"}), "/api/images/i")
    with pytest.raises(AssertionError, match="does not match"):
        checker.check(HttpResponse("<html>", content_type="text/html"), "/api/images")
    with pytest.raises(AssertionError, match="no ETag header"):
        checker.check(HttpResponse("<!DOCTYPE html>", content_type="text/html"), "/api/images")
    with pytest.raises(AssertionError, match="not in the document"):
        checker.check(json_response(200, {}), "/api/keys")


def test_every_operation_is_exercised(auth_client, anonymous, checker, synced_account, api_user):
    test_reads_validate_in_every_format(auth_client, anonymous, checker, synced_account)
    test_writes_validate(auth_client, anonymous, checker, synced_account)
    test_pages_and_the_change_feed_validate(auth_client, checker, synced_account)
    described = {(path, method) for path, item in checker.document["paths"].items() for method in item}
    assert described - checker.seen == set()


def test_aliases_are_not_described_twice():
    endpoints = [("/api", "^api$", "GET", None), ("/api/", "^api/$", "GET", None)]
    assert openapi.drop_aliases(endpoints) == [("/api", "^api$", "GET", None)]
