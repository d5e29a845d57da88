"""The embedded mock cloud, driven directly: no Django, no database.

Every test gets its own cloud under ``tmp_path``; a second ``MockDriver`` on the
same directory stands for another process (web vs. worker).
"""

import json
import multiprocessing
import re
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from providers import registry
from providers.base import (
    Address,
    Capabilities,
    Driver,
    HardwareProperty,
    ImageState,
    ProviderImage,
    ProviderInstance,
    Realm,
    RootType,
    RunResult,
)
from providers.drivers.mock import MockDriver
from providers.drivers.mock_profiles import PROFILES
from providers.exceptions import (
    AuthFailure,
    BackendError,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    ProviderError,
    ProviderTimeout,
)

CREDENTIALS = {"username": "mockuser", "password": "mockpassword"}
SEED_IMAGE_IDS = ["img1", "img2", "img3"]
SEED_INSTANCE_IDS = ["inst0", "inst1", "inst2", "inst3"]
ALL_HWPS = ("m1-small", "m1-large", "m1-xlarge", "opaque")
SEED_CREATION_TIME = "Thu Oct 25 14:27:53 CEST 2012"
CREATION_TIME_RE = r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
# Raw (pending, available, failed) state names per behaviour profile.
RAW_STATES = {
    "deltacloud": ("PENDING", "AVAILABLE", "FAILED"),
    "ec2": ("pending", "available", "failed"),
    "openstack": ("SAVING", "ACTIVE", "ERROR"),
    "rackspace": ("QUEUED", "ACTIVE", "FAILED"),
    "rhevm": ("LOCKED", "OK", "ILLEGAL"),
    "vsphere": ("PENDING", "AVAILABLE", "FAILED"),
    "fgcp": ("REGISTERING", "AVAILABLE", "FAILED"),
}
DEFAULT_FAILURE_REASON = "The mock provider failed to create the image"


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "cloud"


def mock_driver(state_dir, credentials=CREDENTIALS, provider="", **params) -> MockDriver:
    """A mock driver whose cloud is ``state_dir``, built as the service builds drivers."""
    registry.configure("mock", storage=str(Path(state_dir).parent))
    return registry.create(
        "mock", provider=provider, params={"cloud": Path(state_dir).name, **params}, credentials=credentials
    )


@pytest.fixture
def make_driver(state_dir):
    def make(credentials=CREDENTIALS, **params):
        return mock_driver(state_dir, credentials, **params)

    return make


@pytest.fixture
def driver(make_driver):
    return make_driver()


def image_ids(driver):
    return [i.id for i in driver.list_images()]


def instance_ids(driver):
    return [i.id for i in driver.list_instances()]


def eligible_instance(driver):
    """inst1 (EBS-backed, running), stopped first when the profile wants that."""
    if driver.profile.stopped_only:
        driver.instance_action("inst1", "stop")
    return "inst1"


def stored(driver, created):
    """The image a create produced, as the cloud now lists it."""
    if created.id:
        return driver.get_image(created.id)
    (found,) = driver.find_created_images(name=created.name, exclude_ids=frozenset(SEED_IMAGE_IDS))
    return found


def seed_image(image_id, architecture, owner_id, description):
    return ProviderImage(
        id=image_id,
        name=image_id,
        state=ImageState.AVAILABLE,
        raw_state="AVAILABLE",
        description=description,
        owner_id=owner_id,
        architecture=architecture,
        root_type=RootType.TRANSIENT,
        creation_time=SEED_CREATION_TIME,
        hardware_profiles=ALL_HWPS,
        failure_reason="",
    )


# -- construction and behaviour profiles -----------------------------------------


def test_driver_needs_a_configured_storage(monkeypatch):
    monkeypatch.setattr(registry, "_settings", {})
    with pytest.raises(InvalidParameter, match="Mock setting 'storage' is required"):
        registry.create("mock", credentials=CREDENTIALS)


def test_accounts_naming_one_cloud_share_it_and_the_provider_names_it_by_default(tmp_path):
    one = mock_driver(tmp_path / "shared")
    two = mock_driver(tmp_path / "shared")
    one.destroy_image("img1")
    assert "img1" not in image_ids(two)
    registry.configure("mock", storage=str(tmp_path))
    by_provider = registry.create("mock", provider="shared", credentials=CREDENTIALS)
    assert "img1" not in image_ids(by_provider)
    elsewhere = registry.create("mock", provider="other", credentials=CREDENTIALS)
    assert "img1" in image_ids(elsewhere)


def test_driver_creates_a_missing_nested_state_dir(tmp_path):
    # given
    root = tmp_path / "a" / "b" / "c"
    driver = mock_driver(root)

    # when
    ids = image_ids(driver)

    # then
    assert ids == SEED_IMAGE_IDS
    assert (root / "images").is_dir()
    assert (root / "instances").is_dir()


def test_default_profile_is_deltacloud(driver):
    assert driver.profile == PROFILES["deltacloud"]
    assert driver.profile.legacy_create is True
    assert driver.profile.create_delay == 0.0
    assert driver.profile.id_style == "name"


def test_every_preset_is_covered_by_these_tests():
    assert set(PROFILES) == set(RAW_STATES)


@pytest.mark.parametrize(
    ("profile", "stopped_only", "running_only", "ebs_only", "returns_id", "honours_name", "converts"),
    [
        ("deltacloud", False, False, False, True, True, False),
        ("ec2", False, False, True, True, True, False),
        ("openstack", False, True, False, True, True, False),
        ("rackspace", False, True, False, True, True, False),
        ("rhevm", True, False, False, True, True, False),
        ("vsphere", True, False, False, True, False, True),
        ("fgcp", True, False, False, False, True, False),
    ],
)
def test_presets(
    make_driver, profile, stopped_only, running_only, ebs_only, returns_id, honours_name, converts
):
    p = make_driver(profile=profile).profile

    assert (p.stopped_only, p.running_only, p.ebs_only) == (stopped_only, running_only, ebs_only)
    assert (p.returns_id, p.honours_name, p.converts_instance) == (returns_id, honours_name, converts)
    assert p.raw_states == RAW_STATES[profile]
    assert isinstance(p.create_delay, float)
    assert isinstance(p.failure_rate, float)
    assert p.failure_rate == 0.0


