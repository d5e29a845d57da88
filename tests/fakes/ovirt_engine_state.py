"""The state and rules of the fake oVirt engine (``tests/fakes/ovirt_engine.py``).

Everything a test may arrange or inspect lives here: data centers, clusters,
templates, VMs, the audit log, the engine's refusals (worded as the real engine
words them; tests/fixtures/rhevm/ holds what a RHEV-M said in 2013) and the
subset of its search language the driver speaks. Documents are built as
ovirtsdk4 ``types`` objects, so the SDK's writers give them the SDK's shapes.
"""

from __future__ import annotations

import datetime
import fnmatch
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from ovirtsdk4 import types

BLANK_ID = "00000000-0000-0000-0000-000000000000"
PREFIX = "/ovirt-engine/api"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class EngineFault(Exception):
    """An engine refusal: HTTP status, ``<reason>`` and ``<detail>``."""

    def __init__(self, status: int, detail: str, reason: str = "Operation Failed") -> None:
        super().__init__(detail)
        self.status, self.detail, self.reason = status, detail, reason


@dataclass
class FakeTemplate:
    id: str
    name: str
    description: str = ""
    cluster_id: str | None = None
    status: str = "ok"
    architecture: str | None = "x86_64"
    os_type: str = "other_linux"
    creation_time: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    )
    vm_id: str | None = None
    ready_at: float | None = None
    failure: str | None = None


@dataclass
class FakeDatacenter:
    id: str
    name: str


@dataclass
class FakeCluster:
    id: str
    name: str
    datacenter_id: str


@dataclass
class FakeVm:
    id: str
    name: str
    cluster_id: str
    status: str = "down"
    template_id: str = BLANK_ID
    description: str = ""


@dataclass
class FakeEvent:
    id: int
    description: str
    severity: str
    template_id: str | None
    template_name: str | None
    time: datetime.datetime


