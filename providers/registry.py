"""Driver names mapped to dotted paths, imported only when asked for, and the
one place drivers are built.

An explicit dict (libcloud's ``DRIVERS``) is easy to grep, and lazy imports
mean boto3 and friends are needed only for the drivers an operator uses.
``create`` parses an account's parameters and credentials into the driver's
typed dataclasses, so every driver is validated and constructed the same way
(Django's ``get_connection`` for mail backends). Options that belong to the
deployment rather than to an account (the mock cloud's storage) are set once
with ``configure``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from providers.base import Driver
from providers.exceptions import DriverUnavailable
from providers.params import ParamSpec, parse, specs

DRIVERS: dict[str, str] = {
    "ec2": "providers.drivers.ec2.EC2Driver",
    "fgcp": "providers.drivers.fgcp.FGCPDriver",
    "mock": "providers.drivers.mock.MockDriver",
    "openstack": "providers.drivers.openstack.OpenStackDriver",
    "ovirt": "providers.drivers.rhevm.OVirtDriver",
    "rackspace": "providers.drivers.rackspace.RackspaceDriver",
    "rhevm": "providers.drivers.rhevm.RHEVMDriver",
    "vsphere": "providers.drivers.vsphere.VSphereDriver",
}

_settings: dict[str, dict[str, Any]] = {}


def driver_names() -> list[str]:
    return sorted(DRIVERS)


@cache
def get_driver(name: str) -> type[Driver]:
    """The driver class registered as ``name``.

    Raises KeyError for an unknown name and DriverUnavailable when the driver's
    client library is not installed.
    """
    path = DRIVERS[name]
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise DriverUnavailable(f"Driver '{name}' is not available: {exc.name} is not installed") from exc
    return getattr(module, class_name)


def configure(name: str, **options: Any) -> None:
    """Deployment options of one driver (parsed into its ``Settings``)."""
    _settings[name] = dict(options)


def parse_params(name: str, params: Mapping[str, Any] | None) -> Any:
    """An account's parameters for driver ``name``, validated (InvalidParameter)."""
    cls = get_driver(name)
    return parse(cls.Params, params, kind="parameter", owner=cls.label or name)


def parse_credentials(name: str, credentials: Mapping[str, Any] | None) -> Any:
    cls = get_driver(name)
    return parse(cls.Credentials, credentials, kind="credential", owner=cls.label or name)


def create(
    name: str,
    *,
    provider: str = "",
    params: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None,
) -> Driver:
    """A ready driver for one account. Clients inside are built lazily, so
    this costs no provider call."""
    cls = get_driver(name)
    # A subclass registered under its own name (a test double) shares its parent's deployment.
    options = next((_settings[c.name] for c in cls.__mro__ if getattr(c, "name", "") in _settings), {})
    settings = parse(cls.Settings, options, kind="setting", owner=cls.label or name)
    return cls(
        provider=provider,
        params=parse_params(name, params),
        credentials=parse_credentials(name, credentials),
        settings=settings,
    )


def describe(name: str) -> tuple[tuple[ParamSpec, ...], tuple[ParamSpec, ...]]:
    """(parameters, credential fields) of a driver, for generated forms."""
    cls = get_driver(name)
    return specs(cls.Params), specs(cls.Credentials)