@pytest.mark.parametrize(
    ("profile", "delay"),
    [
        ("deltacloud", 0),
        ("ec2", 5),
        ("openstack", 5),
        ("rackspace", 5),
        ("rhevm", 5),
        ("vsphere", 0),
        ("fgcp", 5),
    ],
)
def test_preset_create_delays(make_driver, profile, delay):
    assert make_driver(profile=profile).profile.create_delay == delay


def test_overrides_apply_on_top_of_the_preset(make_driver):
    # when: numbers given as strings, raw states as a JSON list
    p = make_driver(
        profile="ec2", create_delay="0.25", failure_rate="0.5", raw_states=["a", "b", "c"]
    ).profile

    # then
    assert p.create_delay == 0.25
    assert p.failure_rate == 0.5
    assert p.raw_states == ("a", "b", "c")
    assert p.ebs_only is True  # still the ec2 preset
    assert p.id_style == "ami"


def test_unknown_profile_is_an_invalid_parameter(make_driver):
    with pytest.raises(InvalidParameter) as excinfo:
        make_driver(profile="azure")

    assert "azure" in str(excinfo.value)
    assert "deltacloud, ec2, openstack, rackspace, rhevm, vsphere, fgcp" in str(excinfo.value)


def test_unknown_parameters_are_refused_not_ignored(make_driver):
    with pytest.raises(InvalidParameter, match="Unknown mock parameter 'create_dealy'"):
        make_driver(create_dealy=1)


@pytest.mark.parametrize(
    "params",
    [
        {"create_delay": "soon"},
        {"create_delay": -1},
        {"failure_rate": 1.5},
        {"failure_rate": -0.1},
        {"failure_rate": "often"},
        {"failure_rate": float("nan")},
        {"stopped_only": "false"},
        {"returns_id": 0},
        {"raw_states": ["pending", "available"]},
        {"raw_states": "pending"},
        {"id_style": "guid"},
        {"failure_reason": 42},
    ],
    ids=repr,
)
def test_bad_profile_values_are_invalid_parameters(make_driver, params):
    with pytest.raises(InvalidParameter):
        make_driver(profile="ec2", **params)


@pytest.mark.parametrize(
    ("profile", "returns_id", "honours_name", "honours_description", "unique_names"),
    [
        ("deltacloud", True, True, True, True),
        ("ec2", True, True, True, True),
        ("openstack", True, True, False, False),
        ("rackspace", True, True, True, False),
        ("rhevm", True, True, True, True),
        ("vsphere", True, False, False, True),
        ("fgcp", False, True, True, False),
    ],
)
def test_capabilities_follow_the_profile(
    make_driver, profile, returns_id, honours_name, honours_description, unique_names
):
    assert make_driver(profile=profile).capabilities == Capabilities(
        create_image=True,
        destroy_image=True,
        create_returns_id=returns_id,
        unique_image_names=unique_names,
        honours_image_name=honours_name,
        honours_image_description=honours_description,
        image_name_max_length=128,
        create_instance=True,
        run_on_instance=True,
    )


def test_static_description():
    assert issubclass(MockDriver, Driver)
    assert MockDriver.name == "mock"
    assert MockDriver.label == "Mock"
    assert MockDriver.auth_feature == "key"
    assert [f.name for f in MockDriver.features["instances"]] == [
        "metrics",
        "realm_filter",
        "user_name",
        "authentication_key",
    ]
    assert [state for state, _ in MockDriver.instance_states] == [
        "start",
        "pending",
        "running",
        "stopped",
        "finish",
    ]
    transitions = dict(MockDriver.instance_states)
    assert [(t.to, t.action) for t in transitions["running"]] == [("running", "reboot"), ("stopped", "stop")]
    assert [(t.to, t.action) for t in transitions["pending"]] == [("running", None)]


# -- credentials ------------------------------------------------------------------


def test_identity_is_the_mock_user(driver):
    assert driver.identity() == "mockuser"


BAD_CREDENTIALS = [
    {"username": "mockuser", "password": "wrong"},
    {"username": "someone", "password": "mockpassword"},
    {"username": "mockuser"},
    {},
]

OPERATIONS = {
    "identity": lambda d: d.identity(),
    "realms": lambda d: d.realms(),
    "get_realm": lambda d: d.get_realm("us"),
    "get_realm_trigger": lambda d: d.get_realm("500"),
    "list_images": lambda d: d.list_images(),
    "get_image": lambda d: d.get_image("img1"),
    "create_image": lambda d: d.create_image(instance_id="inst1", name="x"),
    "destroy_image": lambda d: d.destroy_image("img1"),
    "find_created_images": lambda d: d.find_created_images(name="img3", exclude_ids=frozenset()),
    "list_instances": lambda d: d.list_instances(),
    "get_instance": lambda d: d.get_instance("inst1"),
    "create_instance": lambda d: d.create_instance(image_id="img1"),
    "instance_action": lambda d: d.instance_action("inst1", "stop"),
    "destroy_instance": lambda d: d.destroy_instance("inst1"),
    "run_on_instance": lambda d: d.run_on_instance("inst1", "ls"),
}


@pytest.mark.parametrize(
    "credentials", BAD_CREDENTIALS, ids=["bad-password", "bad-user", "no-password", "none"]
)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_bad_credentials_are_an_auth_failure(make_driver, credentials, operation):
    # given
    bad = make_driver(credentials=credentials)

    # when / then
    with pytest.raises(AuthFailure) as excinfo:
        OPERATIONS[operation](bad)
    assert str(excinfo.value) == "Authentication Failure"


