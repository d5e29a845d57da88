"""The driver registry: names to classes, imported lazily."""

import sys

import pytest

from providers import registry
from providers.base import Driver
from providers.drivers.mock import MockDriver
from providers.exceptions import DriverUnavailable, ProviderError
from providers.registry import driver_names, get_driver

DRIVERS_BEFORE = list(registry.DRIVERS)


@pytest.fixture(autouse=True)
def _fresh_cache():
    get_driver.cache_clear()
    yield
    get_driver.cache_clear()


def test_mock_is_registered():
    assert get_driver("mock") is MockDriver


def test_driver_names_are_sorted(monkeypatch):
    # given
    monkeypatch.setitem(registry.DRIVERS, "zeta", "providers.drivers.zeta.ZetaDriver")
    monkeypatch.setitem(registry.DRIVERS, "alpha", "providers.drivers.alpha.AlphaDriver")

    # then
    assert driver_names() == sorted(["alpha", "zeta", *DRIVERS_BEFORE])


def test_every_registered_driver_is_a_driver_named_as_registered():
    for name in driver_names():
        try:
            cls = get_driver(name)
        except DriverUnavailable:
            continue  # its client library is not installed here
        assert issubclass(cls, Driver)
        assert cls.name == name


def test_get_driver_is_cached():
    # when
    first = get_driver("mock")
    second = get_driver("mock")

    # then
    assert first is second
    assert get_driver.cache_info().hits == 1
    assert get_driver.cache_info().misses == 1


@pytest.mark.parametrize("name", ["nope", "", "Mock", "MOCK", "mock "])
def test_unknown_name_is_a_key_error(name):
    with pytest.raises(KeyError):
        get_driver(name)


def test_registered_driver_with_a_missing_module_is_unavailable(monkeypatch):
    # given
    monkeypatch.setitem(registry.DRIVERS, "ghost", "providers.drivers.ghost_cloud.GhostDriver")

    # when
    with pytest.raises(DriverUnavailable) as excinfo:
        get_driver("ghost")

    # then
    assert str(excinfo.value) == (
        "Driver 'ghost' is not available: providers.drivers.ghost_cloud is not installed"
    )
    assert isinstance(excinfo.value.__cause__, ModuleNotFoundError)
    assert "providers.drivers.ghost_cloud" not in sys.modules


def test_registered_driver_whose_client_library_is_missing_is_unavailable(monkeypatch, tmp_path):
    # given: the driver module exists but imports an SDK that is not installed
    (tmp_path / "deltaweb_test_sdk_driver.py").write_text(
        "import deltaweb_missing_sdk_xyz  # noqa: F401\n\nclass SdkDriver:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.DRIVERS, "sdk", "deltaweb_test_sdk_driver.SdkDriver")

    # when
    with pytest.raises(DriverUnavailable) as excinfo:
        get_driver("sdk")

    # then
    assert str(excinfo.value) == "Driver 'sdk' is not available: deltaweb_missing_sdk_xyz is not installed"
    assert "deltaweb_test_sdk_driver" not in sys.modules


def test_driver_unavailable_is_a_provider_error_that_is_not_retried():
    assert issubclass(DriverUnavailable, ProviderError)
    assert DriverUnavailable.retryable is False


def test_a_failed_lookup_is_not_cached(monkeypatch):
    # given: the module is missing at first
    monkeypatch.setitem(registry.DRIVERS, "later", "providers.drivers.not_yet.LaterDriver")
    with pytest.raises(DriverUnavailable):
        get_driver("later")

    # when: the operator fixes the registration
    monkeypatch.setitem(registry.DRIVERS, "later", "providers.drivers.mock.MockDriver")

    # then
    assert get_driver("later") is MockDriver


def test_create_parses_params_and_credentials_into_the_drivers_dataclasses(tmp_path):
    registry.configure("mock", storage=str(tmp_path))
    driver = registry.create(
        "mock",
        provider="p1",
        params={"profile": "rhevm", "create_delay": "1.5"},
        credentials={"username": "mockuser", "password": "mockpassword"},
    )
    assert (driver.provider, driver.params.profile, driver.params.create_delay) == ("p1", "rhevm", 1.5)
    assert driver.credentials.username == "mockuser"
    assert driver.settings.storage == str(tmp_path)
    with pytest.raises(ProviderError, match="Unknown mock credential 'token'"):
        registry.create("mock", credentials={"token": "x"})


def test_describe_lists_every_parameter_with_its_kind_and_secrecy():
    params, credentials = registry.describe("ec2")
    by_name = {s.name: s for s in params}
    assert by_name["page_size"].kind == "int" and by_name["page_size"].maximum == 1000
    assert by_name["owners"].kind == "str_list" and by_name["owners"].default == ("self",)
    assert by_name["retry_mode"].choices == ("standard", "adaptive", "legacy")
    secrets = {s.name: s.secret for s in credentials}
    assert secrets == {"access_key_id": False, "secret_access_key": True, "session_token": True}
    assert all(s.help for s in (*params, *credentials))