class Engine:
    """The engine's state; tests change it directly, the SDK sees it over HTTPS."""

    def __init__(self, *, users: dict[str, str] | None = None, create_delay: float = 1.0) -> None:
        self.lock = threading.RLock()
        self.users = dict(users or {"admin@internal": "secret"})
        self.create_delay = create_delay
        self.latency = 0.0  # seconds to stall every API answer (timeouts)
        self.paging = True  # False: ignore "page N", as a broken proxy or engine might
        self.tokens: dict[str, str] = {}
        self.datacenters: dict[str, FakeDatacenter] = {}
        self.clusters: dict[str, FakeCluster] = {}
        self.templates: dict[str, FakeTemplate] = {}
        self.vms: dict[str, FakeVm] = {}
        self.events: list[FakeEvent] = []
        self.failures: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.templates[BLANK_ID] = FakeTemplate(
            BLANK_ID, "Blank", "Blank template", os_type="other", architecture=None
        )

    # ---- seeding (tests and the standalone CLI)
    def add_datacenter(self, name: str) -> str:
        with self.lock:
            dc = FakeDatacenter(str(uuid.uuid4()), name)
            self.datacenters[dc.id] = dc
            return dc.id

    def add_cluster(self, name: str, datacenter_id: str) -> str:
        with self.lock:
            cluster = FakeCluster(str(uuid.uuid4()), name, datacenter_id)
            self.clusters[cluster.id] = cluster
            return cluster.id

    def add_template(self, name: str, cluster_id: str, **fields: object) -> FakeTemplate:
        with self.lock:
            template = FakeTemplate(str(uuid.uuid4()), name, cluster_id=cluster_id, **fields)
            self.templates[template.id] = template
            return template

    def add_vm(self, name: str, cluster_id: str, **fields: object) -> FakeVm:
        with self.lock:
            vm = FakeVm(str(uuid.uuid4()), name, cluster_id, **fields)
            self.vms[vm.id] = vm
            return vm

    def fail_next_create(self, reason: str) -> None:
        """The next template created goes ``illegal``; ``reason`` lands in the audit log."""
        with self.lock:
            self.failures.append(reason)

    # ---- engine rules
    def settle(self) -> None:
        """Finish the template creations whose time has come."""
        now = time.monotonic()
        for template in self.templates.values():
            if template.status != "locked" or template.ready_at is None or template.ready_at > now:
                continue
            vm = self.vms.get(template.vm_id or "")
            vm_name = vm.name if vm else "?"
            if vm is not None and vm.status == "image_locked":
                vm.status = "down"
            if template.failure:
                template.status = "illegal"
                self._event(f"{template.failure}", "error", template)
                self._event(
                    f"Failed to complete creation of Template {template.name} from VM {vm_name}.",
                    "error",
                    template,
                )
            else:
                template.status = "ok"
                self._event(
                    f"Creation of Template {template.name} from VM {vm_name} has been completed.",
                    "normal",
                    template,
                )
            template.ready_at = None

    def _event(self, description: str, severity: str, template: FakeTemplate) -> None:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.events.append(
            FakeEvent(len(self.events) + 1, description, severity, template.id, template.name, now)
        )

    def create_template(self, body: types.Template) -> FakeTemplate:
        if not isinstance(body, types.Template) or not body.name or body.vm is None:
            raise EngineFault(400, "Template [name, vm.id|name] required for add", "Incomplete parameters")
        vm = self.vms.get(body.vm.id or "") or next(
            (v for v in self.vms.values() if body.vm.name and v.name == body.vm.name), None
        )
        if vm is None:
            raise EngineFault(400, "[Cannot add Template. VM doesn't exist.]")
        if not NAME_RE.match(body.name):
            raise EngineFault(
                400,
                "[Cannot add Template. The given name contains special characters. Only "
                "lower-case and upper-case letters, numbers, '_', '-', '.' are allowed.]",
            )
        if any(t.name == body.name for t in self.templates.values()):
            raise EngineFault(
                409,
                "[Cannot add Template. The Template name is already in use, please choose a "
                "unique name and try again.]",
            )
        if vm.status != "down":
            raise EngineFault(409, "[Cannot add Template. VM must be in Down status.]")
        base = self.templates.get(vm.template_id) or self.templates[BLANK_ID]
        template = FakeTemplate(
            str(uuid.uuid4()),
            body.name,
            body.description or "",
            cluster_id=vm.cluster_id,
            status="locked",
            architecture=base.architecture or "x86_64",
            os_type=base.os_type,
            vm_id=vm.id,
            ready_at=time.monotonic() + self.create_delay,
            failure=self.failures.pop(0) if self.failures else None,
        )
        self.templates[template.id] = template
        vm.status = "image_locked"
        return template

    def delete_template(self, template_id: str) -> None:
        template = self.templates.get(template_id)
        if template is None:
            raise EngineFault(404, f"Entity not found: {template_id}")
        if template_id == BLANK_ID:
            raise EngineFault(409, "[Cannot delete Template. Removing Blank Template is not allowed.]")
        if template.status == "locked":
            raise EngineFault(
                409, "[Cannot delete Template. Template is locked. Please try again in a few minutes.]"
            )
        users = [vm.name for vm in self.vms.values() if vm.template_id == template_id]
        if users:
            raise EngineFault(
                400,
                f"[Cannot delete Template. Template is being used by the following VMs: {','.join(users)}.]",
            )
        del self.templates[template_id]

    # ---- search: "name=foo* and cluster=c1 sortby name page 2"
    def _fields(self, kind: str, obj: object) -> dict[str, str | None]:
        if kind == "events":
            return {"template.name": obj.template_name, "severity": obj.severity}
        if kind == "datacenters":
            return {"id": obj.id, "name": obj.name}
        if kind == "clusters":
            return {"id": obj.id, "name": obj.name, "datacenter": self.datacenters[obj.datacenter_id].name}
        cluster = self.clusters.get(obj.cluster_id or "")
        return {
            "id": obj.id,
            "name": obj.name,
            "description": obj.description,
            "status": obj.status,
            "cluster": cluster.name if cluster else None,
            "datacenter": self.datacenters[cluster.datacenter_id].name if cluster else None,
        }

    def search(self, kind: str, items: list, query: dict[str, str]) -> list:
        """The engine's search language, as much of it as the driver speaks."""
        text = query.get("search", "").strip()
        page = 1
        match = re.search(r"\s*\bpage\s+(\d+)\s*$", text, re.I)
        if match:
            page, text = int(match.group(1)) if self.paging else 1, text[: match.start()]
        text = re.split(r"\s*\bsortby\b", text, flags=re.I)[0].strip()
        keys = set(self._fields(kind, items[0])) if items else set()
        # The REST API searches case-sensitively unless told case_sensitive=false.
        fold = str.lower if query.get("case_sensitive") == "false" else str
        for clause in [c for c in re.split(r"\s+and\s+", text, flags=re.I) if c]:
            key, sep, value = clause.partition("=")
            key, value = key.strip().lower(), fold(value.strip().strip("\"'"))
            if not sep or (items and key not in keys):
                raise EngineFault(400, f"[Cannot search {kind.title()}. Invalid search: {clause}.]")
            items = [
                i
                for i in items
                if (getattr(i, "id", None) == BLANK_ID and key in ("datacenter", "cluster"))
                or fnmatch.fnmatchcase(fold(self._fields(kind, i)[key] or ""), value)
            ]
        if "max" in query:
            size = int(query["max"])
            items = items[(page - 1) * size : page * size]
        return items


