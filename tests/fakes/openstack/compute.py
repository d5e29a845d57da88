"""Nova (Compute API v2.1 with microversions, or v2 without): servers with
paging, the ``createImage``/``os-start``/``os-stop`` actions, instance actions,
flavors, availability zones, and the image proxy (``/images``, gone at 2.36)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from tests.fakes.openstack.app import Ctx, HTTPError, json_response
from tests.fakes.openstack.state import (
    SNAPSHOT_VM_STATES,
    Image,
    InstanceAction,
    Server,
    hex_id,
    iso,
    parse_iso,
)

if TYPE_CHECKING:
    from tests.fakes.openstack.app import FakeCloud

MIN_VERSION, MAX_VERSION = (2, 1), (2, 96)
MAX_LIMIT = 1000
FLAVORS = {
    "1": {"name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
    "2": {"name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
    "3": {"name": "m1.medium", "ram": 4096, "vcpus": 2, "disk": 40},
}
# Server fields added by later microversions, with the values our servers have.
MICROVERSION_FIELDS = (
    (9, "locked", False),
    (19, "description", None),
    (26, "tags", []),
    (63, "trusted_image_certificates", None),
    (73, "locked_reason", None),
)
POWER = {"active": 1, "paused": 3, "stopped": 4, "suspended": 4, "error": 0, "building": 0}
# createImage/createBackup/os-start/os-stop and the vm_states each accepts.
ACTIONS = {"os-start": ("start", ("stopped",), "active"), "os-stop": ("stop", ("active", "error"), "stopped")}


def route(cloud: FakeCloud, ctx: Ctx, rest: list[str]) -> Response:
    request_id = f"req-{hex_id()[:8]}-{hex_id()[:4]}-{hex_id()[:4]}-{hex_id()[:4]}-{hex_id()[:12]}"
    ctx.headers.update({"x-openstack-request-id": request_id, "x-compute-request-id": request_id})
    if ctx.request.method == "GET" and rest == []:
        return json_response({"versions": versions(cloud, ctx)})
    if ctx.request.method == "GET" and rest == ["v2"]:
        return json_response({"version": next(v for v in versions(cloud, ctx) if v["id"] == "v2.0")})
    if rest[:1] == ["v2.1"] and cloud.microversions:
        prefix, rest, legacy = rest[:1], rest[1:], False
    elif rest[:1] == ["v2"] and len(rest) >= 2:
        prefix, rest, legacy = rest[:2], rest[2:], True
    else:
        raise HTTPError(404, "The resource could not be found.")
    if ctx.request.method == "GET" and rest == []:
        version = next(v for v in versions(cloud, ctx) if v["id"] == ("v2.0" if legacy else "v2.1"))
        return json_response({"version": version})
    ctx.root = f"{ctx.root}/{'/'.join(prefix)}"
    token = cloud.authenticate(ctx)
    if legacy and prefix[1] != token.project_id:
        raise HTTPError(
            400,
            f"Malformed request URL: URL's project_id '{prefix[1]}' doesn't match Context's "
            f"project_id '{token.project_id}'",
        )
    if not legacy:
        _negotiate(ctx)
    return _dispatch(cloud, ctx, rest)


def versions(cloud: FakeCloud, ctx: Ctx) -> list[dict[str, Any]]:
    def version(vid: str, status: str, newest: str, oldest: str, updated: str) -> dict[str, Any]:
        href = f"{ctx.root}/{vid.removesuffix('.0')}/"
        return {"id": vid, "status": status, "version": newest, "min_version": oldest, "updated": updated,
                "links": [{"rel": "self", "href": href}]}  # fmt: skip

    found = [version("v2.0", "SUPPORTED", "", "", "2011-01-21T11:33:21Z")]
    if cloud.microversions:
        found.append(version("v2.1", "CURRENT", _text(MAX_VERSION), "2.1", "2013-07-23T11:33:21Z"))
    else:
        found[0]["status"] = "CURRENT"
    for version in found:
        version["media-types"] = [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2"}
        ]
    return found


def _negotiate(ctx: Ctx) -> None:
    headers = ctx.request.headers
    wanted = headers.get("OpenStack-API-Version", "")
    value = wanted.split(None, 1)[1] if wanted.startswith("compute ") else ""
    value = value or headers.get("X-OpenStack-Nova-API-Version", "")
    if not value:
        version = MIN_VERSION
    elif value.strip() == "latest":
        version = MAX_VERSION
    else:
        try:
            major, minor = (int(x) for x in value.strip().split("."))
        except ValueError:
            raise HTTPError(
                400, f"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum."
            ) from None
        version = (major, minor)
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise HTTPError(
                406,
                f"Version {value} is not supported by the API. Minimum is 2.1 and maximum is "
                f"{_text(MAX_VERSION)}.",
            )
    ctx.microversion = version
    text = _text(version)
    ctx.headers.update(
        {
            "OpenStack-API-Version": f"compute {text}",
            "X-OpenStack-Nova-API-Version": text,
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        }
    )


def _text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _at_least(ctx: Ctx, minor: int) -> bool:
    return ctx.microversion is not None and ctx.microversion >= (2, minor)


def _dispatch(cloud: FakeCloud, ctx: Ctx, rest: list[str]) -> Response:
    method, region = ctx.request.method, ctx.region
    assert region is not None
    head = rest[0] if rest else ""
    if head == "servers":
        if method == "GET" and rest[1:] in ([], ["detail"]):
            return list_servers(cloud, ctx, detail=rest[1:] == ["detail"])
        server = _server(ctx, rest[1] if len(rest) > 1 else "")
        if method == "GET" and len(rest) == 2:
            return json_response({"server": server_view(ctx, server)})
        if method == "POST" and rest[2:] == ["action"]:
            return server_action(cloud, ctx, server)
        if method == "GET" and rest[2:3] == ["os-instance-actions"]:
            return instance_actions(ctx, server, rest[3] if len(rest) > 3 else None)
    elif head == "images" and not _at_least(ctx, 36):
        if method == "GET" and rest[1:] in ([], ["detail"]):
            return list_images(cloud, ctx, detail=rest[1:] == ["detail"])
        image = _image(cloud, ctx, rest[1] if len(rest) > 1 else "")
        if method == "GET" and len(rest) == 2:
            return json_response({"image": image_view(cloud, ctx, image)})
        if method == "DELETE" and len(rest) == 2:
            cloud.delete_image(ctx, image)
            return Response(status=204)
    elif head == "flavors" and method == "GET":
        return _flavors(ctx, rest[1:])
    elif rest == ["os-availability-zone"] and method == "GET":
        zones = [{"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]
        return json_response({"availabilityZoneInfo": zones})
    raise HTTPError(404, "The resource could not be found.")


# -- servers -------------------------------------------------------------------------------


def _server(ctx: Ctx, server_id: str) -> Server:
    assert ctx.region is not None and ctx.token is not None
    server = ctx.region.servers.get(server_id)
    if server is None or server.project_id != ctx.token.project_id or server.vm_state == "deleted":
        raise HTTPError(404, f"Instance {server_id} could not be found.")
    return server


def _page(ctx: Ctx, items: list[Any], key: str) -> tuple[list[Any], list[dict[str, str]]]:
    """Nova's limit/marker paging; a ``next`` link whenever a page is full."""
    limit_text, marker = ctx.arg("limit"), ctx.arg("marker")
    try:
        limit = min(int(limit_text), MAX_LIMIT) if limit_text is not None else MAX_LIMIT
    except ValueError:
        raise HTTPError(400, "limit param must be an integer") from None
    if limit < 0:
        raise HTTPError(400, "limit param must be positive")
    start = 0
    if marker:
        ids = [item.id for item in items]
        if marker not in ids:
            raise HTTPError(400, f"marker [{marker}] not found")
        start = ids.index(marker) + 1
    page = items[start : start + limit]
    links = []
    if page and len(page) == limit:
        query = {k: v for k, v in ctx.request.args.items() if k not in ("marker", "limit")}
        query.update(limit=str(limit), marker=page[-1].id)
        href = f"{ctx.root}/{key}?" + "&".join(f"{k}={v}" for k, v in query.items())
        links.append({"rel": "next", "href": href})
    return page, links


