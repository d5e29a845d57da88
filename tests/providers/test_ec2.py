"""The EC2 driver: real boto3/botocore against moto (in-process ``mock_aws`` and its server).

Where moto cannot produce an AWS condition (throttling, IncorrectInstanceState,
duplicate AMI names, DescribeImages paging), the condition is made on the wire:
a botocore ``before-send`` handler answers with AWS's own error XML, or moto's
response handler is taught the missing behaviour, so botocore's parser and
retry machinery still run for real.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Iterator
from datetime import UTC

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.ec2.models import ec2_backends
from moto.server import ThreadedMotoServer

from providers import registry
from providers.base import Address, Capabilities, ImageState, Realm, RootType, Transition
from providers.drivers.ec2 import HARDWARE_PROFILES, EC2Driver, profile_architectures
from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    ProviderError,
    Throttled,
    Unavailable,
)
from providers.registry import get_driver
from tests.fakes import moto_ec2

ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRETz"
CREDENTIALS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": SECRET}


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch):
    # given: no default AMIs (fast backends) and no host AWS settings leaking in
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def ec2_like_moto(monkeypatch):
    """Teach moto the EC2 behaviour the driver relies on and moto lacks."""
    moto_ec2.apply(monkeypatch)


@pytest.fixture
def backend(ec2_like_moto):
    """An in-process moto EC2 for one test; yields moto's backend model for the region."""
    with mock_aws():
        yield ec2_backends[ACCOUNT][REGION]


def make_driver(provider: str = REGION, credentials: dict | None = None, **params) -> EC2Driver:
    params.setdefault("max_attempts", 2)
    return registry.create(
        "ec2",
        provider=provider,
        params=params,
        credentials=CREDENTIALS if credentials is None else credentials,
    )


@functools.cache
def ec2_client():
    """A separate client for arranging state, as another tool in the account would."""
    return boto3.client("ec2", region_name=REGION, aws_access_key_id="AKIDTEST", aws_secret_access_key="x")


def run_instance(name: str = "", **kwargs) -> str:
    request = {"ImageId": "ami-12345678", "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro", **kwargs}
    if name:
        request["TagSpecifications"] = [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}
        ]
    return ec2_client().run_instances(**request)["Instances"][0]["InstanceId"]


def register_ami(backend, name: str, **attributes) -> str:
    """An own AMI, its model fields set as EC2 would report them."""
    image_id = ec2_client().register_image(Name=name)["ImageId"]
    for key, value in attributes.items():
        setattr(backend.amis[image_id], key, value)
    return image_id


class _Raw(io.BytesIO):
    def stream(self, **kwargs) -> Iterator[bytes]:
        yield self.getvalue()


class AwsErrorReply:
    """A before-send handler answering with EC2's error XML; counts the attempts.

    ``times`` limits how often it answers; after that the request goes on to moto.
    """

    def __init__(self, code: str, message: str, status: int = 400, times: int | None = None) -> None:
        self.code, self.message, self.status, self.times = code, message, status, times
        self.calls = 0

    def __call__(self, request, **kwargs):
        if self.times is not None and self.calls >= self.times:
            return None
        self.calls += 1
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{self.code}</Code><Message>{self.message}</Message>"
            "</Error></Errors><RequestID>0f2b1a8e-aaaa-bbbb-cccc-123456789abc</RequestID></Response>"
        ).encode()
        return AWSResponse(request.url, self.status, {"Content-Type": "text/xml;charset=UTF-8"}, _Raw(body))


def reply_with(driver: EC2Driver, operation: str, reply: AwsErrorReply) -> AwsErrorReply:
    driver.client().meta.events.register_first(f"before-send.ec2.{operation}", reply)
    return reply


def count_calls(driver: EC2Driver, operation: str) -> list[str]:
    calls: list[str] = []
    driver.client().meta.events.register(f"before-call.ec2.{operation}", lambda **kw: calls.append(operation))
    return calls


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text)


# -- description -------------------------------------------------------------------------------


def test_registry_resolves_ec2():
    # given
    get_driver.cache_clear()

    # then
    assert get_driver("ec2") is EC2Driver
    get_driver.cache_clear()


