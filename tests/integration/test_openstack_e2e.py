"""OpenStack and Rackspace end to end: the fake cloud on 127.0.0.1, the API in
gunicorn, a real worker and sync processes, all spoken to over HTTP as a
Deltacloud client would. Assertions about what the cloud was asked read the
fake's request log."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import requests

from images.models import ProviderAccount
from tests.conftest import make_account
from tests.fakes.openstack import FakeOpenStack, FakeRackspace
from tests.integration.test_worker import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SNAPSHOT_SECONDS = 5


@dataclass(frozen=True)
class Flavour:
    driver: str
    region: str
    # The raw states a snapshot passes through, and the one it fails with.
    life: tuple[str, ...]
    failed: str
    listing: str  # the path the driver lists images at
    since: str  # the incremental listing's query parameter


OPENSTACK = Flavour(
    "openstack", "RegionOne", ("QUEUED", "SAVING", "ACTIVE"), "KILLED", r"/image/v2/images$", "updated_at"
)
RACKSPACE = Flavour(
    "rackspace",
    "DFW",
    ("QUEUED", "PREPARING", "SAVING", "ACTIVE"),
    "FAILED",
    r"/compute/v2/\w+/images/detail$",
    "changes-since",
)


@pytest.fixture(params=[OPENSTACK, RACKSPACE], ids=lambda f: f.driver)
def cloud(request, api_user):
    flavour: Flavour = request.param
    fake = FakeOpenStack() if flavour.driver == "openstack" else FakeRackspace()
    fake.snapshot_delay = SNAPSHOT_SECONDS
    fake.seed_images(9)
    fake.start()
    if flavour.driver == "openstack":
        params = {"auth_url": fake.auth_url, "project_name": "demo", "page_size": 4}
        credentials = {"username": "demo", "password": fake.password}
    else:
        params = {"auth_url": f"{fake.auth_url}/v2.0", "page_size": 4}
        credentials = {"username": "raxuser", "api_key": fake.api_key}
    make_account(
        "cloud",
        users=[api_user],
        driver=flavour.driver,
        provider=flavour.region,
        is_default=True,
        params=params,
        credentials=credentials,
    )
    yield flavour, fake
    fake.stop()


def ids(body: str) -> list[str]:
    return re.findall(r"<image href='[^']*' id='([^']*)'>", body)


def field(body: str, tag: str) -> str:
    found = re.search(f"<{tag}>([^<]*)</{tag}>", body)
    return found.group(1) if found else ""


def test_the_whole_stack(stack, cloud):
    flavour, fake = cloud
    api = stack.web()
    stack.worker()
    http = requests.Session()
    http.auth = ("mockuser", "mockpassword")
    http.headers["Accept"] = "application/xml"
    images = fake.state.regions[flavour.region].images
    visible = {
        i.id for i in images.values() if fake.visible(i, fake.project.id) and i.visibility != "community"
    }

    # -- a full sync over several pages -----------------------------------------------------
    out = stack.manage("sync_catalog", "cloud")
    assert f"cloud: {len(visible)} images ({len(visible)} new, 0 changed, 0 missing)" in out
    assert len(fake.logged(path=flavour.listing)) >= 4  # page size 4
    listing = http.get(f"{api}/api/images")
    assert listing.status_code == 200 and set(ids(listing.text)) == visible
    assert listing.headers["X-Deltacloud-Driver"] == flavour.driver
    assert listing.headers["X-Deltacloud-Provider"] == flavour.region.lower()

    # -- filters ---------------------------------------------------------------------------
    arm = {i for i in visible if images[i].properties.get("architecture") == "aarch64"}
    assert arm and set(ids(http.get(f"{api}/api/images?architecture=aarch64").text)) == arm
    own = set(ids(http.get(f"{api}/api/images?owner_id=self").text))
    assert own and own < visible
    assert ids(http.get(f"{api}/api/images?owner_id=someone-else").text) == []
    failed_before = set(ids(http.get(f"{api}/api/images?state=failed").text))

    # -- POST /api/images from a running server: 201 with the cloud's id, then its states --
    web = fake.servers["web01"].id
    shown = http.get(f"{api}/api/instances/{web}").text
    assert f"href='{api}/api/images;instance_id={web}' method='post' rel='create_image'" in shown
    created = http.post(
        f"{api}/api/images", data={"instance_id": web, "name": "web-e2e", "description": "e2e"}
    )
    assert created.status_code == 201, created.text
    new_id = created.headers["Location"].rsplit("/", 1)[1]
    assert new_id in images  # the real id, at once
    assert field(created.text, "state") == "QUEUED"
    seen = ["QUEUED"]

    def active() -> bool:
        state = field(http.get(f"{api}/api/images/{new_id}").text, "state")
        if state and state != seen[-1]:
            seen.append(state)
        return state == "ACTIVE"

    wait_until(active, SNAPSHOT_SECONDS + 20, "the snapshot to become ACTIVE")
    assert seen[0] == "QUEUED" and seen[-1] == "ACTIVE" and "SAVING" in seen
    assert all(state in flavour.life for state in seen)
    assert field(http.get(f"{api}/api/images/{new_id}").text, "description") == "e2e"

    # -- a snapshot the cloud fails ends FAILED, with the reason -------------------------------
    db = fake.servers["db01"]
    db.snapshot_failure = "Failed to upload the snapshot: image store is full"
    doomed = http.post(f"{api}/api/images", data={"instance_id": db.id, "name": "doomed"})
    doomed_id = doomed.headers["Location"].rsplit("/", 1)[1]
    wait_until(
        lambda: field(http.get(f"{api}/api/images/{doomed_id}").text, "state") == flavour.failed,
        SNAPSHOT_SECONDS + 20,
        "the failed snapshot",
    )
    body = http.get(f"{api}/api/images/{doomed_id}").text
    reason = field(body, "state_reason")
    if flavour.driver == "openstack":  # microversion 2.84 shows Nova's own words
        assert reason == "Failed to upload the snapshot: image store is full"
    else:  # Cloud Servers has no microversions: which createImage failed
        assert reason.startswith(f"Nova's createImage of server {db.id} failed (req-")
    assert doomed_id in set(ids(http.get(f"{api}/api/images?state=failed").text)) - failed_before

    # -- DELETE, and gone after the next sync ------------------------------------------------
    assert http.delete(f"{api}/api/images/{new_id}").status_code == 204
    assert http.get(f"{api}/api/images/{new_id}").status_code == 404
    wait_until(lambda: fake.gone(images[new_id]), 20, "the cloud's delete")
    stack.manage("sync_catalog", "--full", "cloud")
    assert new_id not in ids(http.get(f"{api}/api/images").text)
    assert ProviderAccount.objects.get(name="cloud").images.get(external_id=new_id).missing_since is not None

    # -- an incremental sync: one change, no full listing -----------------------------------------
    renamed = fake.images["golden" if flavour.driver == "openstack" else "my-snapshot"]
    with fake.state.lock:
        renamed.name, renamed.updated_at = "renamed-in-the-cloud", fake.state.now() + 1
        fake.state.regions[flavour.region].changed()
    fake.clear_log()
    out = stack.manage("sync_catalog", "cloud")
    assert "changes (0 new, 1 changed, 0 missing)" in out, out
    asked = fake.logged(path=flavour.listing)
    assert asked and all(flavour.since in r.query for r in asked)
    assert field(http.get(f"{api}/api/images/{renamed.id}").text, "name") == "renamed-in-the-cloud"

    # -- a token the cloud expires in the middle of a sync ------------------------------------
    fake.clear_log()
    fake.inject(flavour.listing, skip=1, expire_tokens=True)
    out = stack.manage("sync_catalog", "--full", "cloud")
    assert "0 new, 0 changed, 0 missing" in out, out
    pages = [r.status for r in fake.logged(path=flavour.listing)]
    assert pages[1] == 401 and pages.count(401) == 1 and set(pages) == {200, 401}
    logins = [r.status for r in fake.logged("identity", "tokens$")]
    assert len(logins) == 2 and set(logins) <= {200, 201}
