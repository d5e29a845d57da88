"""The FGCP client: the 2013 recordings parsed, the signature computed
independently, and the real protocol spoken to the fake endpoint over mutual TLS."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.exceptions import (
    AuthFailure,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    ProviderTimeout,
    Unavailable,
)
from providers.fgcp_client import ENDPOINTS, FGCPClient
from providers.fgcp_identity import ClientIdentity, access_key_id, transient_file
from providers.fgcp_xml import parse_disk_image, parse_response, parse_vserver, status_error, vsys_id_of
from tests.fakes.fgcp import FIXTURES, NS, FakeFGCP
from tests.fakes.pki import Authority, key_pem

RECORDINGS = sorted(FIXTURES.glob("*.yml"))
WEB1, DB1, BUILD = "DWUSER01-WEB00001-S-0002", "DWUSER01-WEB00001-S-0003", "DWUSER01-DEV00001-S-0002"


def interactions():
    for path in RECORDINGS:
        yield from yaml.safe_load(path.read_text())["http_interactions"]


@pytest.fixture(scope="module")
def ca():
    return Authority()


@pytest.fixture(scope="module")
def user_cert(ca):
    return ca.user("DWUSER01")


@pytest.fixture
def fake(ca):
    with FakeFGCP.standard(ca, register_seconds=0.3) as running:
        yield running


def make_client(fake, ca, issued, **kw) -> FGCPClient:
    identity = ClientIdentity.from_credentials(issued.pem_credentials())
    return FGCPClient(endpoint=fake.url, identity=identity, ca_pem=ca.pem, **kw)


@pytest.fixture
def client(fake, ca, user_cert):
    return make_client(fake, ca, user_cert)


# -- the recordings ------------------------------------------------------------------------


def test_recorded_disk_images_parse():
    # given: the recorded ListDiskImage answers (three sessions, the same catalog)
    bodies = [
        i["response"]["body"]["string"]
        for i in interactions()
        if "Action=ListDiskImage" in i["request"]["uri"]
    ]
    assert len(bodies) == 5
    for body in bodies:
        # when
        root = parse_response(body.encode(), "ListDiskImage")
        images = [parse_disk_image(e) for e in root.iter(f"{{{NS}}}diskimage")]
        # then
        assert len(images) == 15
        by_id = {i.id: i for i in images}
        centos = by_id["IMG_3c9820_21VKHA77OO"]
        assert (centos.name, centos.os_name, centos.os_type) == (
            "CentOS 5.6 32bit(EN)",
            "CentOS 5.6 32bit (English)",
            "pv",
        )
        assert (centos.description, centos.registrant, centos.creator, centos.size) == (
            "",
            "UZXC0GRT",
            "UZXC0GRT",
            "10.0",
        )
        assert by_id["IMG_3c9820_J56Y5PS4FJO5C"].softwares == ("SQLServer 2008 R2 SE (English)",)
        assert by_id["IMG0001_RHEL5_8EN64_v1_24x7SPT"].license_info == "Included"


def test_recorded_server_types_are_a_success_document():
    body = next(
        i["response"]["body"]["string"]
        for i in interactions()
        if "Action=ListServerType" in i["request"]["uri"]
    )
    root = parse_response(body.encode(), "ListServerType")
    assert [e.text for e in root.iter(f"{{{NS}}}name")] == [
        "advanced",
        "economy",
        "high_performance",
        "standard",
        "w_high",
    ]


def test_our_access_key_id_is_the_recorded_one():
    # every recorded request: decode its AccessKeyId, rebuild it with our code
    for interaction in interactions():
        query = parse_qs(urlsplit(interaction["request"]["uri"]).query)
        recorded = query["AccessKeyId"][0]
        plain = base64.b64decode("".join(recorded.split())).decode()
        tz, millis, version, method = plain.split("&")
        assert (version, method) == ("1.0", "SHA1withRSA")
        assert query["Version"] == ["2011-01-31"] and query["Locale"] == ["en"]
        # Ruby's encode64 broke lines every 60 characters; the text is the same
        assert access_key_id(tz, int(millis)) == "".join(recorded.split())
    assert access_key_id("AUS Eastern Daylight Time", 1361188847000) == (
        "QVVTIEVhc3Rlcm4gRGF5bGlnaHQgVGltZSYxMzYxMTg4ODQ3MDAwJjEuMCZTSEExd2l0aFJTQQ=="
    )


def test_fake_answers_in_the_recorded_shape(client, fake):
    # given: the recorded document and the fake's answer for the same catalog
    recorded = parse_response(
        next(
            i["response"]["body"]["string"]
            for i in interactions()
            if "Action=ListDiskImage" in i["request"]["uri"]
        ).encode()
    )
    client.list_disk_images()
    session = client.session()
    params = {"Action": "ListDiskImage", "Version": "2011-01-31", "Locale": "en", **client.signed()}
    ours = parse_response(session.get(fake.url, params=params, timeout=10).content)

    def shape(root):
        return [(e.tag, (e.text or "").strip()) for e in root.iter()]

    # then: same elements, same order, same text, same namespace
    assert shape(ours) == shape(recorded)


# -- the signature -------------------------------------------------------------------------


def _pkcs1_sha1(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-1 from the RFC 8017 definition, by hand."""
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    size = (n.bit_length() + 7) // 8
    digest_info = bytes.fromhex("3021300906052b0e03021a05000414") + hashlib.sha1(message).digest()
    encoded = b"\x00\x01" + b"\xff" * (size - 3 - len(digest_info)) + b"\x00" + digest_info
    return pow(int.from_bytes(encoded, "big"), d, n).to_bytes(size, "big")