# ---- documents, written by ovirtsdk4's writers
def _linked(obj: types.Identified, collection: str) -> types.Identified:
    obj.href = f"{PREFIX}/{collection}/{obj.id}"
    return obj


def _ref(cls: type, collection: str, obj_id: str | None) -> types.Identified | None:
    return _linked(cls(id=obj_id), collection) if obj_id else None


def template_doc(engine: Engine, t: FakeTemplate) -> types.Template:
    arch = types.Architecture(t.architecture) if t.architecture else None
    return _linked(
        types.Template(
            id=t.id,
            name=t.name,
            description=t.description,
            status=types.TemplateStatus(t.status),
            creation_time=t.creation_time,
            cpu=types.Cpu(architecture=arch, topology=types.CpuTopology(cores=1, sockets=1, threads=1)),
            os=types.OperatingSystem(type=t.os_type),
            type=types.VmType.SERVER,
            memory=1073741824,
            stateless=False,
            cluster=_ref(types.Cluster, "clusters", t.cluster_id),
            version=types.TemplateVersion(version_number=1),
        ),
        "templates",
    )


def vm_doc(engine: Engine, vm: FakeVm) -> types.Vm:
    return _linked(
        types.Vm(
            id=vm.id,
            name=vm.name,
            description=vm.description,
            status=types.VmStatus(vm.status),
            cluster=_ref(types.Cluster, "clusters", vm.cluster_id),
            template=_ref(types.Template, "templates", vm.template_id),
            cpu=types.Cpu(architecture=types.Architecture.X86_64),
            type=types.VmType.SERVER,
        ),
        "vms",
    )


def event_doc(engine: Engine, e: FakeEvent) -> types.Event:
    return _linked(
        types.Event(
            id=str(e.id),
            description=e.description,
            severity=types.LogSeverity(e.severity),
            time=e.time,
            origin="oVirt",
            template=_ref(types.Template, "templates", e.template_id),
        ),
        "events",
    )


def datacenter_doc(engine: Engine, dc: FakeDatacenter) -> types.DataCenter:
    return _linked(types.DataCenter(id=dc.id, name=dc.name), "datacenters")


def cluster_doc(engine: Engine, cluster: FakeCluster) -> types.Cluster:
    return _linked(
        types.Cluster(
            id=cluster.id,
            name=cluster.name,
            data_center=_ref(types.DataCenter, "datacenters", cluster.datacenter_id),
        ),
        "clusters",
    )


COLLECTIONS = {
    "templates": (lambda e: sorted(e.templates.values(), key=lambda t: (t.name, t.id)), template_doc),
    "vms": (lambda e: sorted(e.vms.values(), key=lambda v: (v.name, v.id)), vm_doc),
    "events": (lambda e: sorted(e.events, key=lambda ev: -ev.id), event_doc),
    "datacenters": (lambda e: sorted(e.datacenters.values(), key=lambda d: d.name), datacenter_doc),
    "clusters": (lambda e: sorted(e.clusters.values(), key=lambda c: c.name), cluster_doc),
}
