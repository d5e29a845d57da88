"""The embedded mock cloud as a contract back end, in two of its profiles:
EC2's (ids on create, EBS-only) and FGCP's (no id, stopped-only)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from providers import registry
from providers.base import ImageState
from providers.drivers.mock import MOCK_USER, MockStore
from tests.providers.harnesses.base import Harness

CREDENTIALS = {"username": "mockuser", "password": "mockpassword"}


class _MockHarness(Harness):
    driver_name = "mock"
    profile: ClassVar[str] = ""

    def start(self) -> None:
        registry.configure("mock", storage=str(self.tmp_path / "mock"))
        self.store = MockStore(Path(self.tmp_path / "mock" / "default"))

    def params(self) -> dict[str, Any]:
        return {"profile": self.profile, "page_size": self.page_size, "create_delay": 3600}

    def credentials(self) -> dict[str, Any]:
        return dict(CREDENTIALS)

    def bad_credentials(self) -> dict[str, Any]:
        return {"username": "mockuser", "password": "not-the-password"}

    def add_images(self, count: int, *, name: str = "") -> list[str]:
        ids = []
        with self.store.locked():
            for _ in range(count):
                image_id = f"seeded-{uuid.uuid4().hex[:12]}"
                self.store.put(
                    "images",
                    {
                        "id": image_id,
                        "name": name or image_id,
                        "description": "seeded",
                        "owner_id": MOCK_USER,
                        "architecture": "x86_64",
                        "state": "AVAILABLE",
                    },
                )
                ids.append(image_id)
        return ids

    def unknown_image_id(self) -> str:
        return "no-such-image"

    def unknown_instance_id(self) -> str:
        return "no-such-instance"

    def _instance(self, state: str, root_type: str) -> str:
        instance_id = f"inst-{uuid.uuid4().hex[:8]}"
        with self.store.locked():
            self.store.put(
                "instances",
                {
                    "id": instance_id,
                    "name": instance_id,
                    "owner_id": MOCK_USER,
                    "image_id": "img1",
                    "realm_id": "us",
                    "state": state,
                    "hardware_profile_id": "m1-small",
                    "create_image": True,
                    "root_type": root_type,
                },
            )
        return instance_id

    def settle(self, created: str, *, ok: bool, reason: str = "") -> None:
        with self.store.locked():
            obj = next(o for o in self.store.all("images") if o["id"] == created or o.get("name") == created)
            obj.update(ready_at=time.time() - 1, outcome="AVAILABLE" if ok else "FAILED")
            self.store.put("images", obj)

    def set_state(self, image_id: str, raw_state: str) -> None:
        pending = self.state_samples and next(
            r for r, s in self.state_samples.items() if s == ImageState.PENDING
        )
        with self.store.locked():
            obj = self.store.get("images", image_id)
            obj["state"] = raw_state
            obj["ready_at"] = time.time() + 3600 if raw_state == pending else 0
            self.store.put("images", obj)

    def provoke(self, kind: str) -> Callable[[], object] | None:
        driver = self.driver()
        return {
            "not_found": lambda: driver.destroy_image("no-such-image"),
            "bad_input": lambda: driver.create_instance(image_id="img1", hwp_id="no-such-profile"),
            "conflict": lambda: driver.destroy_instance(self._instance("RUNNING", "persistent")),
            "auth": lambda: self.driver(credentials=self.bad_credentials()).list_images(),
            # Deltacloud's mock answers realm "504" with its provider timeout.
            "timeout": lambda: driver.get_realm("504"),
        }.get(kind)  # no network: nothing throttles or is unreachable


class MockEC2ProfileHarness(_MockHarness):
    profile = "ec2"
    refusal_words = ("instance-store", "EBS-backed")
    state_samples = {
        "pending": ImageState.PENDING,
        "available": ImageState.AVAILABLE,
        "failed": ImageState.FAILED,
    }

    def imageable_instance(self) -> str:
        return self._instance("RUNNING", "persistent")

    def refused_instance(self) -> str:
        return self._instance("RUNNING", "transient")


class MockFGCPProfileHarness(_MockHarness):
    profile = "fgcp"
    refusal_words = ("STOPPED",)
    state_samples = {
        "REGISTERING": ImageState.PENDING,
        "AVAILABLE": ImageState.AVAILABLE,
        "FAILED": ImageState.FAILED,
    }

    def imageable_instance(self) -> str:
        return self._instance("STOPPED", "persistent")

    def refused_instance(self) -> str:
        return self._instance("RUNNING", "persistent")