def test_signature_against_a_known_key_and_a_fixed_clock(user_cert, tmp_path):
    # given: a fixed clock (the first recording's time) and the user's key
    identity = ClientIdentity.from_credentials(user_cert.pem_credentials())
    client = FGCPClient(endpoint=ENDPOINTS["au"], identity=identity, clock=lambda: 1361188847.25)
    # when
    signed = client.signed()
    # then: AccessKeyId is base64("UTC&<ms>&1.0&SHA1withRSA"), built here from the bytes
    assert signed["AccessKeyId"] == base64.b64encode(b"UTC&1361188847250&1.0&SHA1withRSA").decode()
    expected = _pkcs1_sha1(user_cert.key, signed["AccessKeyId"].encode())
    assert base64.b64decode(signed["Signature"]) == expected
    # and the openssl command line agrees, when the machine has it
    if shutil.which("openssl"):
        (tmp_path / "key.pem").write_text(key_pem(user_cert.key))
        (tmp_path / "msg").write_bytes(signed["AccessKeyId"].encode())
        out = subprocess.run(
            ["openssl", "dgst", "-sha1", "-sign", str(tmp_path / "key.pem"), str(tmp_path / "msg")],
            capture_output=True,
            check=True,
        ).stdout
        assert out == expected


# -- credentials ---------------------------------------------------------------------------


def test_pkcs12_and_pem_credentials_load(user_cert):
    for creds in (
        user_cert.pkcs12_credentials("p12-passphrase"),
        user_cert.pem_credentials(),
        user_cert.pem_credentials("pem-passphrase"),
    ):
        identity = ClientIdentity.from_credentials(creds)
        assert identity.user == "DWUSER01"
        assert identity.certificate == user_cert.cert
        assert "passphrase" not in repr(identity) and "PRIVATE" not in repr(identity)


@pytest.mark.parametrize(
    "broken",
    [
        lambda c: {**c.pkcs12_credentials("right-one"), "passphrase": "wrong-secret-xyz"},
        lambda c: {**c.pem_credentials("right-one"), "passphrase": "wrong-secret-xyz"},
        lambda c: {"pkcs12": "not base64 !!", "passphrase": "wrong-secret-xyz"},
        lambda c: {"certificate": "junk", "private_key": "junk", "passphrase": "wrong-secret-xyz"},
        lambda c: {"passphrase": "wrong-secret-xyz"},
    ],
)
def test_unreadable_credentials_are_auth_failures_without_secrets(user_cert, broken):
    with pytest.raises(AuthFailure) as info:
        ClientIdentity.from_credentials(broken(user_cert))
    assert "wrong-secret-xyz" not in str(info.value) + info.value.detail
    assert "right-one" not in str(info.value)


def test_a_key_of_another_certificate_is_refused(ca, user_cert):
    other = ca.user("DWUSER02")
    creds = {"certificate": user_cert.pem_credentials()["certificate"], "private_key": key_pem(other.key)}
    with pytest.raises(AuthFailure, match="does not belong"):
        ClientIdentity.from_credentials(creds)