def test_static_description_follows_deltacloud():
    # then
    assert (EC2Driver.name, EC2Driver.label, EC2Driver.auth_feature) == ("ec2", "EC2", "key")
    assert {"us-east-1", "eu-west-1", "ap-southeast-2"} <= set(EC2Driver.providers)
    assert [f.name for f in EC2Driver.features["images"]] == ["owner_id", "image_name", "image_description"]
    assert EC2Driver.features["images"][0].operation == "index"
    assert {f.name for f in EC2Driver.features["instances"]} == {"user_name", "authentication_key"}
    states = dict(EC2Driver.instance_states)
    assert states["start"] == (Transition("pending", None),)
    assert states["pending"] == (Transition("running", None),)
    assert states["running"] == (Transition("running", "reboot"), Transition("stopping", "stop"))
    assert states["stopping"] == (Transition("stopped", None),)
    assert states["stopped"] == (Transition("running", "start"), Transition("finish", "destroy"))


def test_hardware_profiles_cover_every_architecture():
    # when
    by_arch = {
        arch: {p.id for p in HARDWARE_PROFILES if arch in profile_architectures(p)}
        for arch in ("i386", "x86_64", "arm64")
    }

    # then
    assert {"t1.micro", "m1.small", "c1.medium"} <= by_arch["i386"]
    assert {"m1.large", "t3.micro", "m5.large", "m1.small"} <= by_arch["x86_64"]
    assert {"t4g.micro", "m6g.medium"} <= by_arch["arm64"]
    for profile in HARDWARE_PROFILES:
        names = [p.name for p in profile.properties]
        assert names[:2] == ["cpu", "memory"] and names[-1] == "architecture"
        assert all(p.kind in ("fixed", "enum") for p in profile.properties)
    assert EC2Driver.hardware_profiles == HARDWARE_PROFILES


def test_capabilities_need_no_client():
    # given
    driver = make_driver()

    # when
    caps = driver.capabilities

    # then: nothing was built, let alone called
    assert caps == Capabilities(
        create_image=True,
        destroy_image=True,
        create_returns_id=True,
        honours_image_name=True,
        honours_image_description=True,
        unique_image_names=True,
        image_name_max_length=128,
        create_instance=True,
        run_on_instance=False,
    )
    assert driver._clients == {}


def test_client_is_built_once_for_all_threads():
    # given
    driver = make_driver()
    seen: list[object] = []
    barrier = threading.Barrier(8)

    def grab():
        barrier.wait()
        seen.append(driver.client())

    # when
    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert len(seen) == 8 and all(c is seen[0] for c in seen)


def test_settings_reach_the_client():
    # given
    driver = registry.create(
        "ec2",
        provider="eu-west-1",
        params={
            "endpoint_url": "http://127.0.0.1:5999",
            "connect_timeout": 3,
            "read_timeout": 7,
            "max_attempts": 5,
        },
        credentials={**CREDENTIALS, "session_token": "tok"},
    )

    # when
    client = driver.client()
    sts = driver.client("sts")

    # then
    assert driver.region == "eu-west-1"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == sts.meta.endpoint_url == "http://127.0.0.1:5999"
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3.0, 7.0)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}


def test_the_provider_is_the_region_and_the_default_is_us_east_1():
    assert make_driver(provider="ap-south-1").region == "ap-south-1"
    assert make_driver(provider="").region == "us-east-1"
    with pytest.raises(InvalidParameter, match="Unknown ec2 parameter 'region'"):
        make_driver(region="eu-west-1")


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": 1},
        {"page_size": 5000},
        {"page_size": "many"},
        {"owners": [1]},
        {"filters": [{"Name": "name"}]},
        {"read_timeout": 0},
        {"retry_mode": "eager"},
        {"max_attempts": 0},
    ],
)
def test_bad_settings_are_invalid_parameters(params):
    with pytest.raises(InvalidParameter):
        make_driver(**params)


