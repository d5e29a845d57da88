"""Regression tests for issue 8: every 500 and every leak found by trying the API as an attacker.

Each test names the input that used to give a 500 (or leak); the answer must now be a
Deltacloud error document with a 4xx status, in the negotiated format. Run them on
PostgreSQL too (``DATABASE_URL=postgres://...``): NUL bytes only broke there.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from images.api import views
from images.scrub import MASK, ScrubFilter
from providers.drivers.mock import MockStore
from providers.exceptions import InvalidParameter
from tests.conftest import basic

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hashes(monkeypatch):
    """Counts password hash verifications (the hasher still runs)."""
    calls = []
    encode = MD5PasswordHasher.encode

    def counting(self, password, salt, *args, **kwargs):
        # every hash computed: a verification, and the dummy hash Django computes
        # for an unknown user (so that timing does not tell users apart)
        calls.append(password)
        return encode(self, password, salt, *args, **kwargs)

    monkeypatch.setattr(MD5PasswordHasher, "encode", counting)
    return calls


def error_of(response) -> ElementTree.Element:
    assert response["Content-Type"].startswith("application/xml"), response.content[:300]
    root = ElementTree.fromstring(response.content)
    assert root.tag == "error"
    assert root.get("status") == str(response.status_code)
    return root


def assert_error(response, status: int) -> ElementTree.Element:
    assert response.status_code == status, response.content[:500]
    return error_of(response)


class Counting(io.BytesIO):
    """A request body stream that counts what the application read from it."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readline(self, size=-1):
        chunk = super().readline(size)
        self.consumed += len(chunk)
        return chunk


def wsgi(path: str, method: str = "GET", body: io.BytesIO | None = None, **extra):
    """One request through Django's real WSGI handler (what gunicorn calls), not the test client."""
    environ = RequestFactory().generic(method, path, **extra).environ
    if body is not None:
        environ["wsgi.input"] = body
    status_headers = {}

    def start_response(status, headers, exc_info=None):
        status_headers["status"] = int(status.split()[0])
        status_headers["headers"] = dict(headers)

    # as Django's test client does: the test's database connection must survive the request
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = WSGIHandler()(environ, start_response)
        content = b"".join(response)
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return SimpleNamespace(
        status_code=status_headers["status"],
        headers=status_headers["headers"],
        content=content,
    )


def wsgi_error(result, status: int) -> ElementTree.Element:
    assert result.status_code == status, result.content[:500]
    assert result.headers["Content-Type"].startswith("application/xml"), result.content[:300]
    assert b"Traceback" not in result.content and b"SECRET_KEY" not in result.content
    root = ElementTree.fromstring(result.content)
    assert root.tag == "error" and root.get("status") == str(status)
    return root


# -- ids and names ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "delete"])
def test_id_longer_than_255_bytes_is_400(auth_client, synced_account, method):
    response = getattr(auth_client, method)("/api/images/" + "a" * 300)
    assert_error(response, 400)


@pytest.mark.parametrize("method", ["get", "delete"])
def test_id_within_255_bytes_but_too_long_once_escaped_is_4xx(auth_client, synced_account, method):
    # 120 two-byte characters: 240 bytes, 720 once percent-escaped for the mock's file name
    response = getattr(auth_client, method)("/api/images/" + "é" * 120)
    assert response.status_code in (400, 404)
    error_of(response)


def test_name_within_128_characters_that_cannot_be_a_file_name_is_400(auth_client, synced_account):
    # the default mock names new images after their name: 128 'é' are 768 bytes escaped
    response = auth_client.post("/api/images", {"instance_id": "inst1", "name": "é" * 128})
    assert_error(response, 400)


@pytest.mark.parametrize("value", ["i" * 256, "inst\r\n1", "inst\t1"])
def test_ids_in_bodies_and_queries_are_checked_like_path_ids(auth_client, synced_account, value):
    assert_error(auth_client.post("/api/images", {"instance_id": value}), 400)
    body = json.dumps({"instance_id": value})
    assert_error(auth_client.post("/api/images", body, content_type="application/json"), 400)
    assert_error(auth_client.get("/api/images", {"id": value}), 400)


