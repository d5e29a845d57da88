"""Driver names mapped to dotted paths, imported only when asked for.

An explicit dict (libcloud's ``DRIVERS``) is easy to grep, and lazy imports
mean boto3 and friends are needed only for the drivers an operator uses.
"""

from __future__ import annotations

import importlib
from functools import cache

from providers.base import Driver
from providers.exceptions import DriverUnavailable

DRIVERS: dict[str, str] = {
    "ec2": "providers.drivers.ec2.EC2Driver",
    "fgcp": "providers.drivers.fgcp.FGCPDriver",
    "mock": "providers.drivers.mock.MockDriver",
}


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