@pytest.mark.parametrize("credentials", [{}, {"access_key_id": "AKIDONLY"}, {"secret_access_key": SECRET}])
def test_missing_credentials_are_refused_before_any_driver_exists(credentials):
    with pytest.raises(InvalidParameter, match=r"EC2 credential '.*' is required") as caught:
        make_driver(credentials=credentials)
    assert_no_secret(caught.value, caught.value.detail)


def test_empty_credentials_are_an_auth_failure_not_the_hosts_keys(backend):
    driver = make_driver(credentials={"access_key_id": "", "secret_access_key": ""})
    with pytest.raises(AuthFailure, match="need access_key_id and secret_access_key"):
        driver.list_images()


def test_identity_is_the_account_id(backend):
    assert make_driver().identity() == ACCOUNT


def test_realms_are_availability_zones(backend):
    # when
    realms = make_driver().realms()

    # then
    assert realms[0] == Realm(id="us-east-1a", name="us-east-1a", state="AVAILABLE", limit="")
    assert {r.id for r in realms} >= {"us-east-1a", "us-east-1b"}
    assert make_driver().get_realm("us-east-1b").name == "us-east-1b"
    assert EC2Driver._realm({"ZoneName": "x-1a", "State": "impaired"}).state == "IMPAIRED"


# -- images ------------------------------------------------------------------------------------


def test_an_empty_catalog_is_one_empty_page(backend):
    assert list(make_driver().iter_image_pages()) == [[]]


def test_owners_setting_chooses_whose_images_are_cached(ec2_like_moto, monkeypatch):
    # given: one own AMI, one shared by another account, and AWS's public catalog
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")
    with mock_aws():
        models = ec2_backends[ACCOUNT][REGION]
        own = register_ami(models, "mine")
        theirs = register_ami(models, "theirs", owner_id="111122223333")

        # when
        self_ids = {i.id for i in make_driver().list_images()}
        other_ids = {i.id for i in make_driver(owners=["111122223333"]).list_images()}
        amazon = make_driver(owners=["amazon"]).list_images()
        both = {i.id for i in make_driver(owners=["self", "111122223333"]).list_images()}

    # then
    assert self_ids == {own}
    assert other_ids == {theirs}
    assert both == {own, theirs}
    assert len(amazon) > 100 and own not in {i.id for i in amazon}
    assert all(i.owner_id != ACCOUNT for i in amazon)


def sent_params(driver: EC2Driver, operation: str) -> list[dict]:
    sent: list[dict] = []
    driver.client().meta.events.register(
        f"provide-client-params.ec2.{operation}", lambda params, **kw: sent.append(dict(params))
    )
    return sent


def test_filters_narrow_the_catalog(backend):
    # given
    register_ami(backend, "web-1", architecture="x86_64")
    register_ami(backend, "db-1", architecture="x86_64")
    driver = make_driver(filters=[{"Name": "name", "Values": ["web-*"]}])
    sent = sent_params(driver, "DescribeImages")

    # when
    names = [i.name for i in driver.list_images()]

    # then
    assert names == ["web-1"]
    assert sent == [
        {"Owners": ["self"], "MaxResults": 1000, "Filters": [{"Name": "name", "Values": ["web-*"]}]}
    ]


def test_executable_users_and_no_owners(backend):
    # given: one AMI launchable by everybody, one private
    public = register_ami(backend, "public")
    ec2_client().modify_image_attribute(ImageId=public, LaunchPermission={"Add": [{"Group": "all"}]})
    register_ami(backend, "private")
    driver = make_driver(owners=[], executable_users=["all"])
    sent = sent_params(driver, "DescribeImages")

    # when
    images = driver.list_images()

    # then
    assert [i.id for i in images] == [public] and images[0].extra["public"] is True
    assert sent == [{"MaxResults": 1000, "ExecutableUsers": ["all"]}]