def test_rejected_calls_change_nothing(make_driver, driver):
    # given
    bad = make_driver(credentials={"username": "mockuser", "password": "nope"})

    # when
    for operation in (
        "create_image",
        "destroy_image",
        "create_instance",
        "instance_action",
        "destroy_instance",
    ):
        with pytest.raises(AuthFailure):
            OPERATIONS[operation](bad)

    # then
    assert image_ids(driver) == SEED_IMAGE_IDS
    assert instance_ids(driver) == SEED_INSTANCE_IDS
    assert driver.get_instance("inst1").state == "RUNNING"


# -- realms -----------------------------------------------------------------------


def test_realms(driver):
    assert list(driver.realms()) == [
        Realm("us", "United States", "AVAILABLE", ""),
        Realm("eu", "Europe", "AVAILABLE", ""),
    ]


def test_get_realm(driver):
    assert driver.get_realm("eu") == Realm("eu", "Europe", "AVAILABLE", "")


def test_get_unknown_realm_is_not_found(driver):
    with pytest.raises(NotFound, match="Realm mars not found"):
        driver.get_realm("mars")


@pytest.mark.parametrize(
    ("realm_id", "error", "message"),
    [
        ("500", BackendError, "DeltacloudErrorMessage"),
        ("501", NotSupported, "NotImplementedMessage"),
        ("502", ProviderError, "ProviderErrorMessage"),
        ("504", ProviderTimeout, "ProviderTimeoutMessage"),
    ],
)
def test_realm_error_triggers(driver, realm_id, error, message):
    with pytest.raises(ProviderError) as excinfo:
        driver.get_realm(realm_id)

    assert type(excinfo.value) is error
    assert str(excinfo.value) == message


def test_realm_error_triggers_raise_a_fresh_error_each_time(driver):
    # A shared exception instance would grow its traceback (and keep every
    # frame, driver and credentials alive) on each raise.
    raised = []
    for _ in range(3):
        try:
            driver.get_realm("502")
        except ProviderError as exc:
            raised.append((exc, len(traceback.extract_tb(exc.__traceback__))))

    (first, first_depth), (second, second_depth), (third, third_depth) = raised
    assert first is not second
    assert second is not third
    assert first_depth == second_depth == third_depth


# -- hardware profiles ------------------------------------------------------------


def test_hardware_profile_ids():
    assert tuple(p.id for p in MockDriver.hardware_profiles) == ALL_HWPS


def _hwp(profile_id):
    return next(p for p in MockDriver.hardware_profiles if p.id == profile_id)


def test_hardware_profile_m1_small():
    assert _hwp("m1-small").properties == (
        HardwareProperty("cpu", "fixed", "count", "1"),
        HardwareProperty("memory", "fixed", "MB", "1740.8"),
        HardwareProperty("storage", "fixed", "GB", "160"),
        HardwareProperty("architecture", "fixed", "label", "i386"),
    )


def test_hardware_profile_m1_large():
    assert _hwp("m1-large").properties == (
        HardwareProperty("cpu", "range", "count", "1", first="1", last="6"),
        HardwareProperty("memory", "range", "MB", "10240", first="7680", last="15360"),
        HardwareProperty("storage", "enum", "GB", "850", values=("850", "1024")),
        HardwareProperty("architecture", "fixed", "label", "x86_64"),
    )


def test_hardware_profile_m1_xlarge():
    assert _hwp("m1-xlarge").properties == (
        HardwareProperty("cpu", "fixed", "count", "4"),
        HardwareProperty("memory", "range", "MB", "12288", first="12288", last="32768"),
        HardwareProperty("storage", "enum", "GB", "1024", values=("1024", "2048", "4096")),
        HardwareProperty("architecture", "fixed", "label", "x86_64"),
    )
    assert _hwp("m1-xlarge").property("cpu").value == "4"


def test_hardware_profile_opaque_has_no_properties():
    assert _hwp("opaque").properties == ()
    assert _hwp("opaque").property("cpu") is None


# -- seed images ------------------------------------------------------------------


def test_seed_images(driver):
    assert driver.list_images() == [
        seed_image("img1", "x86_64", "fedoraproject", "Fedora 10"),
        seed_image("img2", "i386", "fedoraproject", "Fedora 10"),
        seed_image("img3", "i386", "mockuser", "JBoss"),
    ]


def test_get_image(driver):
    assert driver.get_image("img3") == seed_image("img3", "i386", "mockuser", "JBoss")


@pytest.mark.parametrize("profile", sorted(RAW_STATES))
def test_seed_images_are_available_in_every_profile(make_driver, profile):
    # given
    driver = make_driver(profile=profile)
    _, available, _ = RAW_STATES[profile]

    # when
    images = driver.list_images()

    # then: normalized AVAILABLE, raw state in the profile's own words
    assert [(i.id, i.state, i.raw_state) for i in images] == [
        (image_id, ImageState.AVAILABLE, available) for image_id in SEED_IMAGE_IDS
    ]


# -- seed instances ---------------------------------------------------------------


def test_seed_instance_ids(driver):
    assert instance_ids(driver) == SEED_INSTANCE_IDS
    assert [i.id for page in driver.iter_instance_pages() for i in page] == SEED_INSTANCE_IDS


def test_seed_inst0(driver):
    assert driver.get_instance("inst0") == ProviderInstance(
        id="inst0",
        name="Mock Instance With Profile Change",
        state="RUNNING",
        owner_id="mockuser",
        image_id="img1",
        realm_id="us",
        hardware_profile_id="m1-large",
        hardware_profile_overrides=(("memory", "12288"),),
        actions=("reboot", "stop"),
        create_image_refusal="",
        public_addresses=(Address("img1.inst0.public.com", "hostname"),),
        private_addresses=(Address("img1.inst0.private.com", "hostname"),),
        storage_volumes=(),
        keyname=None,
        launch_time=None,
        network_interfaces=(),
        root_type=RootType.PERSISTENT,
    )


