"""vSphere as a contract back end: the real pyVmomi against VMware's vcsim.

A fresh simulator per test (it starts in a fraction of a second). The harness
arranges the inventory with its own pyVmomi session, as an administrator's
script would: clones of the simulator's VMs become the new instances and
templates. Two accounts: the default (the VM itself becomes the template,
ids on create) and ``clone`` (a new named template, found by name).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from pyVmomi import vim

from providers.base import ImageState
from tests.fakes.vcsim import Vcsim
from tests.fakes.vcsim import inventory as inv
from tests.providers.harnesses.base import Harness

SOURCE_VM = "DC0_H0_VM0"


class VSphereHarness(Harness):
    driver_name = "vsphere"
    page_size = 2
    refusal_words = ("poweredOn", "powered-off")
    # vCenter has no image lifecycle: a template exists (connected) or it does not.
    state_samples = {"AVAILABLE": ImageState.AVAILABLE}
    clone: ClassVar[bool] = False

    def start(self) -> None:
        self.sim = Vcsim.start(self.tmp_path / "vcsim", username="deltaweb@vsphere.local")
        self.si = self.sim.connect()
        self.sockets: list[socket.socket] = []

    def stop(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sim.stop()

    def provider(self) -> str:
        return "DC0"

    def params(self) -> dict[str, Any]:
        return {
            "host": self.sim.host,
            "port": self.sim.port,
            "ca_bundle": str(self.sim.ca_file),
            "page_size": self.page_size,
            "clone": self.clone,
        }

    def credentials(self) -> dict[str, Any]:
        return {"user": self.sim.username, "password": self.sim.password}

    def bad_credentials(self) -> dict[str, Any]:
        return {"user": self.sim.username, "password": "not-the-password"}

    # -- arranging the inventory -------------------------------------------------------------

    def _clone(self, name: str, *, template: bool, power_on: bool = False, folder: Any = None) -> str:
        source = inv.vm(self.si, SOURCE_VM)
        spec = vim.vm.CloneSpec(template=template, powerOn=False, location=vim.vm.RelocateSpec())
        task = source.CloneVM_Task(folder=folder or source.parent, name=name, spec=spec)
        inv.finish(task)
        if power_on:
            inv.power_on(self.si, name)
        return inv.instance_uuid(self.si, name)

    def _arranged_folder(self) -> Any:
        """Templates made by someone else live in their own folder, where their
        names may repeat ours (vCenter wants names unique per folder only)."""
        vm_folder = self.si.content.rootFolder.childEntity[0].vmFolder
        existing = [f for f in vm_folder.childEntity if isinstance(f, vim.Folder) and f.name == "arranged"]
        return existing[0] if existing else vm_folder.CreateFolder("arranged")

    def add_images(self, count: int, *, name: str = "") -> list[str]:
        folder = self._arranged_folder() if name else None
        return [
            self._clone(name or f"tpl-{uuid.uuid4().hex[:10]}", template=True, folder=folder)
            for _ in range(count)
        ]

    def unknown_image_id(self) -> str:
        return str(uuid.uuid4())

    def unknown_instance_id(self) -> str:
        return str(uuid.uuid4())

    def imageable_instance(self) -> str:
        return self._clone(f"vm-{uuid.uuid4().hex[:10]}", template=False)

    def refused_instance(self) -> str:
        return self._clone(f"vm-{uuid.uuid4().hex[:10]}", template=False, power_on=True)

    def settle(self, created: str, *, ok: bool, reason: str = "") -> None:
        if not ok:
            pytest.skip(
                "vSphere has no failed templates: MarkAsTemplate succeeds or raises at once, and a "
                "failed CloneVM_Task raises its fault and leaves no template (test_vsphere.py covers "
                "refusals and task faults)"
            )
        # Both ways of making a template are complete when the driver returns.

    def set_state(self, image_id: str, raw_state: str) -> None:
        assert raw_state == "AVAILABLE", raw_state

    def _silent_port(self) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        self.sockets.append(sock)
        return sock.getsockname()[1]

    def provoke(self, kind: str) -> Callable[[], object] | None:
        if kind == "throttled":
            return None  # vCenter has no throttling fault; an overloaded one answers 503 (unreachable)
        if kind == "unreachable":
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            return self.driver(port=port).list_images
        if kind == "timeout":
            return self.driver(port=self._silent_port(), timeout=0.3).list_images
        if kind == "auth":
            return self.driver(credentials=self.bad_credentials()).list_images
        driver = self.driver()
        return {
            "not_found": lambda: driver.destroy_image(self.unknown_image_id()),
            "bad_input": lambda: self.driver(clone=True).create_image(
                instance_id=self.imageable_instance(), name="  "
            ),
            # vCenter's own InvalidPowerState, from a task: a running VM cannot be destroyed
            "conflict": lambda: driver.destroy_instance(self.refused_instance()),
        }[kind]


class VSphereCloneHarness(VSphereHarness):
    """The ``clone`` account: CloneVM_Task makes a separately named template."""

    clone = True