def test_image_fields_are_mapped(backend):
    # given
    ebs = register_ami(
        backend,
        "ebs-x86",
        architecture="x86_64",
        root_device_type="ebs",
        description="Web server",
        platform="windows",
        image_location="123456789012/ebs-x86",
    )
    store = register_ami(backend, "store-i386", architecture="i386", root_device_type="instance-store")
    arm = register_ami(backend, "ebs-arm", architecture="arm64", root_device_type="ebs")
    driver = make_driver()

    # when
    images = {i.id: i for i in driver.list_images()}

    # then
    web = images[ebs]
    assert (web.name, web.description, web.owner_id) == ("ebs-x86", "Web server", ACCOUNT)
    assert (web.architecture, web.root_type) == ("x86_64", RootType.PERSISTENT)
    assert (web.state, web.raw_state) == (ImageState.AVAILABLE, "available")
    assert web.creation_time == backend.amis[ebs].creation_date.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert web.extra["platform"] == "windows" and web.extra["image_location"] == "123456789012/ebs-x86"
    assert "t1.micro" in web.hardware_profiles and "m1.small" in web.hardware_profiles
    assert "t4g.micro" not in web.hardware_profiles
    legacy = images[store]
    assert (legacy.architecture, legacy.root_type, legacy.description) == ("i386", RootType.TRANSIENT, None)
    # t1.micro is EBS-only, so instance-store images cannot use it (Deltacloud did the same)
    assert "t1.micro" not in legacy.hardware_profiles and "m1.small" in legacy.hardware_profiles
    assert "m1.large" not in legacy.hardware_profiles
    assert set(images[arm].hardware_profiles) == {"t4g.micro", "t4g.small", "t4g.medium", "m6g.medium"} | {
        "m6g.large",
        "m6g.xlarge",
    }
    assert all(isinstance(v, str | bool | int) for v in web.extra.values())


def test_create_image_returns_the_new_ami(backend):
    # given
    instance_id = run_instance()
    driver = make_driver()

    # when
    image = driver.create_image(instance_id=instance_id, name="golden", description="Golden image")

    # then
    assert image.id.startswith("ami-") and image.id in backend.amis
    assert (image.name, image.description, image.owner_id) == ("golden", "Golden image", ACCOUNT)
    assert image.architecture == "x86_64" and image.extra["source_instance_id"] == instance_id
    assert driver.get_image(image.id) == image


def test_create_image_read_back_not_yet_visible_is_pending(backend):
    # given: EC2 is eventually consistent; the new id is not describable yet
    driver = make_driver()
    instance_id = run_instance()
    driver.get_instance(instance_id)  # the describe before CreateImage goes to moto
    reply_with(
        driver, "DescribeImages", AwsErrorReply("InvalidAMIID.NotFound", "The image id does not exist")
    )

    # when
    image = driver.create_image(instance_id=instance_id, name="fresh", description="new")

    # then
    assert image.id in backend.amis
    assert (image.state, image.raw_state, image.name, image.description) == (
        ImageState.PENDING,
        "pending",
        "fresh",
        "new",
    )
    assert (image.owner_id, image.root_type, image.architecture) == (ACCOUNT, RootType.PERSISTENT, "x86_64")


def test_create_image_with_a_taken_name_is_a_conflict(backend):
    # given
    driver = make_driver()
    instance_id = run_instance()
    first = driver.create_image(instance_id=instance_id, name="release")

    # when
    with pytest.raises(Conflict) as caught:
        driver.create_image(instance_id=instance_id, name="release")

    # then
    assert (
        str(caught.value) == f"InvalidAMIName.Duplicate: AMI name release is already in use by AMI {first.id}"
    )


@pytest.mark.parametrize("name", ["", "   ", "ab", "x" * 129])
def test_create_image_needs_a_valid_name(backend, name):
    # given
    driver = make_driver()
    instance_id = run_instance()
    creates = count_calls(driver, "CreateImage")

    # when
    with pytest.raises(InvalidParameter) as caught:
        driver.create_image(instance_id=instance_id, name=name)

    # then
    assert "name" in str(caught.value) and creates == []


def test_create_image_parameter_rejected_by_ec2(backend):
    # given
    driver = make_driver()
    instance_id = run_instance()
    driver.get_instance(instance_id)
    reply_with(driver, "CreateImage", AwsErrorReply("InvalidParameterValue", "Invalid value for Description"))

    # when / then
    with pytest.raises(InvalidParameter, match=r"^InvalidParameterValue: Invalid value for Description$"):
        driver.create_image(instance_id=instance_id, name="okay-name", description="\x00")


