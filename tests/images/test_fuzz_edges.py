"""Property-based fuzzing of the API's edges that no schema describes (issue 8).

Headers (Accept, Host, Origin, X-Deltacloud-*, Authorization with garbage base64),
matrix parameters, query parameters, bodies (JSON of any shape, forms, multipart,
invalid UTF-8, oversized), percent-encodings in paths, and methods: whatever comes,
the answer is never a 5xx, never one of Django's own pages, and an error status
comes as a Deltacloud error document (or 406's empty body). Bounded: at most
``FUZZ_EXAMPLES`` examples per test (``HYPOTHESIS_FUZZ_EXAMPLES`` to change), no deadline.
Run it on PostgreSQL too: NUL bytes and lone surrogates only broke there.
"""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.conftest import basic

pytestmark = pytest.mark.django_db

FUZZ_EXAMPLES = int(os.environ.get("HYPOTHESIS_FUZZ_EXAMPLES", "200"))
fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    database=None,
)

COLLECTIONS = ["images", "instances", "realms", "hardware_profiles", "drivers", "instance_states", "nope", ""]
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]
MEDIA = ["application/xml", "application/json", "text/html", "*/*", "text/*", "application/*", "image/png"]

# What a WSGI server can hand over: header values are bytes, seen as latin-1 text.
latin1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=80)
interesting_bytes = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"\x00",
            b"\r\n",
            b"\xed\xa0\x80",
            b"\xff\xfe",
            b"%",
            b"..",
            b";",
            b"=",
            b"/",
            b"a" * 300,
            "é".encode() * 130,
        ]
    ),
)
readable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=20)
segment = st.one_of(
    readable.map(lambda text: quote_from_bytes(text.encode(), safe="")),
    st.sampled_from(["img1", "inst1", "mock", "ec2", "x86_64", "AVAILABLE", "self", ""]),
    interesting_bytes.map(lambda raw: quote_from_bytes(raw, safe="")),
)
plain = st.text(max_size=30)


def accept_header():
    entry = st.tuples(
        st.sampled_from(MEDIA) | latin1, st.one_of(st.just(""), st.floats(-1, 2).map(lambda q: f";q={q}"))
    )
    return st.lists(entry, max_size=4).map(lambda items: ",".join(m + q for m, q in items)) | latin1


def authorization():
    garbage_base64 = st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode())
    pair = st.tuples(latin1, latin1).map(lambda up: base64.b64encode(f"{up[0]}:{up[1]}".encode()).decode())
    return st.one_of(
        st.just(basic()),
        (garbage_base64 | pair | latin1).map(lambda token: "Basic " + token),
        latin1,
    )


def json_values():
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    )


def assert_sane(response, path: str) -> None:
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows what was reached
    assert response.status_code < 500 or response.status_code == 501, (
        path,
        response.status_code,
        response.content[:300],
    )
    content = response.content or b""
    assert b"Traceback" not in content and b'content="NONE,NOARCHIVE"' not in content, path
    if response.status_code >= 400 and response.status_code != 406 and content:
        kind = response.get("Content-Type", "")
        if kind.startswith("application/xml"):
            assert b"<error status=" in content, content[:300]
        elif kind.startswith("application/json"):
            assert "code" in response.json(), content[:300]


@pytest.fixture
def fuzz_client(synced_account):
    return APIClient()


@fuzz
@given(
    method=st.sampled_from(METHODS),
    collection=st.sampled_from(COLLECTIONS),
    member=st.one_of(st.none(), segment),
    action=st.one_of(st.none(), st.sampled_from(["start", "stop", "run", "new"]), segment),
)
def test_paths_and_methods(fuzz_client, method, collection, member, action):
    path = "/api" + (f"/{collection}" if collection else "")
    if member is not None:
        path += f"/{member}"
        if action is not None:
            path += f"/{action}"
    response = fuzz_client.generic(method, path, HTTP_AUTHORIZATION=basic())
    assert_sane(response, path)


@fuzz
@given(
    accept=accept_header(),
    host=st.one_of(st.sampled_from(["testserver", "testserver:80", "127.0.0.1", "[::1]:8000"]), latin1),
    origin=st.one_of(st.none(), latin1, st.just("http://[::1"), st.just("http://testserver")),
    driver=st.one_of(st.none(), latin1),
    provider=st.one_of(st.none(), latin1),
    auth=authorization(),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
)
def test_headers(fuzz_client, accept, host, origin, driver, provider, auth, method):
    extra = {"HTTP_ACCEPT": accept, "HTTP_HOST": host, "HTTP_AUTHORIZATION": auth}
    if origin is not None:
        extra["HTTP_ORIGIN"] = origin
    if driver is not None:
        extra["HTTP_X_DELTACLOUD_DRIVER"] = driver
    if provider is not None:
        extra["HTTP_X_DELTACLOUD_PROVIDER"] = provider
    path = "/api/images" if method != "DELETE" else "/api/images/img1"
    response = fuzz_client.generic(method, path, **extra)
    assert_sane(response, path)