def test_mock_store_refuses_too_long_ids_as_bad_input(tmp_path):
    store = MockStore(tmp_path)
    with pytest.raises(InvalidParameter):
        store.get("images", "x" * 300)
    with pytest.raises(InvalidParameter):
        store.put("images", {"id": "ü" * 50})


# -- bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("document", ['"x"', "5", "null", "[]", "true"])
def test_json_body_that_is_not_an_object_is_400(auth_client, synced_account, document):
    response = auth_client.post("/api/images", document, content_type="application/json")
    element = assert_error(response, 400)
    assert "object" in element.findtext("message")


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_400(auth_client, synced_account, depth):
    body = '{"instance_id": ' + "[" * depth + "]" * depth + "}"
    assert_error(auth_client.post("/api/images", body, content_type="application/json"), 400)


def test_lone_surrogate_in_json_is_400(auth_client, synced_account):
    body = '{"instance_id": "inst1", "name": "a\\ud800b"}'
    assert_error(auth_client.post("/api/images", body, content_type="application/json"), 400)


def test_lone_surrogate_in_path_is_400(synced_account):
    # gunicorn passes the path as sent in RAW_URI (Django re-escapes PATH_INFO)
    result = wsgi("/api/images/x", HTTP_AUTHORIZATION=basic(), RAW_URI="/api/images/a%ED%A0%80b")
    wsgi_error(result, 400)


def test_invalid_utf8_json_is_400(auth_client, synced_account):
    body = b'{"instance_id": "inst\xff"}'
    assert_error(auth_client.post("/api/images", body, content_type="application/json"), 400)


@pytest.mark.parametrize(
    "path",
    ["/api/images/%00", "/api/images?state=%00", "/api/images?id=a%00b", "/api/instances/inst1%00"],
)
def test_nul_bytes_are_400(auth_client, synced_account, path):
    assert_error(auth_client.get(path), 400)


def test_nul_in_form_instance_id_is_400(auth_client, synced_account):
    response = auth_client.post("/api/images", {"instance_id": "inst1\x00"})
    assert_error(response, 400)


def test_nul_in_json_instance_id_is_400(auth_client, synced_account):
    body = json.dumps({"instance_id": "inst1\x00"})
    assert_error(auth_client.post("/api/images", body, content_type="application/json"), 400)


def test_ten_megabyte_body_is_413(auth_client, synced_account):
    response = auth_client.post("/api/images", {"instance_id": "inst1", "description": "x" * 10_000_000})
    assert_error(response, 413)


def test_five_thousand_field_form_is_400(auth_client, synced_account):
    body = "&".join(f"f{i}=1" for i in range(5000)) + "&instance_id=inst1"
    response = auth_client.post("/api/images", body, content_type="application/x-www-form-urlencoded")
    assert_error(response, 400)


def test_chunked_body_without_length_is_refused(synced_account):
    result = wsgi(
        "/api/images",
        "POST",
        body=Counting(b"5\r\nhello\r\n0\r\n\r\n"),
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_TYPE="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic(),
    )
    wsgi_error(result, 411)


def test_unauthenticated_50_megabyte_body_is_refused_before_it_is_read(synced_account, hashes):
    stream = Counting(b"x" * 1024)  # what matters is what is announced and what is read
    result = wsgi(
        "/api/images",
        "POST",
        body=stream,
        CONTENT_LENGTH=str(50 * 1024 * 1024),
        CONTENT_TYPE="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic("mockuser", "wrong"),
    )
    wsgi_error(result, 413)
    assert stream.consumed == 0
    assert hashes == []


# -- headers --------------------------------------------------------------------------------


def test_unparsable_origin_on_a_post_is_refused_not_500(auth_client, synced_account):
    response = auth_client.post("/api/images", {"instance_id": "inst1"}, HTTP_ORIGIN="http://[::1")
    assert response.status_code == 403


