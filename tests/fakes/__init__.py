"""Real drivers for tests that need a cloud the mock's profiles do not cover."""

from providers.base import Capabilities
from providers.drivers.mock import MockDriver


class ReadOnlyMockDriver(MockDriver):
    """The mock cloud behind a driver that can neither create nor destroy images
    (like Deltacloud's gogrid, which answered 412)."""

    name = "readonly"
    label = "Read-only mock"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(create_image=False, destroy_image=False)
