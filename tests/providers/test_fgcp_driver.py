"""What is particular to the FGCP driver (the shared contract suite covers the
rest): Deltacloud's guesses from OS names, vservers across systems, the
stopped-only rule, and finding a created image by name and registrant."""

from __future__ import annotations

import time

import pytest

from providers import registry
from providers.base import ImageState, RootType
from providers.drivers.fgcp import image_architecture, image_hardware_profiles
from providers.exceptions import AuthFailure, InvalidParameter, InvalidState, NotFound, Unavailable
from tests.fakes.fgcp import FakeFGCP
from tests.fakes.pki import Authority

WEB1, DB1, BUILD = "DWUSER01-WEB00001-S-0002", "DWUSER01-WEB00001-S-0003", "DWUSER01-DEV00001-S-0002"


@pytest.fixture(scope="module")
def ca():
    return Authority()


@pytest.fixture(scope="module")
def credentials(ca):
    return ca.user("DWUSER01").pkcs12_credentials("driver-passphrase")


@pytest.fixture
def fake(ca):
    with FakeFGCP.standard(ca, register_seconds=0.3) as running:
        yield running


def make(provider="au", params=None, credentials=None):
    return registry.create("fgcp", provider=provider, params=params, credentials=credentials)


@pytest.fixture
def driver(fake, ca, credentials):
    return make(provider="au", params={"endpoint_url": fake.url, "ca_cert": ca.pem}, credentials=credentials)


@pytest.mark.parametrize(
    ("os_name", "arch", "w_high"),
    [
        ("CentOS 5.6 32bit (English)", "i386", False),
        ("Red Hat Enterprise Linux 5.8 64bit", "x86_64", True),
        ("Windows Server 2008 R2 SE 64bit (English)", "x86_64", True),
        ("Windows Server 2003 32 bit", "i386", True),  # 32-bit, but not CentOS/RHEL
        ("Some Linux", "x86_64", True),
    ],
)
def test_architecture_and_profiles_from_the_os_name(os_name, arch, w_high):
    assert image_architecture(os_name) == arch
    assert ("w_high" in image_hardware_profiles(os_name)) is w_high
    assert "economy" in image_hardware_profiles(os_name)


def test_recorded_images_as_deltacloud_showed_them(driver):
    images = {i.id: i for i in driver.list_images()}
    centos = images["IMG_3c9820_21VKHA77OO"]
    assert (centos.name, centos.architecture, centos.owner_id, centos.description) == (
        "CentOS 5.6 32bit(EN)",
        "i386",
        "UZXC0GRT",
        None,
    )
    assert centos.state == ImageState.AVAILABLE and centos.root_type == RootType.PERSISTENT
    assert centos.extra["os_name"] == "CentOS 5.6 32bit (English)" and centos.extra["size_gb"] == "10.0"
    sql = images["IMG_3c9820_J56Y5PS4FJO5C"]
    assert sql.architecture == "x86_64" and sql.extra["softwares"] == ["SQLServer 2008 R2 SE (English)"]
    assert driver.get_image("IMG_3c9820_21VKHA77OO") == centos
    assert driver.get_image("IMG_nothing_here") is None


def test_owner_falls_back_to_the_creator(driver, fake):
    image_id = fake.add_image("orphan", "DWUSER02")
    fake.images[image_id].registrant = ""
    assert driver.get_image(image_id).owner_id == "DWUSER02"


def test_vservers_of_every_system_with_states_and_refusals(driver, fake):
    fake.set_status(BUILD, "UNEXPECTED_STOP")
    instances = {i.id: i for i in driver.list_instances()}
    assert set(instances) == {WEB1, DB1, BUILD}
    assert (instances[WEB1].state, instances[DB1].state, instances[BUILD].state) == (
        "RUNNING",
        "STOPPED",
        "STOPPED",
    )
    assert instances[DB1].can_create_image and instances[DB1].realm_id == "DWUSER01-WEB00001"
    assert "is RUNNING" in instances[WEB1].create_image_refusal
    # stopped after a crash is not STOPPED: FGCP registers only from a clean stop
    assert "UNEXPECTED_STOP" in instances[BUILD].create_image_refusal
    assert instances[WEB1].private_addresses[0].address == "192.168.0.12"
    assert instances[DB1].hardware_profile_id == "economy"
    assert driver.get_instance("DWUSER01-WEB00001-S-0042") is None
    assert driver.get_instance("inst1") is None
    assert driver.get_instance("OTHER-SYS-S-0002") is None


def test_a_system_destroyed_while_listing_is_skipped(driver, fake):
    fake.fail_next("ListVServer", "RESOURCE_NOT_FOUND", "The VSYS does not exist.")
    assert {i.realm_id for i in driver.list_instances()} == {"DWUSER01-WEB00001"}


