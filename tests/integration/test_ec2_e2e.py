"""EC2 end to end: moto's server on 127.0.0.1, the API in gunicorn, a real
worker, all spoken to over HTTP as a Deltacloud client would."""

from __future__ import annotations

import re
import time

import boto3
import pytest
import requests
from moto.ec2.models import ec2_backends
from moto.server import ThreadedMotoServer

from images.models import ProviderAccount
from tests.conftest import make_account
from tests.fakes import moto_ec2
from tests.integration.conftest import free_port
from tests.integration.test_worker import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ACCOUNT, REGION = "123456789012", "us-east-1"
PENDING_SECONDS = 3


@pytest.fixture
def moto_server(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")
    moto_ec2.apply(monkeypatch, pending_seconds=PENDING_SECONDS)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    yield url
    requests.post(f"{url}/moto-api/reset", timeout=10)
    server.stop()


def ids(body: str) -> list[str]:
    return re.findall(r"<image href='[^']*' id='([^']*)'>", body)


def test_ec2_through_the_whole_stack(stack, api_user, moto_server):
    # given: an AWS account with a running EBS instance and seven images of its own
    ec2 = boto3.client(
        "ec2",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    public = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=public, MinCount=1, MaxCount=1, InstanceType="t3.micro")[
        "Instances"
    ][0]["InstanceId"]
    own = [ec2.create_image(InstanceId=instance, Name=f"base-{i}")["ImageId"] for i in range(7)]
    ec2_backends[ACCOUNT][REGION].amis[own[2]].architecture = "arm64"
    time.sleep(PENDING_SECONDS + 0.5)
    make_account(
        "aws",
        users=[api_user],
        driver="ec2",
        provider=REGION,
        is_default=True,
        params={"endpoint_url": moto_server, "owners": ["self"], "page_size": 5},
        credentials={"access_key_id": "testing", "secret_access_key": "testing"},
    )
    api = stack.web()
    stack.worker()
    http = requests.Session()
    http.auth = ("mockuser", "mockpassword")
    http.headers["Accept"] = "application/xml"

    # sync (seven images over two pages), then list with filters
    assert "aws: 7 images (7 new, 0 changed, 0 missing)" in stack.manage("sync_catalog", "aws")
    listing = http.get(f"{api}/api/images")
    assert listing.status_code == 200 and sorted(ids(listing.text)) == sorted(own)
    assert listing.headers["X-Deltacloud-Driver"] == "ec2"
    assert listing.headers["X-Deltacloud-Provider"] == REGION
    assert "<state>available</state>" in listing.text and "<root_type>persistent</root_type>" in listing.text
    assert ids(http.get(f"{api}/api/images?architecture=arm64").text) == [own[2]]
    assert sorted(ids(http.get(f"{api}/api/images?owner_id=self").text)) == sorted(own)
    assert ids(http.get(f"{api}/api/images?owner_id=801119661308").text) == []
    entry = http.get(f"{api}/api?force_auth=1").text  # credentials are looked at only when asked
    assert "<api driver='ec2' provider='us-east-1' version='1.1.3'>" in entry
    assert "<feature name='owner_id' rel='index'>" in entry

    # the instance can be imaged (EBS), and says so
    shown = http.get(f"{api}/api/instances/{instance}").text
    assert f"href='{api}/api/images;instance_id={instance}' method='post' rel='create_image'" in shown

    # when: a client creates an image from it
    created = http.post(
        f"{api}/api/images",
        data={"instance_id": instance, "name": "web-e2e", "description": "built by the e2e test"},
    )
    assert created.status_code == 201
    new_id = created.headers["Location"].rsplit("/", 1)[1]
    assert new_id.startswith("ami-") and "<state>pending</state>" in created.text

    # then: the worker polls EC2 until the image is available
    wait_until(
        lambda: "<state>available</state>" in http.get(f"{api}/api/images/{new_id}").text,
        PENDING_SECONDS + 15,
        "the image to become available",
    )
    assert "<description>built by the e2e test</description>" in http.get(f"{api}/api/images/{new_id}").text

    # and a delete goes through the worker to DeregisterImage
    assert http.delete(f"{api}/api/images/{new_id}").status_code == 204
    assert http.get(f"{api}/api/images/{new_id}").status_code == 404

    def deregistered():
        return not ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [new_id]}])[
            "Images"
        ]

    wait_until(deregistered, 15, "DeregisterImage")
    stack.manage("sync_catalog", "aws")
    assert new_id not in ids(http.get(f"{api}/api/images").text)
    # kept as vanished, so the delta feed can say it is gone
    assert ProviderAccount.objects.get(name="aws").images.get(external_id=new_id).missing_since is not None


def test_ec2_errors_over_http(stack, api_user, moto_server):
    # an account whose endpoint is down: 502 on the request path, flagged after syncs fail
    make_account(
        "down",
        users=[api_user],
        driver="ec2",
        provider=REGION,
        is_default=True,
        params={"endpoint_url": f"http://127.0.0.1:{free_port()}", "max_attempts": 1},
        credentials={"access_key_id": "testing", "secret_access_key": "testing"},
    )
    api = stack.web()
    http = requests.Session()
    http.auth = ("mockuser", "mockpassword")
    response = http.get(f"{api}/api/realms?format=json")
    assert response.status_code == 502
    assert response.json()["error"] == "Deltacloud::Exceptions::ProviderError"
    assert "testing" not in response.text  # no credentials echoed
