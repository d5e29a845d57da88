"""What is particular to the OpenStack and Rackspace drivers (the contract
suite covers the rest): Keystone versions and credentials, regions and
interfaces, token expiry, incremental listings, Nova's failure reasons,
throttling, and Rackspace's identity and images."""

from __future__ import annotations

import time

import pytest

from providers import registry
from providers.base import ImageState
from providers.exceptions import AuthFailure, InvalidParameter, ProviderError, Throttled
from tests.fakes.openstack import FakeOpenStack, FakeRackspace
from tests.fakes.openstack.state import iso


@pytest.fixture
def cloud():
    with FakeOpenStack() as fake:
        fake.snapshot_delay = 3600
        yield fake


@pytest.fixture
def rax():
    with FakeRackspace() as fake:
        fake.snapshot_delay = 3600
        yield fake


def openstack(cloud, provider="RegionOne", credentials=None, **params):
    return registry.create(
        "openstack",
        provider=provider,
        params={"auth_url": cloud.auth_url, "project_name": "demo", **params},
        credentials=credentials or {"username": "demo", "password": cloud.password},
    )


def rackspace(rax, provider="DFW", **params):
    return registry.create(
        "rackspace",
        provider=provider,
        params={"auth_url": f"{rax.auth_url}/v2.0", **params},
        credentials={"username": "raxuser", "api_key": rax.api_key},
    )


def names(driver):
    return {image.name for image in driver.list_images()}


# -- Keystone ------------------------------------------------------------------------------


def test_keystone_v3_password_scopes_the_project(cloud):
    driver = openstack(cloud, auth_url=f"{cloud.auth_url}/v3/")
    assert driver.identity() == cloud.project.id
    assert "demo-golden" in names(driver) and "other-private" not in names(driver)
    assert [r.path for r in cloud.logged("identity", "tokens")] == ["/identity/v3/auth/tokens"]


def test_keystone_v3_application_credential(cloud):
    driver = openstack(
        cloud,
        auth_type="v3applicationcredential",
        project_name="",
        credentials={
            "application_credential_id": cloud.app_credential.id,
            "application_credential_secret": cloud.app_credential.secret,
        },
    )
    assert driver.identity() == cloud.project.id
    assert "demo-golden" in names(driver)


def test_keystone_v2_for_legacy_clouds(cloud):
    driver = openstack(cloud, auth_type="v2password", auth_url=f"{cloud.auth_url}/v2.0")
    assert driver.identity() == cloud.project.id and "demo-golden" in names(driver)
    assert [r.path for r in cloud.logged("identity", "tokens")] == ["/identity/v2.0/tokens"]


def test_missing_credentials_fail_before_any_request(cloud):
    with pytest.raises(AuthFailure, match="need a username and a password"):
        openstack(cloud, credentials={"username": "demo"}).list_images()
    with pytest.raises(AuthFailure, match="need an id and a secret"):
        openstack(cloud, auth_type="v3applicationcredential", credentials={"username": "demo"}).list_images()
    assert cloud.requests == []


def test_auth_url_must_be_a_url():
    with pytest.raises(InvalidParameter, match="auth_url"):
        registry.parse_params("openstack", {"auth_url": "keystone.example.com"})


# -- regions, interfaces, catalogs ------------------------------------------------------------


def test_region_and_interface_choose_the_endpoints(cloud):
    # Deltacloud providers come lower-cased; the catalog's region is RegionTwo
    driver = openstack(cloud, provider="regiontwo", interface="internal")
    assert names(driver) == {"cirros-region-two"}
    assert [i.name for i in driver.list_instances()] == ["web02"]
    used = {(r.service, r.region, r.interface) for r in cloud.requests if r.service != "identity"}
    assert used == {("image", "RegionTwo", "internal"), ("compute", "RegionTwo", "internal")}


def test_a_region_the_catalog_lacks_is_a_clear_error(cloud):
    with pytest.raises(ProviderError, match="no image service for region RegionNine"):
        openstack(cloud, provider="RegionNine").list_images()


def test_clouds_without_glance_v2_list_images_through_nova(cloud):
    driver = openstack(cloud, image_api="compute")
    listed = {i.name: i for i in driver.list_images()}
    assert listed["demo-broken-upload"].raw_state == "ERROR"
    assert listed["demo-golden"].architecture == "x86_64"
    assert not cloud.logged("image", "/v2/images")
    assert cloud.logged("compute", "/images/detail")[0].microversion == "2.35"  # the proxy is gone at 2.36


