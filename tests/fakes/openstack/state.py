"""The fake cloud's state: identities, tokens, and per-region servers and images.

Everything here is plain data behind one lock; the HTTP layer (``app.py`` and
the per-service modules) only reads and changes it. Time is wall-clock time
plus an offset a test may move, and image life cycles are plans of timed
status changes applied lazily before every request, so a snapshot that
"finishes" at t shows ``updated_at`` = t, as a cloud's database would.
"""

from __future__ import annotations

import bisect
import itertools
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any


def new_id() -> str:
    return str(uuid.uuid4())


def hex_id() -> str:
    return uuid.uuid4().hex


def iso(ts: float) -> str:
    """Glance and Nova timestamps: whole seconds, UTC, ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro(ts: float) -> str:
    """Keystone's ``expires_at``/``issued_at``: microseconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    """An ISO 8601 time as the services accept it; ValueError otherwise."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# Nova's vm_state -> the API's status (nova/api/openstack/common.py).
SERVER_STATUS = {
    "active": "ACTIVE",
    "building": "BUILD",
    "stopped": "SHUTOFF",
    "error": "ERROR",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "rescued": "RESCUE",
    "resized": "VERIFY_RESIZE",
    "shelved": "SHELVED",
    "shelved_offloaded": "SHELVED_OFFLOADED",
    "soft_deleted": "SOFT_DELETED",
    "deleted": "DELETED",
}
# The vm_states Nova lets createImage run from (compute/api.py snapshot()).
SNAPSHOT_VM_STATES = ("active", "stopped", "paused", "suspended")


@dataclass
class Project:
    id: str
    name: str
    domain_id: str = "default"


@dataclass
class User:
    id: str
    name: str
    password: str
    project_id: str
    api_key: str = ""
    domain_id: str = "default"
    enabled: bool = True
    roles: tuple[str, ...] = ("member", "reader")


@dataclass
class AppCredential:
    id: str
    name: str
    secret: str
    user_id: str
    project_id: str


@dataclass
class Token:
    id: str
    user_id: str
    project_id: str
    methods: tuple[str, ...]
    issued_at: float
    expires_at: float
    app_credential_id: str = ""
    revoked: bool = False


@dataclass
class Server:
    id: str
    name: str
    project_id: str
    user_id: str
    vm_state: str = "active"
    task_state: str | None = None
    image_id: str = ""
    flavor_id: str = "1"
    created: float = 0.0
    updated: float = 0.0
    address: str = ""
    key_name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    fault: dict[str, Any] | None = None
    # The next snapshot of this server fails with this reason (a test knob).
    snapshot_failure: str = ""

    @property
    def status(self) -> str:
        return SERVER_STATUS.get(self.vm_state, "UNKNOWN")


@dataclass
class Image:
    id: str
    name: str
    owner: str
    status: str
    created_at: float
    updated_at: float
    visibility: str = "public"
    properties: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    checksum: str | None = None
    disk_format: str | None = "qcow2"
    container_format: str | None = "bare"
    min_disk: int = 0
    min_ram: int = 0
    protected: bool = False
    os_hidden: bool = False
    tags: list[str] = field(default_factory=list)
    progress: int = 100
    # Pending status changes: (when, status, progress), in time order.
    plan: list[tuple[float, str, int]] = field(default_factory=list)
    # Why a snapshot fails when its plan ends (Nova's instance action says it).
    failure: str = ""
    # Called with (image, now) when the plan's last step is applied.
    on_settled: Callable[[Image, float], None] | None = None

    def field(self, key: str) -> Any:
        """A filterable/sortable value: a base attribute, else a property."""
        if key in _IMAGE_ATTRS:
            return getattr(self, key)
        return self.properties.get(key)


_IMAGE_ATTRS = {
    "id", "name", "owner", "status", "created_at", "updated_at", "visibility", "size",
    "checksum", "disk_format", "container_format", "min_disk", "min_ram", "protected", "os_hidden",
}  # fmt: skip


@dataclass
class InstanceAction:
    request_id: str
    action: str
    server_id: str
    project_id: str
    user_id: str
    start_time: float
    updated_at: float
    message: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


