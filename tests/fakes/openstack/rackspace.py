"""The Rackspace flavour: Rackspace Identity v2.0 (``RAX-KSKEY:apiKeyCredentials``)
and Cloud Servers v2 (Nova without microversions), whose images live behind
Nova's ``/images`` API with Rackspace's own statuses (QUEUED, PREPARING,
SAVING, ACTIVE, FAILED, UNKNOWN, DELETED), in the DFW/ORD/IAD/LON/SYD/HKG regions.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tests.fakes.openstack.app import HTTPError
from tests.fakes.openstack.cloud import FakeOpenStack
from tests.fakes.openstack.identity import catalog_v2
from tests.fakes.openstack.state import Image, Project, Server, Token, User, iso_micro

LINUX = {
    "image_type": "base",
    "os_type": "linux",
    "auto_disk_config": "True",
    "com.rackspace__1__visible_core": "1",
}


class FakeRackspace(FakeOpenStack):
    """A stateful Rackspace Cloud (identity + next-generation Cloud Servers)."""

    flavour = "rackspace"
    identity_versions = ("v2.0",)
    microversions = False
    serves_glance = False
    retry_after_date = True
    queued_status = "QUEUED"
    active_status = "ACTIVE"
    REGIONS = ("DFW", "ORD", "IAD", "LON", "SYD", "HKG")

    def seed(self) -> None:
        st = self.state
        self.admin_project = st.add_project("rackspace", "rackspace")
        self.project = st.add_project("123456", "123456")
        self.other_project = st.add_project("654321", "654321")
        self.password = "rax-password"
        self.api_key = "0123456789abcdef0123456789abcdef"
        self.user = st.add_user("raxuser", self.password, self.project, api_key=self.api_key)
        self.other_user = st.add_user("otheruser", "other-password", self.other_project, api_key="other-key")
        self.user.roles = ("identity:default", "compute:default")
        self.app_credential = st.add_app_credential(self.user, "unused")
        now = st.now()
        self.images = {}
        for region in self.REGIONS:
            for key, name, distro, status in (
                ("ubuntu", "Ubuntu 12.04 LTS (Precise Pangolin)", "org.ubuntu", "ACTIVE"),
                ("centos", "CentOS 6.4", "org.centos", "ACTIVE"),
                ("arch", "Arch 2013.6", "org.archlinux", "UNKNOWN"),
            ):
                props = {
                    **LINUX,
                    "org.openstack__1__architecture": "x64",
                    "org.openstack__1__os_distro": distro,
                }
                image = st.add_image(
                    region, name, self.admin_project.id, status, created_at=now - 90 * 86400,
                    updated_at=now - 90 * 86400, properties=props, size=2_147_483_648,
                )  # fmt: skip
                self.images.setdefault(key, image)
        for key, status in (("my-snapshot", "ACTIVE"), ("queued-snapshot", "QUEUED"),
                            ("preparing-snapshot", "PREPARING"), ("failed-snapshot", "FAILED")):  # fmt: skip
            self.images[key] = st.add_image(
                "DFW", key, self.project.id, status, visibility="private", created_at=now - 86400,
                updated_at=now - 86400, properties={**LINUX, "image_type": "snapshot"},
            )  # fmt: skip
        base = self.images["ubuntu"].id

        def server(name: str, vm_state: str, region: str = "DFW", **attrs: Any) -> Server:
            owner, user = attrs.pop("owner", (self.project, self.user))
            return st.add_server(
                region, owner, user, name, vm_state=vm_state, image_id=base, flavor_id="2", **attrs
            )

        self.servers = {
            "web01": server("web01", "active"),
            "db01": server("db01", "stopped"),
            "build01": server("build01", "building"),
            "broken01": server("broken01", "error", fault={"code": 500, "created": "2013-06-01T00:00:00Z",
                                                           "message": "Build failed"}),
            "other01": server("other01", "active", owner=(self.other_project, self.other_user)),
            "web02": server("web02", "active", region="ORD"),
        }  # fmt: skip

    # -- identity ----------------------------------------------------------------------

    def catalog(self, project: Project) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
        compute = [
            (r, "public", f"{self.endpoint(r, 'compute')}/v2/{project.id}") for r in self.state.regions
        ]
        return [("compute", "cloudServersOpenStack", compute)]

    def v2_rejection(self, method: str) -> str:
        if method == "APIKEY":
            return "Username or api key is invalid."
        return "Unable to authenticate user with credentials provided."

    def v2_default_tenant(self, user: User) -> Project | None:
        return self.state.projects[user.project_id]

    def v2_access(self, token: Token, user: User, project: Project | None, method: str) -> dict[str, Any]:
        assert project is not None
        return {
            "access": {
                "token": {"id": token.id, "expires": iso_micro(token.expires_at)[:-4] + "Z",
                          "tenant": {"id": project.id, "name": project.name},
                          "RAX-AUTH:authenticatedBy": [method]},
                "serviceCatalog": catalog_v2(self, project, tenantId=project.id, versionId="2"),
                "user": {"id": user.id, "name": user.name, "RAX-AUTH:defaultRegion": self.REGIONS[0],
                         "roles": [{"id": str(n + 1), "name": r, "description": f"{r} role"}
                                   for n, r in enumerate(user.roles)]},
            }
        }  # fmt: skip

    def keystone_error(self, err: HTTPError) -> dict[str, Any]:
        key = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound"}.get(
            err.status, "identityFault"
        )
        return {key: {"code": err.status, "message": err.message}}

    def nova_fault(self, err: HTTPError) -> dict[str, Any]:
        body = super().nova_fault(err)
        if err.status in (413, 429) and err.retry_after is not None:
            # Repose, Rackspace's rate limiter, says when, not how long.
            until = datetime.fromtimestamp(self.state.now() + err.retry_after, UTC)
            next(iter(body.values()))["retryAfter"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        return body

    # -- images --------------------------------------------------------------------------

    def gone(self, image: Image) -> bool:
        return image.status == "DELETED"

    def nova_image_status(self, image: Image) -> str:
        return image.status

    def delete_image(self, ctx: Any, image: Image) -> None:
        image.status, image.updated_at = "DELETED", self.state.now()
        ctx.region.changed()

    def snapshot_plan(self, now: float, failed: bool) -> list[tuple[float, str, int]]:
        d = self.snapshot_delay
        last = ("FAILED", 0) if failed else ("ACTIVE", 100)
        return [(now + 0.25 * d, "PREPARING", 0), (now + 0.5 * d, "SAVING", 50), (now + d, *last)]

    def snapshot(
        self, region: Any, server: Server, name: str, metadata: dict[str, str], action: Any
    ) -> Image:
        image = super().snapshot(region, server, name, metadata, action)
        image.properties.setdefault("org.openstack__1__architecture", "x64")
        image.checksum = None
        image.properties["com.rackspace__1__snapshot_id"] = str(uuid.uuid4())
        return image