def test_seed_inst1(driver):
    assert driver.get_instance("inst1") == ProviderInstance(
        id="inst1",
        name="MockUserInstance",
        state="RUNNING",
        owner_id="mockuser",
        image_id="img3",
        realm_id="us",
        hardware_profile_id="m1-small",
        hardware_profile_overrides=(),
        actions=("reboot", "stop"),
        public_addresses=(Address("img1.inst1.public.com"),),
        private_addresses=(Address("img1.inst1.private.com"),),
        keyname=None,
        network_interfaces=("nic1",),
        root_type=RootType.PERSISTENT,
    )


def test_seed_inst2_is_instance_store(driver):
    assert driver.get_instance("inst2") == ProviderInstance(
        id="inst2",
        name="AnotherInstance",
        state="RUNNING",
        owner_id="mockuser",
        image_id="img1",
        realm_id="us",
        hardware_profile_id="m1-large",
        actions=("reboot", "stop"),
        public_addresses=(Address("img1.inst2.public.com"),),
        private_addresses=(Address("img1.inst2.private.com"),),
        network_interfaces=None,
        root_type=RootType.TRANSIENT,
    )


def test_seed_inst3_cannot_be_imaged(driver):
    inst = driver.get_instance("inst3")

    assert inst == ProviderInstance(
        id="inst3",
        name="",
        state="RUNNING",
        owner_id="mockuser",
        image_id="img3",
        realm_id="eu",
        hardware_profile_id="m1-small",
        actions=("reboot", "stop"),
        create_image_refusal="Instance inst3 does not support image creation",
        public_addresses=(Address("img3.inst3.public.com"),),
        private_addresses=(Address("img3.inst3.private.com"),),
        keyname="",
        network_interfaces=("nicinst3",),
        root_type=RootType.PERSISTENT,
    )
    assert inst.can_create_image is False


@pytest.mark.parametrize(
    ("profile", "refusals"),
    [
        ("deltacloud", {"inst0": "", "inst1": "", "inst2": ""}),
        ("openstack", {"inst0": "", "inst1": "", "inst2": ""}),
        (
            "ec2",
            {
                "inst0": "",
                "inst1": "",
                "inst2": "Instance inst2 is instance-store backed; only EBS-backed instances can be imaged",
            },
        ),
        (
            "rhevm",
            {
                "inst0": "Instance inst0 is RUNNING; it must be STOPPED to create an image",
                "inst1": "Instance inst1 is RUNNING; it must be STOPPED to create an image",
                "inst2": "Instance inst2 is RUNNING; it must be STOPPED to create an image",
            },
        ),
    ],
)
def test_create_image_refusal_per_profile(make_driver, profile, refusals):
    driver = make_driver(profile=profile)

    assert {i.id: i.create_image_refusal for i in driver.list_instances() if i.id != "inst3"} == refusals
    assert (
        driver.get_instance("inst3").create_image_refusal == "Instance inst3 does not support image creation"
    )


def test_refusal_follows_the_instance_state(make_driver):
    # given
    rhevm = make_driver(profile="rhevm")
    openstack = make_driver(profile="openstack")

    # when
    stopped = rhevm.instance_action("inst1", "stop")

    # then
    assert stopped.create_image_refusal == ""
    assert stopped.can_create_image is True
    assert openstack.get_instance("inst1").create_image_refusal == (
        "Instance inst1 is STOPPED; it must be RUNNING to create an image"
    )


# -- creating images: the default (Deltacloud) profile ----------------------------


def test_create_image_reproduces_deltacloud(driver):
    # when
    created = driver.create_image(instance_id="inst1", name="myimage", description="My image")

    # then: id = name, owner root, i386, no creation time, no profiles
    assert created == ProviderImage(
        id="myimage",
        name="myimage",
        state=ImageState.AVAILABLE,
        raw_state="AVAILABLE",
        description="My image",
        owner_id="root",
        architecture="i386",
        root_type=RootType.TRANSIENT,
        creation_time=None,
        hardware_profiles=None,
        failure_reason="",
    )
    # and the listing adds the hardware profiles, like Deltacloud's images()
    assert driver.get_image("myimage") == ProviderImage(
        id="myimage",
        name="myimage",
        state=ImageState.AVAILABLE,
        raw_state="AVAILABLE",
        description="My image",
        owner_id="root",
        architecture="i386",
        root_type=RootType.TRANSIENT,
        creation_time=None,
        hardware_profiles=ALL_HWPS,
        failure_reason="",
    )
    assert image_ids(driver) == [*SEED_IMAGE_IDS, "myimage"]


def test_create_image_without_description(driver):
    created = driver.create_image(instance_id="inst0", name="nodesc")

    assert created.description is None
    assert driver.get_image("nodesc").description is None


def test_create_image_without_name_names_it_after_the_instance(driver):
    created = driver.create_image(instance_id="inst1", name="")

    assert re.fullmatch(r"MockUserInstance-\d{10}", created.name)
    assert created.id == created.name
    assert driver.get_image(created.id).name == created.name


def test_create_image_with_odd_characters_in_the_name(driver):
    # given: id = name, and the id names a file on disk
    name = "../weird name/ü?.json"

    # when
    created = driver.create_image(instance_id="inst1", name=name)

    # then
    assert created.id == name
    assert driver.get_image(name).name == name
    assert name in image_ids(driver)
    driver.destroy_image(name)
    assert driver.get_image(name) is None


@pytest.mark.parametrize(
    ("name", "seed"),
    [
        ("img1", seed_image("img1", "x86_64", "fedoraproject", "Fedora 10")),
        ("img3", seed_image("img3", "i386", "mockuser", "JBoss")),
    ],
)
def test_create_image_with_an_existing_id_is_a_conflict(driver, name, seed):
    with pytest.raises(Conflict, match=f"Image {name} already exists"):
        driver.create_image(instance_id="inst1", name=name)

    assert driver.get_image(name) == seed  # untouched


def test_create_image_twice_with_one_name_is_a_conflict(driver):
    # given
    driver.create_image(instance_id="inst1", name="twice", description="first")

    # when / then
    with pytest.raises(Conflict):
        driver.create_image(instance_id="inst0", name="twice", description="second")
    assert driver.get_image("twice").description == "first"
    assert image_ids(driver).count("twice") == 1