def list_servers(cloud: FakeCloud, ctx: Ctx, detail: bool) -> Response:
    assert ctx.region is not None and ctx.token is not None
    status, name = (ctx.arg("status") or "").upper(), ctx.arg("name") or ""
    servers = [
        s
        for s in ctx.region.servers.values()
        if s.project_id == ctx.token.project_id
        and s.vm_state != "deleted"
        and (not status or s.status == status)
        and name in s.name
    ]
    if ctx.arg("changes-since"):
        since = _time_arg(ctx, "changes-since")
        servers = [s for s in servers if s.updated >= since]
    servers.sort(key=lambda s: (s.created, s.id), reverse=True)
    page, links = _page(ctx, servers, "servers/detail" if detail else "servers")
    view = [server_view(ctx, s) if detail else _brief(ctx, "servers", s.id, s.name) for s in page]
    body: dict[str, Any] = {"servers": view}
    if links:
        body["servers_links"] = links
    return json_response(body)


def _time_arg(ctx: Ctx, name: str) -> float:
    try:
        return parse_iso(ctx.arg(name) or "")
    except ValueError:
        raise HTTPError(400, f"Invalid filter field: {name}.") from None


def _links(ctx: Ctx, collection: str, item_id: str) -> list[dict[str, str]]:
    bookmark = ctx.root.rsplit("/v2", 1)[0]
    return [
        {"rel": "self", "href": f"{ctx.root}/{collection}/{item_id}"},
        {"rel": "bookmark", "href": f"{bookmark}/{collection}/{item_id}"},
    ]


