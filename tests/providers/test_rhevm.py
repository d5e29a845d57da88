"""What is particular to the RHEV-M / oVirt driver: ovirtsdk4 over HTTPS (pycurl, a CA made
per test) against the stateful fake engine. The shared contract lives in the contract suite."""

from __future__ import annotations

import time

import pytest

from providers import registry
from providers.base import ImageState
from providers.drivers.rhevm import OVirtDriver, RHEVMDriver
from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    ProviderTimeout,
    Unavailable,
)
from providers.ovirt_shapes import MUST_BE_DOWN
from providers.registry import get_driver
from tests.fakes.ovirt_engine import BLANK_ID, running_engine
from tests.fakes.tls_ca import make_ca
from tests.integration.conftest import free_port

PASSWORD = "s3cret-engine-pw"
DELAY = 0.4


@pytest.fixture
def engine(tmp_path):
    with running_engine(tmp_path / "engine", templates=5, create_delay=DELAY) as (fake, server, ids):
        fake.users = {"admin@internal": PASSWORD}
        yield fake, server, ids


def driver(server, provider="default", *, name="rhevm", password=PASSWORD, **params):
    params = {"url": server.url, "ca_bundle": server.tls.ca_file.read_text(), "page_size": 2, **params}
    credentials = {"username": "admin@internal", "password": password}
    return registry.create(name, provider=provider, params=params, credentials=credentials)


def template_id(fake, name):
    return next(t.id for t in fake.templates.values() if t.name == name)


def test_registered_under_both_names(engine):
    assert get_driver("rhevm") is RHEVMDriver
    assert get_driver("ovirt") is OVirtDriver and issubclass(OVirtDriver, RHEVMDriver)
    assert len(driver(engine[1], name="ovirt").list_images()) == 5


def test_listing_pages_through_the_engine_search_and_leaves_blank_out(engine):
    fake, server, _ = engine
    pages = list(driver(server).iter_image_pages())
    # Blank sorts first on page 1 and is dropped; five templates over three pages of two
    assert [[i.name for i in page] for page in pages] == [
        ["tpl-0001"],
        ["tpl-0002", "tpl-0003"],
        ["tpl-0004", "tpl-0005"],
        [],
    ]
    searches = [(q["search"], q["max"]) for m, p, q in fake.requests if p.endswith("/templates")]
    assert searches == [(f'datacenter="default" sortby name asc page {n}', "2") for n in (1, 2, 3, 4)]
    image = pages[1][0]
    assert (image.state, image.raw_state, image.owner_id) == (ImageState.AVAILABLE, "OK", "admin@internal")
    assert driver(server).get_image(BLANK_ID) is None
    with pytest.raises(NotFound):
        driver(server).destroy_image(BLANK_ID)


def test_an_engine_that_ignores_paging_is_not_followed_forever(engine):
    fake, server, _ = engine
    fake.paging = False
    with pytest.raises(Unavailable, match="ignored the search page"):
        driver(server).list_images()


def test_scope_to_a_data_center_or_cluster(engine):
    fake, server, _ = engine
    other_dc = fake.add_datacenter("Lab")
    elsewhere = fake.add_template("lab-only", fake.add_cluster("lab-cluster", other_dc))
    assert "lab-only" not in [i.name for i in driver(server, "default").list_images()]
    assert driver(server, "default").get_image(elsewhere.id) is None
    assert [i.name for i in driver(server, "lab/lab-cluster").list_images()] == ["lab-only"]
    assert len(driver(server, "").list_images()) == 6  # the whole engine
    with pytest.raises(ProviderError, match="no data center named 'nowhere'"):
        driver(server, "nowhere").list_images()
    with pytest.raises(ProviderError, match="no cluster 'nope'"):
        driver(server, "default/nope").list_images()


def test_create_from_a_down_vm_goes_locked_then_ok(engine):
    fake, server, ids = engine
    drv = driver(server)

    # when
    image = drv.create_image(instance_id=ids["vm_down"], name="web-1", description="from vm-down")

    # then: the engine's id at once, LOCKED; the VM is image_locked meanwhile
    assert fake.templates[image.id].name == "web-1"
    assert (image.state, image.raw_state, image.description) == (ImageState.PENDING, "LOCKED", "from vm-down")
    vm = drv.get_instance(ids["vm_down"])
    assert (vm.state, vm.create_image_refusal) == ("PENDING", MUST_BE_DOWN)
    time.sleep(DELAY + 0.2)
    assert drv.get_image(image.id).state == ImageState.AVAILABLE
    assert drv.get_instance(ids["vm_down"]).can_create_image


