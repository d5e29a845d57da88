"""Wire fidelity points of issue 9 (the real server is the contract)."""

import pytest
from django.conf import settings

from tests.conftest import basic

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("fmt", ["xml", "json", "html"])
def test_api_with_a_trailing_slash_is_the_entry_point(auth_client, synced_account, fmt):
    plain = auth_client.get(f"/api?format={fmt}")
    slashed = auth_client.get(f"/api/?format={fmt}")
    assert slashed.status_code == plain.status_code == 200
    assert slashed["Content-Type"] == plain["Content-Type"]
    if fmt != "html":  # the HTML page links its own path
        assert slashed.content == plain.content


@pytest.mark.parametrize("path", ["/api/images/", "/api/instances/", "/api/drivers/"])
def test_collections_with_a_trailing_slash_stay_404(auth_client, synced_account, path):
    response = auth_client.get(path, HTTP_ACCEPT="application/xml")
    assert response.status_code == 404
    assert b"<error status='404'" in response.content


def test_root_is_a_permanent_redirect_with_an_absolute_location(client, db):
    response = client.get("/")
    assert response.status_code == 301
    assert response["Location"] == "http://testserver/api"


def test_root_location_follows_the_request_host(client, db):
    response = client.get("/", HTTP_HOST="cloud.example:3001")
    assert response["Location"] == "http://cloud.example:3001/api"


@pytest.mark.parametrize("path", ["/api", "/api/images", "/api/nothing-here", "/api/drivers"])
def test_server_header_is_exactly_the_real_servers(auth_client, synced_account, path):
    response = auth_client.get(path)
    assert response["Server"] == "Apache-Deltacloud/1.1.3"
    assert response["X-Deltaweb-Version"] == settings.DELTAWEB_VERSION


def test_gunicorn_writes_the_same_server_header():
    import gunicorn.http.wsgi

    import deltaweb.gunicorn_conf  # noqa: F401 - sets gunicorn's Server

    assert gunicorn.http.wsgi.SERVER == "Apache-Deltacloud/1.1.3"


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("accept", "content_type", "marker"),
    [
        ("application/xml", "application/xml", b"<error status='404'"),
        ("application/json", "application/json", b'"code":404'),
        ("text/html", "text/html", b"404"),
    ],
)
@pytest.mark.parametrize(
    "path", ["/api/nothing", "/api/images/img1/nothing", "/api/images/", "/api;driver=mock/x"]
)
def test_unrouted_urls_are_error_documents_even_with_debug(
    auth_client, synced_account, settings, debug, accept, content_type, marker, path
):
    settings.DEBUG = debug
    response = auth_client.get(path, HTTP_ACCEPT=accept)
    assert response.status_code == 404
    assert response["Content-Type"] == content_type
    assert marker in response.content
    assert b"Traceback" not in response.content and b"URLconf" not in response.content


def test_unrouted_post_is_an_error_document_too(auth_client, synced_account, settings):
    settings.DEBUG = True
    response = auth_client.post("/api/nothing", HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == 404


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_just_created_image_carries_its_hardware_profiles(auth_client, synced_account, fmt):
    created = auth_client.post(
        "/api/images", {"instance_id": "inst1", "name": "fresh-image"}, HTTP_ACCEPT="application/xml"
    )
    assert created.status_code == 201
    new_id = created["Location"].rsplit("/", 1)[1]
    show = auth_client.get(f"/api/images/{new_id}?format={fmt}")
    listing = auth_client.get(f"/api/images?format={fmt}")
    if fmt == "xml":
        assert b"<hardware_profiles>" in show.content
        entry = listing.content.split(f"id='{new_id}'".encode())[1].split(b"</image>")[0]
        assert b"<hardware_profile href=" in entry
    else:
        assert show.json()["image"]["hardware_profiles"]
        (mine,) = [i for i in listing.json()["images"] if i["id"] == new_id]
        assert mine["hardware_profiles"]


ROUTES = [
    ("/api", {"GET", "POST"}),
    ("/api/", {"GET", "POST"}),
    ("/api/images", {"GET", "POST"}),
    ("/api/images/img1", {"GET", "DELETE"}),
    ("/api/images/new", {"GET"}),
    ("/api/instances", {"GET", "POST"}),
    ("/api/instances/inst1", {"GET", "DELETE"}),
    ("/api/instances/new", {"GET"}),
    ("/api/instances/inst1/start", {"POST"}),
    ("/api/instances/inst1/stop", {"POST"}),
    ("/api/instances/inst1/reboot", {"POST"}),
    ("/api/instances/inst1/run", {"POST"}),
    ("/api/hardware_profiles", {"GET"}),
    ("/api/hardware_profiles/m1-small", {"GET"}),
    ("/api/realms", {"GET"}),
    ("/api/realms/us", {"GET"}),
    ("/api/drivers", {"GET"}),
    ("/api/drivers/mock", {"GET"}),
    ("/api/instance_states", {"GET"}),
]


@pytest.mark.parametrize(("path", "methods"), ROUTES)
def test_options_on_every_route(auth_client, synced_account, path, methods):
    response = auth_client.options(path)
    assert response.status_code == 200
    allowed = set(response["Allow"].split(", "))
    assert allowed == methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    assert response.content == b""


@pytest.mark.parametrize("path", ["/api", "/api/drivers", "/api/hardware_profiles", "/api/instance_states"])
def test_descriptive_routes_never_verify_credentials_unless_forced(
    client, synced_account, path, django_assert_num_queries
):
    # Wrong credentials are not even looked at: no query, no hash, a 200.
    with django_assert_num_queries(0):
        response = client.get(path, HTTP_AUTHORIZATION=basic("mockuser", "wrong"))
    assert response.status_code == 200
    forced = client.get(f"{path}?force_auth=1", HTTP_AUTHORIZATION=basic("mockuser", "wrong"))
    assert forced.status_code == 401
    assert client.get(f"{path}?force_auth=1", HTTP_AUTHORIZATION=basic()).status_code == 200