def test_visibility_community(cloud):
    assert "someone-elses-community" in names(openstack(cloud, visibility="community"))
    assert "someone-elses-community" not in names(openstack(cloud))


# -- tokens ----------------------------------------------------------------------------------


def test_a_token_expired_mid_sync_is_renewed_once(cloud):
    # given: more than two pages, and the cloud revokes every token before page two
    cloud.seed_images(6)
    driver = openstack(cloud, page_size=5)
    cloud.inject(r"/v2/images$", skip=1, expire_tokens=True)

    # when: the driver lists
    pages = list(driver.iter_image_pages())

    # then: keystoneauth logged in again once and the listing went on where it was
    assert sum(len(p) for p in pages) == 6 + 9
    assert [r.status for r in cloud.logged("identity", "tokens")] == [201, 201]
    statuses = [r.status for r in cloud.logged("image", r"/v2/images$")]
    assert statuses.count(401) == 1 and statuses[1] == 401


def test_a_token_refused_again_after_renewal_is_an_auth_failure(cloud):
    driver = openstack(cloud, page_size=5)
    driver.identity()
    cloud.state.users[cloud.user.id].password = "changed-by-an-operator"
    cloud.expire_tokens()
    with pytest.raises(AuthFailure, match="rejected the account's credentials"):
        driver.list_images()


# -- incremental listing ----------------------------------------------------------------------


def test_incremental_listing_asks_glance_for_what_changed(cloud):
    # given: one image changed after the others
    driver = openstack(cloud, page_size=3)
    golden = cloud.images["golden"]
    since = iso(cloud.images["shared"].updated_at)
    with cloud.state.lock:
        golden.name, golden.updated_at = "demo-golden-v2", cloud.state.now()
        cloud.state.regions["RegionOne"].changed()
    cloud.clear_log()

    # when
    changed = [i for page in driver.iter_image_changes(since) for i in page]

    # then: only the changes, oldest first, through updated_at=gte: and no full listing
    assert [i.name for i in changed] == ["demo-shared", "demo-golden-v2"]
    assert changed[-1].updated_at == iso(golden.updated_at)
    (request,) = cloud.logged("image", r"/v2/images$")
    assert request.query == {
        "updated_at": [f"gte:{since}"],
        "sort_key": ["updated_at"],
        "sort_dir": ["asc"],
        "limit": ["3"],
    }


# -- creating images -------------------------------------------------------------------------


def test_create_image_keeps_the_description_and_refuses_busy_servers(cloud):
    driver = openstack(cloud)
    web = cloud.servers["web01"].id
    image = driver.create_image(instance_id=web, name="nightly", description="before the upgrade")
    assert (image.state, image.raw_state, image.description) == (
        ImageState.PENDING,
        "QUEUED",
        "before the upgrade",
    )
    assert image.owner_id == cloud.project.id and image.extra["instance_uuid"] == web
    busy = driver.get_instance(web)
    assert busy.create_image_refusal == f"Server {web} is busy (image_snapshot); try again when it is done"
    with pytest.raises(InvalidParameter, match="1 to 255"):
        driver.create_image(instance_id=cloud.servers["db01"].id, name="x" * 256)


def test_a_failed_snapshot_says_what_nova_said_and_asks_once(cloud):
    driver = openstack(cloud)
    image = driver.create_image(instance_id=cloud.servers["db01"].id, name="doomed")
    cloud.settle_snapshot(image.id, ok=False, reason="Failed to upload: storage backend full")

    failed = driver.get_image(image.id)
    assert failed.state == ImageState.FAILED and failed.raw_state == "KILLED"
    assert failed.failure_reason == "Failed to upload: storage backend full"
    asked = len(cloud.logged("compute", "os-instance-actions"))
    listed = next(i for i in driver.list_images() if i.id == image.id)
    assert listed.failure_reason == failed.failure_reason
    assert len(cloud.logged("compute", "os-instance-actions")) == asked  # remembered


