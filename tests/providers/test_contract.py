"""The driver contract, one suite for every driver and its local back end.

Each case states one rule of ``providers.base.Driver`` that the API, sync and
the worker rely on; ``tests/providers/harnesses/`` plugs each driver in. A
per-driver test file keeps only what is particular to its cloud.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from providers import registry
from providers.base import ImageState, ProviderImage
from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    ProviderTimeout,
    Throttled,
    Unavailable,
)
from providers.params import specs
from tests.providers.harnesses import HARNESSES, load
from tests.providers.harnesses.base import ERROR_KINDS, Harness

EXPECTED_ERRORS: dict[str, type[ProviderError]] = {
    "not_found": NotFound,
    "bad_input": InvalidParameter,
    "conflict": Conflict,
    "auth": AuthFailure,
    "throttled": Throttled,
    "unreachable": Unavailable,
    "timeout": ProviderTimeout,
}
assert set(EXPECTED_ERRORS) == set(ERROR_KINDS)


@pytest.fixture(params=sorted(HARNESSES))
def harness(request, tmp_path):
    instance: Harness = load(request.param)(tmp_path)
    instance.start()
    yield instance
    instance.stop()


def unique(prefix: str = "contract") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_every_registered_driver_has_a_harness():
    covered = {load(key).driver_name for key in HARNESSES}
    assert set(registry.DRIVERS) <= covered, "a driver without a contract harness"


# -- parameters and secrets ------------------------------------------------------------------


def test_parameters_and_credentials_are_declared_and_documented(harness):
    cls = registry.get_driver(harness.driver_name)
    for declared in (cls.Params, cls.Credentials, cls.Settings):
        assert dataclasses.is_dataclass(declared) and declared.__dataclass_params__.frozen
        for spec in specs(declared):
            assert spec.help, f"{declared.__name__}.{spec.name} has no help text"
    # every parameter's default passes validation, so a blank form field is valid
    assert registry.parse_params(harness.driver_name, harness.params()) is not None


def test_unknown_parameters_are_refused_by_name(harness):
    with pytest.raises(InvalidParameter, match="'no_such_parameter'"):
        harness.driver(no_such_parameter=1)


def test_secrets_never_show_in_reprs(harness):
    driver = harness.driver()
    shown = " ".join(map(repr, (driver, driver.params, driver.credentials, str(driver))))
    for secret in harness.secrets():
        assert secret not in shown


# -- listing -----------------------------------------------------------------------------------


def test_listing_spans_several_provider_pages(harness):
    added = harness.add_images(harness.page_size * 2 + 1)
    pages = list(harness.driver().iter_image_pages())
    listed = [image.id for page in pages for image in page]
    assert len(pages) >= 3
    assert set(added) <= set(listed)
    assert len(listed) == len(set(listed)), "an image listed twice"
    assert all(isinstance(image, ProviderImage) for page in pages for image in page)


def test_one_image_is_what_the_listing_says(harness):
    (image_id,) = harness.add_images(1)
    driver = harness.driver()
    listed = next(i for i in driver.list_images() if i.id == image_id)
    assert driver.get_image(image_id) == listed
    assert listed.state == ImageState.AVAILABLE


def test_unknown_ids_are_none_not_errors(harness):
    driver = harness.driver()
    assert driver.get_image(harness.unknown_image_id()) is None
    assert driver.get_instance(harness.unknown_instance_id()) is None


def test_raw_states_are_kept_and_normalized(harness):
    assert harness.state_samples, "a harness must show the back end's raw states"
    driver = harness.driver()
    for raw, normalized in sorted(harness.state_samples.items()):
        (image_id,) = harness.add_images(1)
        harness.set_state(image_id, raw)
        image = driver.get_image(image_id)
        assert image is not None and (image.raw_state, image.state) == (raw, normalized), raw


# -- creating and destroying -------------------------------------------------------------------


def _create(harness: Harness, name: str) -> tuple[str, ProviderImage]:
    driver = harness.driver()
    image = driver.create_image(instance_id=harness.imageable_instance(), name=name, description="contract")
    if driver.capabilities.create_returns_id:
        assert image.id
        return image.id, image
    assert image.id == ""
    return name, image


def _find(harness: Harness, created: str) -> ProviderImage | None:
    driver = harness.driver()
    if driver.capabilities.create_returns_id:
        return driver.get_image(created)
    found = driver.find_created_images(name=created, exclude_ids=frozenset())
    return found[0] if found else None


def test_create_goes_pending_then_available(harness):
    created, image = _create(harness, unique())
    assert image.state in (ImageState.PENDING, ImageState.AVAILABLE)
    harness.settle(created, ok=True)
    done = _find(harness, created)
    assert done is not None and done.state == ImageState.AVAILABLE
    assert done.failure_reason == ""


def test_create_can_end_failed_with_the_reason(harness):
    created, _ = _create(harness, unique())
    harness.settle(created, ok=False, reason="disk copy failed")
    done = _find(harness, created)
    assert done is not None and done.state == ImageState.FAILED
    assert done.failure_reason


def test_instances_the_cloud_refuses_are_refused_with_the_reason(harness):
    driver = harness.driver()
    refused = harness.refused_instance()
    instance = driver.get_instance(refused)
    assert instance is not None and instance.create_image_refusal
    for word in harness.refusal_words:
        assert word in instance.create_image_refusal
    with pytest.raises(InvalidState) as caught:
        driver.create_image(instance_id=refused, name=unique(), description=None)
    assert caught.value.message == instance.create_image_refusal
    assert harness.driver().get_instance(harness.imageable_instance()).create_image_refusal == ""


def test_create_from_an_unknown_instance_is_not_found(harness):
    with pytest.raises(NotFound):
        harness.driver().create_image(instance_id=harness.unknown_instance_id(), name=unique())


def test_destroy_removes_the_image_and_twice_is_not_found(harness):
    (image_id,) = harness.add_images(1)
    driver = harness.driver()
    driver.destroy_image(image_id)
    gone = driver.get_image(image_id)
    assert gone is None or gone.state in (ImageState.DELETED, ImageState.DELETING)
    with pytest.raises(NotFound):
        driver.destroy_image(harness.unknown_image_id())


def test_created_images_never_adopt_an_older_one_with_the_same_name(harness):
    driver = harness.driver()
    if driver.capabilities.create_returns_id:
        pytest.skip(f"{harness.driver_name} returns ids on create")
    name = unique("same")
    (older,) = harness.add_images(1, name=name)
    before = frozenset(i.id for i in driver.find_created_images(name=name, exclude_ids=frozenset()))
    assert older in before
    driver.create_image(instance_id=harness.imageable_instance(), name=name, description=None)
    harness.settle(name, ok=True)
    found = driver.find_created_images(name=name, exclude_ids=before)
    assert [i.name for i in found] == [name]
    assert older not in {i.id for i in found}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_every_error_is_translated_and_clean(harness, kind):
    call = harness.provoke(kind)
    if call is None:
        pytest.skip(f"{harness.driver_name}'s back end has no '{kind}' failure")
    with pytest.raises(ProviderError) as caught:
        call()
    error = caught.value
    assert isinstance(error, EXPECTED_ERRORS[kind]), f"{kind} became {type(error).__name__}: {error}"
    if kind in ("throttled", "unreachable", "timeout"):
        assert error.retryable
    if kind == "unreachable":
        assert not isinstance(error, ProviderTimeout)
    for secret in harness.secrets():
        assert secret not in f"{error} {error.detail} {error!r}"


def test_rejected_credentials_are_an_auth_failure(harness):
    with pytest.raises(AuthFailure) as caught:
        harness.driver(credentials=harness.bad_credentials()).list_images()
    for secret in harness.secrets():
        assert secret not in f"{caught.value} {caught.value.detail}"