@pytest.mark.parametrize("in_memory", [True, False])
def test_the_key_file_lives_only_inside_the_block(in_memory):
    with transient_file(b"secret bytes", in_memory=in_memory) as path:
        with open(path, "rb") as handle:
            assert handle.read() == b"secret bytes"
        if not in_memory:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert not os.path.exists(path)


# -- calls against the fake ------------------------------------------------------------------


def test_lists_systems_vservers_and_statuses(client):
    systems = client.list_vsys()
    assert [s.id for s in systems] == ["DWUSER01-DEV00001", "DWUSER01-WEB00001"]
    vservers = client.list_vservers("DWUSER01-WEB00001")
    assert [(v.id, v.name, v.vsys_id) for v in vservers] == [
        (WEB1, "web1", "DWUSER01-WEB00001"),
        (DB1, "db1", "DWUSER01-WEB00001"),
    ]
    assert vservers[0].vnics[0].private_ip == "192.168.0.12" and not vservers[0].is_appliance
    assert client.get_vserver_status(WEB1) == "RUNNING"
    assert client.get_vserver(DB1).disk_image_id == "IMG_3c9820_D30U8UNY6I9S"
    with pytest.raises(NotFound):
        client.get_vserver_status("DWUSER01-WEB00001-S-0999")
    with pytest.raises(NotFound):
        client.get_vserver("not-a-vserver")  # refused before any call
    with pytest.raises(InvalidParameter, match="wrong value"):
        client.list_vservers("OTHER-SYSTEM")


def test_register_is_a_multipart_post_and_the_image_appears_later(client, fake):
    # given: a stopped vserver and a name needing escapes
    before = {i.id for i in client.list_disk_images()}
    # when
    client.register_private_disk_image(DB1, "db <copy> & co", "nightly 'snapshot'")
    # then: a signed multipart POST; no id, the vserver registering, nothing listed yet
    assert fake.calls[-1][:2] == ("POST", "RegisterPrivateDiskImage")
    assert fake.last_fields["Locale"] == "en" and fake.last_fields["Signature"]
    assert client.get_vserver_status(DB1) == "REGISTERING"
    assert {i.id for i in client.list_disk_images()} == before
    # and once the copy is done, a new IMG_ id with our name and registrant
    time.sleep(0.4)
    new = [i for i in client.list_disk_images() if i.id not in before]
    assert len(new) == 1 and new[0].id.startswith("IMG_")
    assert (new[0].name, new[0].description, new[0].registrant) == (
        "db <copy> & co",
        "nightly 'snapshot'",
        "DWUSER01",
    )
    assert client.get_disk_image(new[0].id) == new[0]
    assert client.get_vserver_status(DB1) == "STOPPED"
    client.unregister_disk_image(new[0].id)
    with pytest.raises(NotFound):
        client.get_disk_image(new[0].id)


def test_a_running_vserver_cannot_be_registered(client):
    with pytest.raises(InvalidState, match="RUNNING"):
        client.register_private_disk_image(WEB1, "web copy", "")


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        ("RESOURCE_NOT_FOUND", "gone", NotFound),
        ("VALIDATION_ERROR", "A wrong value is set. [x]", InvalidParameter),
        ("ILLEGAL_STATE", "busy", InvalidState),
        ("NEVER_BOOTED", "boot it once", InvalidState),
        ("AUTH_ERROR", "bad signature", AuthFailure),
        ("SOME_ERROR", "User not found in selectData.", AuthFailure),
        ("VALIDATION_ERROR", "not synchronized with the API-Server time", ProviderError),
        ("ACCESS_NOT_PERMIT", "User doesn't have the right of access.", ProviderError),
    ],
)
def test_statuses_become_typed_errors(client, fake, status, message, error):
    fake.fail_next("ListVSYS", status, message)
    with pytest.raises(error) as info:
        client.list_vsys()
    assert type(info.value) is error
    assert message in str(info.value) and status in info.value.detail
    assert type(status_error(status, message)) is type(info.value)


