"""FGCP as a contract back end: our client over mutual TLS to the fake endpoint
(``tests/fakes/fgcp.py``) on 127.0.0.1, with certificates made at test time.

State is arranged on the fake directly, as the FGCP portal or another user of
the contract would: images registered elsewhere, vservers started or stopped,
registrations finished.
"""

from __future__ import annotations

import functools
import itertools
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from providers.base import ImageState
from tests.fakes.fgcp import FakeFGCP
from tests.fakes.pki import Authority, Issued
from tests.providers.harnesses.base import Harness

VSYS = "DWUSER01-WEB00001"
PASSPHRASE = "harness-p12-passphrase"


@functools.cache
def authority() -> Authority:
    """One CA and certificate set per test run: RSA key generation is the slow part."""
    return Authority()


@functools.cache
def certificate(user: str, foreign: bool = False) -> Issued:
    return (Authority("Not Fujitsu's CA") if foreign else authority()).user(user)


class FGCPHarness(Harness):
    driver_name = "fgcp"
    page_size = 2
    refusal_words = ("RUNNING", "STOPPED")
    # FGCP keeps no state on disk images: a listed image is usable (a
    # registering one is not listed), so AVAILABLE is the only raw state.
    state_samples = {"AVAILABLE": ImageState.AVAILABLE}

    def start(self) -> None:
        self.fake = FakeFGCP.standard(authority(), register_seconds=3600).start()
        self.numbers = itertools.count(10)
        self.silent: socket.socket | None = None

    def stop(self) -> None:
        self.fake.stop()
        if self.silent is not None:
            self.silent.close()

    def provider(self) -> str:
        return "au"

    def params(self) -> dict[str, Any]:
        return {"endpoint_url": self.fake.url, "ca_cert": authority().pem, "page_size": self.page_size}

    def credentials(self) -> dict[str, Any]:
        return certificate("DWUSER01").pkcs12_credentials(PASSPHRASE)

    def bad_credentials(self) -> dict[str, Any]:
        return certificate("DWUSER01", foreign=True).pkcs12_credentials("another-passphrase")

    def add_images(self, count: int, *, name: str = "") -> list[str]:
        return [self.fake.add_image(name or f"img-{uuid.uuid4().hex[:10]}", "DWUSER01") for _ in range(count)]

    def unknown_image_id(self) -> str:
        return "IMG_000000_NOSUCHIMAGE0"

    def unknown_instance_id(self) -> str:
        return f"{VSYS}-S-0999"

    def imageable_instance(self) -> str:
        return self.fake.add_vserver(VSYS, next(self.numbers), "contract", "STOPPED")

    def refused_instance(self) -> str:
        return self.fake.add_vserver(VSYS, next(self.numbers), "contract", "RUNNING")

    def settle(self, created: str, *, ok: bool, reason: str = "") -> None:
        if not ok:
            pytest.skip(
                "FGCP reports no failed registration: the image never appears, "
                "and the worker fails the operation at its deadline"
            )
        self.fake.finish_registrations(created)

    def set_state(self, image_id: str, raw_state: str) -> None:
        assert raw_state == "AVAILABLE" and image_id in self.fake.images

    def provoke(self, kind: str) -> Callable[[], object] | None:
        driver = self.driver()
        if kind == "conflict":
            # FGCP refuses for a state the vserver's status did not show (a backup running)
            self.fake.fail_next(
                "RegisterPrivateDiskImage", "ILLEGAL_STATE", "The VServer is being backed up."
            )
            instance = self.imageable_instance()
            return lambda: driver.create_image(instance_id=instance, name="busy")
        if kind == "unreachable":
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            return self.driver(endpoint_url=f"https://127.0.0.1:{port}/ovissapi/endpoint").list_images
        if kind == "timeout":
            # accepts the connection, never answers the TLS handshake
            self.silent = socket.socket()
            self.silent.bind(("127.0.0.1", 0))
            self.silent.listen(8)
            port = self.silent.getsockname()[1]
            url = f"https://127.0.0.1:{port}/ovissapi/endpoint"
            return self.driver(endpoint_url=url, connect_timeout=0.3, read_timeout=0.3).list_images
        if kind == "auth":
            return self.driver(credentials=self.bad_credentials()).list_images
        if kind == "throttled":
            return None  # FGCP documents no throttling answer
        return {
            "not_found": lambda: driver.destroy_image(self.unknown_image_id()),
            "bad_input": lambda: driver.destroy_image("not an image id"),
        }[kind]
