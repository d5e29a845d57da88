"""FGCP end to end: the fake endpoint over mutual TLS on 127.0.0.1, the API in
gunicorn, a real worker, all spoken to over HTTP as a Deltacloud client would."""

from __future__ import annotations

import re
import threading

import pytest
import requests

from images.models import Operation, ProviderAccount
from tests.conftest import make_account
from tests.fakes.fgcp import FakeFGCP
from tests.fakes.pki import Authority
from tests.integration.test_worker import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
REGISTER_SECONDS = 3
WEB1, DB1, BUILD = "DWUSER01-WEB00001-S-0002", "DWUSER01-WEB00001-S-0003", "DWUSER01-DEV00001-S-0002"
PASSPHRASE = "e2e-p12-passphrase"


@pytest.fixture(scope="module")
def ca():
    return Authority()


@pytest.fixture
def fgcp(ca):
    with FakeFGCP.standard(ca, register_seconds=REGISTER_SECONDS) as fake:
        yield fake


def fgcp_account(name, fake, ca, issued, api_user) -> ProviderAccount:
    return make_account(
        name,
        users=[api_user],
        driver="fgcp",
        provider="au",
        is_default=True,
        params={"endpoint_url": fake.url, "ca_cert": ca.pem},
        credentials=issued.pkcs12_credentials(PASSPHRASE),
    )


def client() -> requests.Session:
    http = requests.Session()
    http.auth = ("mockuser", "mockpassword")
    http.headers["Accept"] = "application/xml"
    return http


def ids(body: str) -> list[str]:
    return re.findall(r"<image href='[^']*' id='([^']*)'>", body)


def test_fgcp_through_the_whole_stack(stack, api_user, fgcp, ca):
    # given: an FGCP account (PKCS#12 certificate) on the fake's Australian endpoint
    fgcp_account("fgcp", fgcp, ca, ca.user("DWUSER01"), api_user)
    api = stack.web()
    stack.worker()
    http = client()

    # the catalog syncs (the recorded public images) and reads back with filters
    assert "fgcp: 15 images (15 new, 0 changed, 0 missing)" in stack.manage("sync_catalog", "fgcp")
    listing = http.get(f"{api}/api/images")
    assert listing.status_code == 200 and "IMG_3c9820_21VKHA77OO" in ids(listing.text)
    assert (
        listing.headers["X-Deltacloud-Driver"] == "fgcp" and listing.headers["X-Deltacloud-Provider"] == "au"
    )
    i386 = ids(http.get(f"{api}/api/images?architecture=i386").text)
    assert sorted(i386) == ["IMG_3c9820_21VKHA77OO", "IMG_3c9820_D30U8UNY6I9S", "IMG_3c9820_J55YW6UE101DS"]
    assert ids(http.get(f"{api}/api/images?owner_id=self").text) == []
    # /api looks at credentials only when asked (?force_auth); then the user's default account answers
    assert "<api driver='fgcp' provider='au' version='1.1.3'>" in http.get(f"{api}/api?force_auth=1").text

    # the instances are the vservers of both systems; only stopped ones offer create_image
    instances = http.get(f"{api}/api/instances").text
    for vserver in (WEB1, DB1, BUILD):
        assert f"id='{vserver}'" in instances
    assert f"href='{api}/api/images;instance_id={DB1}' method='post' rel='create_image'" in instances
    assert f"images;instance_id={WEB1}'" not in instances

    # when: a client images the running vserver, it is refused with the reason
    refused = http.post(f"{api}/api/images", data={"instance_id": WEB1, "name": "web-copy"})
    assert refused.status_code == 409
    assert "is RUNNING; FGCP registers images only from STOPPED vservers" in refused.text

    # and from the stopped one: 201 with the provisional id, the call made by the worker
    created = http.post(
        f"{api}/api/images", data={"instance_id": DB1, "name": "nightly", "description": "db nightly"}
    )
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{api}/api/images/PENDING-nightly"
    assert "<state>PENDING</state>" in created.text
    wait_until(
        lambda: ("POST", "RegisterPrivateDiskImage", "DWUSER01") in fgcp.calls, 20, "the register call"
    )
    # a colleague registers a same-named image while ours is still being copied
    theirs = fgcp.add_image("nightly", "DWUSER02", description="not ours")

    # then: the provisional URL shows the real image once FGCP lists it
    def adopted():
        shown = http.get(f"{api}/api/images/PENDING-nightly")
        return shown if "<state>AVAILABLE</state>" in shown.text else None

    shown = wait_until(adopted, REGISTER_SECONDS + 30, "the image to be adopted")
    real_id = shown.headers["Content-Location"].rsplit("/", 1)[1]
    assert real_id.startswith("IMG_") and real_id != theirs
    assert f"id='{real_id}'" in shown.text and "<description>db nightly</description>" in shown.text
    assert "<owner_id>DWUSER01</owner_id>" in shown.text
    mine = {i.id: i for i in fgcp.listed("DWUSER01")}[real_id]
    assert (mine.name, mine.registrant) == ("nightly", "DWUSER01")
    op = Operation.objects.get(provisional_id="PENDING-nightly")
    assert (op.status, op.external_id) == ("SUCCEEDED", real_id)

    # the colleague's image is listed beside ours, never adopted
    stack.manage("sync_catalog", "fgcp")
    listing = ids(http.get(f"{api}/api/images").text)
    assert real_id in listing and theirs in listing
    assert ids(http.get(f"{api}/api/images?owner_id=self").text) == [real_id]
    assert "<owner_id>DWUSER02</owner_id>" in http.get(f"{api}/api/images/{theirs}").text

    # and a delete goes through the worker to UnregisterDiskImage
    assert http.delete(f"{api}/api/images/{real_id}").status_code == 204
    assert http.get(f"{api}/api/images/{real_id}").status_code == 404
    wait_until(lambda: real_id not in {i.id for i in fgcp.listed("DWUSER01")}, 20, "UnregisterDiskImage")
    stack.manage("sync_catalog", "fgcp")
    listing = ids(http.get(f"{api}/api/images").text)
    assert real_id not in listing and theirs in listing