def test_instance_store_instances_are_refused_before_create_image(backend):
    # given
    instance_id = run_instance()
    backend.get_instance(instance_id).root_device_type = "instance-store"
    driver = make_driver()
    creates = count_calls(driver, "CreateImage")
    message = f"Instance {instance_id} is instance-store backed; only EBS-backed instances can be imaged"

    # when
    with pytest.raises(InvalidState) as caught:
        driver.create_image(instance_id=instance_id, name="nope")

    # then
    assert str(caught.value) == message
    assert creates == []
    assert driver.get_instance(instance_id).create_image_refusal == message
    assert not driver.get_instance(instance_id).can_create_image


def test_destroy_image_deregisters_it(backend):
    # given
    driver = make_driver()
    image = driver.create_image(instance_id=run_instance(), name="short-lived")

    # when
    driver.destroy_image(image.id)

    # then
    assert driver.get_image(image.id) is None
    with pytest.raises(NotFound, match=r"^InvalidAMIID\.Unavailable: "):
        driver.destroy_image(image.id)
    with pytest.raises(NotFound, match=r"^InvalidAMIID\.NotFound: "):
        driver.destroy_image("ami-0000000000000000f")


def test_terminated_instances_are_refused(backend):
    # given
    instance_id = run_instance()
    ec2_client().terminate_instances(InstanceIds=[instance_id])
    driver = make_driver()

    # when
    with pytest.raises(InvalidState, match="terminated"):
        driver.create_image(instance_id=instance_id, name="too-late")

    # then
    assert driver.get_instance(instance_id).create_image_refusal.endswith("it can no longer be imaged")


def test_unknown_and_malformed_image_ids(backend):
    # given
    driver = make_driver()

    # then
    assert driver.get_image("ami-0000000000000000f") is None
    with pytest.raises(InvalidParameter, match=r'^InvalidAMIID\.Malformed: Invalid id: "bogus"'):
        driver.get_image("bogus")


# -- instances ---------------------------------------------------------------------------------


def test_instance_fields_are_mapped(backend):
    # given
    instance_id = run_instance("web", KeyName="deploy", Placement={"AvailabilityZone": "us-east-1b"})

    # when
    inst = make_driver().get_instance(instance_id)

    # then
    raw = ec2_client().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert (inst.id, inst.name, inst.owner_id, inst.image_id) == (instance_id, "web", ACCOUNT, "ami-12345678")
    assert (inst.realm_id, inst.hardware_profile_id, inst.keyname) == ("us-east-1b", "t3.micro", "deploy")
    assert inst.state == "RUNNING" and inst.actions == ("reboot", "stop")
    assert inst.create_image_refusal == "" and inst.can_create_image
    assert inst.root_type == RootType.PERSISTENT
    assert inst.public_addresses == (Address(raw["PublicDnsName"], "hostname"),)
    assert inst.private_addresses == (Address(raw["PrivateDnsName"], "hostname"),)
    assert inst.storage_volumes == (raw["BlockDeviceMappings"][0]["Ebs"]["VolumeId"],)
    assert inst.launch_time == raw["LaunchTime"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert inst.network_interfaces is None
    assert inst.extra["raw_state"] == "running"


def test_instance_addresses_fall_back_to_ip():
    # given
    raw = {
        "InstanceId": "i-1",
        "State": {"Name": "pending"},
        "RootDeviceType": "ebs",
        "PublicIpAddress": "203.0.113.7",
        "PrivateIpAddress": "10.0.0.7",
        "InstanceType": "m1.small",
        "Architecture": "i386",
    }

    # when
    inst = make_driver()._instance(raw, ACCOUNT)

    # then
    assert [(a.address, a.type) for a in inst.public_addresses] == [("203.0.113.7", "ipv4")]
    assert [(a.address, a.type) for a in inst.private_addresses] == [("10.0.0.7", "ipv4")]
    assert inst.state == "PENDING" and inst.actions == ()
    assert inst.hardware_profile_overrides == (("architecture", "i386"),)
    assert inst.name == "" and inst.launch_time is None


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("pending", "PENDING"),
        ("running", "RUNNING"),
        ("stopping", "STOPPING"),
        ("shutting-down", "STOPPING"),
        ("stopped", "STOPPED"),
        ("terminated", "FINISH"),
    ],
)
def test_instance_states_are_deltacloud_states(raw, state):
    inst = make_driver()._instance({"InstanceId": "i-1", "State": {"Name": raw}, "RootDeviceType": "ebs"}, "")
    assert inst.state == state