def _brief(ctx: Ctx, collection: str, item_id: str, name: str) -> dict[str, Any]:
    return {"id": item_id, "name": name, "links": _links(ctx, collection, item_id)}


def server_view(ctx: Ctx, s: Server) -> dict[str, Any]:
    flavor: dict[str, Any]
    if _at_least(ctx, 47):
        spec = FLAVORS.get(s.flavor_id, FLAVORS["1"])
        flavor = {"original_name": spec["name"], "vcpus": spec["vcpus"], "ram": spec["ram"],
                  "disk": spec["disk"], "ephemeral": 0, "swap": 0, "extra_specs": {}}  # fmt: skip
    else:
        flavor = {"id": s.flavor_id, "links": _links(ctx, "flavors", s.flavor_id)[1:]}
    mac = "fa:16:3e:" + ":".join(hashlib.md5(s.id.encode()).hexdigest()[i : i + 2] for i in (0, 2, 4))
    view: dict[str, Any] = {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "metadata": dict(s.metadata),
        "hostId": hashlib.sha224(f"{s.project_id}compute-1".encode()).hexdigest(),
        "image": {"id": s.image_id, "links": _links(ctx, "images", s.image_id)[1:]} if s.image_id else "",
        "flavor": flavor,
        "created": iso(s.created),
        "updated": iso(s.updated),
        "addresses": {"private": [{"version": 4, "addr": s.address, "OS-EXT-IPS:type": "fixed",
                                   "OS-EXT-IPS-MAC:mac_addr": mac}]},
        "accessIPv4": "",
        "accessIPv6": "",
        "links": _links(ctx, "servers", s.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "",
        "key_name": s.key_name,
        "OS-SRV-USG:launched_at": None if s.vm_state == "building" else iso(s.created)[:-1] + ".000000",
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": "default"}],
        "OS-EXT-STS:task_state": s.task_state,
        "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": POWER.get(s.vm_state, 0),
        "os-extended-volumes:volumes_attached": [],
    }  # fmt: skip
    for minor, key, value in MICROVERSION_FIELDS:
        if _at_least(ctx, minor):
            view[key] = value
    if s.fault is not None and s.vm_state == "error":
        view["fault"] = dict(s.fault)
    return view


def server_action(cloud: FakeCloud, ctx: Ctx, server: Server) -> Response:
    body = ctx.body()
    if len(body) != 1:
        raise HTTPError(400, "Malformed request body")
    ((action, spec),) = body.items()
    if action == "createImage":
        return create_image(cloud, ctx, server, spec)
    if action in ACTIONS:
        verb, allowed, target = ACTIONS[action]
        _check_state(server, verb, allowed)
        server.vm_state, server.updated = target, cloud.state.now()
        assert ctx.region is not None
        ctx.region.changed()
        return Response(status=202)
    raise HTTPError(400, f"There is no such action: {action}")


def _check_state(server: Server, verb: str, vm_states: tuple[str, ...]) -> None:
    if server.vm_state not in vm_states:
        raise HTTPError(
            409, f"Cannot '{verb}' instance {server.id} while it is in vm_state {server.vm_state}"
        )
    if server.task_state is not None:
        raise HTTPError(
            409, f"Cannot '{verb}' instance {server.id} while it is in task_state {server.task_state}"
        )


def create_image(cloud: FakeCloud, ctx: Ctx, server: Server, spec: Any) -> Response:
    invalid = "Invalid input for field/attribute"
    if not isinstance(spec, dict) or "name" not in spec:
        raise HTTPError(400, f"{invalid} createImage. Value: {spec}. 'name' is a required property")
    name, metadata = spec["name"], spec.get("metadata", {})
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise HTTPError(400, f"{invalid} name. Value: {name}. {name!r} is too long or empty")
    if name != name.strip() or any(ord(c) < 32 for c in name):
        raise HTTPError(
            400, f"{invalid} name. Value: {name}. {name!r} does not match '^(?! )[^\\x00-\\x1f]+(?<! )$'"
        )
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise HTTPError(400, f"{invalid} metadata. Value: {metadata}. {metadata!r} is not of type 'object'")
    _check_state(server, "createImage", SNAPSHOT_VM_STATES)
    assert ctx.region is not None and ctx.token is not None
    now = cloud.state.now()
    action = InstanceAction(
        ctx.headers["x-openstack-request-id"], "createImage", server.id, server.project_id,
        ctx.token.user_id, now, now,
        events=[{"event": "compute_snapshot_instance", "start_time": iso(now), "finish_time": None,
                 "result": None, "traceback": None, "details": None}],
    )  # fmt: skip
    ctx.region.actions.append(action)
    image = cloud.snapshot(ctx.region, server, name, metadata, action)
    if _at_least(ctx, 45):
        return json_response({"image_id": image.id}, 202)
    return Response(status=202, headers={"Location": f"{cloud.glance_url(ctx)}/images/{image.id}"})


def instance_actions(ctx: Ctx, server: Server, request_id: str | None) -> Response:
    assert ctx.region is not None
    found = [a for a in ctx.region.actions if a.server_id == server.id]

    def view(action: InstanceAction, events: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"action": action.action, "instance_uuid": action.server_id,
                               "message": action.message, "project_id": action.project_id,
                               "request_id": action.request_id, "start_time": iso(action.start_time),
                               "user_id": action.user_id}  # fmt: skip
        if _at_least(ctx, 58):
            out["updated_at"] = iso(action.updated_at)
        if events and _at_least(ctx, 51):  # events are admin-only before 2.51
            out["events"] = [
                {k: v for k, v in e.items() if k != "details" or _at_least(ctx, 84)} for e in action.events
            ]
        return out

    if request_id is None:
        found.sort(key=lambda a: a.start_time, reverse=True)
        return json_response({"instanceActions": [view(a, False) for a in found]})
    action = next((a for a in found if a.request_id == request_id), None)
    if action is None:
        raise HTTPError(404, f"Action {request_id} could not be found.")
    return json_response({"instanceAction": view(action, True)})


def _flavors(ctx: Ctx, rest: list[str]) -> Response:
    def view(fid: str) -> dict[str, Any]:
        spec = FLAVORS[fid]
        return {"id": fid, **spec, "links": _links(ctx, "flavors", fid), "OS-FLV-EXT-DATA:ephemeral": 0,
                "swap": "", "rxtx_factor": 1.0, "os-flavor-access:is_public": True}  # fmt: skip

    if rest in ([], ["detail"]):
        return json_response(
            {
                "flavors": [
                    view(f) if rest else _brief(ctx, "flavors", f, spec["name"])
                    for f, spec in FLAVORS.items()
                ]
            }
        )
    if len(rest) == 1 and rest[0] in FLAVORS:
        return json_response({"flavor": view(rest[0])})
    raise HTTPError(404, f"Flavor {rest[0] if rest else ''} could not be found.")


# -- the image proxy ---------------------------------------------------------------------


def _image(cloud: FakeCloud, ctx: Ctx, image_id: str) -> Image:
    assert ctx.region is not None and ctx.token is not None
    image = ctx.region.images.get(image_id)
    if image is None or not cloud.visible(image, ctx.token.project_id) or cloud.gone(image):
        raise HTTPError(404, "Image not found.")
    return image


def list_images(cloud: FakeCloud, ctx: Ctx, detail: bool) -> Response:
    assert ctx.region is not None and ctx.token is not None
    project = ctx.token.project_id
    since = _time_arg(ctx, "changes-since") if ctx.arg("changes-since") else None
    filters = {k: ctx.arg(k) for k in ("name", "status", "server", "type") if ctx.arg(k)}

    def wanted(image: Image) -> bool:
        if not cloud.visible(image, project) or image.visibility == "community":
            return False
        # Deleted images show only to a changes-since query, as Nova's proxy did.
        if cloud.gone(image) and (since is None or image.updated_at < since):
            return False
        if since is not None and image.updated_at < since:
            return False
        props = image.properties
        checks = {
            "name": image.name,
            "status": cloud.nova_image_status(image),
            "server": props.get("instance_uuid"),
            "type": (props.get("image_type") or "base").upper(),
        }
        return all(checks[k] == (v.upper() if k in ("status", "type") else v) for k, v in filters.items())

    images = sorted(
        (i for i in ctx.region.images.values() if wanted(i)), key=lambda i: (i.created_at, i.id), reverse=True
    )
    page, links = _page(ctx, images, "images/detail" if detail else "images")
    view = [image_view(cloud, ctx, i) if detail else _brief(ctx, "images", i.id, i.name) for i in page]
    body: dict[str, Any] = {"images": view}
    if links:
        body["images_links"] = links
    return json_response(body)


def image_view(cloud: FakeCloud, ctx: Ctx, image: Image) -> dict[str, Any]:
    href = f"{cloud.glance_url(ctx)}/images/{image.id}"
    alternate = {"rel": "alternate", "type": "application/vnd.openstack.image", "href": href}
    view: dict[str, Any] = {
        "id": image.id,
        "name": image.name,
        "status": cloud.nova_image_status(image),
        "progress": image.progress,
        "minDisk": image.min_disk,
        "minRam": image.min_ram,
        "created": iso(image.created_at),
        "updated": iso(image.updated_at),
        "metadata": dict(image.properties),
        "links": [*_links(ctx, "images", image.id), alternate],
        "OS-EXT-IMG-SIZE:size": image.size or 0,
        "OS-DCF:diskConfig": "AUTO" if image.properties.get("auto_disk_config") == "True" else "MANUAL",
    }
    server_id = image.properties.get("instance_uuid")
    if server_id:
        view["server"] = {"id": server_id, "links": _links(ctx, "servers", server_id)}
    return view