def test_same_named_creates_are_one_at_a_time(stack, api_user, fgcp, ca):
    # given: two stopped vservers and a synced account
    fgcp_account("fgcp", fgcp, ca, ca.user("DWUSER01"), api_user)
    api = stack.web()
    stack.worker()
    stack.manage("sync_catalog", "fgcp")
    results: dict[str, requests.Response] = {}
    start = threading.Barrier(2)

    def create(instance_id: str) -> None:
        http = client()
        start.wait()
        results[instance_id] = http.post(
            f"{api}/api/images", data={"instance_id": instance_id, "name": "twin"}
        )

    # when: two clients create an image named "twin" at the same moment
    threads = [threading.Thread(target=create, args=(v,)) for v in (DB1, BUILD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then: one is accepted, the other refused up front with the reason
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [201, 409], {k: (r.status_code, r.text[:300]) for k, r in results.items()}
    first = next(k for k, r in results.items() if r.status_code == 201)
    second = BUILD if first == DB1 else DB1
    assert "is already being created" in results[second].text
    http = client()
    shown = wait_until(
        lambda: "<state>AVAILABLE</state>" in (r := http.get(f"{api}/api/images/PENDING-twin")).text and r,
        REGISTER_SECONDS + 30,
        "the first twin",
    )
    first_id = shown.headers["Content-Location"].rsplit("/", 1)[1]

    # once the first is resolved, the same name can be used again and finds a different image
    again = http.post(f"{api}/api/images", data={"instance_id": second, "name": "twin"})
    assert again.status_code == 201, again.text

    def second_adopted():
        op = Operation.objects.filter(provisional_id="PENDING-twin").order_by("-created_at").first()
        return op if op and op.status == "SUCCEEDED" else None

    op = wait_until(second_adopted, REGISTER_SECONDS + 30, "the second twin")
    assert op.external_id.startswith("IMG_") and op.external_id != first_id
    twins = [i for i in fgcp.listed("DWUSER01") if i.name == "twin"]
    assert sorted(i.id for i in twins) == sorted([first_id, op.external_id])


def test_a_wrong_client_certificate_is_a_502_and_flags_the_account(stack, api_user, fgcp, ca):
    # given: an account whose certificate FGCP's CA never issued
    rogue = Authority("Not Fujitsu").user("DWUSER01")
    account = fgcp_account("rogue", fgcp, ca, rogue, api_user)
    api = stack.web()
    http = client()

    # when: a request has to ask FGCP (realms are not cached)
    response = http.get(f"{api}/api/realms?format=json")

    # then: 502, the reason, no secret; the account is flagged for operators
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "Deltacloud::Exceptions::ProviderError"
    assert "client certificate" in body["message"]
    assert PASSPHRASE not in response.text
    account.refresh_from_db()
    assert account.needs_attention and "certificate" in account.attention_reason
    assert fgcp.handshake_failures and not fgcp.calls
    # an image create from it is refused the same way, before anything is recorded
    created = http.post(f"{api}/api/images", data={"instance_id": DB1, "name": "x"})
    assert created.status_code == 502 and not Operation.objects.exists()