def test_xml_with_a_dtd_or_entities_is_refused(client, fake):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<ListVSYSResponse xmlns="http://apioviss.jp.fujitsu.com"><responseStatus>SUCCESS</responseStatus>'
        b"<vsyss><vsys><vsysName>&b;</vsysName></vsys></vsyss></ListVSYSResponse>"
    )
    fake.answer_next("ListVSYS", bomb)
    with pytest.raises(ProviderError, match="DTD"):
        client.list_vsys()
    fake.answer_next("ListVSYS", b"<html><body>proxy error</body>")
    with pytest.raises(Unavailable, match="not XML"):
        client.list_vsys()


def test_parsers_tolerate_missing_elements():
    from defusedxml.ElementTree import fromstring

    vserver = parse_vserver(fromstring("<vserver><vserverId>A-B-S-0001</vserverId></vserver>"))
    assert vserver.is_appliance and vserver.vsys_id == "A-B" and vserver.name == ""
    slb = parse_vserver(
        fromstring(
            "<vserver><vserverId>A-B-S-0004</vserverId><vnics><vnic><nicNo>2</nicNo></vnic></vnics></vserver>"
        )
    )
    assert slb.is_appliance
    assert vsys_id_of("UZXC0GRT-ZG8ZJCJ07-S-0547") == "UZXC0GRT-ZG8ZJCJ07"
    assert vsys_id_of("UZXC0GRT-ZG8ZJCJ07") is None and vsys_id_of("x-y-S-1; drop") is None


# -- transport and authentication failures ---------------------------------------------------


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(fake, ca):
    rogue = Authority("Someone else's CA").user("DWUSER01")
    client = make_client(fake, ca, rogue)
    with pytest.raises(AuthFailure, match="TLS handshake") as info:
        client.list_vsys()
    assert "Signature=" not in info.value.detail and "AccessKeyId" not in info.value.detail
    deadline = time.monotonic() + 5  # the server thread notes the refusal after the client hears it
    while not fake.handshake_failures and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "unknown ca" in fake.handshake_failures[0].lower() or "certificate" in fake.handshake_failures[0]
    assert not fake.calls


def test_an_unknown_user_is_an_auth_failure(fake, ca):
    with pytest.raises(AuthFailure, match="User not found"):
        make_client(fake, ca, ca.user("NOBODY99")).list_vsys()


def test_a_signature_by_another_key_is_refused(fake, ca, user_cert):
    # given: the right TLS certificate, but the signature made with a colleague's key
    other = ca.user("DWUSER02").key
    client = make_client(fake, ca, user_cert)

    def forged() -> dict[str, str]:
        key_id = access_key_id("UTC", int(client.clock() * 1000))
        raw = other.sign(key_id.encode(), padding.PKCS1v15(), hashes.SHA1())
        return {"AccessKeyId": key_id, "Signature": base64.b64encode(raw).decode()}

    client.signed = forged
    with pytest.raises(AuthFailure, match="signature"):
        client.list_vsys()


def test_a_stale_access_key_is_a_clock_problem_not_bad_credentials(fake, ca, user_cert):
    client = make_client(fake, ca, user_cert, clock=lambda: 1361188847.0)
    with pytest.raises(ProviderError, match="request time") as info:
        client.list_vsys()
    assert not isinstance(info.value, (AuthFailure, InvalidParameter))


def test_an_untrusted_server_is_unavailable_not_an_auth_failure(fake, user_cert):
    client = make_client(fake, Authority("Not FGCP's CA"), user_cert)
    with pytest.raises(Unavailable) as info:
        client.list_vsys()
    assert not isinstance(info.value, AuthFailure)


def test_timeouts_and_refused_connections(fake, ca, user_cert):
    slow = make_client(fake, ca, user_cert, read_timeout=0.3)
    fake.stall_seconds = 1.0
    with pytest.raises(ProviderTimeout):
        slow.list_vsys()
    fake.stall_seconds = 0
    url = fake.url
    fake.stop()
    down = FGCPClient(
        endpoint=url, identity=ClientIdentity.from_credentials(user_cert.pem_credentials()), ca_pem=ca.pem
    )
    with pytest.raises(Unavailable):
        down.list_vsys()


def test_a_wrong_path_is_a_provider_error(fake, ca, user_cert):
    client = make_client(fake, ca, user_cert)
    client.endpoint = fake.url.replace("/ovissapi/endpoint", "/elsewhere")
    with pytest.raises(ProviderError, match="HTTP 404"):
        client.list_vsys()
