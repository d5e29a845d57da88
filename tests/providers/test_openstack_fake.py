"""The fake OpenStack and Rackspace clouds, driven by the real openstacksdk.

These pin down that the fake speaks what the SDK expects (discovery, catalogs,
microversions, paging links, error bodies), so driver tests against it mean
something.
"""

from __future__ import annotations

import time

import pytest
import requests
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as os_exceptions

from providers.openstack_client import auth_plugin, connect
from tests.fakes.openstack import FakeOpenStack, FakeRackspace


@pytest.fixture
def cloud():
    with FakeOpenStack() as fake:
        fake.snapshot_delay = 0.4
        yield fake


@pytest.fixture
def rax():
    with FakeRackspace() as fake:
        fake.snapshot_delay = 0.4
        yield fake


def v3(cloud, region="RegionOne", interface="public", **overrides):
    creds = {"username": "demo", "password": cloud.password, "project_name": "demo", **overrides}
    return connect(
        auth_plugin("password", cloud.auth_url, **creds), region=region, interface=interface, timeout=5
    )


def wait_for(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition never held")


def test_keystone_v3_password_catalog_region_and_interface(cloud):
    # when: the SDK lists images in RegionTwo over the internal interface
    conn = v3(cloud, region="RegionTwo", interface="internal")
    names = [image.name for image in conn.image.images()]

    # then: it used the catalog's internal RegionTwo endpoint and sees that region only
    assert names == ["cirros-region-two"]
    glance = cloud.logged("image", r"/v2/images$")
    assert [(r.region, r.interface) for r in glance] == [("RegionTwo", "internal")]
    assert cloud.logged("identity", "/v3/auth/tokens", "POST")[0].status == 201


def test_keystone_v3_application_credential(cloud):
    plugin = auth_plugin(
        "v3applicationcredential",
        cloud.auth_url,
        application_credential_id=cloud.app_credential.id,
        application_credential_secret=cloud.app_credential.secret,
    )
    conn = connect(plugin, region="RegionOne", interface="public", timeout=5)
    assert conn.current_project_id == cloud.project.id
    assert {s.name for s in conn.compute.servers()} >= {"web01", "db01"}


def test_keystone_v2_password_and_api_key(cloud):
    for plugin in (
        auth_plugin(
            "v2password", cloud.auth_url, username="demo", password=cloud.password, project_name="demo"
        ),
        auth_plugin(
            "rax_apikey", cloud.auth_url, username="demo", api_key=cloud.api_key, project_id=cloud.project.id
        ),
    ):
        conn = connect(plugin, region="RegionOne", interface="public", timeout=5)
        assert "demo-golden" in {image.name for image in conn.image.images()}
    assert [r.status for r in cloud.logged("identity", "/v2.0/tokens")] == [200, 200]


def test_rejected_credentials_are_keystone_401s(cloud):
    with pytest.raises(ks_exceptions.Unauthorized, match="requires authentication"):
        list(v3(cloud, password="wrong").image.images())
    cred = auth_plugin(
        "v3applicationcredential",
        cloud.auth_url,
        application_credential_id=cloud.app_credential.id,
        application_credential_secret="wrong",
    )
    with pytest.raises(ks_exceptions.Unauthorized):
        list(connect(cred, region="RegionOne", interface="public", timeout=5).image.images())


def test_glance_pages_with_next_links_and_filters(cloud):
    # given: 23 more images of the demo project
    cloud.seed_images(23)
    conn = v3(cloud)

    # when: listed ten at a time
    images = list(conn.image.images(limit=10))

    # then: every visible image once, over pages that follow Glance's next links
    assert len(images) == len({i.id for i in images}) == 23 + 9
    pages = cloud.logged("image", r"/v2/images$")
    assert len(pages) == 5 and pages[1].query["marker"] == [images[9].id]
    assert "someone-elses-community" not in {i.name for i in images}
    assert [i.name for i in conn.image.images(architecture="aarch64", visibility="public")] == [
        "ubuntu-22.04-arm64"
    ]
    assert {i.name for i in conn.image.images(status="killed")} == {"demo-broken-upload"}


def test_glance_updated_at_filter_and_sorting(cloud):
    conn = v3(cloud)
    since = time.time() - 2.5 * 86400
    changed = conn.image.images(updated_at=f"gte:{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))}")
    assert {i.name for i in changed} == {"demo-broken-upload", "demo-shared"}
    oldest_first = [i.name for i in conn.image.images(sort_key="updated_at", sort_dir="asc")]
    assert oldest_first[-1] == "demo-shared"
    with pytest.raises(os_exceptions.BadRequestException, match="unknown operator"):
        list(conn.image.images(updated_at="since:2020-01-01T00:00:00Z"))


def test_glance_paging_is_stable_in_every_sort_order(cloud):
    cloud.seed_images(7)
    conn = v3(cloud)
    for order in ({}, {"sort_key": "name", "sort_dir": "asc"}, {"sort": "status:asc,name:desc"}):
        everything = [i.id for i in conn.image.images(limit=1000, **order)]
        paged = [i.id for i in conn.image.images(limit=3, **order)]
        assert paged == everything and len(set(paged)) == 16, order


def test_create_image_snapshot_life_cycle(cloud):
    # given: a running server
    conn = v3(cloud)
    web = conn.compute.get_server(cloud.servers["web01"].id)

    # when: the SDK creates an image from it (microversion 2.45: the id in the body)
    image_id = web.create_image(conn.compute, "web-snap", metadata={"description": "nightly"})

    # then: the Glance image goes queued -> saving -> active, with Nova's snapshot properties
    action = cloud.logged("compute", "/action$")[0]
    assert action.status == 202 and action.microversion == "2.45"
    image = conn.image.get_image(image_id)
    assert image.status == "queued" and image.visibility == "private" and image.owner == cloud.project.id
    assert image.instance_uuid == web.id and image.properties["description"] == "nightly"
    assert conn.compute.get_server(web.id).task_state == "image_snapshot"
    wait_for(lambda: conn.image.get_image(image_id).status == "saving")
    wait_for(lambda: conn.image.get_image(image_id).status == "active")
    assert conn.compute.get_server(web.id).task_state is None


def test_create_image_before_2_45_answers_with_a_location(cloud):
    conn = v3(cloud)
    web = cloud.servers["db01"].id
    response = conn.compute.post(
        f"/servers/{web}/action", json={"createImage": {"name": "old-style"}}, microversion="2.1"
    )
    assert response.status_code == 202 and not response.content
    image_id = response.headers["Location"].rsplit("/", 1)[1]
    assert conn.image.get_image(image_id).name == "old-style"


def test_failed_snapshot_is_killed_and_nova_says_why(cloud):
    conn = v3(cloud)
    server = cloud.servers["web01"]
    server.snapshot_failure = "Failed to upload the snapshot: disk I/O error"
    image_id = conn.compute.create_server_image(server.id, "doomed", wait=False).id
    wait_for(lambda: conn.image.get_image(image_id).status == "killed")
    (action,) = conn.compute.server_actions(server.id)
    assert action.action == "createImage" and action.message == "Error"
    detail = conn.compute.get_server_action(action.request_id, server.id)
    assert detail.events[0]["details"] == "Failed to upload the snapshot: disk I/O error"


def test_nova_refusals_in_novas_words(cloud):
    conn = v3(cloud)
    with pytest.raises(os_exceptions.ConflictException, match="while it is in vm_state building"):
        conn.compute.create_server_image(cloud.servers["build01"].id, "nope", wait=False)
    conn.compute.create_server_image(cloud.servers["web01"].id, "first", wait=False)
    with pytest.raises(os_exceptions.ConflictException, match="task_state image_snapshot"):
        conn.compute.create_server_image(cloud.servers["web01"].id, "second", wait=False)
    with pytest.raises(os_exceptions.NotFoundException, match="Instance nope could not be found"):
        conn.compute.get_server("nope")
    with pytest.raises(os_exceptions.NotFoundException):
        conn.compute.get_server(cloud.servers["other01"].id)
    body = conn.compute.get("/servers/nope").json()
    assert body == {"itemNotFound": {"code": 404, "message": "Instance nope could not be found."}}


def test_glance_errors_delete_and_rate_limits(cloud):
    conn = v3(cloud)
    with pytest.raises(os_exceptions.NotFoundException):
        conn.image.get_image("nope")
    # webob's error page: plain text unless JSON is asked for
    assert "No image found with ID nope" in conn.image.get("/images/nope").text
    assert (
        conn.image.get("/images/nope", headers={"Accept": "application/json"}).json()["title"] == "Not Found"
    )
    with pytest.raises(os_exceptions.ForbiddenException, match="Forbidden"):
        conn.image.delete_image(cloud.images["cirros"].id)
    conn.image.delete_image(cloud.images["golden"].id)
    assert "demo-golden" not in {i.name for i in conn.image.images()}

    cloud.inject(r"/v2/images$", status=429, retry_after=7)
    with pytest.raises(os_exceptions.HttpException) as raised:
        list(conn.image.images())
    assert raised.value.status_code == 429 and raised.value.response.headers["Retry-After"] == "7"
    cloud.inject(r"/servers/detail$", status=413, retry_after=3)
    with pytest.raises(os_exceptions.HttpException) as raised:
        list(conn.compute.servers())
    assert raised.value.response.json()["overLimit"]["retryAfter"] == "3"


def test_a_token_expired_cloud_side_is_renewed_once(cloud):
    # given: the cloud revokes every token just before the second page
    cloud.seed_images(15)
    conn = v3(cloud)
    cloud.inject(r"/v2/images$", method="GET", skip=1, expire_tokens=True)

    # when: the SDK lists
    images = list(conn.image.images(limit=10))

    # then: keystoneauth re-authenticated once and the listing completed
    assert len(images) == 15 + 9
    statuses = [(r.service, r.status) for r in cloud.requests if r.service in ("identity", "image")]
    assert statuses.count(("identity", 201)) == 2 and ("image", 401) in statuses


def test_faults_drop_and_delay(cloud):
    conn = v3(cloud)
    list(conn.image.images())
    cloud.inject(r"/v2/images$", drop=True)
    with pytest.raises(ks_exceptions.ConnectFailure):
        list(conn.image.images())
    cloud.inject(r"/v2/images$", delay=1.0)
    slow = connect(conn.session.auth, region="RegionOne", interface="public", timeout=0.3)
    with pytest.raises(ks_exceptions.ConnectTimeout):
        list(slow.image.images())


def test_control_api_for_other_processes(cloud):
    info = requests.get(f"{cloud.base}/_fake/info", timeout=5).json()
    assert info["username"] == "demo" and info["regions"] == ["RegionOne", "RegionTwo"]
    created = requests.post(f"{cloud.base}/_fake/images", json={"count": 5}, timeout=5)
    assert created.json() == {"created": 5}
    assert requests.post(f"{cloud.base}/_fake/expire-tokens", timeout=5).json()["expired"] == 0


# -- Rackspace ---------------------------------------------------------------------------


def rax_conn(rax, region="DFW"):
    plugin = auth_plugin("rax_apikey", rax.auth_url, username="raxuser", api_key=rax.api_key)
    return connect(plugin, region=region, interface="public", timeout=5)


def test_rackspace_identity_and_images_through_nova(rax):
    conn = rax_conn(rax, "ORD")
    names = {i.name: i.status for i in conn.compute.images(details=True, limit=2)}
    assert names == {
        "Ubuntu 12.04 LTS (Precise Pangolin)": "ACTIVE",
        "CentOS 6.4": "ACTIVE",
        "Arch 2013.6": "UNKNOWN",
    }
    assert all(r.path.startswith("/ORD/compute/v2/123456/") for r in rax.logged("compute", "/images"))
    body = rax.logged("identity", "/v2.0/tokens")
    assert body[0].status == 200
    bad = auth_plugin("rax_apikey", rax.auth_url, username="raxuser", api_key="wrong")
    with pytest.raises(ks_exceptions.Unauthorized) as raised:
        list(connect(bad, region="DFW", interface="public", timeout=5).compute.images())
    # keystoneauth cannot read Rackspace's fault body; the response still has it
    assert raised.value.response.json() == {
        "unauthorized": {"code": 401, "message": "Username or api key is invalid."}
    }


def test_rackspace_snapshot_states_and_changes_since(rax):
    conn = rax_conn(rax)
    server = conn.compute.get_server(rax.servers["web01"].id)
    image_id = server.create_image(conn.compute, "rax-snap")
    seen = {conn.compute.get_image(image_id).status}
    wait_for(lambda: seen.add(conn.compute.get_image(image_id).status) or "ACTIVE" in seen)
    assert seen >= {"QUEUED", "ACTIVE"} and seen <= {"QUEUED", "PREPARING", "SAVING", "ACTIVE"}

    # a delete shows up in a changes-since listing, as DELETED
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    conn.compute.delete_image(image_id)
    changed = {i.id: i.status for i in conn.compute.images(changes_since=since)}
    assert changed == {image_id: "DELETED"}
    assert image_id not in {i.id for i in conn.compute.images()}


def test_rackspace_rate_limit_says_when(rax):
    conn = rax_conn(rax)
    rax.inject(r"/images/detail$", status=413, retry_after=30)
    with pytest.raises(os_exceptions.HttpException) as raised:
        list(conn.compute.images())
    assert raised.value.response.headers["Retry-After"].endswith("GMT")
    assert raised.value.response.json()["overLimit"]["retryAfter"].endswith("Z")