class _Desc:
    """Reverses the order of one sort key (for ``sort_dir=desc``)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _sortable(value: Any) -> Any:
    # Nulls sort first, as in Glance's database; mixed types compare as text.
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def sort_key(keys: list[tuple[str, str]]) -> Callable[[Image], tuple]:
    def key(image: Image) -> tuple:
        return tuple(
            _sortable(image.field(k)) if d == "asc" else _Desc(_sortable(image.field(k))) for k, d in keys
        )

    return key


@dataclass
class Listing:
    """One filtered, sorted view of a region's images, reused across pages.

    ``keys`` are the images' sort keys in ascending order; with ``descending``
    the images themselves are in the reverse order (a one-direction sort, the
    common case, sorts plain tuples: 100,000 images in a fraction of a second).
    """

    version: int
    images: list[Image]
    keys: list[tuple]
    key: Callable[[Image], tuple]
    descending: bool = False

    def after(self, marker: Image) -> int:
        """Where the page after ``marker`` starts, by its current sort values."""
        if self.descending:
            return len(self.images) - bisect.bisect_left(self.keys, self.key(marker))
        return bisect.bisect_right(self.keys, self.key(marker))


class Region:
    """One region's compute and image state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.servers: dict[str, Server] = {}
        self.images: dict[str, Image] = {}
        self.actions: list[InstanceAction] = []
        self.version = 0
        self.pending: set[str] = set()
        self._listings: dict[tuple, Listing] = {}

    def changed(self) -> None:
        self.version += 1

    def advance(self, now: float) -> None:
        """Apply every planned status change that is due."""
        for image_id in list(self.pending):
            image = self.images.get(image_id)
            if image is None:
                self.pending.discard(image_id)
                continue
            while image.plan and image.plan[0][0] <= now:
                when, image.status, image.progress = image.plan.pop(0)
                image.updated_at = when
                self.changed()
            if not image.plan:
                self.pending.discard(image_id)
                if image.on_settled is not None:
                    image.on_settled(image, now)
                    image.on_settled = None

    def listing(
        self, cache_key: tuple, predicate: Callable[[Image], bool], keys: list[tuple[str, str]]
    ) -> Listing:
        cached = self._listings.get(cache_key)
        if cached is not None and cached.version == self.version:
            return cached
        directions = {d for _, d in keys}
        if len(directions) == 1:
            names = [k for k, _ in keys]

            def key(image: Image) -> tuple:
                return tuple(_sortable(image.field(k)) for k in names)

            descending = directions == {"desc"}
        else:
            key, descending = sort_key(keys), False
        # Each key computed once; ids end every key, so ties never compare images.
        pairs = sorted(((key(i), i) for i in self.images.values() if predicate(i)), key=itemgetter(0))
        listing = Listing(self.version, [i for _, i in pairs], [k for k, _ in pairs], key, descending)
        if descending:
            listing.images.reverse()
        if len(self._listings) > 64:
            self._listings.clear()
        self._listings[cache_key] = listing
        return listing


class CloudState:
    """All of one fake cloud's data, guarded by ``lock``."""

    def __init__(self, regions: Iterable[str], token_ttl: float = 3600.0) -> None:
        self.lock = threading.RLock()
        self.regions = {name: Region(name) for name in regions}
        self.projects: dict[str, Project] = {}
        self.users: dict[str, User] = {}
        self.app_credentials: dict[str, AppCredential] = {}
        self.tokens: dict[str, Token] = {}
        self.token_ttl = token_ttl
        self.clock_offset = 0.0
        self._serial = itertools.count(1)

    # -- time ------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance_all(self) -> None:
        now = self.now()
        for region in self.regions.values():
            if region.pending:
                region.advance(now)

    # -- identities --------------------------------------------------------------

    def add_project(self, name: str, project_id: str | None = None) -> Project:
        project = Project(project_id or hex_id(), name)
        self.projects[project.id] = project
        return project

    def add_user(self, name: str, password: str, project: Project, api_key: str = "") -> User:
        user = User(hex_id(), name, password, project.id, api_key=api_key)
        self.users[user.id] = user
        return user

    def add_app_credential(self, user: User, name: str) -> AppCredential:
        cred = AppCredential(hex_id(), name, secrets.token_urlsafe(24), user.id, user.project_id)
        self.app_credentials[cred.id] = cred
        return cred

    def user_named(self, name: str, domain_id: str | None = None) -> User | None:
        return next(
            (u for u in self.users.values() if u.name == name and domain_id in (None, u.domain_id)), None
        )

    def issue_token(
        self, user: User, project_id: str, methods: tuple[str, ...], app_credential_id: str = ""
    ) -> Token:
        now = self.now()
        token = Token(
            secrets.token_hex(16), user.id, project_id, methods, now, now + self.token_ttl, app_credential_id
        )
        self.tokens[token.id] = token
        return token

    def valid_token(self, token_id: str | None) -> Token | None:
        token = self.tokens.get(token_id or "")
        if token is None or token.revoked or token.expires_at <= self.now():
            return None
        user = self.users.get(token.user_id)
        return token if user is not None and user.enabled else None

    def expire_tokens(self) -> int:
        """Revoke every token issued so far (a cloud-side expiry)."""
        live = [t for t in self.tokens.values() if not t.revoked]
        for token in live:
            token.revoked = True
        return len(live)

    # -- resources ---------------------------------------------------------------

    def region(self, name: str) -> Region:
        return self.regions[name]

    def add_server(self, region: str, project: Project, user: User, name: str, **attrs: Any) -> Server:
        now = self.now()
        server = Server(new_id(), name, project.id, user.id, created=now, updated=now, **attrs)
        server.address = (
            server.address
            or f"10.0.{len(self.regions[region].servers) // 250}.{next(self._serial) % 250 + 2}"
        )
        self.regions[region].servers[server.id] = server
        self.regions[region].changed()
        return server

    def add_image(self, region: str, name: str, owner: str, status: str, **attrs: Any) -> Image:
        now = self.now()
        image = Image(
            attrs.pop("id", None) or new_id(),
            name,
            owner,
            status,
            attrs.pop("created_at", now),
            attrs.pop("updated_at", now),
            **attrs,
        )
        target = self.regions[region]
        target.images[image.id] = image
        if image.plan:
            target.pending.add(image.id)
        target.changed()
        return image

    def bulk_images(
        self,
        region: str,
        count: int,
        owner: str,
        properties: Mapping[str, str] | None = None,
        status: str = "active",
    ) -> list[str]:
        """Many active images at once (benchmarks), spread over past timestamps."""
        target = self.regions[region]
        base = self.now() - count
        ids = []
        for n in range(count):
            image = Image(
                new_id(),
                f"bulk-{n:06d}",
                owner,
                status,
                base + n,
                base + n,
                visibility="private",
                properties={"architecture": ("x86_64", "aarch64", "i686")[n % 3], **(properties or {})},
                size=10_000_000 + n,
                checksum=uuid.uuid4().hex,
            )
            target.images[image.id] = image
            ids.append(image.id)
        target.changed()
        return ids
