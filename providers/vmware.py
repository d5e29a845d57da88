"""A vCenter session over pyVmomi, for the vSphere driver.

It logs in on first use, logs in again when vCenter has forgotten the session
(idle timeout, a restart, an administrator ending it), reads objects through
the PropertyCollector a page at a time, and waits for vSphere tasks. It raises
pyVmomi's own exceptions (plus the two below); the driver translates them in
one place.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pyVmomi import SoapStubAdapter, vim, vmodl

logger = logging.getLogger(__name__)

T = TypeVar("T")
PC = vmodl.query.PropertyCollector

# vSphere 6.5's API. Every vCenter from 6.5 to 8 serves it, and pinning it
# spares a version-discovery request that pyVim makes without any timeout.
API_VERSION = "vim.version.version11"
TASK_POLL_FIRST, TASK_POLL_MAX = 0.2, 5.0


class SessionLost(Exception):
    """vCenter ended the session in the middle of a paged read; its token died with it."""


class NotSoap(Exception):
    """The server answered, but not with vCenter's SOAP (a proxy's or a web server's page)."""


class TaskTimeout(Exception):
    """A vSphere task was still running when we stopped waiting for it."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where vCenter is and how to trust it."""

    host: str
    port: int
    ssl_context: ssl.SSLContext
    timeout: float


@dataclass(frozen=True, slots=True)
class Connection:
    """One logged-in session: the service content and the stub that carries its cookie."""

    content: Any
    stub: Any
    generation: int

    def ref(self, cls: type[T], moid: str) -> T:
        """A managed object bound to this session (ids outlive sessions, stubs do not)."""
        return cls(moid, self.stub)  # type: ignore[call-arg]