def test_instances_are_listed_page_by_page(backend):
    # given: seven instances, each its own reservation, pages of 5
    ids = {run_instance(f"vm{n}") for n in range(7)}
    driver = make_driver(page_size=5)
    requests = count_calls(driver, "DescribeInstances")

    # when
    pages = driver.iter_instance_pages()
    first = next(pages)

    # then
    assert len(first) == 5 and len(requests) == 1
    rest = list(pages)
    assert [len(p) for p in rest] == [2] and len(requests) == 2
    assert sorted(i.id for page in (first, *rest) for i in page) == sorted(ids)


def test_unknown_and_malformed_instance_ids(backend):
    # given
    driver = make_driver()

    # then
    assert driver.get_instance("i-0123456789abcdef0") is None
    reply_with(driver, "DescribeInstances", AwsErrorReply("InvalidInstanceID.Malformed", 'Invalid id: "vm1"'))
    with pytest.raises(InvalidParameter, match=r"^InvalidInstanceID\.Malformed: "):
        driver.get_instance("vm1")


def test_stop_start_reboot_and_destroy(backend):
    # given
    instance_id = run_instance("worker")
    driver = make_driver()

    # when: stop
    stopped = driver.instance_action(instance_id, "stop")

    # then
    assert stopped.state == "STOPPED" and stopped.actions == ("start", "destroy")
    assert stopped.can_create_image
    with pytest.raises(InvalidState, match="cannot stop while STOPPED"):
        driver.instance_action(instance_id, "stop")

    # when: start and reboot
    assert driver.instance_action(instance_id, "start").state == "RUNNING"
    assert driver.instance_action(instance_id, "reboot").state == "RUNNING"

    # then: a running EBS instance must be stopped before it is destroyed
    with pytest.raises(InvalidState, match="cannot destroy while RUNNING"):
        driver.destroy_instance(instance_id)
    driver.instance_action(instance_id, "stop")
    driver.destroy_instance(instance_id)
    gone = driver.get_instance(instance_id)
    assert gone.state == "FINISH" and gone.actions == ()


def test_instance_actions_on_unknown_instances_and_actions(backend):
    # given
    driver = make_driver()

    # then
    with pytest.raises(NotFound):
        driver.instance_action("i-0123456789abcdef0", "stop")
    with pytest.raises(NotFound):
        driver.destroy_instance("i-0123456789abcdef0")
    with pytest.raises(NotSupported):
        driver.instance_action(run_instance(), "hibernate")


def test_ec2_refusing_a_state_change_is_invalid_state(backend):
    # given: the instance changed state after we looked
    instance_id = run_instance()
    driver = make_driver()
    driver.get_instance(instance_id)
    reply = reply_with(
        driver,
        "StopInstances",
        AwsErrorReply(
            "IncorrectInstanceState",
            f"The instance '{instance_id}' is not in a state from which it can be stopped.",
        ),
    )

    # when / then
    with pytest.raises(InvalidState, match=r"^IncorrectInstanceState: "):
        driver.instance_action(instance_id, "stop")
    assert reply.calls == 1  # client errors are not retried


def test_instance_store_instances_terminate_instead_of_stopping(backend):
    # given
    instance_id = run_instance()
    backend.get_instance(instance_id).root_device_type = "instance-store"
    driver = make_driver()

    # when
    inst = driver.get_instance(instance_id)

    # then
    assert inst.root_type == RootType.TRANSIENT and inst.actions == ("reboot", "destroy")
    with pytest.raises(InvalidState):
        driver.instance_action(instance_id, "stop")
    driver.destroy_instance(instance_id)
    assert driver.get_instance(instance_id).state == "FINISH"