def test_unique_names_conflict_even_when_ids_differ(make_driver):
    # given: uuid ids, but rhevm wants unique names
    rhevm = make_driver(profile="rhevm", create_delay=0)
    instance_id = eligible_instance(rhevm)
    rhevm.create_image(instance_id=instance_id, name="backup")

    # when / then
    with pytest.raises(Conflict, match="An image named 'backup' already exists"):
        rhevm.create_image(instance_id=instance_id, name="backup")
    assert [i.name for i in rhevm.list_images()].count("backup") == 1


def test_create_image_of_inst3_is_refused(driver):
    with pytest.raises(InvalidState, match="Instance inst3 does not support image creation"):
        driver.create_image(instance_id="inst3", name="x")

    assert image_ids(driver) == SEED_IMAGE_IDS


# -- creating images: refusals ----------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "prepare", "instance_id", "reason"),
    [
        (
            "ec2",
            None,
            "inst2",
            "Instance inst2 is instance-store backed; only EBS-backed instances can be imaged",
        ),
        ("rhevm", None, "inst1", "Instance inst1 is RUNNING; it must be STOPPED to create an image"),
        ("fgcp", None, "inst1", "Instance inst1 is RUNNING; it must be STOPPED to create an image"),
        ("vsphere", None, "inst0", "Instance inst0 is RUNNING; it must be STOPPED to create an image"),
        ("openstack", "stop", "inst1", "Instance inst1 is STOPPED; it must be RUNNING to create an image"),
        ("rackspace", "stop", "inst0", "Instance inst0 is STOPPED; it must be RUNNING to create an image"),
    ],
)
def test_create_image_refusals(make_driver, profile, prepare, instance_id, reason):
    # given
    driver = make_driver(profile=profile)
    if prepare:
        driver.instance_action(instance_id, prepare)

    # when
    with pytest.raises(InvalidState) as excinfo:
        driver.create_image(instance_id=instance_id, name="refused")

    # then
    assert str(excinfo.value) == reason
    assert driver.get_instance(instance_id).create_image_refusal == reason
    assert image_ids(driver) == SEED_IMAGE_IDS
    assert instance_id in instance_ids(driver)


def test_invalid_state_is_a_conflict():
    assert issubclass(InvalidState, Conflict)


# -- creating images: other profiles ----------------------------------------------


def test_create_image_non_legacy_fields(make_driver):
    # given
    ec2 = make_driver(profile="ec2", create_delay=0)

    # when: inst0 runs img1 (x86_64), inst1 runs img3 (i386)
    from_inst0 = ec2.create_image(instance_id="inst0", name="web", description="Web server")
    from_inst1 = ec2.create_image(instance_id="inst1", name="db", description="Database")

    # then
    assert re.fullmatch(r"ami-[0-9a-f]{8}", from_inst0.id)
    assert from_inst0.name == "web"
    assert from_inst0.description == "Web server"
    assert from_inst0.owner_id == "mockuser"
    assert from_inst0.architecture == "x86_64"
    assert from_inst1.architecture == "i386"
    assert from_inst0.root_type == RootType.PERSISTENT
    assert re.fullmatch(CREATION_TIME_RE, from_inst0.creation_time)
    assert from_inst0.hardware_profiles is None
    assert (from_inst0.state, from_inst0.raw_state) == (ImageState.AVAILABLE, "available")
    assert ec2.get_image(from_inst0.id) == ProviderImage(
        id=from_inst0.id,
        name="web",
        state=ImageState.AVAILABLE,
        raw_state="available",
        description="Web server",
        owner_id="mockuser",
        architecture="x86_64",
        root_type=RootType.PERSISTENT,
        creation_time=from_inst0.creation_time,
        hardware_profiles=ALL_HWPS,
    )


@pytest.mark.parametrize(
    ("profile", "id_pattern"),
    [
        ("ec2", r"ami-[0-9a-f]{8}"),
        ("openstack", UUID_RE),
        ("rackspace", r"[1-9]\d{7}"),
        ("rhevm", UUID_RE),
        ("fgcp", r"IMG_[0-9a-f]{6}_[0-9A-F]{16}"),
        ("vsphere", r"inst1"),
        ("deltacloud", r"styled"),
    ],
)
def test_new_image_ids_look_like_the_cloud(make_driver, profile, id_pattern):
    # given
    driver = make_driver(profile=profile, create_delay=0)
    instance_id = eligible_instance(driver)

    # when
    created = driver.create_image(instance_id=instance_id, name="styled")

    # then
    image = stored(driver, created)
    assert re.fullmatch(id_pattern, image.id)
    assert image.id not in SEED_IMAGE_IDS
    assert driver.get_image(image.id) == image


@pytest.mark.parametrize("profile", sorted(RAW_STATES))
def test_pending_image_uses_the_profile_state_name(make_driver, profile):
    # given
    driver = make_driver(profile=profile, create_delay=60)
    pending, _, _ = RAW_STATES[profile]

    # when
    created = driver.create_image(instance_id=eligible_instance(driver), name="slow")

    # then
    assert (created.state, created.raw_state) == (ImageState.PENDING, pending)
    assert created.failure_reason == ""
    if created.id:
        assert driver.get_image(created.id) == stored(driver, created)
        assert (driver.get_image(created.id).state, driver.get_image(created.id).raw_state) == (
            ImageState.PENDING,
            pending,
        )


@pytest.mark.parametrize("profile", sorted(RAW_STATES))
def test_immediate_image_uses_the_profile_state_name(make_driver, profile):
    # given
    driver = make_driver(profile=profile, create_delay=0)
    _, available, _ = RAW_STATES[profile]

    # when
    created = driver.create_image(instance_id=eligible_instance(driver), name="quick")

    # then
    image = stored(driver, created)
    assert (created.state, created.raw_state) == (ImageState.AVAILABLE, available)
    assert (image.state, image.raw_state) == (ImageState.AVAILABLE, available)
    assert image.failure_reason == ""