class Session:
    """A vCenter login shared by every thread of one driver."""

    def __init__(self, endpoint: Endpoint, user: str, password: str) -> None:
        self._endpoint = endpoint
        self._user = user
        self._password = password
        self._lock = threading.Lock()
        self._current: Connection | None = None
        self._generation = 0

    def __repr__(self) -> str:
        return f"<Session {self._endpoint.host}:{self._endpoint.port}>"

    def _login(self) -> Connection:
        stub = SoapStubAdapter(
            host=self._endpoint.host,
            port=self._endpoint.port,
            version=API_VERSION,
            sslContext=self._endpoint.ssl_context,
            httpConnectionTimeout=self._endpoint.timeout,
        )
        with soap_only():
            content = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
        if content is None:  # an HTTP 200 whose body held no SOAP answer
            raise NotSoap("no service content in the answer")
        with soap_only():
            content.sessionManager.Login(self._user, self._password, None)
        self._generation += 1
        return Connection(content, stub, self._generation)

    def connection(self) -> Connection:
        current = self._current
        if current is not None:
            return current
        with self._lock:
            if self._current is None:
                self._current = self._login()
            return self._current

    def _renew(self, stale: Connection) -> None:
        """Log in again, unless another thread already replaced the stale session."""
        with self._lock:
            if self._current is stale or self._current is None:
                logger.info("vCenter %s: session expired, logging in again", self._endpoint.host)
                self._current = None
                self._current = self._login()

    def call(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on the session; if vCenter no longer knows it, log in once more and retry."""
        conn = self.connection()
        try:
            with soap_only():
                return fn(conn)
        except vim.fault.NotAuthenticated:
            self._renew(conn)
        with soap_only():
            return fn(self.connection())

    def retrieve(self, specs: Sequence[Any], page_size: int) -> Iterator[list[Any]]:
        """ObjectContents for ``specs``, ``page_size`` objects per round trip."""
        options = PC.RetrieveOptions(maxObjects=page_size)
        conn = self.connection()
        # A session that died while we were idle is renewed before the first
        # page: once a listing has begun, its token cannot move to a new session.
        manager = conn.content.sessionManager._moId
        if not self.call(lambda c: self.read_once(c, vim.SessionManager, manager, ["currentSession"])):
            self._renew(conn)

        def first(c: Connection) -> Any:
            nonlocal conn
            conn = c
            return c.content.propertyCollector.RetrievePropertiesEx(list(specs), options)

        result = self.call(first)
        while result is not None:
            yield list(result.objects or ())
            if not result.token:
                return
            try:
                with soap_only():
                    result = conn.content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
            except vim.fault.NotAuthenticated:
                self._renew(conn)  # the next listing works; this one cannot resume
                raise SessionLost("vCenter ended the session during a paged listing") from None

    @staticmethod
    def read_once(conn: Connection, cls: Any, moid: str, paths: Sequence[str]) -> dict[str, Any] | None:
        """One object's set properties (plus ``_moid``), or None when it no longer exists."""
        spec = object_spec(conn.ref(cls, moid), cls, paths)
        try:
            result = conn.content.propertyCollector.RetrievePropertiesEx([spec], PC.RetrieveOptions())
        except vmodl.fault.ManagedObjectNotFound:
            return None
        if result is None or not result.objects:
            return None
        props = properties(result.objects[0])
        return {"_moid": moid, **props} if props else None

    def read(self, cls: Any, moid: str, paths: Sequence[str]) -> dict[str, Any] | None:
        return self.call(lambda c: self.read_once(c, cls, moid, paths))

    def collect(self, spec: Callable[[Connection], Any], page_size: int = 1000) -> list[Any]:
        """Every ObjectContent of a small, bounded set (datacenters, datastores)."""
        specs = [spec(self.connection())]
        return [obj for page in self.retrieve(specs, page_size) for obj in page]

    def wait(self, task_moid: str, timeout: float) -> Any:
        """The result of a vSphere task once it succeeds; its fault if it fails."""
        deadline = time.monotonic() + timeout
        delay = TASK_POLL_FIRST
        while True:
            info = self.call(lambda c: c.ref(vim.Task, task_moid).info)
            if info.state == vim.TaskInfo.State.success:
                return info.result
            if info.state == vim.TaskInfo.State.error:
                raise info.error
            if time.monotonic() + delay > deadline:
                raise TaskTimeout(f"task {task_moid} ({info.descriptionId}) still {info.state}")
            time.sleep(delay)
            delay = min(delay * 2, TASK_POLL_MAX)


@contextmanager
def soap_only() -> Iterator[None]:
    """pyVmomi raises a bare ``Exception`` when an HTTP 500 carries no SOAP fault."""
    try:
        yield
    except Exception as exc:
        if type(exc) is Exception:
            raise NotSoap(str(exc).splitlines()[0] if str(exc) else "no SOAP fault in the answer") from None
        raise


def properties(content: Any) -> dict[str, Any]:
    """An ObjectContent's properties by path (unset ones are simply absent)."""
    return {prop.name: prop.val for prop in content.propSet or ()}


def vm_traversal(folder: Any, paths: Sequence[str]) -> Any:
    """A FilterSpec for every VM and template under a datacenter's VM folder,
    through subfolders and vApps, with the given property paths."""
    folders = PC.TraversalSpec(name="folders", type=vim.Folder, path="childEntity", skip=False)
    app_vms = PC.TraversalSpec(name="appVms", type=vim.VirtualApp, path="vm", skip=False)
    apps = PC.TraversalSpec(name="apps", type=vim.VirtualApp, path="resourcePool", skip=False)
    folders.selectSet = [PC.SelectionSpec(name="folders"), PC.SelectionSpec(name="appVms")]
    apps.selectSet = [PC.SelectionSpec(name="apps"), PC.SelectionSpec(name="appVms")]
    folders.selectSet.append(PC.SelectionSpec(name="apps"))
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=folder, skip=True, selectSet=[folders, app_vms, apps])],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=list(paths))],
    )


def datacenter_traversal(root: Any) -> Any:
    """A FilterSpec for every datacenter under the root folder (and its subfolders)."""
    folders = PC.TraversalSpec(name="folders", type=vim.Folder, path="childEntity", skip=False)
    folders.selectSet = [PC.SelectionSpec(name="folders")]
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=root, skip=True, selectSet=[folders])],
        propSet=[PC.PropertySpec(type=vim.Datacenter, pathSet=["name", "vmFolder"])],
    )


def datastore_traversal(datacenter: Any) -> Any:
    """A FilterSpec for a datacenter's datastores: name and whether they are accessible."""
    return PC.FilterSpec(
        objectSet=[
            PC.ObjectSpec(
                obj=datacenter,
                skip=True,
                selectSet=[PC.TraversalSpec(type=vim.Datacenter, path="datastore", skip=False)],
            )
        ],
        propSet=[PC.PropertySpec(type=vim.Datastore, pathSet=["name", "summary.accessible"])],
    )


def object_spec(obj: Any, cls: Any, paths: Sequence[str]) -> Any:
    """A FilterSpec for one object's properties (a missing object is a ManagedObjectNotFound)."""
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
        propSet=[PC.PropertySpec(type=cls, pathSet=list(paths))],
    )