def test_create_instance_passes_the_options(backend):
    # given
    image_id = register_ami(backend, "base", architecture="x86_64", root_device_type="ebs")

    # when
    inst = make_driver().create_instance(
        image_id=image_id, name="api-1", hwp_id="t3.small", realm_id="us-east-1c", keyname="ops"
    )

    # then
    assert inst.id.startswith("i-") and inst.image_id == image_id
    assert (inst.name, inst.hardware_profile_id, inst.realm_id, inst.keyname) == (
        "api-1",
        "t3.small",
        "us-east-1c",
        "ops",
    )
    assert inst.owner_id == ACCOUNT
    model = backend.get_instance(inst.id)
    assert model.instance_type == "t3.small" and model.key_name == "ops"
    assert make_driver().get_instance(inst.id).name == "api-1"


@pytest.mark.parametrize(
    ("arch", "expected"), [("x86_64", "t3.micro"), ("arm64", "t4g.micro"), ("i386", "m1.small")]
)
def test_create_instance_default_type_matches_the_image(backend, arch, expected):
    # given
    image_id = register_ami(backend, f"base-{arch}", architecture=arch)

    # when
    inst = make_driver().create_instance(image_id=image_id)

    # then
    assert inst.hardware_profile_id == expected


@pytest.mark.parametrize("image_id", ["ami-0000000000000000f", "bogus"])
def test_create_instance_from_an_unknown_image(backend, image_id):
    with pytest.raises(InvalidParameter) as caught:
        make_driver().create_instance(image_id=image_id)
    assert str(caught.value) == f"Image {image_id} does not exists."


def test_create_instance_validates_before_launching(backend):
    # given
    arm = register_ami(backend, "arm", architecture="arm64")
    pending = register_ami(backend, "pending", architecture="x86_64", state="pending")
    x86 = register_ami(backend, "x86", architecture="x86_64")
    driver = make_driver()
    launches = count_calls(driver, "RunInstances")

    # then
    with pytest.raises(InvalidParameter, match=r"t3\.micro cannot run arm64"):
        driver.create_instance(image_id=arm, hwp_id="t3.micro")
    with pytest.raises(InvalidState, match="pending"):
        driver.create_instance(image_id=pending)
    with pytest.raises(InvalidParameter, match="fixed memory"):
        driver.create_instance(image_id=x86, hwp_id="t3.micro", hwp_memory="4096")
    assert launches == []
    driver.create_instance(image_id=x86, hwp_id="t3.micro", hwp_memory="1024", hwp_cpu="2")
    with pytest.raises(InvalidParameter, match=r"^InvalidParameterValue: Invalid Availability Zone"):
        driver.create_instance(image_id=x86, realm_id="us-east-1z")


def test_create_instance_with_an_unknown_key_pair_is_invalid(backend, monkeypatch):
    # given: moto checks key pairs only when asked to
    monkeypatch.setattr("moto.settings.ENABLE_KEYPAIR_VALIDATION", True)
    image_id = register_ami(backend, "base", architecture="x86_64")

    # when / then
    with pytest.raises(InvalidParameter, match=r"^InvalidKeyPair\.NotFound: "):
        make_driver().create_instance(image_id=image_id, keyname="missing")


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("AuthFailure", 401, AuthFailure),
        ("InvalidClientTokenId", 403, AuthFailure),
        ("SignatureDoesNotMatch", 403, AuthFailure),
        ("UnrecognizedClientException", 400, AuthFailure),
        ("OptInRequired", 401, AuthFailure),
        ("UnauthorizedOperation", 403, AuthFailure),
        ("ExpiredToken", 400, AuthFailure),
        ("InvalidAMIID.NotFound", 400, NotFound),
        ("InvalidAMIID.Unavailable", 400, NotFound),
        ("InvalidAMIID.Malformed", 400, InvalidParameter),
        ("InvalidParameterValue", 400, InvalidParameter),
        ("InvalidParameterCombination", 400, InvalidParameter),
        ("MissingParameter", 400, InvalidParameter),
        ("IncorrectInstanceState", 400, InvalidState),
        ("IncorrectState", 400, InvalidState),
        ("InvalidAMIName.Duplicate", 400, Conflict),
        ("InternalError", 500, Unavailable),
        ("Unavailable", 503, Unavailable),
        ("ServiceUnavailable", 503, Unavailable),
        ("SomethingElse", 502, Unavailable),
        ("DryRunOperation", 412, ProviderError),
        ("Gibberish", 400, ProviderError),
    ],
)
def test_aws_error_codes_are_translated(backend, code, status, error):
    # given: one attempt, so 5xx answers are not retried here
    driver = make_driver(max_attempts=1)
    reply_with(driver, "DescribeImages", AwsErrorReply(code, "What EC2 said", status=status))

    # when
    with pytest.raises(ProviderError) as caught:
        driver.list_images()

    # then
    assert type(caught.value) is error
    assert str(caught.value) == f"{code}: What EC2 said"