@pytest.mark.parametrize("value", ["a%0D%0Ab", "a%00b", "a%0Ab", "x" * 300])
def test_control_characters_in_matrix_provider_are_400(auth_client, synced_account, value):
    assert_error(auth_client.get(f"/api;provider={value}/images"), 400)
    assert_error(auth_client.get(f"/api;driver={value}/images"), 400)


@pytest.mark.parametrize("value", ["a\r\nb", "a\x00b", "\xff\xfe"])
def test_control_characters_in_deltacloud_headers_are_400(auth_client, synced_account, value):
    assert_error(auth_client.get("/api/images", HTTP_X_DELTACLOUD_PROVIDER=value), 400)


def test_bad_host_is_an_error_document(auth_client, synced_account, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    element = assert_error(auth_client.get("/api/images", HTTP_HOST="evil.example:80"), 400)
    assert "Host" in element.findtext("message")


def test_error_documents_follow_the_negotiated_format(auth_client, synced_account):
    response = auth_client.get("/api/images/%00?format=json")
    assert response.status_code == 400
    assert response.json()["code"] == 400


# -- DEBUG never reaches API responses ----------------------------------------------------------


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = ["testserver"]
    with override_settings(DEBUG=True):
        yield


@pytest.mark.parametrize(
    ("path", "method", "extra", "status"),
    [
        ("/api/no-such-collection", "GET", {}, 404),
        ("/api/images", "GET", {"HTTP_HOST": "evil.example"}, 400),
        ("/api/images", "POST", {"CONTENT_LENGTH": str(10 * 1024 * 1024)}, 413),
        ("/api/images/%00", "GET", {}, 400),
    ],
)
def test_debug_true_still_answers_error_documents(synced_account, debug, path, method, extra, status):
    result = wsgi(path, method, body=Counting(), HTTP_AUTHORIZATION=basic(), **extra)
    wsgi_error(result, status)
    assert b"DEBUG" not in result.content and b"redis://" not in result.content


def test_debug_true_form_with_5000_fields_is_an_error_document(synced_account, debug):
    body = ("&".join(f"f{i}=1" for i in range(5000))).encode()
    result = wsgi(
        "/api/images",
        "POST",
        body=Counting(body),
        CONTENT_LENGTH=str(len(body)),
        CONTENT_TYPE="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic(),
    )
    wsgi_error(result, 400)


def test_debug_true_crash_in_a_view_is_an_error_document_without_backtrace(
    synced_account, debug, monkeypatch
):
    def crash(self, request):
        raise RuntimeError("boom with SECRET_KEY inside")

    monkeypatch.setattr(views.ImageViewSet, "list", crash)
    result = wsgi("/api/images", HTTP_AUTHORIZATION=basic())
    wsgi_error(result, 500)
    assert b"boom" not in result.content


# -- credentials ------------------------------------------------------------------------------------


def test_wrong_password_repeated_costs_no_hash(client, synced_account, hashes):
    for _ in range(5):
        assert client.get("/api/images", HTTP_AUTHORIZATION=basic("mockuser", "guess")).status_code == 401
    assert len(hashes) == 1


def test_remembered_failure_is_forgotten_when_the_password_changes(client, synced_account, api_user, hashes):
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic("mockuser", "Fresh-Pass-1")).status_code == 401
    api_user.set_password("Fresh-Pass-1")
    api_user.save()
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic("mockuser", "Fresh-Pass-1")).status_code == 200


