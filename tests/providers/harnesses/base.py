"""What the contract suite needs from a driver's local back end.

A harness owns one back end (the mock cloud on disk, moto, a fake served over
HTTP on 127.0.0.1, a simulator) for one test, and arranges state there the
way another tool of the cloud would: never through the driver under test.
Each driver's harness lives in ``tests/providers/harnesses/<name>.py`` and is
listed in ``HARNESSES`` (``__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from providers import registry
from providers.base import Driver, ImageState
from providers.params import specs

# The error kinds every driver must translate, and the typed error each becomes.
ERROR_KINDS = ("not_found", "bad_input", "conflict", "auth", "throttled", "unreachable", "timeout")


class Harness:
    """A driver and its local back end, as the contract suite drives them.

    Attributes:
        driver_name: the registry name under test.
        page_size: the provider page size the harness configures, small, so
            that a handful of images already spans several pages.
        refusal_words: words the refusal reason of ``refused_instance`` contains.
        state_samples: raw provider states this back end can show, with the
            normalized state each must map to.
    """

    driver_name: ClassVar[str] = ""
    page_size: ClassVar[int] = 2
    refusal_words: ClassVar[tuple[str, ...]] = ()
    state_samples: ClassVar[Mapping[str, ImageState]] = {}

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bring the back end up (the suite calls it once per test)."""

    def stop(self) -> None:
        """Tear it down; must not raise."""

    # -- drivers -----------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """Account parameters pointing at this back end, with ``page_size`` applied."""
        return {}

    def credentials(self) -> dict[str, Any]:
        """Credentials the back end accepts; their secret values must never leak."""
        return {}

    def bad_credentials(self) -> dict[str, Any]:
        """Credentials the back end rejects (a wrong password / key)."""
        raise NotImplementedError

    def driver(self, **overrides: Any) -> Driver:
        """A driver built the way the service builds one: through the registry."""
        credentials = overrides.pop("credentials", None)
        return registry.create(
            self.driver_name,
            provider=overrides.pop("provider", self.provider()),
            params={**self.params(), **overrides},
            credentials=self.credentials() if credentials is None else credentials,
        )

    def provider(self) -> str:
        return ""

    def secrets(self) -> list[str]:
        """The values of ``credentials()`` declared secret; none may show anywhere."""
        secret = {s.name for s in specs(registry.get_driver(self.driver_name).Credentials) if s.secret}
        return [
            v for k, v in self.credentials().items() if k in secret and isinstance(v, str) and len(v) >= 4
        ]

    # -- arranging the back end --------------------------------------------------------------

    def add_images(self, count: int, *, name: str = "") -> list[str]:
        """``count`` available images of this account on the back end (named
        ``name`` when given, else uniquely); returns their ids."""
        raise NotImplementedError

    def unknown_image_id(self) -> str:
        """A well-formed id the back end does not know."""
        raise NotImplementedError

    def unknown_instance_id(self) -> str:
        raise NotImplementedError

    def imageable_instance(self) -> str:
        """A new instance that ``create_image`` accepts; returns its id."""
        raise NotImplementedError

    def refused_instance(self) -> str:
        """A new instance in a state this cloud refuses to image."""
        raise NotImplementedError

    def settle(self, created: str, *, ok: bool, reason: str = "") -> None:
        """Finish a pending image on the back end: available, or failed with
        ``reason``. ``created`` is the id, or the name for drivers that return
        no id."""
        raise NotImplementedError

    def set_state(self, image_id: str, raw_state: str) -> None:
        """Put an existing image into one of ``state_samples``' raw states."""
        raise NotImplementedError

    def provoke(self, kind: str) -> Callable[[], object] | None:
        """A call that makes the back end fail in the way ``kind`` names
        (``ERROR_KINDS``), or None where this back end has no such failure
        (the embedded mock has no network): the suite skips that case."""
        raise NotImplementedError