def test_throttling_is_retried_with_backoff_then_raised(backend):
    # given
    driver = make_driver(max_attempts=2)
    reply = reply_with(
        driver, "DescribeImages", AwsErrorReply("RequestLimitExceeded", "Request limit exceeded.", status=503)
    )

    # when
    with pytest.raises(Throttled, match=r"^RequestLimitExceeded: Request limit exceeded\.$") as caught:
        driver.list_images()

    # then: botocore tried every attempt before giving up
    assert reply.calls == 2
    assert caught.value.retryable


def test_throttling_that_clears_is_invisible(backend):
    # given
    image_id = register_ami(backend, "steady")
    driver = make_driver(max_attempts=3)
    reply = reply_with(
        driver, "DescribeImages", AwsErrorReply("RequestLimitExceeded", "Slow down", status=503, times=1)
    )

    # when
    images = driver.list_images()

    # then
    assert [i.id for i in images] == [image_id] and reply.calls == 1


def test_secrets_never_show(backend, caplog):
    # given: the driver's own logging at its most verbose (botocore's DEBUG
    # logging prints raw requests and responses; deployments keep it off)
    caplog.set_level(logging.DEBUG, logger="providers")
    driver = make_driver(credentials={**CREDENTIALS, "session_token": "FQoGZXIvYXdzEBaaTOKEN"})
    reply_with(
        driver, "DescribeImages", AwsErrorReply("SignatureDoesNotMatch", f"Key was {SECRET}", status=403)
    )

    # when
    with pytest.raises(AuthFailure) as caught:
        driver.list_images()

    # then: even an answer quoting the key is cleaned
    assert str(caught.value) == "SignatureDoesNotMatch: Key was ***"
    assert_no_secret(repr(driver), str(driver), caught.value, caplog.text)
    assert "FQoGZXIvYXdzEBaaTOKEN" not in repr(driver)


# -- server mode -------------------------------------------------------------------------------


def test_any_ec2_compatible_endpoint_through_endpoint_url():
    # given: moto as a real HTTP server on a free local port
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        arrange = boto3.client(
            "ec2",
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id="AKIDTEST",
            aws_secret_access_key="x",
        )
        instance_id = arrange.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0][
            "InstanceId"
        ]
        driver = make_driver(endpoint_url=url)

        # when
        image = driver.create_image(instance_id=instance_id, name="over-http")

        # then
        assert driver.identity() == ACCOUNT
        assert image.id in {i.id for i in driver.list_images()}
        assert driver.get_instance(instance_id).state == "RUNNING"
        assert driver.realms()
    finally:
        server.stop()


def test_an_endpoint_answering_html_is_unavailable():
    # given: something that answers every request with a web server's error page
    import http.server

    class Broken(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = b"<!doctype html><title>500 Internal Server Error</title>"
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver = make_driver(endpoint_url=f"http://127.0.0.1:{server.server_port}", max_attempts=1)
        # when / then
        with pytest.raises(Unavailable) as caught:
            driver.list_images()
        assert caught.value.retryable
        assert_no_secret(caught.value)
    finally:
        server.shutdown()
