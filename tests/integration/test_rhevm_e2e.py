"""RHEV-M end to end: the fake engine over HTTPS on 127.0.0.1 (its own CA), the API in
gunicorn and a real worker, spoken to over HTTP as a Deltacloud client would."""

from __future__ import annotations

import re

import pytest
import requests

from images.models import ProviderAccount
from tests.conftest import make_account
from tests.fakes.ovirt_engine import BLANK_ID, running_engine
from tests.fakes.tls_ca import make_ca
from tests.integration.test_worker import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CREATE_SECONDS = 3
USER, PASSWORD = "admin@internal", "secret"


@pytest.fixture
def engine(tmp_path):
    with running_engine(tmp_path / "engine", templates=7, create_delay=CREATE_SECONDS) as running:
        yield running


def ids(body: str) -> list[str]:
    return re.findall(r"<image href='[^']*' id='([^']*)'>", body)


def rhev_account(name: str, server, *, ca_file=None, password: str = PASSWORD, users=()):
    return make_account(
        name,
        users=users,
        driver="rhevm",
        provider="Default",
        is_default=True,
        params={
            "url": server.url,
            "ca_bundle": (ca_file or server.tls.ca_file).read_text(),
            "page_size": 3,
        },
        credentials={"username": USER, "password": password},
    )


def client() -> requests.Session:
    http = requests.Session()
    http.auth = ("mockuser", "mockpassword")
    http.headers["Accept"] = "application/xml"
    return http


def test_rhevm_through_the_whole_stack(stack, api_user, engine):
    fake, server, seeded = engine
    rhev_account("rhev", server, users=[api_user])
    api = stack.web()
    stack.worker()
    http = client()

    # sync pages through the engine's search: seven templates, three per page, Blank left out
    assert "rhev: 7 images (7 new, 0 changed, 0 missing)" in stack.manage("sync_catalog", "rhev")
    pages = [q for method, path, q in fake.requests if path.endswith("/templates") and method == "GET"]
    assert [q["search"] for q in pages][-3:] == [
        f'datacenter="default" sortby name asc page {n}' for n in (1, 2, 3)
    ]
    assert {(q["max"], q["case_sensitive"]) for q in pages} == {("3", "false")}
    listing = http.get(f"{api}/api/images")
    assert listing.status_code == 200 and listing.headers["X-Deltacloud-Driver"] == "rhevm"
    template_ids = {t.id for t in fake.templates.values() if t.id != BLANK_ID}
    assert set(ids(listing.text)) == template_ids and BLANK_ID not in listing.text
    assert "<state>OK</state>" in listing.text and "<architecture>x86_64</architecture>" in listing.text
    assert set(ids(http.get(f"{api}/api/images?owner_id=self").text)) == template_ids

    # a running VM cannot be imaged, with the engine's own words
    refused = http.post(f"{api}/api/images", data={"instance_id": seeded["vm_up"], "name": "from-up"})
    assert refused.status_code == 409
    assert "Cannot add Template. VM must be in Down status." in refused.text

    # a VM that is down: 201 with the engine's id at once, LOCKED, then OK through the worker
    created = http.post(
        f"{api}/api/images",
        data={"instance_id": seeded["vm_down"], "name": "web-e2e", "description": "built end to end"},
    )
    assert created.status_code == 201
    new_id = created.headers["Location"].rsplit("/", 1)[1]
    assert fake.templates[new_id].name == "web-e2e" and "<state>LOCKED</state>" in created.text
    wait_until(
        lambda: "<state>OK</state>" in http.get(f"{api}/api/images/{new_id}").text,
        CREATE_SECONDS + 20,
        "the template to become OK",
    )
    assert "<description>built end to end</description>" in http.get(f"{api}/api/images/{new_id}").text

    # a template VMs still use: 409 naming them, and it stays in the catalog
    base = next(t.id for t in fake.templates.values() if t.name == "tpl-0001")
    in_use = http.delete(f"{api}/api/images/{base}")
    assert in_use.status_code == 409
    assert "Template is being used by the following VMs: vm-down,vm-up." in in_use.text
    assert http.get(f"{api}/api/images/{base}").status_code == 200

    # a free one: 204, deleted on the engine by the worker, gone after the next sync
    assert http.delete(f"{api}/api/images/{new_id}").status_code == 204
    wait_until(lambda: new_id not in fake.templates, 20, "the template to be deleted on the engine")
    stack.manage("sync_catalog", "rhev")
    assert new_id not in ids(http.get(f"{api}/api/images").text)
    assert http.get(f"{api}/api/images/{new_id}").status_code == 404


def test_rhevm_tls_and_credentials_errors(stack, api_user, engine, tmp_path):
    _, server, _ = engine
    api = stack.web()
    http = client()

    # an account that trusts another CA: 502 that says TLS verification failed
    wrong_ca = make_ca(tmp_path / "other-ca").ca_file
    rhev_account("badca", server, ca_file=wrong_ca, users=[api_user])
    response = http.get(f"{api}/api/realms?format=json")
    assert response.status_code == 502
    assert "TLS verification failed" in response.json()["message"]

    # wrong credentials: 502 naming the account, which is flagged for operators
    ProviderAccount.objects.filter(name="badca").delete()
    rhev_account("badpw", server, password="wrong-password", users=[api_user])
    response = http.get(f"{api}/api/realms?format=json")
    assert response.status_code == 502
    assert "wrong-password" not in response.text
    account = ProviderAccount.objects.get(name="badpw")
    assert account.needs_attention and "rejected the stored credentials" in response.json()["message"]