@pytest.mark.parametrize("profile", sorted(RAW_STATES))
def test_failed_image_uses_the_profile_state_name(make_driver, profile):
    # given
    driver = make_driver(profile=profile, create_delay=0, failure_rate=1.0)
    _, _, failed = RAW_STATES[profile]

    # when
    created = driver.create_image(instance_id=eligible_instance(driver), name="doomed")

    # then
    image = stored(driver, created)
    assert (created.state, created.raw_state) == (ImageState.FAILED, failed)
    assert created.failure_reason == DEFAULT_FAILURE_REASON
    assert (image.state, image.raw_state, image.failure_reason) == (
        ImageState.FAILED,
        failed,
        DEFAULT_FAILURE_REASON,
    )


def test_failure_rate_one_fails_after_the_delay(make_driver):
    # given
    driver = make_driver(profile="rhevm", create_delay=0.3, failure_rate=1, failure_reason="Disk full")
    driver.instance_action("inst1", "stop")

    # when
    created = driver.create_image(instance_id="inst1", name="broken")

    # then
    assert (created.state, created.raw_state, created.failure_reason) == (ImageState.PENDING, "LOCKED", "")
    time.sleep(0.35)
    failed = driver.get_image(created.id)
    assert (failed.state, failed.raw_state, failed.failure_reason) == (
        ImageState.FAILED,
        "ILLEGAL",
        "Disk full",
    )


def test_failure_rate_zero_never_fails(make_driver):
    driver = make_driver(profile="openstack", create_delay=0, failure_rate=0)

    # openstack: names need not be unique
    states = {driver.create_image(instance_id="inst1", name="fine").state for _ in range(20)}

    assert states == {ImageState.AVAILABLE}
    assert [i.name for i in driver.list_images()].count("fine") == 20


def test_openstack_ignores_the_description(make_driver):
    openstack = make_driver(profile="openstack", create_delay=0)

    created = openstack.create_image(instance_id="inst1", name="snap", description="ignored")

    assert created.description is None
    assert openstack.get_image(created.id).description is None
    assert created.name == "snap"


def test_vsphere_turns_the_vm_into_the_template(make_driver):
    # given
    vsphere = make_driver(profile="vsphere")
    vsphere.instance_action("inst1", "stop")

    # when: vSphere ignores name and description
    created = vsphere.create_image(instance_id="inst1", name="ignored", description="ignored too")

    # then
    assert (created.id, created.name, created.description) == ("inst1", "MockUserInstance", None)
    assert created.state == ImageState.AVAILABLE
    assert vsphere.get_image("inst1").name == "MockUserInstance"
    assert vsphere.get_instance("inst1") is None
    assert instance_ids(vsphere) == ["inst0", "inst2", "inst3"]
    with pytest.raises(NotFound):
        vsphere.create_image(instance_id="inst1", name="again")


def test_vsphere_names_an_unnamed_vm_after_its_id(make_driver, state_dir):
    # given: a VM with no name (create_instance names it, so clear it on disk)
    vsphere = make_driver(profile="vsphere")
    inst = vsphere.create_instance(image_id="img1")
    path = state_dir / "instances" / f"{inst.id}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "name": ""}))
    assert vsphere.get_instance(inst.id).name == ""
    vsphere.instance_action(inst.id, "stop")

    # when
    created = vsphere.create_image(instance_id=inst.id, name="ignored")

    # then
    assert (created.id, created.name) == ("inst4", "inst4")


# -- creating images: no id returned (FGCP) ---------------------------------------


def test_fgcp_returns_no_id_and_hides_the_image_until_ready(make_driver):
    # given
    fgcp = make_driver(profile="fgcp", create_delay=0.3)
    fgcp.instance_action("inst1", "stop")
    before = frozenset(image_ids(fgcp))

    # when
    created = fgcp.create_image(instance_id="inst1", name="nightly", description="Nightly")

    # then: no id, pending, and nowhere to be seen yet
    assert created.id == ""
    assert (created.name, created.description) == ("nightly", "Nightly")
    assert (created.state, created.raw_state) == (ImageState.PENDING, "REGISTERING")
    assert image_ids(fgcp) == SEED_IMAGE_IDS
    assert fgcp.find_created_images(name="nightly", exclude_ids=before) == []

    time.sleep(0.35)
    (found,) = fgcp.find_created_images(name="nightly", exclude_ids=before)
    assert re.fullmatch(r"IMG_[0-9a-f]{6}_[0-9A-F]{16}", found.id)
    assert (found.name, found.description, found.owner_id) == ("nightly", "Nightly", "mockuser")
    assert (found.state, found.raw_state) == (ImageState.AVAILABLE, "AVAILABLE")
    assert image_ids(fgcp) == sorted([*SEED_IMAGE_IDS, found.id])
    assert fgcp.get_image(found.id) == found


def test_fgcp_hidden_image_cannot_be_fetched_by_id(make_driver, state_dir):
    # given
    fgcp = make_driver(profile="fgcp", create_delay=60)
    fgcp.instance_action("inst1", "stop")
    fgcp.create_image(instance_id="inst1", name="hidden")

    # when: the id exists on disk only
    on_disk = {p.stem for p in (state_dir / "images").glob("*.json")} - set(SEED_IMAGE_IDS)

    # then
    assert len(on_disk) == 1
    assert fgcp.get_image(on_disk.pop()) is None


def test_find_created_images_returns_every_candidate(make_driver):
    # given: two new images named alike, neither excluded (the caller decides)
    fgcp = make_driver(profile="fgcp", create_delay=0)
    fgcp.instance_action("inst1", "stop")
    fgcp.create_image(instance_id="inst1", name="twin")
    fgcp.create_image(instance_id="inst1", name="twin")

    # then
    found = fgcp.find_created_images(name="twin", exclude_ids=frozenset(SEED_IMAGE_IDS))
    assert len(found) == 2 and len({i.id for i in found}) == 2
    assert fgcp.find_created_images(name="twin", exclude_ids=frozenset({found[0].id})) == [found[1]]


