"""VMware vSphere (vCenter) through pyVmomi.

An account is one vCenter login and one datacenter (the provider). Images are
the datacenter's templates and instances its other VMs, both read through the
PropertyCollector a page at a time. Both are identified by the VM's instance
UUID (``config.instanceUuid``): vCenter keeps it unique, it lives in the VM's
own configuration so it survives vCenter restarts and re-registration (the
managed object id ``vm-42`` does not), and it stays the same when a VM is
marked as a template, which is how vSphere images are made.

Creating an image follows vSphere's rule (and Deltacloud's): the powered-off
VM itself becomes the template, keeping its id and name, so the name and
description given are ignored. With the account parameter ``clone`` a new,
separately named template is cloned from the VM instead and the VM stays.

Every pyVmomi call runs inside ``_vim()``, the one place where its faults
become ``providers.exceptions``.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import os
import re
import ssl
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar
from xml.parsers.expat import ExpatError

from pyVmomi import vim, vmodl

from providers import vmware
from providers.base import (
    Address,
    Capabilities,
    Driver,
    Feature,
    HardwareProfile,
    HardwareProperty,
    ImageState,
    ProviderImage,
    ProviderInstance,
    Realm,
    RootType,
    Transition,
)
from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    ProviderError,
    ProviderTimeout,
    Unavailable,
)
from providers.params import param

logger = logging.getLogger(__name__)

# vSphere's limit on a VM (and so a template) name.
NAME_MAX = 80
VM_PROPERTIES = (
    "name",
    "config.template",
    "config.instanceUuid",
    "config.annotation",
    "config.guestId",
    "config.guestFullName",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "summary.config.vmPathName",
    "runtime.powerState",
    "runtime.connectionState",
    "runtime.bootTime",
    "guest.ipAddress",
    "guest.hostName",
)
INSTANCE_STATES: Mapping[str, str] = {
    "poweredOn": "RUNNING",
    "poweredOff": "STOPPED",
    "suspended": "STOPPED",
}
INSTANCE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "poweredOn": ("reboot", "stop"),
    "poweredOff": ("start", "destroy"),
    "suspended": ("start",),
}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

HARDWARE_PROFILES: tuple[HardwareProfile, ...] = (
    HardwareProfile(
        "default",
        (
            HardwareProperty("cpu", "range", "count", "1", first="1", last="128"),
            HardwareProperty("memory", "range", "MB", "1024", first="128", last="6291456"),
            HardwareProperty("architecture", "enum", "label", "x86_64", values=("i386", "x86_64")),
        ),
    ),
)


PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


def _pem_certificates(text: str) -> str:
    """PEM certificates laid out again: a one-line form field drops the newlines PEM needs."""
    blocks = []
    for body in PEM_CERTIFICATE.findall(text):
        data = "".join(body.split())
        lines = [data[i : i + 64] for i in range(0, len(data), 64)]
        blocks.append("\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----"]))
    if not blocks:
        raise ValueError("no PEM certificate in it")
    return "\n".join(blocks) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class VSphereParams:
    """Where the account's vCenter is, how to trust it, and how images are made."""

    host: str = param("vCenter's host name or address.")
    port: int = param("vCenter's HTTPS port.", default=443, minimum=1, maximum=65535)
    ca_bundle: str = param(
        "PEM certificates vCenter's TLS certificate must chain to (the PEM text, or a path to a "
        "PEM file on the server). Empty: the system's trusted CAs.",
        default="",
    )
    insecure: bool = param(
        "Do not verify vCenter's TLS certificate at all (a lab's self-signed vCenter only).",
        default=False,
    )
    clone: bool = param(
        "Make a new template with the given name (CloneVM_Task) instead of turning the VM "
        "itself into the template, for users who must keep the VM.",
        default=False,
    )
    page_size: int = param("VMs per PropertyCollector page.", default=500, minimum=1, maximum=10000)
    timeout: float = param("Seconds to wait for vCenter's answer to one call.", default=60, minimum=0.1)
    task_timeout: float = param(
        "Seconds to wait for a clone or delete task before leaving it to a later poll.",
        default=1800,
        minimum=1,
    )

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise InvalidParameter("vSphere parameter 'host' must not be empty")
        if self.insecure and self.ca_bundle:
            raise InvalidParameter("vSphere parameters 'insecure' and 'ca_bundle' exclude each other")
        self.ssl_context()  # an unreadable bundle is the operator's error, found when the account is saved

    def ssl_context(self) -> ssl.SSLContext:
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        bundle = self.ca_bundle.strip()
        if not bundle:
            return ssl.create_default_context()
        try:
            if bundle.startswith("-----BEGIN"):
                return ssl.create_default_context(cadata=_pem_certificates(bundle))
            return ssl.create_default_context(cafile=os.path.expanduser(bundle))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise InvalidParameter(f"vSphere parameter 'ca_bundle' is not usable: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class VSphereCredentials:
    """A vCenter user (e.g. ``deltaweb@vsphere.local``) and its password."""

    user: str = param("vCenter user name.")
    password: str = param("vCenter password.", secret=True)


def architecture(guest_id: str) -> str:
    """vSphere knows the guest OS, not the CPU: 64-bit guest ids end in 64 (``ubuntu64Guest``)."""
    return "x86_64" if "64" in guest_id else "i386"


def _timestamp(value: object) -> str | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None


def _datastore(vmx_path: str) -> str:
    """``[LocalDS_0] web/web.vmx`` -> ``LocalDS_0``."""
    match = re.match(r"^\[([^\]]+)\]", vmx_path or "")
    return match.group(1) if match else ""


class VSphereDriver(Driver):
    """Templates and VMs of one datacenter on one vCenter."""

    name = "vsphere"
    label = "VMware vSphere"
    features: ClassVar[Mapping[str, tuple[Feature, ...]]] = {}
    instance_states = (
        ("start", (Transition("pending", None),)),
        ("pending", (Transition("stopped", None),)),
        ("stopped", (Transition("running", "start"), Transition("finish", "destroy"))),
        ("running", (Transition("running", "reboot"), Transition("stopping", "stop"))),
        ("stopping", (Transition("stopped", None),)),
        ("finish", ()),
    )
    hardware_profiles = HARDWARE_PROFILES

    Params = VSphereParams
    Credentials = VSphereCredentials
    params: VSphereParams
    credentials: VSphereCredentials

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} host={self.params.host!r} datacenter={self.provider!r}>"

    # -- session and errors --------------------------------------------------

    @cached_property
    def session(self) -> vmware.Session:
        endpoint = vmware.Endpoint(
            host=self.params.host,
            port=self.params.port,
            ssl_context=self.params.ssl_context(),
            timeout=self.params.timeout,
        )
        return vmware.Session(endpoint, self.credentials.user, self.credentials.password)

    def _where(self) -> str:
        return f"vCenter {self.params.host}:{self.params.port}"

    @contextmanager
    def _vim(self, action: str) -> Iterator[None]:
        """Turn pyVmomi's faults and the network's errors into ``providers.exceptions``;
        the only such place. ``action`` says what we were doing, for the message."""
        try:
            yield
        except ProviderError:
            raise
        except vmodl.MethodFault as fault:
            raise self._fault(fault, action) from None
        except vmware.SessionLost as exc:
            raise Unavailable(f"{action}: {exc}; the next attempt starts over") from None
        except vmware.TaskTimeout as exc:
            raise ProviderTimeout(f"{action}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise Unavailable(
                self.scrub(
                    f"{action}: the TLS certificate of {self._where()} could not be verified "
                    f"({exc.verify_message}); set the account's ca_bundle"
                )
            ) from None
        except ssl.SSLError as exc:
            raise Unavailable(self.scrub(f"{action}: TLS with {self._where()} failed: {exc}")) from None
        except TimeoutError:
            raise ProviderTimeout(f"{action}: {self._where()} did not answer in time") from None
        except OSError as exc:
            raise Unavailable(
                self.scrub(f"{action}: {self._where()} could not be reached: {type(exc).__name__} {exc}")
            ) from None
        except http.client.HTTPException as exc:
            raise Unavailable(self.scrub(f"{action}: {self._where()} answered HTTP {exc}")) from None
        except (ExpatError, vmware.NotSoap):
            raise Unavailable(
                f"{action}: {self._where()} answered something that is not vCenter's SOAP"
            ) from None

    def _fault(self, fault: vmodl.MethodFault, action: str) -> ProviderError:
        name = type(fault).__name__.rsplit(".", 1)[-1]
        message = self.scrub(fault.msg or "")
        text = f"{action}: {message or name}"
        if isinstance(fault, vim.fault.InvalidLogin | vim.fault.NotAuthenticated):
            return AuthFailure(f"{self._where()} rejected the account's user name or password")
        if isinstance(fault, vim.fault.InvalidPowerState):
            return InvalidState(
                f"{action}: the VM is {fault.existingState or 'not in the right power state'}; "
                f"vSphere needs it {fault.requestedState or 'in another power state'}"
            )
        if isinstance(fault, vmodl.fault.ManagedObjectNotFound):
            return NotFound(f"{action}: the object no longer exists")
        if isinstance(fault, vim.fault.DuplicateName | vim.fault.AlreadyExists | vim.fault.FileAlreadyExists):
            # FileAlreadyExists: files of a VM removed from the inventory sit where the new one's would go
            return Conflict(f"{action}: the name is taken ({name}{': ' + message if message else ''})")
        if isinstance(fault, vim.fault.InvalidState | vim.fault.TaskInProgress | vmodl.fault.NotSupported):
            return InvalidState(text)
        if isinstance(
            fault, vmodl.fault.InvalidArgument | vim.fault.InvalidName | vmodl.fault.InvalidRequest
        ):
            return InvalidParameter(text)
        if isinstance(fault, vim.fault.NoPermission):
            return ProviderError(f"{action}: the account lacks the vSphere privilege {fault.privilegeId}")
        if isinstance(fault, vim.fault.HostConnectFault):
            return Unavailable(text)
        return ProviderError(f"{action}: vSphere fault {name}: {message}".rstrip(": "))

    # -- description ---------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        clone = self.params.clone
        return Capabilities(
            create_image=True,
            destroy_image=True,
            # A clone's template exists only when its task ends: the worker
            # makes the call, waits on the task and finds the template by name.
            create_returns_id=not clone,
            honours_image_name=clone,
            honours_image_description=clone,
            # vCenter wants names unique per folder only, and says DuplicateName itself.
            unique_image_names=False,
            image_name_max_length=NAME_MAX,
        )

    def identity(self) -> str:
        """vSphere has no image owners; as Deltacloud did, the account's user owns everything."""
        return self.credentials.user

    # -- inventory -----------------------------------------------------------

    @cached_property
    def _datacenter(self) -> tuple[str, str]:
        """(datacenter moid, its VM folder's moid), looked up once by name."""
        with self._vim("finding the datacenter"):
            found = {
                props["name"]: (obj.obj._moId, props["vmFolder"]._moId)
                for obj in self.session.collect(lambda c: vmware.datacenter_traversal(c.content.rootFolder))
                if (props := vmware.properties(obj))
            }
        if self.provider:
            if self.provider in found:
                return found[self.provider]
            # Accounts store the provider lower-cased, as X-Deltacloud-Provider arrives.
            folded = [name for name in found if name.casefold() == self.provider.casefold()]
            if len(folded) == 1:
                return found[folded[0]]
            raise ProviderError(
                f"{self._where()} has no datacenter '{self.provider}' "
                f"(it has: {', '.join(sorted(found)) or 'none'})"
            )
        if len(found) != 1:
            # the account's configuration, not the request, is wrong: a 502, never the user's 400
            raise ProviderError(
                f"{self._where()} has {len(found)} datacenters; choose one as the provider "
                f"({', '.join(sorted(found))})"
            )
        return next(iter(found.values()))

    def _vm_pages(self) -> Iterator[list[dict[str, Any]]]:
        """Every VM and template of the datacenter, as property dicts, a page at a time."""
        folder_id = self._datacenter[1]
        spec = vmware.vm_traversal(vim.Folder(folder_id), VM_PROPERTIES)
        pages = self.session.retrieve([spec], self.params.page_size)
        while True:
            with self._vim("listing VMs"):
                page = next(pages, None)
            if page is None:
                return
            # Inaccessible VMs have no configuration, so no id to give them.
            yield [
                {"_moid": obj.obj._moId, **props}
                for obj in page
                if (props := vmware.properties(obj)).get("config.instanceUuid")
            ]

    def _lookup(self, vm_uuid: str) -> dict[str, Any] | None:
        """One VM or template by instance UUID: an indexed search, then its properties."""
        if not UUID_RE.match(vm_uuid or ""):
            return None
        datacenter = self._datacenter[0]

        def find(c: vmware.Connection) -> Any:
            return c.content.searchIndex.FindByUuid(
                datacenter=c.ref(vim.Datacenter, datacenter), uuid=vm_uuid, vmSearch=True, instanceUuid=True
            )

        with self._vim(f"looking up {vm_uuid}"):
            ref = self.session.call(find)
            # None too when it was destroyed between the search and the read
            return self.session.read(vim.VirtualMachine, ref._moId, VM_PROPERTIES) if ref else None

    # -- images --------------------------------------------------------------

    def _image(self, vm: Mapping[str, Any]) -> ProviderImage:
        connection = str(vm.get("runtime.connectionState") or "connected")
        guest = str(vm.get("config.guestId") or "")
        arch = architecture(guest)
        return ProviderImage(
            id=vm["config.instanceUuid"],
            name=vm.get("name") or vm["config.instanceUuid"],
            description=vm.get("config.annotation") or None,
            owner_id=self.credentials.user,
            architecture=arch,
            state=ImageState.AVAILABLE if connection == "connected" else ImageState.UNKNOWN,
            raw_state="AVAILABLE" if connection == "connected" else connection,
            root_type=RootType.PERSISTENT,
            hardware_profiles=("default",),
            extra={
                k: v
                for k, v in {
                    "moid": vm["_moid"],
                    "guest_id": guest,
                    "guest_os": vm.get("config.guestFullName"),
                    "datastore": _datastore(str(vm.get("summary.config.vmPathName") or "")),
                }.items()
                if v
            },
        )

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        for page in self._vm_pages():
            yield [self._image(vm) for vm in page if vm.get("config.template")]

    def get_image(self, image_id: str) -> ProviderImage | None:
        vm = self._lookup(image_id)
        return self._image(vm) if vm is not None and vm.get("config.template") else None

    def find_created_images(self, *, name: str, exclude_ids: frozenset[str]) -> list[ProviderImage]:
        return [
            image
            for page in self.iter_image_pages()
            for image in page
            if image.name == name and image.id not in exclude_ids
        ]

    def _source_vm(self, instance_id: str) -> dict[str, Any]:
        vm = self._lookup(instance_id)
        if vm is None or vm.get("config.template"):
            raise NotFound(f"Instance {instance_id} not found")
        return vm

    def create_image(self, *, instance_id: str, name: str, description: str | None = None) -> ProviderImage:
        vm = self._source_vm(instance_id)
        refusal = self._refusal(vm)
        if refusal:
            raise InvalidState(refusal)
        if self.params.clone:
            return self._clone(vm, name, description)
        with self._vim(f"marking VM {vm['name']} as a template"):
            self.session.call(lambda c: c.ref(vim.VirtualMachine, vm["_moid"]).MarkAsTemplate())
        marked = self.get_image(instance_id)
        if marked is None:
            raise NotFound(f"VM {vm['name']} vanished right after becoming a template")
        # The answer to the create says what happened (as <state_reason>), so no
        # client wonders where its name went; the next sync's listing clears it.
        return dataclasses.replace(
            marked,
            failure_reason=(
                f"vSphere turned VM {vm['name']} itself into this template: it keeps the VM's id and "
                "name, and any name or description given was not used"
            ),
        )

    def _clone(self, vm: Mapping[str, Any], name: str, description: str | None) -> ProviderImage:
        name = (name or "").strip()
        if not name:
            raise InvalidParameter("A vSphere clone needs a name for the new template")
        if len(name) > NAME_MAX:
            raise InvalidParameter(f"vSphere names are at most {NAME_MAX} characters long")
        # The new template's id is chosen here, so it is known before the task ends.
        new_id = str(uuid.uuid4())
        spec = vim.vm.CloneSpec(
            template=True,
            powerOn=False,
            location=vim.vm.RelocateSpec(),
            config=vim.vm.ConfigSpec(instanceUuid=new_id, annotation=description or None),
        )

        def start(c: vmware.Connection) -> Any:
            return c.ref(vim.VirtualMachine, vm["_moid"]).CloneVM_Task(
                folder=c.ref(vim.Folder, folder), name=name, spec=spec
            )

        with self._vim(f"cloning VM {vm['name']} to template {name}"):
            parent = self.session.read(vim.VirtualMachine, vm["_moid"], ["parent"])
            if parent is None:
                raise NotFound(f"Instance {vm['config.instanceUuid']} not found")
            folder = parent["parent"]._moId
            task = self.session.call(start)
            result = self.session.wait(task._moId, self.params.task_timeout)
            # By the task's result: vCenter replaces an instance UUID it finds taken.
            made = self.session.read(vim.VirtualMachine, result._moId, VM_PROPERTIES) if result else None
        if made is None:
            raise NotFound(f"The clone task of template {name} succeeded but the template is not there")
        # As the capabilities say: no id from a create; the worker finds the template by name
        # among those that did not exist before, exactly as when this wait times out.
        return dataclasses.replace(self._image(made), id="")

    def destroy_image(self, image_id: str) -> None:
        vm = self._lookup(image_id)
        if vm is None or not vm.get("config.template"):
            raise NotFound(f"Image {image_id} not found")
        with self._vim(f"destroying template {vm['name']}"):
            task = self.session.call(lambda c: c.ref(vim.VirtualMachine, vm["_moid"]).Destroy_Task())
            self.session.wait(task._moId, self.params.task_timeout)

    # -- instances -----------------------------------------------------------

    def _refusal(self, vm: Mapping[str, Any]) -> str:
        power = str(vm.get("runtime.powerState") or "")
        if power == "poweredOff":
            return ""
        if self.params.clone:
            # vCenter would clone a running VM, but the template's disks would be caught mid-write.
            return (
                f"VM {vm.get('name')} is {power}; this account clones templates only from powered-off "
                "VMs, so their disks are consistent: stop it first"
            )
        return (
            f"VM {vm.get('name')} is {power}; vSphere turns only a powered-off VM into a template "
            "(the VM itself becomes the template): stop it first"
        )

    def _instance(self, vm: Mapping[str, Any]) -> ProviderInstance:
        power = str(vm.get("runtime.powerState") or "")
        ip = vm.get("guest.ipAddress")
        overrides = tuple(
            (key, str(vm[path]))
            for key, path in (("cpu", "config.hardware.numCPU"), ("memory", "config.hardware.memoryMB"))
            if vm.get(path)
        )
        return ProviderInstance(
            id=vm["config.instanceUuid"],
            name=vm.get("name") or "",
            state=INSTANCE_STATES.get(power, power.upper() or "UNKNOWN"),
            owner_id=self.credentials.user,
            realm_id=_datastore(str(vm.get("summary.config.vmPathName") or "")),
            hardware_profile_id="default",
            hardware_profile_overrides=overrides,
            actions=INSTANCE_ACTIONS.get(power, ()),
            create_image_refusal=self._refusal(vm),
            public_addresses=(Address(str(ip), "ipv4"),) if ip else (),
            launch_time=_timestamp(vm.get("runtime.bootTime")),
            root_type=RootType.PERSISTENT,
            extra={
                k: v
                for k, v in {
                    "moid": vm["_moid"],
                    "power_state": power,
                    "guest_id": vm.get("config.guestId"),
                    "hostname": vm.get("guest.hostName"),
                }.items()
                if v
            },
        )

    def iter_instance_pages(self) -> Iterator[Sequence[ProviderInstance]]:
        for page in self._vm_pages():
            yield [self._instance(vm) for vm in page if not vm.get("config.template")]

    def get_instance(self, instance_id: str) -> ProviderInstance | None:
        vm = self._lookup(instance_id)
        return self._instance(vm) if vm is not None and not vm.get("config.template") else None

    def instance_action(self, instance_id: str, action: str) -> ProviderInstance:
        methods = {"start": "PowerOnVM_Task", "stop": "PowerOffVM_Task", "reboot": "ResetVM_Task"}
        if action not in methods:
            raise NotSupported(f"vSphere VMs have no '{action}' action")
        vm = self._source_vm(instance_id)
        with self._vim(f"{action} VM {vm['name']}"):
            task = self.session.call(
                lambda c: getattr(c.ref(vim.VirtualMachine, vm["_moid"]), methods[action])()
            )
            self.session.wait(task._moId, self.params.task_timeout)
        return self.get_instance(instance_id) or self._instance(vm)

    def destroy_instance(self, instance_id: str) -> None:
        vm = self._source_vm(instance_id)
        with self._vim(f"destroying VM {vm['name']}"):
            task = self.session.call(lambda c: c.ref(vim.VirtualMachine, vm["_moid"]).Destroy_Task())
            self.session.wait(task._moId, self.params.task_timeout)

    # -- realms --------------------------------------------------------------

    def realms(self) -> Sequence[Realm]:
        """The datacenter's datastores, where VMs live (as Deltacloud's vSphere driver had it)."""
        datacenter = self._datacenter[0]
        with self._vim("listing datastores"):
            objects = self.session.collect(
                lambda c: vmware.datastore_traversal(c.ref(vim.Datacenter, datacenter))
            )
        realms = []
        for obj in objects:
            props = vmware.properties(obj)
            state = "AVAILABLE" if props.get("summary.accessible", True) else "UNAVAILABLE"
            realms.append(Realm(id=props["name"], name=props["name"], state=state))
        return sorted(realms, key=lambda r: r.id)