def test_instances_and_realms(cloud):
    driver = openstack(cloud)
    by_name = {i.name: i for i in driver.list_instances()}
    states = {n: i.state for n, i in by_name.items()}
    assert states == {
        "web01": "RUNNING",
        "db01": "STOPPED",
        "build01": "PENDING",
        "broken01": "ERROR",
        "paused01": "STOPPED",
    }
    assert by_name["web01"].create_image_refusal == "" and by_name["db01"].create_image_refusal == ""
    assert "PAUSED" in by_name["paused01"].create_image_refusal
    assert by_name["broken01"].extra["fault"].startswith("No valid host")
    assert by_name["web01"].hardware_profile_id == "m1.tiny" and by_name["web01"].keyname == "demo-key"
    assert [r.id for r in driver.realms()] == ["nova"]


# -- errors ----------------------------------------------------------------------------------


def test_throttling_carries_the_wait(cloud):
    driver = openstack(cloud)
    cloud.inject(r"/v2/images$", status=429, retry_after=7)
    with pytest.raises(Throttled) as glance:
        driver.list_images()
    assert glance.value.retry_after == 7 and "rate-limited" in glance.value.message
    cloud.inject(r"/servers/detail$", status=413, retry_after=11)
    with pytest.raises(Throttled) as nova:
        driver.list_instances()
    assert nova.value.retry_after == 11


def test_forbidden_is_a_provider_error_with_the_clouds_words(cloud):
    driver = openstack(cloud)
    with pytest.raises(ProviderError) as caught:
        driver.destroy_image(cloud.images["cirros"].id)
    assert type(caught.value) is ProviderError
    assert caught.value.message == "The image service refused: You are not permitted to delete this image."
    assert "HTTP 403" in caught.value.detail


# -- Rackspace -------------------------------------------------------------------------------


def test_rackspace_logs_in_with_the_api_key(rax):
    rax.state.users[rax.user.id].password = "nobody-knows"  # only the API key can work
    driver = rackspace(rax)
    assert driver.identity() == "123456"
    assert [r.path for r in rax.logged("identity", "tokens")] == ["/identity/v2.0/tokens"]
    with pytest.raises(AuthFailure, match="Username or api key is invalid"):
        registry.create(
            "rackspace",
            provider="DFW",
            params={"auth_url": rax.auth_url},
            credentials={"username": "raxuser", "api_key": "wrong"},
        ).list_images()


def test_rackspace_regions(rax):
    assert {i.name for i in rackspace(rax, "ord").list_instances()} == {"web02"}
    with pytest.raises(ProviderError, match="DFW, ORD, IAD, LON, SYD, HKG"):
        rackspace(rax, "RegionOne").list_images()


def test_rackspace_images_keep_rackspaces_states(rax):
    listed = {i.name: i for i in rackspace(rax).list_images()}
    assert {listed[n].raw_state for n in listed} == {"ACTIVE", "QUEUED", "PREPARING", "FAILED", "UNKNOWN"}
    assert listed["failed-snapshot"].state == ImageState.FAILED and listed["failed-snapshot"].failure_reason
    assert listed["my-snapshot"].owner_id == "123456" and listed["CentOS 6.4"].owner_id == ""
    assert all(i.architecture == "x86_64" for i in listed.values())


def test_rackspace_create_reads_the_location_header_and_changes_since_lists_changes(rax):
    driver = rackspace(rax)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    image = driver.create_image(instance_id=rax.servers["web01"].id, name="before-upgrade")
    (action,) = rax.logged("compute", "/action$")
    assert action.status == 202 and action.microversion == ""  # no microversions: Location header
    assert driver.get_image(image.id).raw_state == "QUEUED"
    changed = [i for page in driver.iter_image_changes(since) for i in page]
    assert [(i.id, i.raw_state) for i in changed] == [(image.id, "QUEUED")]
    assert rax.logged("compute", "/images/detail$")[-1].query["changes-since"] == [since]

    # Nova also lists the deleted image as DELETED; vanishing is the full listing's to say
    driver.destroy_image(image.id)
    assert [i for page in driver.iter_image_changes(since) for i in page] == []
    assert rax.logged("compute", "/images/detail$")[-1].status == 200


def test_rackspace_rate_limits_say_until_when(rax):
    rax.inject(r"/images/detail$", status=413, retry_after=30)
    with pytest.raises(Throttled) as caught:
        rackspace(rax).list_images()
    assert 25 <= caught.value.retry_after <= 30