def test_create_is_refused_for_a_running_vm_in_the_engine_words(engine):
    _, server, ids = engine
    drv = driver(server)
    assert drv.get_instance(ids["vm_up"]).create_image_refusal == MUST_BE_DOWN
    with pytest.raises(InvalidState) as refused:
        drv.create_image(instance_id=ids["vm_up"], name="nope")
    assert str(refused.value) == "Cannot add Template. VM must be in Down status."
    with pytest.raises(NotFound):
        drv.create_image(instance_id="not-a-vm", name="nope")


def test_engine_refusals_of_a_create(engine):
    _, server, ids = engine
    drv = driver(server)
    with pytest.raises(Conflict, match="name is already in use"):
        drv.create_image(instance_id=ids["vm_down"], name="tpl-0001")
    with pytest.raises(InvalidParameter, match="contains special characters"):
        drv.create_image(instance_id=ids["vm_down"], name="bad name!")


def test_an_illegal_template_fails_with_the_audit_log_reason(engine):
    fake, server, ids = engine
    fake.fail_next_create("VDSM command CopyImageVDS failed: No space left on device")
    drv = driver(server)
    image = drv.create_image(instance_id=ids["vm_down"], name="doomed")
    time.sleep(DELAY + 0.2)
    failed = drv.get_image(image.id)
    assert (failed.state, failed.raw_state) == (ImageState.FAILED, "ILLEGAL")
    assert failed.failure_reason == (
        "VDSM command CopyImageVDS failed: No space left on device; "
        "Failed to complete creation of Template doomed from VM vm-down."
    )


def test_deleting_a_template_in_use_names_the_vms(engine):
    fake, server, _ = engine
    used = template_id(fake, "tpl-0001")
    with pytest.raises(Conflict) as refused:
        driver(server).destroy_image(used)
    assert str(refused.value) == (
        "Cannot delete Template. Template is being used by the following VMs: vm-down,vm-up."
    )
    assert used in fake.templates
    free = template_id(fake, "tpl-0002")
    driver(server).destroy_image(free)
    assert free not in fake.templates
    with pytest.raises(NotFound):
        driver(server).destroy_image(free)


def test_tls_verification_failure_is_a_clear_error(engine, tmp_path):
    _, server, _ = engine
    other = make_ca(tmp_path / "other").ca_file.read_text()
    with pytest.raises(ProviderError, match="TLS verification failed") as failed:
        driver(server, ca_bundle=other).list_images()
    assert type(failed.value) is ProviderError and not failed.value.retryable
    with pytest.raises(ProviderError, match="TLS verification failed"):
        driver(server, ca_bundle="").list_images()  # the system store does not know our CA
    assert driver(server, ca_bundle="", insecure=True).list_images()  # explicitly unverified
    with pytest.raises(InvalidParameter, match="PEM"):
        driver(server, ca_bundle="not a certificate")
    with pytest.raises(InvalidParameter, match="API URL"):
        driver(server, url="engine.example.com")


def test_sso_rejection_and_token_reuse(engine):
    fake, server, _ = engine
    with pytest.raises(AuthFailure) as rejected:
        driver(server, password="wrong-password").list_images()
    assert "The username or password is incorrect" in str(rejected.value)
    assert "wrong-password" not in str(rejected.value)
    assert PASSWORD not in repr(driver(server))

    # a good login is remembered: another driver for the same account logs in no more
    driver(server).list_images()
    logins = sum(p.endswith("/sso/oauth/token") for _, p, _ in fake.requests)
    driver(server).list_images()
    assert sum(p.endswith("/sso/oauth/token") for _, p, _ in fake.requests) == logins
    # an expired token: the SDK logs in again once, transparently
    fake.tokens.clear()
    assert len(driver(server).list_images()) == 5
    assert sum(p.endswith("/sso/oauth/token") for _, p, _ in fake.requests) == logins + 1


def test_timeouts_unreachable_engines_and_wrong_urls(engine):
    fake, server, _ = engine
    driver(server).list_images()  # log in first: the stall is on the API
    fake.latency = 2.5
    with pytest.raises(ProviderTimeout, match="did not answer in time"):
        driver(server, timeout=1).list_images()
    fake.latency = 0
    down = driver(server, url=f"https://127.0.0.1:{free_port()}/ovirt-engine/api")
    with pytest.raises(Unavailable, match="could not be reached") as unreachable:
        down.list_images()
    assert unreachable.value.retryable
    wrong_path = driver(server, url=server.url.replace("/ovirt-engine/api", "/api"))
    with pytest.raises(Unavailable, match="not its API"):
        wrong_path.list_images()