def test_credentials_with_nul_are_401_without_a_query(
    client, synced_account, hashes, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/api/images", HTTP_AUTHORIZATION=basic("mock\x00user", "x"))
    assert response.status_code == 401
    assert hashes == []


def test_garbage_authorization_is_401(client, synced_account):
    for header in ["Basic \xff\xfe", "Basic " + "A" * 5000, "Basic Og==", "Basic w6k6w6k=", "Bearer x"]:
        response = client.get("/api/images", HTTP_AUTHORIZATION=header)
        assert response.status_code in (400, 401), header
        error_of(response)


def test_failures_per_user_are_limited_with_429_and_retry_after(client, synced_account, settings, hashes):
    settings.DELTAWEB_LOGIN_ATTEMPTS_PER_USER = 3
    settings.DELTAWEB_LOGIN_ATTEMPTS_PER_ADDRESS = 100
    for i in range(3):
        assert client.get("/api/images", HTTP_AUTHORIZATION=basic("mockuser", f"g{i}")).status_code == 401
    response = client.get("/api/images", HTTP_AUTHORIZATION=basic("mockuser", "g-next"))
    assert_error(response, 429)
    assert 1 <= int(response["Retry-After"]) <= settings.DELTAWEB_LOGIN_WINDOW_SECONDS
    assert len(hashes) == 3
    # the right password is refused too while throttled (that is what limits guessing)...
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 429
    # ...another user is not
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic("someone", "x")).status_code == 401


def test_failures_per_address_are_limited(client, synced_account, settings, hashes):
    settings.DELTAWEB_LOGIN_ATTEMPTS_PER_USER = 100
    settings.DELTAWEB_LOGIN_ATTEMPTS_PER_ADDRESS = 4
    for i in range(4):
        response = client.get(
            "/api/images", HTTP_AUTHORIZATION=basic(f"user{i}", "x"), REMOTE_ADDR="10.0.0.9"
        )
        assert response.status_code == 401
    response = client.get("/api/images", HTTP_AUTHORIZATION=basic("user9", "x"), REMOTE_ADDR="10.0.0.9")
    assert_error(response, 429)
    assert "Retry-After" in response
    assert len(hashes) == 4
    other = client.get("/api/images", HTTP_AUTHORIZATION=basic("user9", "x"), REMOTE_ADDR="10.0.0.10")
    assert other.status_code == 401


def test_verified_credentials_keep_working_while_their_address_is_throttled(
    client, synced_account, settings, hashes
):
    settings.DELTAWEB_LOGIN_ATTEMPTS_PER_ADDRESS = 2
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 200
    for i in range(3):
        client.get("/api/images", HTTP_AUTHORIZATION=basic(f"guesser{i}", "x"))
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic("guesser9", "x")).status_code == 429
    assert client.get("/api/images", HTTP_AUTHORIZATION=basic()).status_code == 200


def test_admin_login_is_limited_the_same_way(client, synced_account, settings, django_user_model):
    settings.DELTAWEB_LOGIN_ATTEMPTS_PER_USER = 3
    django_user_model.objects.create_superuser("operator", password="Operator-Pass-1")
    for i in range(3):
        response = client.post("/admin/login/", {"username": "operator", "password": f"bad{i}"})
        assert response.status_code == 200
    response = client.post("/admin/login/", {"username": "operator", "password": "Operator-Pass-1"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_api_entry_point_does_not_hash_unless_forced(client, synced_account, hashes):
    assert client.get("/api", HTTP_AUTHORIZATION=basic("mockuser", "wrong")).status_code == 200
    assert hashes == []


# -- leaks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["pwd", "passwd", "pass", "password", "credentials", "auth", "api_key", "x_token", "signature"]
)
def test_sensitive_parameters_are_not_echoed(auth_client, synced_account, name):
    response = auth_client.get(f"/api/images/nope?{name}=hunter2-value")
    element = assert_error(response, 404)
    params = {p.get("name"): p.text for p in element.iter("param")}
    assert params[name] == MASK
    assert b"hunter2-value" not in response.content


def test_ordinary_parameters_are_still_echoed(auth_client, synced_account):
    element = assert_error(auth_client.get("/api/images/nope?owner_id=alice"), 404)
    assert {p.get("name"): p.text for p in element.iter("param")}["owner_id"] == "alice"


def test_access_log_line_has_no_secret_values():
    sys.path.insert(0, str(ROOT))
    from deltaweb.gunicorn_conf import ScrubbingLogger

    logger = ScrubbingLogger.__new__(ScrubbingLogger)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/images?secret_access_key=AKIASECRET&owner_id=self&x-password=pw1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "QUERY_STRING": "secret_access_key=AKIASECRET&owner_id=self&x-password=pw1",
        "PATH_INFO": "/api/images",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": "http://x/?token=tok123",
    }
    resp = SimpleNamespace(status="200 OK", headers=[], sent=10)
    req = SimpleNamespace(headers=[("AUTHORIZATION", "Basic bW9ja3VzZXI6bW9ja3Bhc3N3b3Jk")])
    atoms = logger.atoms(resp, req, environ, SimpleNamespace(seconds=0, microseconds=1))
    line = logging.Formatter().format(
        logging.makeLogRecord({"msg": '%(r)s %(q)s "%(f)s" %({authorization}i)s', "args": atoms})
    )
    for secret in ("AKIASECRET", "pw1", "tok123", "bW9ja3VzZXI6bW9ja3Bhc3N3b3Jk"):
        assert secret not in line
    assert "owner_id=self" in line


