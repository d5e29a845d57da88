"""Keystone: version discovery, v3 tokens (password, application credential)
and v2.0 tokens (password, and Rackspace's ``RAX-KSKEY:apiKeyCredentials``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from tests.fakes.openstack.app import Ctx, HTTPError, json_response
from tests.fakes.openstack.state import AppCredential, Project, Token, User, hex_id, iso, iso_micro

if TYPE_CHECKING:
    from tests.fakes.openstack.app import FakeCloud

MALFORMED = (
    "The server could not comply with the request since it is either malformed or otherwise "
    "incorrect. The client is assumed to be in error."
)
V3_MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
V2_MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v2.0+json"}]


def route(cloud: FakeCloud, ctx: Ctx, rest: list[str]) -> Response:
    method = ctx.request.method
    if method == "GET" and rest == []:
        return json_response({"versions": {"values": versions(cloud)}}, 300)
    if method == "GET" and len(rest) == 1:
        for version in versions(cloud):
            if version["id"].startswith(rest[0]):
                return json_response({"version": version})
    if rest == ["v3", "auth", "tokens"] and "v3" in cloud.identity_versions and method == "POST":
        return v3_tokens(cloud, ctx)
    if rest == ["v2.0", "tokens"] and "v2.0" in cloud.identity_versions and method == "POST":
        return v2_tokens(cloud, ctx)
    raise HTTPError(404, "The resource could not be found.")


def versions(cloud: FakeCloud) -> list[dict[str, Any]]:
    known = {
        "v3": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z", "media-types": V3_MEDIA},
        "v2.0": {"id": "v2.0", "status": "deprecated", "updated": "2016-08-04T00:00:00Z"},
    }
    known["v2.0"]["media-types"] = V2_MEDIA
    return [
        {**known[v], "links": [{"rel": "self", "href": f"{cloud.auth_url}/{v}/"}]}
        for v in cloud.identity_versions
    ]


# -- v3 -------------------------------------------------------------------------------


def v3_tokens(cloud: FakeCloud, ctx: Ctx) -> Response:
    auth = ctx.body().get("auth")
    if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
        raise HTTPError(400, f"Expecting to find identity in auth. {MALFORMED}")
    identity, state = auth["identity"], cloud.state
    methods = identity.get("methods") or []
    cred: AppCredential | None = None
    if methods == ["password"]:
        user = _v3_user(cloud, identity.get("password", {}).get("user"))
        project = _v3_scope(cloud, user, auth.get("scope"))
    elif methods == ["application_credential"]:
        cred, user = _v3_app_credential(cloud, identity.get("application_credential"))
        if auth.get("scope"):
            raise HTTPError(401, "Application credentials cannot request a scope.")
        project = state.projects[cred.project_id]
    else:
        raise HTTPError(401, f"Unsupported authentication method: {', '.join(methods) or 'none'}")
    token = state.issue_token(user, project.id if project else "", tuple(methods), cred.id if cred else "")
    body: dict[str, Any] = {
        "methods": list(methods),
        "user": {"domain": _domain(user.domain_id), "id": user.id, "name": user.name,
                 "password_expires_at": None},
        "audit_ids": [hex_id()[:22]],
        "expires_at": iso_micro(token.expires_at),
        "issued_at": iso_micro(token.issued_at),
    }  # fmt: skip
    if project is not None:
        body.update(
            project={"domain": _domain(project.domain_id), "id": project.id, "name": project.name},
            is_domain=False,
            roles=[{"id": hex_id(), "name": role} for role in user.roles],
            catalog=catalog_v3(cloud, project),
        )
    if cred is not None:
        body["application_credential"] = {"id": cred.id, "name": cred.name, "restricted": True}
    return json_response({"token": body}, 201, {"X-Subject-Token": token.id})


def _domain(domain_id: str) -> dict[str, str]:
    return {"id": domain_id, "name": "Default" if domain_id == "default" else domain_id}


def _domain_matches(spec: Any, domain_id: str) -> bool:
    if not isinstance(spec, dict):
        return False
    return spec.get("id") == domain_id or spec.get("name") == _domain(domain_id)["name"]


def _v3_user(cloud: FakeCloud, spec: Any) -> User:
    if not isinstance(spec, dict) or not ("id" in spec or "name" in spec):
        raise HTTPError(400, f"Expecting to find user in password. {MALFORMED}")
    if "id" in spec:
        user = cloud.state.users.get(spec["id"])
    else:
        if "domain" not in spec:
            raise HTTPError(400, f"Expecting to find domain in user. {MALFORMED}")
        user = next(
            (
                u
                for u in cloud.state.users.values()
                if u.name == spec["name"] and _domain_matches(spec["domain"], u.domain_id)
            ),
            None,
        )
    if user is None or not user.enabled or spec.get("password") != user.password:
        raise HTTPError(401)
    return user


def _v3_scope(cloud: FakeCloud, user: User, scope: Any) -> Project | None:
    if not scope:
        return None
    spec = scope.get("project") if isinstance(scope, dict) else None
    if not isinstance(spec, dict):
        raise HTTPError(400, f"Expecting to find project in scope. {MALFORMED}")
    project = next(
        (
            p
            for p in cloud.state.projects.values()
            if spec.get("id") == p.id
            or (spec.get("name") == p.name and _domain_matches(spec.get("domain"), p.domain_id))
        ),
        None,
    )
    if project is None or project.id != user.project_id:
        raise HTTPError(401)
    return project


def _v3_app_credential(cloud: FakeCloud, spec: Any) -> tuple[AppCredential, User]:
    if not isinstance(spec, dict) or "secret" not in spec:
        raise HTTPError(400, f"Expecting to find secret in application_credential. {MALFORMED}")
    creds = cloud.state.app_credentials.values()
    if "id" in spec:
        cred = cloud.state.app_credentials.get(spec["id"])
    else:
        owner = _v3_user_ref(cloud, spec.get("user"))
        cred = next(
            (c for c in creds if c.name == spec.get("name") and owner and c.user_id == owner.id), None
        )
    user = cloud.state.users.get(cred.user_id) if cred else None
    if cred is None or user is None or not user.enabled or spec["secret"] != cred.secret:
        raise HTTPError(401)
    return cred, user


def _v3_user_ref(cloud: FakeCloud, spec: Any) -> User | None:
    if not isinstance(spec, dict):
        return None
    if "id" in spec:
        return cloud.state.users.get(spec["id"])
    return cloud.state.user_named(spec.get("name", ""))


def catalog_v3(cloud: FakeCloud, project: Project) -> list[dict[str, Any]]:
    entries = []
    for service_type, name, endpoints in cloud.catalog(project):
        entries.append(
            {
                "id": hex_id(),
                "type": service_type,
                "name": name,
                "endpoints": [
                    {"id": hex_id(), "interface": iface, "region": region, "region_id": region, "url": url}
                    for region, iface, url in endpoints
                ],
            }
        )
    return entries


# -- v2.0 -----------------------------------------------------------------------------


def v2_tokens(cloud: FakeCloud, ctx: Ctx) -> Response:
    auth = ctx.body().get("auth")
    if not isinstance(auth, dict):
        raise HTTPError(400, f"Expecting to find auth in request body. {MALFORMED}")
    state = cloud.state
    if isinstance(auth.get("passwordCredentials"), dict):
        creds = auth["passwordCredentials"]
        user = state.user_named(creds.get("username", ""))
        accepted = user is not None and creds.get("password") == user.password
        method = "PASSWORD"
    elif isinstance(auth.get("RAX-KSKEY:apiKeyCredentials"), dict):
        creds = auth["RAX-KSKEY:apiKeyCredentials"]
        user = state.user_named(creds.get("username", ""))
        accepted = user is not None and bool(user.api_key) and creds.get("apiKey") == user.api_key
        method = "APIKEY"
    else:
        raise HTTPError(400, f"Expecting to find passwordCredentials in auth. {MALFORMED}")
    if not accepted or user is None or not user.enabled:
        raise HTTPError(401, cloud.v2_rejection(method))
    project = _v2_tenant(cloud, user, auth)
    token = state.issue_token(user, project.id if project else "", (method.lower(),))
    return json_response(cloud.v2_access(token, user, project, method))


def _v2_tenant(cloud: FakeCloud, user: User, auth: dict[str, Any]) -> Project | None:
    wanted_id, wanted_name = auth.get("tenantId"), auth.get("tenantName")
    if not (wanted_id or wanted_name):
        return cloud.v2_default_tenant(user)
    project = next(
        (p for p in cloud.state.projects.values() if wanted_id == p.id or wanted_name == p.name), None
    )
    if project is None or project.id != user.project_id:
        raise HTTPError(401, cloud.v2_rejection("TENANT"))
    return project


def v2_access(cloud: FakeCloud, token: Token, user: User, project: Project | None) -> dict[str, Any]:
    """Keystone's own v2.0 token document (Rackspace's differs: see rackspace.py)."""
    access: dict[str, Any] = {
        "token": {"issued_at": iso_micro(token.issued_at), "expires": iso(token.expires_at), "id": token.id,
                  "audit_ids": [hex_id()[:22]]},
        "serviceCatalog": [],
        "user": {"username": user.name, "roles_links": [], "id": user.id, "name": user.name,
                 "roles": [{"name": role} for role in user.roles]},
        "metadata": {"is_admin": 0, "roles": []},
    }  # fmt: skip
    if project is not None:
        access["token"]["tenant"] = {
            "description": None,
            "enabled": True,
            "id": project.id,
            "name": project.name,
        }
        access["serviceCatalog"] = catalog_v2(cloud, project)
    return {"access": access}


def catalog_v2(cloud: FakeCloud, project: Project, **extra: str) -> list[dict[str, Any]]:
    entries = []
    for service_type, name, endpoints in cloud.catalog(project):
        regions: dict[str, dict[str, str]] = {}
        for region, iface, url in endpoints:
            regions.setdefault(region, {"region": region, "id": hex_id(), **extra})[f"{iface}URL"] = url
        entries.append(
            {"endpoints": list(regions.values()), "endpoints_links": [], "type": service_type, "name": name}
        )
    return entries
