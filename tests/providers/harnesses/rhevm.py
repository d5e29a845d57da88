"""RHEV-M / oVirt as a contract back end: ovirtsdk4 over HTTPS against the fake engine
(``tests/fakes/ovirt_engine.py``), with a CA made for the test.

The engine never throttles (no such failure), so that case is skipped. New templates stay
``locked`` until the suite settles them.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from providers.base import ImageState
from tests.fakes.ovirt_engine import Engine, EngineServer
from tests.fakes.tls_ca import make_ca
from tests.providers.harnesses.base import Harness


class RHEVMHarness(Harness):
    driver_name = "rhevm"
    page_size = 2
    refusal_words = ("VM must be in Down status",)
    state_samples = {
        "OK": ImageState.AVAILABLE,
        "LOCKED": ImageState.PENDING,
        "ILLEGAL": ImageState.FAILED,
    }
    user, password = "admin@internal", "Engine-Secret-Pw-42"

    def start(self) -> None:
        self.engine = Engine(users={self.user: self.password}, create_delay=3600)
        self.cluster = self.engine.add_cluster("Default-cluster", self.engine.add_datacenter("Default"))
        self.server = EngineServer(self.engine, make_ca(self.tmp_path / "engine-ca")).start()

    def stop(self) -> None:
        self.engine.latency = 0
        self.server.stop()

    def provider(self) -> str:
        return "default"

    def params(self) -> dict[str, Any]:
        return {
            "url": self.server.url,
            "ca_bundle": self.server.tls.ca_file.read_text(),
            "page_size": self.page_size,
        }

    def credentials(self) -> dict[str, Any]:
        return {"username": self.user, "password": self.password}

    def bad_credentials(self) -> dict[str, Any]:
        return {"username": self.user, "password": "not-the-engine-password"}

    def add_images(self, count: int, *, name: str = "") -> list[str]:
        return [
            self.engine.add_template(name or f"tpl-{uuid.uuid4().hex[:12]}", self.cluster).id
            for _ in range(count)
        ]

    def unknown_image_id(self) -> str:
        return str(uuid.uuid4())

    def unknown_instance_id(self) -> str:
        return str(uuid.uuid4())

    def _vm(self, status: str, template_id: str | None = None) -> str:
        fields: dict[str, Any] = {"status": status}
        if template_id:
            fields["template_id"] = template_id
        return self.engine.add_vm(f"vm-{uuid.uuid4().hex[:8]}", self.cluster, **fields).id

    def imageable_instance(self) -> str:
        return self._vm("down")

    def refused_instance(self) -> str:
        return self._vm("up")

    def settle(self, created: str, *, ok: bool, reason: str = "") -> None:
        with self.engine.lock:
            template = self.engine.templates[created]
            template.failure = None if ok else reason
            template.ready_at = time.monotonic()

    def set_state(self, image_id: str, raw_state: str) -> None:
        with self.engine.lock:
            template = self.engine.templates[image_id]
            template.status, template.ready_at = raw_state.lower(), None

    def provoke(self, kind: str) -> Callable[[], object] | None:
        driver = self.driver()
        if kind == "throttled":
            return None
        if kind == "unreachable":
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            return self.driver(url=f"https://127.0.0.1:{port}/ovirt-engine/api").list_images
        if kind == "timeout":
            self.engine.latency = 2
            return self.driver(timeout=1).list_images
        if kind == "auth":
            return self.driver(credentials=self.bad_credentials()).list_images
        if kind == "conflict":
            (used,) = self.add_images(1)
            self._vm("down", template_id=used)
            return lambda: driver.destroy_image(used)
        return {
            "not_found": lambda: driver.destroy_image(self.unknown_image_id()),
            "bad_input": lambda: driver.create_image(
                instance_id=self.imageable_instance(), name="no spaces!"
            ),
        }[kind]


class OVirtHarness(RHEVMHarness):
    """The same engine under the driver's other registry name."""

    driver_name = "ovirt"
