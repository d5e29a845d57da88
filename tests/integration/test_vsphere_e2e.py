"""vSphere end to end: VMware's vcsim over HTTPS on 127.0.0.1, the API in
gunicorn, a real worker, all spoken to over HTTP as a Deltacloud client would."""

from __future__ import annotations

import re

import pytest
import requests

from images.models import ProviderAccount
from tests.conftest import make_account
from tests.fakes.vcsim import inventory as inv
from tests.fakes.vcsim import running
from tests.integration.test_worker import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def vcsim(tmp_path):
    with running(tmp_path / "vcsim", username="deltaweb@vsphere.local") as sim:
        yield sim


def vsphere_account(name, sim, api_user, *, password=None, **params):
    return make_account(
        name,
        users=[api_user],
        driver="vsphere",
        provider="DC0",
        is_default=not params.get("clone"),
        # the CA's PEM text, as an operator pastes it into the admin
        params={
            "host": sim.host,
            "port": sim.port,
            "ca_bundle": sim.ca_file.read_text(),
            "page_size": 2,
            **params,
        },
        credentials={"user": sim.username, "password": password or sim.password},
    )


def image_ids(body: str) -> list[str]:
    return re.findall(r"<image href='[^']*' id='([^']*)'>", body)


def instance_ids(body: str) -> list[str]:
    return re.findall(r"<instance href='[^']*' id='([^']*)'>", body)


def client() -> requests.Session:
    http = requests.Session()
    http.auth = ("mockuser", "mockpassword")
    http.headers["Accept"] = "application/xml"
    return http


def test_vsphere_through_the_whole_stack(stack, api_user, vcsim):
    # given: vCenter with four running VMs and one template someone made earlier
    si = vcsim.connect()
    existing = inv.make_template(si, "DC0_C0_RP0_VM1")
    vm = inv.instance_uuid(si, "DC0_H0_VM0")
    kept = inv.instance_uuid(si, "DC0_H0_VM1")
    vsphere_account("vc", vcsim, api_user)
    vsphere_account("vc-clone", vcsim, api_user, clone=True)
    api = stack.web()
    stack.worker()
    http = client()

    # sync: the template is an image, the other VMs are instances
    assert "vc: 1 images (1 new, 0 changed, 0 missing)" in stack.manage("sync_catalog", "vc")
    listing = http.get(f"{api}/api/images")
    assert listing.status_code == 200 and image_ids(listing.text) == [existing]
    assert listing.headers["X-Deltacloud-Driver"] == "vsphere"
    assert "<state>AVAILABLE</state>" in listing.text
    assert sorted(instance_ids(http.get(f"{api}/api/instances").text)) == sorted(
        inv.instance_uuid(si, name) for name in ("DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0")
    )

    # a running VM cannot become a template: 409 with vSphere's reason
    refused = http.post(f"{api}/api/images", data={"instance_id": vm, "name": "ignored"})
    assert refused.status_code == 409
    assert "is poweredOn; vSphere turns only a powered-off VM into a template" in refused.text

    # power it off through the API, then the create is accepted
    assert http.post(f"{api}/api/instances/{vm}/stop").status_code == 202
    created = http.post(f"{api}/api/images", data={"instance_id": vm, "name": "ignored", "description": "x"})
    assert created.status_code == 201, created.text
    assert created.headers["Location"].endswith(f"/api/images/{vm}")  # the VM's own id
    assert "<name>DC0_H0_VM0</name>" in created.text and "itself into this template" in created.text

    # the VM left the instances and its template is an AVAILABLE image
    stack.manage("sync_catalog", "vc")
    assert vm not in instance_ids(http.get(f"{api}/api/instances").text)
    shown = http.get(f"{api}/api/images/{vm}")
    assert shown.status_code == 200 and "<state>AVAILABLE</state>" in shown.text
    assert inv.machines(si)["DC0_H0_VM0"]["config.template"] is True

    # the clone account (now the default one) keeps the VM and makes a separately named template
    assert http.post(f"{api}/api/instances/{kept}/stop").status_code == 202
    ProviderAccount.objects.filter(name="vc").update(is_default=False)
    ProviderAccount.objects.filter(name="vc-clone").update(is_default=True)
    stack.manage("sync_catalog", "vc-clone")
    cloned = http.post(
        f"{api}/api/images", data={"instance_id": kept, "name": "golden", "description": "base image"}
    )
    assert cloned.status_code == 201, cloned.text
    provisional = cloned.headers["Location"].rsplit("/", 1)[1]
    assert provisional == "PENDING-golden"

    def golden():
        shown = http.get(f"{api}/api/images/{provisional}")
        return shown.status_code == 200 and "<state>AVAILABLE</state>" in shown.text and shown

    found = wait_until(golden, 30, "the cloned template")
    golden_id = re.search(r"<image href='[^']*' id='([^']*)'>", found.text).group(1)
    assert golden_id not in (kept, provisional) and "<description>base image</description>" in found.text
    assert inv.machines(si)["golden"]["config.template"] is True
    stack.manage("sync_catalog", "vc-clone")
    assert kept in instance_ids(http.get(f"{api}/api/instances").text)  # the VM stays

    # DELETE: 204 at once, the worker destroys the template, gone after the next sync
    assert http.delete(f"{api}/api/images/{golden_id}").status_code == 204
    assert http.get(f"{api}/api/images/{golden_id}").status_code == 404
    wait_until(lambda: "golden" not in inv.machines(si), 30, "Destroy_Task")
    stack.manage("sync_catalog", "vc-clone")
    assert golden_id not in image_ids(http.get(f"{api}/api/images").text)


def test_a_bad_password_flags_the_account(stack, api_user, vcsim):
    vsphere_account("vc", vcsim, api_user, password="not-the-password")
    api = stack.web()
    stack.worker()
    http = client()

    # a never-synced catalog answers 503 and queues a sync, which the worker runs
    assert http.get(f"{api}/api/images").status_code == 503
    wait_until(
        lambda: ProviderAccount.objects.get(name="vc").needs_attention, 30, "the account to be flagged"
    )
    account = ProviderAccount.objects.get(name="vc")
    assert "rejected the account's user name or password" in account.attention_reason

    # and a live call says the same: 502 naming the provider error, the password never echoed
    realms = http.get(f"{api}/api/realms?format=json")
    assert realms.status_code == 502
    assert "rejected the account's user name or password" in realms.text
    assert "not-the-password" not in realms.text
