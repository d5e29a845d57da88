"""Format negotiation exactly as spec §3 (and the HEAD transcripts 19-23, 65-68, 71, 97)."""

import pytest

from tests.conftest import basic

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("", None, "application/xml"),
        ("", "", "application/xml"),
        ("", "application/xml", "application/xml"),
        ("", "text/xml", "application/xml"),
        ("", "application/json", "application/json"),
        ("", "text/html", "text/html"),
        ("", "*/*", "text/html"),
        ("", BROWSER, "text/html"),
        ("", "application/xml, application/json", "application/json"),
        ("", "application/json, application/xml", "application/xml"),
        ("", "application/json;q=0.5, application/xml", "application/xml"),
        ("", "application/xml;q=0.1, application/json", "application/json"),
        ("", "application/json; charset=utf-8", "application/json"),
        ("?format=json", "application/xml", "application/json"),
        ("?format=json", "text/html", "application/json"),
        ("?format=xml", "application/json", "application/xml"),
        ("?format=html", "application/xml", "text/html"),
    ],
)
def test_negotiated_format(auth_client, synced_account, query, accept, expected):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = auth_client.get(f"/api/images{query}", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == expected


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("", "application/unknown"),
        ("?format=yaml", "application/xml"),
        ("?format=", "application/xml"),
        ("", "application/xml;q=0"),
    ],
)
def test_not_acceptable_is_an_empty_406(auth_client, synced_account, query, accept):
    response = auth_client.get(f"/api/images{query}", HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert response.content == b""
    assert "Content-Type" not in response


def test_negotiation_comes_before_authentication(client, synced_account):
    response = client.get("/api/images", HTTP_ACCEPT="application/unknown")
    assert response.status_code == 406


def test_errors_follow_the_negotiated_format(client, synced_account):
    response = client.get("/api/images/nope?format=json", HTTP_AUTHORIZATION=basic())
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": 404,
        "message": "Not Found",
        "error": "Deltacloud::Exceptions::ObjectNotFound",
    }
    html = client.get("/api/images/nope", HTTP_ACCEPT="text/html", HTTP_AUTHORIZATION=basic())
    assert html.status_code == 404 and html["Content-Type"] == "text/html"
    assert b"404 Not Found" in html.content


def test_format_in_a_post_body_is_not_honoured(auth_client, synced_account):
    # only the query string counts; the body's `format` is an ordinary field
    response = auth_client.post("/api", {"format": "json", "driver": "mock"}, HTTP_ACCEPT="application/xml")
    assert response.status_code == 301
    assert response["Location"] == "http://testserver/api;driver=mock"


def test_unknown_route_is_a_404_error_document(auth_client, synced_account):
    response = auth_client.get("/api/images/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/xml"
    assert b"<error status='404' url='/api/images/'>" in response.content


def test_head_has_the_get_headers_and_no_body(auth_client, synced_account):
    get = auth_client.get("/api/images", HTTP_ACCEPT="application/xml")
    head = auth_client.head("/api/images", HTTP_ACCEPT="application/xml")
    assert head.status_code == 200
    assert head.content == b""
    assert head["ETag"] == get["ETag"]
    assert head["Content-Length"] == str(len(get.content))


def test_html_pages_are_readable(auth_client, synced_account):
    for path in [
        "/api",
        "/api/images",
        "/api/images/img1",
        "/api/instances",
        "/api/instances/inst0",
        "/api/hardware_profiles",
        "/api/hardware_profiles/m1-large",
        "/api/realms",
        "/api/instance_states",
        "/api/drivers",
        "/api/drivers/mock",
    ]:
        response = auth_client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert response["Content-Type"] == "text/html"
        assert response.content.startswith(b"<!DOCTYPE html>"), path
        assert response["X-Frame-Options"] == "SAMEORIGIN"
    page = auth_client.get("/api/images/img1", HTTP_ACCEPT="text/html").content.decode()
    assert "Fedora 10" in page and "m1-xlarge" in page and 'name="_method" value="delete"' in page


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/images", {"GET", "POST", "HEAD", "OPTIONS"}),
        ("/api/images/img1", {"GET", "DELETE", "HEAD", "OPTIONS"}),
        ("/api", {"GET", "POST", "HEAD", "OPTIONS"}),
    ],
)
def test_options_lists_the_allowed_methods(auth_client, synced_account, path, allowed):
    response = auth_client.options(path)
    assert response.status_code == 200
    assert set(response["Allow"].split(", ")) == allowed
    assert response.content == b""


def test_unsupported_method_is_405_with_allow(auth_client, synced_account):
    response = auth_client.put("/api/images/img1", HTTP_ACCEPT="application/xml")
    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"GET", "DELETE", "HEAD", "OPTIONS"}
    assert b"<message><![CDATA[Method Not Allowed]]></message>" in response.content


def test_html_forms_for_new_images_and_instances(
    auth_client, synced_account, django_capture_on_commit_callbacks
):
    form = auth_client.get("/api/images/new?instance_id=inst1", HTTP_ACCEPT="text/html")
    assert form.status_code == 200
    page = form.content.decode()
    assert 'name="instance_id" value="inst1"' in page and 'action="http://testserver/api/images"' in page
    assert auth_client.get("/api/images/new", HTTP_ACCEPT="text/html").status_code == 404
    as_xml = auth_client.get("/api/images/new?instance_id=inst1", HTTP_ACCEPT="application/xml")
    assert as_xml.status_code == 406
    launch = auth_client.get("/api/instances/new?image_id=img1", HTTP_ACCEPT="text/html").content.decode()
    assert 'name="image_id" value="img1"' in launch
    # the form's POST answers 201 with the image page
    with django_capture_on_commit_callbacks(execute=True):
        created = auth_client.post(
            "/api/images",
            {"instance_id": "inst1", "name": "from-browser"},
            HTTP_ACCEPT="text/html",
            HTTP_ORIGIN="http://testserver",
        )
    assert created.status_code == 201 and created["Content-Type"] == "text/html"
    assert "from-browser" in created.content.decode()


# What real clients send (captured from each library's defaults).
CLIENT_ACCEPTS = [
    # rest-client 1.6 (the Deltacloud Ruby client's transport): XML, not HTML
    ("rest-client 1.6", "*/*; q=0.5, application/xml", "application/xml"),
    # rest-client 2.x
    ("rest-client 2", "*/*", "text/html"),
    # faraday (no Accept of its own) and libcurl without -H
    ("faraday", None, "application/xml"),
    ("libcurl", None, "application/xml"),
    # python-requests and curl send */* alone: HTML, as the real server answered
    ("python-requests", "*/*", "text/html"),
    ("curl", "*/*", "text/html"),
    # deltacloud-client asks for what it parses
    ("deltacloud-client", "application/xml", "application/xml"),
    ("json client", "application/json, text/plain, */*", "application/json"),
    (
        "chrome",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,"
        "*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
        "text/html",
    ),
    ("firefox", BROWSER, "text/html"),
    ("safari", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
    ("old msie", "image/gif, image/jpeg, */*", "text/html"),
]


@pytest.mark.parametrize(("client_name", "accept", "expected"), CLIENT_ACCEPTS)
@pytest.mark.parametrize("path", ["/api", "/api/images", "/api/images/img1"])
def test_common_clients_get_the_format_they_expect(
    auth_client, synced_account, client_name, accept, expected, path
):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = auth_client.get(path, **headers)
    assert response.status_code == 200, client_name
    assert response["Content-Type"] == expected, client_name