def test_create_refuses_before_calling_fgcp(driver, fake):
    with pytest.raises(InvalidState, match="is RUNNING"):
        driver.create_image(instance_id=WEB1, name="copy")
    with pytest.raises(NotFound):
        driver.create_image(instance_id="DWUSER01-WEB00001-S-0077", name="copy")
    with pytest.raises(InvalidParameter):
        driver.create_image(instance_id=DB1, name="  ")
    assert not [c for c in fake.calls if c[1] == "RegisterPrivateDiskImage"]


def test_created_image_is_found_by_name_and_registrant_only(driver, fake):
    # given: an older image of ours with the same name, then our create
    old = fake.add_image("nightly", "DWUSER01")
    before = frozenset(i.id for i in driver.list_images())
    pending = driver.create_image(instance_id=DB1, name="nightly", description="db")
    assert (pending.id, pending.state, pending.owner_id) == ("", ImageState.PENDING, "DWUSER01")
    # a colleague's same-named image appears at once; ours only after the copy
    fake.add_image("nightly", "DWUSER02")
    assert driver.find_created_images(name="nightly", exclude_ids=before) == []
    time.sleep(0.4)
    (found,) = driver.find_created_images(name="nightly", exclude_ids=before)
    assert found.id not in (old, *before) and found.owner_id == "DWUSER01" and found.description == "db"
    assert driver.find_created_images(name="nightly", exclude_ids=before | {found.id}) == []


def test_identity_is_the_certificate_user_unless_named(fake, ca, credentials):
    params = {"endpoint_url": fake.url, "ca_cert": ca.pem}
    assert make(provider="au", params=params, credentials=credentials).identity() == "DWUSER01"
    named = make(provider="au", params={**params, "user": "DWADMIN"}, credentials=credentials)
    assert named.identity() == "DWADMIN"


def test_settings_and_secrets(fake, ca, credentials):
    with pytest.raises(InvalidParameter, match="region"):
        make(provider="", params={}, credentials=credentials)
    with pytest.raises(InvalidParameter, match="api_version"):
        make(provider="uk", params={"api_version": "2009-01-01"}, credentials=credentials)
    with pytest.raises(InvalidParameter, match="pkcs12"):
        make(provider="uk", credentials={"passphrase": "only-this"})
    with pytest.raises(InvalidParameter, match="together"):
        make(provider="uk", credentials={"certificate": "-----BEGIN CERTIFICATE-----"})
    assert make(provider="jp-west", credentials=credentials).endpoint.startswith("https://api.oviss2.jp")
    # credentials are opened on first use, and never shown
    broken = make(provider="au", params={"endpoint_url": fake.url}, credentials={"pkcs12": "AAAA"})
    assert broken.capabilities.create_returns_id is False
    with pytest.raises(AuthFailure):
        broken.list_images()
    driver = make(
        provider="au", params={"endpoint_url": fake.url, "ca_cert": ca.pem}, credentials=credentials
    )
    driver.list_images()
    shown = repr(driver) + repr(driver.client()) + repr(driver.client().identity) + repr(driver.credentials)
    assert "driver-passphrase" not in shown and credentials["pkcs12"][:20] not in shown


def test_listing_streams_in_pages_and_a_late_error_fails_it_whole(fake, ca, credentials):
    # given: a catalog larger than a page, and an answer that ends in an error status
    for n in range(30):
        fake.add_image(f"bulk-{n}", "DWUSER01")
    driver = make(
        params={"endpoint_url": fake.url, "ca_cert": ca.pem, "page_size": 7}, credentials=credentials
    )
    pages = [len(page) for page in driver.iter_image_pages()]
    assert pages == [7, 7, 7, 7, 7, 7, 3]  # 15 recorded + 30
    listed = fake.listed("DWUSER01")
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><ListDiskImageResponse xmlns="http://apioviss.jp.fujitsu.com">'
        b"<diskimages>"
        + b"".join(
            f"<diskimage><diskimageId>{i.id}</diskimageId><diskimageName>{i.name}</diskimageName></diskimage>".encode()
            for i in listed[:10]
        )
        + b"</diskimages><responseMessage>System busy.</responseMessage>"
        b"<responseStatus>SYSTEM_ERROR</responseStatus></ListDiskImageResponse>"
    )
    fake.answer_next("ListDiskImage", body)
    seen = []
    with pytest.raises(Unavailable, match="System busy"):
        for page in driver.iter_image_pages():
            seen.append(len(page))
    # the pages before the status were handed over; sync discards such a listing whole
    assert seen == [7]