def test_find_created_images_ignores_other_owners(make_driver):
    # img1 is fedoraproject's, img3 is ours
    fgcp = make_driver(profile="fgcp")

    assert fgcp.find_created_images(name="img1", exclude_ids=frozenset()) == []
    assert [i.id for i in fgcp.find_created_images(name="img3", exclude_ids=frozenset())] == ["img3"]
    assert fgcp.find_created_images(name="img3", exclude_ids=frozenset({"img3"})) == []


def test_find_created_images_with_the_legacy_profile(make_driver):
    # given: Deltacloud's create (owner "root") on a cloud that returns no id
    driver = make_driver(profile="deltacloud", returns_id=False)

    # when
    created = driver.create_image(instance_id="inst1", name="legacy")

    # then
    assert created.id == ""
    (found,) = driver.find_created_images(name="legacy", exclude_ids=frozenset(SEED_IMAGE_IDS))
    assert (found.id, found.owner_id) == ("legacy", "root")


# -- destroying images ------------------------------------------------------------


def test_destroy_image(make_driver, driver):
    # given
    other_process = make_driver()

    # when
    driver.destroy_image("img2")

    # then
    assert driver.get_image("img2") is None
    assert image_ids(other_process) == ["img1", "img3"]
    with pytest.raises(NotFound, match="Image img2 not found"):
        driver.destroy_image("img2")


def test_destroy_a_pending_image(make_driver):
    ec2 = make_driver(profile="ec2", create_delay=60)
    created = ec2.create_image(instance_id="inst0", name="pending")

    ec2.destroy_image(created.id)

    assert ec2.get_image(created.id) is None
    assert image_ids(ec2) == SEED_IMAGE_IDS


def test_a_destroyed_name_can_be_reused(driver):
    driver.create_image(instance_id="inst1", name="again", description="first")
    driver.destroy_image("again")

    created = driver.create_image(instance_id="inst1", name="again", description="second")

    assert created.id == "again"
    assert driver.get_image("again").description == "second"


# -- persistence ------------------------------------------------------------------


def test_state_is_shared_between_drivers_on_one_state_dir(make_driver):
    # given: the web process and a worker
    web, worker = make_driver(), make_driver()

    # when
    worker.create_image(instance_id="inst1", name="from-worker")
    web.instance_action("inst0", "stop")
    web.destroy_image("img1")

    # then
    assert web.get_image("from-worker").name == "from-worker"
    assert worker.get_instance("inst0").state == "STOPPED"
    assert worker.get_image("img1") is None


def test_state_survives_a_restart_without_reseeding(make_driver):
    # given
    make_driver().destroy_image("img1")
    make_driver().instance_action("inst2", "stop")

    # when
    restarted = make_driver()

    # then
    assert image_ids(restarted) == ["img2", "img3"]
    assert restarted.get_instance("inst2").state == "STOPPED"


def test_separate_state_dirs_are_separate_clouds(tmp_path):
    one = mock_driver(tmp_path / "one")
    two = mock_driver(tmp_path / "two")

    one.destroy_image("img1")
    one.create_image(instance_id="inst1", name="only-in-one")

    assert image_ids(two) == SEED_IMAGE_IDS
    assert image_ids(one) == ["img2", "img3", "only-in-one"]


# -- instances --------------------------------------------------------------------


def test_stop_start_reboot(make_driver, driver):
    other_process = make_driver()

    stopped = driver.instance_action("inst1", "stop")
    assert (stopped.state, stopped.actions) == ("STOPPED", ("start", "destroy"))
    assert other_process.get_instance("inst1").state == "STOPPED"

    started = driver.instance_action("inst1", "start")
    assert (started.state, started.actions) == ("RUNNING", ("reboot", "stop"))

    rebooted = driver.instance_action("inst1", "reboot")
    assert (rebooted.state, rebooted.actions) == ("RUNNING", ("reboot", "stop"))
    assert other_process.get_instance("inst1") == rebooted


@pytest.mark.parametrize(
    ("stop_first", "action"),
    [
        (False, "start"),
        (False, "destroy"),
        (False, "explode"),
        (False, ""),
        (True, "stop"),
        (True, "reboot"),
        (True, "destroy"),
        (True, "explode"),
    ],
)
def test_invalid_transitions_are_invalid_state(driver, stop_first, action):
    # given
    if stop_first:
        driver.instance_action("inst1", "stop")
    before = driver.get_instance("inst1")

    # when / then
    with pytest.raises(InvalidState, match=f"Instance inst1 cannot {action} while {before.state}"):
        driver.instance_action("inst1", action)
    assert driver.get_instance("inst1") == before


def test_action_on_an_unknown_instance_is_not_found(driver):
    with pytest.raises(NotFound, match="Instance inst9 not found"):
        driver.instance_action("inst9", "stop")


def test_destroy_instance_only_when_stopped(driver):
    # when / then: running
    with pytest.raises(InvalidState, match="Instance inst1 cannot destroy while RUNNING"):
        driver.destroy_instance("inst1")
    assert driver.get_instance("inst1").state == "RUNNING"

    # when: stopped
    driver.instance_action("inst1", "stop")
    driver.destroy_instance("inst1")

    # then
    assert driver.get_instance("inst1") is None
    assert instance_ids(driver) == ["inst0", "inst2", "inst3"]
    with pytest.raises(NotFound):
        driver.destroy_instance("inst1")


def test_destroy_unknown_instance_is_not_found(driver):
    with pytest.raises(NotFound, match="Instance inst9 not found"):
        driver.destroy_instance("inst9")


def test_create_instance_defaults(driver):
    # when
    inst = driver.create_instance(image_id="img1")

    # then
    assert re.fullmatch(r"i-\d{10}", inst.name)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", inst.launch_time)
    assert inst == ProviderInstance(
        id="inst4",
        name=inst.name,
        state="RUNNING",
        owner_id="mockuser",
        image_id="img1",
        realm_id="us",
        hardware_profile_id="m1-small",
        hardware_profile_overrides=(),
        actions=("reboot", "stop"),
        create_image_refusal="",
        public_addresses=(Address("img1.inst4.public.com"),),
        private_addresses=(Address("img1.inst4.private.com"),),
        storage_volumes=(),
        keyname=None,
        launch_time=inst.launch_time,
        network_interfaces=None,
        root_type=RootType.PERSISTENT,
    )
    assert driver.get_instance("inst4") == inst
    assert instance_ids(driver) == [*SEED_INSTANCE_IDS, "inst4"]


