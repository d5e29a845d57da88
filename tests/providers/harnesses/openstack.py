"""OpenStack and Rackspace as contract back ends: the real openstacksdk over
HTTP against the fake cloud (``tests/fakes/openstack``) on 127.0.0.1.

State is arranged in the fake directly, as the cloud's own tools would;
failures the suite asks for are what the fake answers on the wire (Nova's and
Glance's error bodies, ``Retry-After``, a slow answer, a closed port).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from providers.base import ImageState
from tests.fakes.openstack import FakeOpenStack, FakeRackspace
from tests.providers.harnesses.base import Harness


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OpenStackHarness(Harness):
    driver_name = "openstack"
    page_size = 2
    refusal_words = ("ERROR", "ACTIVE or SHUTOFF")
    state_samples = {
        "QUEUED": ImageState.PENDING,
        "SAVING": ImageState.PENDING,
        "UPLOADING": ImageState.PENDING,
        "IMPORTING": ImageState.PENDING,
        "ACTIVE": ImageState.AVAILABLE,
        "KILLED": ImageState.FAILED,
        "DEACTIVATED": ImageState.UNKNOWN,
    }
    region: ClassVar[str] = "RegionOne"
    # Where the driver lists images, for injected faults.
    listing_path: ClassVar[str] = r"/image/v2/images$"
    password = "Contract-Pa55word-0f9e"

    def make_cloud(self) -> FakeOpenStack:
        return FakeOpenStack()

    def start(self) -> None:
        self.cloud = self.make_cloud()
        # Snapshots stay pending until the suite settles them.
        self.cloud.snapshot_delay = 3600
        self.cloud.user.password = self.password
        self.cloud.start()

    def stop(self) -> None:
        self.cloud.stop()

    def provider(self) -> str:
        return self.region

    def params(self) -> dict[str, Any]:
        return {"auth_url": self.cloud.auth_url, "project_name": "demo", "page_size": self.page_size}

    def credentials(self) -> dict[str, Any]:
        return {"username": "demo", "password": self.password}

    def bad_credentials(self) -> dict[str, Any]:
        return {"username": "demo", "password": "not-the-password"}

    def add_images(self, count: int, *, name: str = "") -> list[str]:
        with self.cloud.state.lock:
            return [
                self.cloud.state.add_image(
                    self.region, name or f"img-{uuid.uuid4().hex[:12]}", self.cloud.project.id,
                    self.active_status, visibility="private",
                ).id
                for _ in range(count)
            ]  # fmt: skip

    active_status = "active"

    def unknown_image_id(self) -> str:
        return str(uuid.uuid4())

    def unknown_instance_id(self) -> str:
        return str(uuid.uuid4())

    def _server(self, vm_state: str) -> str:
        cloud = self.cloud
        with cloud.state.lock:
            server = cloud.state.add_server(
                self.region, cloud.project, cloud.user, f"vm-{uuid.uuid4().hex[:6]}"
            )
            server.vm_state = vm_state
            return server.id

    def imageable_instance(self) -> str:
        return self._server("active")

    def refused_instance(self) -> str:
        return self._server("error")

    def settle(self, created: str, *, ok: bool, reason: str = "") -> None:
        self.cloud.settle_snapshot(created, ok=ok, reason=reason)

    def set_state(self, image_id: str, raw_state: str) -> None:
        with self.cloud.state.lock:
            region = self.cloud.state.regions[self.region]
            region.images[image_id].status = self.cloud_status(raw_state)
            region.changed()

    def cloud_status(self, raw_state: str) -> str:
        return raw_state.lower()  # Glance's statuses are lower case; we show them upper

    def provoke(self, kind: str) -> Callable[[], object] | None:
        driver = self.driver()
        cloud = self.cloud
        if kind == "not_found":
            return lambda: driver.destroy_image(self.unknown_image_id())
        if kind == "bad_input":
            cloud.inject(self.listing_path, status=400, message="Invalid sort key: size_of_ego.")
            return driver.list_images
        if kind == "conflict":
            return self.conflict(driver)
        if kind == "auth":
            return self.driver(credentials=self.bad_credentials()).list_images
        if kind == "throttled":
            cloud.inject(self.listing_path, status=429, retry_after=2)
            return driver.list_images
        if kind == "unreachable":
            return self.driver(auth_url=f"http://127.0.0.1:{closed_port()}/identity").list_images
        cloud.inject(self.listing_path, delay=1.5)  # the timeout
        return self.driver(timeout=0.3).list_images

    def conflict(self, driver: Any) -> Callable[[], object]:
        # Glance will not delete an image while an import is writing it.
        (image_id,) = self.add_images(1)
        self.set_state(image_id, "IMPORTING")
        return lambda: driver.destroy_image(image_id)


class RackspaceHarness(OpenStackHarness):
    driver_name = "rackspace"
    refusal_words = ("ERROR", "ACTIVE or SHUTOFF")
    state_samples = {
        "QUEUED": ImageState.PENDING,
        "PREPARING": ImageState.PENDING,
        "SAVING": ImageState.PENDING,
        "ACTIVE": ImageState.AVAILABLE,
        "FAILED": ImageState.FAILED,
        "UNKNOWN": ImageState.UNKNOWN,
    }
    region = "DFW"
    listing_path = r"/compute/v2/[^/]+/images/detail$"
    active_status = "ACTIVE"
    api_key = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"

    def make_cloud(self) -> FakeOpenStack:
        return FakeRackspace()

    def start(self) -> None:
        super().start()
        self.cloud.user.api_key = self.api_key

    def params(self) -> dict[str, Any]:
        return {"auth_url": f"{self.cloud.auth_url}/v2.0", "page_size": self.page_size}

    def credentials(self) -> dict[str, Any]:
        return {"username": "raxuser", "api_key": self.api_key}

    def bad_credentials(self) -> dict[str, Any]:
        return {"username": "raxuser", "api_key": "0000000000000000ffffffffffffffff"}

    def cloud_status(self, raw_state: str) -> str:
        return raw_state  # Rackspace's statuses are what the driver shows

    def conflict(self, driver: Any) -> Callable[[], object]:
        # Another createImage got in between our look at the server and ours.
        server = self.imageable_instance()
        self.cloud.inject(
            r"/action$",
            status=409,
            message=f"Cannot 'createImage' instance {server} while it is in task_state image_snapshot",
        )
        return lambda: driver.create_image(instance_id=server, name="late")