@fuzz
@given(
    matrix=st.lists(
        st.tuples(st.sampled_from(["driver", "provider", "x", ""]) | segment, segment), max_size=3
    ),
    collection_matrix=st.lists(
        st.tuples(st.sampled_from(["instance_id", "name", "id"]), segment), max_size=3
    ),
    query=st.lists(
        st.tuples(
            st.sampled_from(["id", "state", "owner_id", "architecture", "format", "force_auth"]) | segment,
            segment,
        ),
        max_size=4,
    ),
    method=st.sampled_from(["GET", "POST"]),
)
def test_matrix_and_query_parameters(fuzz_client, matrix, collection_matrix, query, method):
    root = "/api" + "".join(f";{k}={v}" for k, v in matrix)
    collection = "/images" + "".join(f";{k}={v}" for k, v in collection_matrix)
    path = root + collection + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    response = fuzz_client.generic(method, path, HTTP_AUTHORIZATION=basic())
    assert_sane(response, path)


@fuzz
@given(
    document=st.one_of(
        json_values(),
        st.fixed_dictionaries(
            {"instance_id": st.sampled_from(["inst1", "inst0", "nope"]) | json_values()},
            optional={"name": json_values(), "description": json_values(), "x": json_values()},
        ),
    ),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
)
def test_json_bodies(fuzz_client, document, raw):
    body = raw if raw is not None else json.dumps(document).encode()
    response = fuzz_client.generic(
        "POST", "/api/images", body, content_type="application/json", HTTP_AUTHORIZATION=basic()
    )
    assert_sane(response, "/api/images (json)")


@fuzz
@given(
    fields=st.fixed_dictionaries(
        {"instance_id": st.sampled_from(["inst1", "inst0", "nope"]) | st.text(max_size=30)},
        optional={
            name: st.text(max_size=60)
            | st.sampled_from(["inst1", "x\x00", "é" * 130, "delete", "json", "a\r\nb"])
            for name in ("name", "description", "_method", "format", "secret_access_key", "x")
        },
    ),
    kind=st.sampled_from(["form", "multipart", "raw-form"]),
    raw=st.binary(max_size=200),
)
def test_form_bodies(fuzz_client, fields, kind, raw):
    if kind == "multipart":
        response = fuzz_client.post("/api/images", fields, format="multipart", HTTP_AUTHORIZATION=basic())
    elif kind == "form":
        response = fuzz_client.post("/api/images", fields, format=None, HTTP_AUTHORIZATION=basic())
    else:
        response = fuzz_client.generic(
            "POST",
            "/api/images",
            raw,
            content_type="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=basic(),
        )
    assert_sane(response, f"/api/images ({kind})")


@fuzz
@given(
    content_type=st.sampled_from(
        [
            "application/json",
            "multipart/form-data; boundary=xyz",
            "application/x-www-form-urlencoded",
            "text/plain",
        ]
    )
    | latin1,
    declared=st.sampled_from(["exact", "shorter", "huge", "negative", "junk", "zero"]),
    raw=st.binary(max_size=300),
    method=st.sampled_from(["POST", "DELETE", "GET"]),
)
def test_declared_lengths_and_content_types(fuzz_client, content_type, declared, raw, method):
    # (a length longer than the body sent is a client that stalls: the server's timeout, not ours)
    length = {
        "exact": len(raw),
        "shorter": len(raw) // 2,
        "huge": 3 * 1024 * 1024,
        "negative": -1,
        "junk": "abc",
        "zero": 0,
    }[declared]
    path = "/api/images" if method != "DELETE" else "/api/images/img2"
    response = fuzz_client.generic(
        method, path, raw, content_type=content_type, CONTENT_LENGTH=str(length), HTTP_AUTHORIZATION=basic()
    )
    assert_sane(response, f"{path} ({content_type!r}, {length})")


def test_options_on_instances(fuzz_client):
    for path in ("/api/instances", "/api/instances/inst1"):
        response = fuzz_client.options(path, HTTP_AUTHORIZATION=basic())
        assert response.status_code == 200