def test_create_instance_ids_count_up(driver):
    ids = [driver.create_instance(image_id="img2").id for _ in range(3)]

    assert ids == ["inst4", "inst5", "inst6"]


def test_create_instance_with_options(driver):
    inst = driver.create_instance(
        image_id="img3",
        name="my-vm",
        realm_id="eu",
        hwp_id="m1-large",
        hwp_memory="8192",
        hwp_cpu="2",
        hwp_storage="",
        keyname="mykey",
    )

    assert (inst.name, inst.realm_id, inst.hardware_profile_id, inst.keyname) == (
        "my-vm",
        "eu",
        "m1-large",
        "mykey",
    )
    assert inst.hardware_profile_overrides == (("cpu", "2"), ("memory", "8192"))
    assert inst.image_id == "img3"
    assert driver.get_instance(inst.id) == inst


def test_create_instance_from_a_created_image(driver):
    driver.create_image(instance_id="inst1", name="golden")

    inst = driver.create_instance(image_id="golden")

    assert inst.image_id == "golden"
    assert inst.public_addresses == (Address("golden.inst4.public.com"),)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image_id": "img1", "hwp_id": "m1-huge"}, "Hardware profile 'm1-huge' does not exists."),
        ({"image_id": "img1", "realm_id": "mars"}, "Realm 'mars' does not exists."),
        ({"image_id": "img9"}, "Image img9 does not exists."),
    ],
)
def test_create_instance_invalid_parameters(driver, options, message):
    with pytest.raises(InvalidParameter) as excinfo:
        driver.create_instance(**options)

    assert str(excinfo.value) == message
    assert instance_ids(driver) == SEED_INSTANCE_IDS


def test_create_instance_from_a_pending_image_is_invalid_state(make_driver):
    ec2 = make_driver(profile="ec2", create_delay=60)
    created = ec2.create_image(instance_id="inst0", name="slow")

    with pytest.raises(InvalidState, match=f"Image {created.id} is not available"):
        ec2.create_instance(image_id=created.id)
    assert instance_ids(ec2) == SEED_INSTANCE_IDS


@pytest.mark.parametrize("profile", sorted(RAW_STATES))
def test_create_instance_from_a_seed_image_in_every_profile(make_driver, profile):
    inst = make_driver(profile=profile).create_instance(image_id="img1")

    assert (inst.id, inst.state, inst.image_id) == ("inst4", "RUNNING", "img1")


def test_run_on_instance(driver):
    result = driver.run_on_instance("inst1", "uname -a")

    assert result == RunResult(
        instance_id="inst1",
        command="uname -a",
        output="This is where the output from 'uname -a' would appear if this were not a mock provider",
        public_address="img1.inst1.public.com",
    )


def test_run_on_unknown_instance_is_not_found(driver):
    with pytest.raises(NotFound, match="Instance inst9 not found"):
        driver.run_on_instance("inst9", "ls")


# -- concurrency ------------------------------------------------------------------


def test_threads_creating_images_with_one_shared_driver(driver):
    # given: services share one driver per account between threads
    names = [f"thread-{n}" for n in range(16)]
    barrier = threading.Barrier(len(names))

    def create(name):
        barrier.wait()
        return driver.create_image(instance_id="inst1", name=name).id

    # when
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        ids = list(pool.map(create, names))

    # then
    assert sorted(ids) == sorted(names)
    assert sorted(image_ids(driver)) == sorted([*SEED_IMAGE_IDS, *names])


def test_threads_racing_for_one_name_give_exactly_one_image(make_driver):
    # given
    workers = 8
    barrier = threading.Barrier(workers)

    def create(_):
        driver = make_driver()
        barrier.wait()
        try:
            return driver.create_image(instance_id="inst1", name="contested").id
        except Conflict:
            return None

    # when
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(create, range(workers)))

    # then
    assert results.count("contested") == 1
    assert results.count(None) == workers - 1
    assert image_ids(make_driver()).count("contested") == 1


def test_threads_creating_instances_get_distinct_ids(make_driver):
    workers = 8
    barrier = threading.Barrier(workers)

    def create(_):
        driver = make_driver()
        barrier.wait()
        return driver.create_instance(image_id="img1").id

    with ThreadPoolExecutor(max_workers=workers) as pool:
        ids = list(pool.map(create, range(workers)))

    assert sorted(ids) == sorted(f"inst{n}" for n in range(4, 4 + workers))
    assert sorted(instance_ids(make_driver())) == sorted([*SEED_INSTANCE_IDS, *ids])


def _create_images_in_a_process(state_dir, prefix, count):
    driver = mock_driver(state_dir, profile="openstack", create_delay=0)
    return [driver.create_image(instance_id="inst1", name=f"{prefix}-{n}").id for n in range(count)]


def test_processes_creating_images_lose_none(state_dir):
    # given: separate processes, nothing shared but the state directory
    processes, per_process = 4, 5
    context = multiprocessing.get_context("fork")

    # when
    with context.Pool(processes) as pool:
        results = pool.starmap(
            _create_images_in_a_process, [(state_dir, f"p{n}", per_process) for n in range(processes)]
        )

    # then
    ids = [image_id for batch in results for image_id in batch]
    assert len(ids) == processes * per_process
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(image_id) for image_id in ids)
    listed = mock_driver(state_dir, profile="openstack")
    images = {i.id: i.name for i in listed.list_images()}
    assert set(ids) <= set(images)
    assert sorted(images[i] for i in ids) == sorted(
        f"p{n}-{k}" for n in range(processes) for k in range(per_process)
    )
    assert len(images) == len(SEED_IMAGE_IDS) + len(ids)