def test_log_records_are_scrubbed(caplog):
    record = logging.makeLogRecord(
        {
            "msg": "calling %s with %s",
            "args": ("https://ec2/?AWSAccessKeyId=AKIA1&Signature=sig123", {"password": "pw-xyz"}),
        }
    )
    ScrubFilter().filter(record)
    message = record.getMessage()
    assert "sig123" not in message and "pw-xyz" not in message and "AKIA1" not in message


def test_records_are_scrubbed_whatever_handles_them(caplog):
    # Celery's workers put their own handlers on the root logger: records are scrubbed as made
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        logging.getLogger("celery.app.trace").info("POST %s", "https://x/?secret_access_key=AKIA-TRACE&a=b")
    assert "AKIA-TRACE" not in caplog.text and "a=b" in caplog.text


def test_logging_config_scrubs_every_handler():
    from django.conf import settings

    console = settings.LOGGING["handlers"]["console"]
    assert "scrub" in console["filters"]


# -- headers ------------------------------------------------------------------------------------


def test_html_pages_and_admin_carry_a_csp(auth_client, synced_account, client):
    for response in (auth_client.get("/api/images?format=html"), client.get("/admin/login/")):
        assert response.status_code == 200
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "object-src 'none'" in policy


def test_hsts_over_tls_behind_a_proxy(synced_account, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = APIClient()
    secure = client.get("/api", HTTP_X_FORWARDED_PROTO="https")
    assert secure["Strict-Transport-Security"].startswith("max-age=3600")
    assert "Strict-Transport-Security" not in client.get("/api")


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deltaweb.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50)[:50],
        "ALLOWED_HOSTS": "x",
        "DELTAWEB_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# -- the front: gunicorn as configured --------------------------------------------------------------


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    """deltaweb/gunicorn_conf.py with one worker on 127.0.0.1, its access log in a file
    (an empty SQLite database: no request here needs a row)."""
    import socket
    import time

    tmp = tmp_path_factory.mktemp("gunicorn")
    database_url = f"sqlite:///{tmp / 'db.sqlite3'}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp / "access.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deltaweb.settings.test",
        "DATABASE_URL": database_url,
        "DELTAWEB_DATA_DIR": str(tmp),
        "WEB_CONCURRENCY": "1",
    }
    command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "deltaweb/gunicorn_conf.py"]
    command += ["-b", f"127.0.0.1:{port}", "--access-logfile", str(log), "deltaweb.wsgi"]
    errors = (tmp / "error.log").open("w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=errors, stderr=errors)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError((tmp / "error.log").read_text()[-3000:]) from None
            time.sleep(0.2)
    yield SimpleNamespace(port=port, log=log, pid=proc.pid)
    proc.terminate()
    proc.wait(timeout=30)
    errors.close()


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path, headers=headers or {})
    status = conn.getresponse().status
    conn.close()
    return status


def test_access_log_of_the_real_server_has_no_secret_values(gunicorn_server):
    import time

    path = "/api/images?secret_access_key=AKIA-LEAK-1&owner_id=self&password=pw-leak-2"
    assert http_get(gunicorn_server.port, path) == 401
    deadline = time.monotonic() + 10
    while "owner_id=self" not in gunicorn_server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = gunicorn_server.log.read_text()
    assert "owner_id=self" in line
    assert "AKIA-LEAK-1" not in line and "pw-leak-2" not in line


