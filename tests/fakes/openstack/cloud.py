"""The OpenStack flavour: Keystone v3 and v2.0, Nova v2.1, Glance v2, two regions.

``FakeOpenStack()`` seeds a small cloud: project ``demo`` (user ``demo``,
password ``secret``, an API key, an application credential), an ``admin``
project owning the public images, another project whose images must stay
invisible, and servers in every state createImage cares about.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.fakes.openstack import identity
from tests.fakes.openstack.app import Ctx, FakeCloud
from tests.fakes.openstack.state import Image, InstanceAction, Project, Region, Server, Token, User, iso

# Image properties Nova copies from the base image onto a snapshot.
INHERITED = ("architecture", "os_distro", "os_type", "hw_disk_bus", "hw_vif_model", "os_version")
# Nova's image proxy status for each Glance status (nova/api/openstack/compute/views/images.py).
NOVA_STATUS = {
    "active": "ACTIVE",
    "queued": "SAVING",
    "saving": "SAVING",
    "deleted": "DELETED",
    "pending_delete": "DELETED",
    "killed": "ERROR",
}


class FakeOpenStack(FakeCloud):
    """A stateful OpenStack (Keystone, Nova, Glance) on 127.0.0.1."""

    flavour = "openstack"
    identity_versions: tuple[str, ...] = ("v3", "v2.0")
    microversions = True
    REGIONS: tuple[str, ...] = ("RegionOne", "RegionTwo")

    def __init__(self, regions: tuple[str, ...] | None = None, token_ttl: float = 3600.0) -> None:
        super().__init__(regions or self.REGIONS, token_ttl)
        self.seed()

    # -- seed data -------------------------------------------------------------------

    def seed(self) -> None:
        st = self.state
        self.admin_project = st.add_project("admin")
        self.project = st.add_project("demo")
        self.other_project = st.add_project("other")
        self.password = "secret"
        self.api_key = "demo-api-key"
        self.user = st.add_user("demo", self.password, self.project, api_key=self.api_key)
        self.other_user = st.add_user("other", "other-secret", self.other_project)
        self.app_credential = st.add_app_credential(self.user, "deltaweb")
        first, second = self.REGIONS[0], self.REGIONS[1]
        day = 86400.0
        now = st.now()
        pub = {"visibility": "public", "size": 21430272, "checksum": uuid.uuid4().hex}

        def image(region: str, name: str, owner: Project, status: str = "active", **attrs: Any) -> Image:
            at = now - attrs.pop("age_days", 30) * day
            return st.add_image(region, name, owner.id, status, created_at=at, updated_at=at, **attrs)

        admin, demo, other = self.admin_project, self.project, self.other_project
        x86, arm = {"architecture": "x86_64"}, {"architecture": "aarch64"}
        self.images = {
            "cirros": image(first, "cirros-0.6.2-x86_64-disk", admin, properties=x86, **pub),
            "ubuntu": image(first, "ubuntu-22.04", admin, properties={**x86, "os_distro": "ubuntu"}, **pub),
            "ubuntu-arm": image(first, "ubuntu-22.04-arm64", admin, properties=arm, **pub),
            "debian-i386": image(first, "debian-12-i386", admin, properties={"architecture": "i686"}, **pub),
            "fedora": image(first, "fedora-39", admin, **pub),
            "retired": image(first, "centos-7", admin, "deactivated", properties=x86, **pub),
            "golden": image(
                first, "demo-golden", demo, visibility="private", age_days=3,
                properties={"architecture": "amd64", "description": "the golden image"},
            ),
            "broken": image(first, "demo-broken-upload", demo, "killed", visibility="private", age_days=2),
            "shared": image(first, "demo-shared", demo, visibility="shared", age_days=1),
            "community": image(first, "someone-elses-community", other, visibility="community"),
            "private-other": image(first, "other-private", other, visibility="private"),
            "second-region": image(second, "cirros-region-two", admin, properties=x86, **pub),
        }  # fmt: skip
        base = self.images["ubuntu"].id

        def server(name: str, vm_state: str, region: str = first, **attrs: Any) -> Server:
            owner, user = attrs.pop("owner", (self.project, self.user))
            return st.add_server(region, owner, user, name, vm_state=vm_state, image_id=base, **attrs)

        no_host = "No valid host was found. There are not enough hosts available."
        self.servers = {
            "web01": server("web01", "active", key_name="demo-key"),
            "db01": server("db01", "stopped"),
            "build01": server("build01", "building"),
            "broken01": server(
                "broken01", "error", fault={"code": 500, "created": iso(now), "message": no_host}
            ),
            "paused01": server("paused01", "paused"),
            "other01": server("other01", "active", owner=(self.other_project, self.other_user)),
            "web02": server("web02", "active", region=second),
        }

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "project": self.project.name,
            "project_id": self.project.id,
            "username": self.user.name,
            "password": self.password,
            "api_key": self.api_key,
            "application_credential_id": self.app_credential.id,
            "application_credential_secret": self.app_credential.secret,
            "servers": {name: s.id for name, s in self.servers.items()},
        }

    # -- identity ----------------------------------------------------------------------

    def catalog(self, project: Project) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
        def each(service: str, suffix: str = "") -> list[tuple[str, str, str]]:
            return [
                (region, iface, self.endpoint(region, service, iface) + suffix)
                for region in self.state.regions
                for iface in ("public", "internal", "admin")
            ]

        identity_eps = [
            (r, i, self.auth_url) for r in self.state.regions for i in ("public", "internal", "admin")
        ]
        return [
            ("identity", "keystone", identity_eps),
            ("compute", "nova", each("compute", "/v2.1")),
            ("image", "glance", each("image")),
        ]

    def v2_rejection(self, method: str) -> str:
        return "The request you have made requires authentication."

    def v2_default_tenant(self, user: User) -> Project | None:
        return None  # Keystone: no tenant asked, an unscoped token

    def v2_access(self, token: Token, user: User, project: Project | None, method: str) -> dict[str, Any]:
        return identity.v2_access(self, token, user, project)

    # -- images --------------------------------------------------------------------------

    def glance_url(self, ctx: Ctx) -> str:
        assert ctx.region is not None
        return self.endpoint(ctx.region.name, "image", ctx.interface)

    def visible(self, image: Image, project: str, community: bool = False) -> bool:
        if image.visibility == "public" or image.owner == project:
            return True
        return community and image.visibility == "community"

    def gone(self, image: Image) -> bool:
        return image.status in ("deleted", "pending_delete")

    def nova_image_status(self, image: Image) -> str:
        return NOVA_STATUS.get(image.status, "UNKNOWN")

    def delete_image(self, ctx: Ctx, image: Image) -> None:
        assert ctx.region is not None
        image.status, image.updated_at = "deleted", self.state.now()
        ctx.region.changed()

    def snapshot_plan(self, now: float, failed: bool) -> list[tuple[float, str, int]]:
        d = self.snapshot_delay
        return [
            (now + 0.3 * d, "saving", 50),
            (now + d, "killed" if failed else "active", 0 if failed else 100),
        ]

    def snapshot(
        self, region: Region, server: Server, name: str, metadata: dict[str, str], action: InstanceAction
    ) -> Image:
        """Nova's createImage: a queued Glance image that Nova then uploads."""
        now = self.state.now()
        failure, server.snapshot_failure = server.snapshot_failure, ""
        base = region.images.get(server.image_id)
        properties = {k: v for k, v in (base.properties if base else {}).items() if k in INHERITED}
        user = self.state.users[action.user_id]
        properties.update(
            image_type="snapshot", instance_uuid=server.id, user_id=user.id, base_image_ref=server.image_id,
            owner_project_name=self.state.projects[server.project_id].name, owner_user_name=user.name,
            image_location="snapshot", boot_roles=",".join(user.roles),
        )  # fmt: skip
        properties.update(metadata)
        server.task_state, server.updated = "image_snapshot", now

        def settled(image: Image, at: float) -> None:
            server.task_state, server.updated = None, at
            failed = image.failure
            event = action.events[0]
            event.update(finish_time=iso(at), result="Error" if failed else "Success", details=failed or None)
            action.message, action.updated_at = ("Error" if failed else None), at
            if not failed:
                image.size, image.checksum = 1_073_741_824, uuid.uuid4().hex

        return self.state.add_image(
            region.name, name, server.project_id, self.queued_status,
            visibility="private", properties=properties, progress=0, min_disk=20, failure=failure,
            plan=self.snapshot_plan(now, bool(failure)), on_settled=settled,
        )  # fmt: skip

    queued_status = "queued"
    active_status = "active"

    def touch_images(self, count: int, region: str = "") -> list[str]:
        """Rename ``count`` of the demo project's images now (an incremental sync's change)."""
        with self.state.lock:
            target = self.state.regions[region or self.REGIONS[0]]
            mine = [i for i in target.images.values() if i.owner == self.project.id and not self.gone(i)]
            now = self.state.now()
            for image in mine[:count]:
                image.name, image.updated_at = f"{image.name}-touched", now
            target.changed()
            return [i.id for i in mine[:count]]

    def seed_images(self, count: int, region: str = "") -> list[str]:
        """``count`` more active private images of the demo project (benchmarks, paging tests)."""
        with self.state.lock:
            return self.state.bulk_images(
                region or self.REGIONS[0], count, self.project.id, status=self.active_status
            )

    def settle_snapshot(self, image_id: str, *, ok: bool, reason: str = "") -> None:
        """Finish a snapshot now (tests that set ``snapshot_delay`` long): saved, or
        failed with ``reason`` as Nova's instance action tells it."""
        with self.state.lock:
            region = next(r for r in self.state.regions.values() if image_id in r.images)
            image = region.images[image_id]
            now = self.state.now()
            _, status, progress = self.snapshot_plan(now, not ok)[-1]
            image.failure = "" if ok else reason or "The snapshot failed"
            image.plan = [(now, status, progress)]
            region.pending.add(image_id)
            region.advance(now)