def test_half_open_connections_do_not_hold_the_only_worker(gunicorn_server):
    import socket

    held = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", gunicorn_server.port), timeout=5)
            sock.sendall(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never the end
            held.append(sock)
        # one worker, 20 clients stuck in their headers: a normal request is still answered
        assert http_get(gunicorn_server.port, "/api/images") == 401
    finally:
        for sock in held:
            sock.close()


def _run_pair(first_key: str, second_key: str) -> list[str]:
    import threading
    import time

    from images.api import throttle

    order: list[str] = []
    inside, second_done, release = threading.Event(), threading.Event(), threading.Event()

    def first():
        with throttle.one_verification(first_key):
            order.append("first in")
            inside.set()
            if first_key != second_key:
                assert second_done.wait(20)  # another credential goes through meanwhile
            else:
                for _ in range(2000):  # until the second is waiting for this credential
                    if throttle._flights[first_key][1] == 2:
                        break
                    time.sleep(0.01)
                assert throttle._flights[first_key][1] == 2
                second_done.wait(1)  # were it not waiting, it would be done by now
            release.wait(10)
            order.append("first out")

    def second():
        inside.wait(10)
        with throttle.one_verification(second_key):
            order.append("second in")
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    release.set()
    for thread in threads:
        thread.join(20)
    return order


def test_one_verification_at_a_time_per_credential():
    # a burst of first requests with one credential costs one hash: the others wait for it
    assert _run_pair("same", "same") == ["first in", "first out", "second in"]


def test_other_credentials_do_not_wait():
    assert _run_pair("one", "other") == ["first in", "second in", "first out"]


@pytest.mark.django_db(transaction=True)
def test_gevent_worker_ends_database_connections_when_its_client_leaves(monkeypatch):
    # Django's connections are per greenlet, one greenlet per client connection: without this,
    # each client ever served left its PostgreSQL connection open (CONN_MAX_AGE) until the
    # garbage collector found it: 8, 15, 17 open after three bursts of 8 clients, measured.
    # On PostgreSQL it is kept for the next client's greenlet instead (deltaweb/db/postgresql).
    from django.db import connection
    from gunicorn.workers.base_async import AsyncWorker

    from deltaweb import gunicorn_conf

    timeouts, served = [], []

    def client_gone(self, listener, client, addr):
        connection.ensure_connection()  # the request used the database
        served.append(connection.connection)
        raise ConnectionResetError("client gone")

    monkeypatch.setattr(AsyncWorker, "handle", client_gone)
    worker = gunicorn_conf.TimeoutGeventWorker.__new__(gunicorn_conf.TimeoutGeventWorker)
    with pytest.raises(ConnectionResetError):
        worker.handle(None, SimpleNamespace(settimeout=timeouts.append), None)
    assert connection.connection is None
    assert timeouts == [gunicorn_conf.CLIENT_TIMEOUT]
    if connection.vendor == "postgresql":
        from deltaweb.db.postgresql import base

        assert [raw for raw, _, _ in base._idle] == served and not served[0].closed
        connection.ensure_connection()  # the next client's greenlet
        assert connection.connection is served[0]
    else:
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            served[0].execute("SELECT 1")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "status", "location"),
    [
        ({"driver": "", "provider": [None, None]}, 400, None),
        ({"driver": 5}, 400, None),
        ({"driver": "mock", "provider": "a;b=c d"}, 301, "/api;driver=mock;provider=a%3Bb%3Dc%20d"),
    ],
)
def test_api_entry_post_redirects_only_to_a_uri(client, body, status, location):
    """Found by the schema fuzz: non-string JSON values once landed in the Location header."""
    response = client.post("/api", body, content_type="application/json", HTTP_ACCEPT="application/xml")
    assert response.status_code == status
    if location:
        assert response["Location"].endswith(location)
    else:
        assert b"<error status='400'" in response.content
