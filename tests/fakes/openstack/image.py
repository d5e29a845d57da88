"""Glance (Image API v2): discovery, images with limit/marker paging and a
``next`` link, filters (exact, ``in:``, time comparisons, properties), sorting,
show, delete, deactivate/reactivate, in Glance's own error wording."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from tests.fakes.openstack.app import Ctx, HTTPError, json_response
from tests.fakes.openstack.state import Image, Region, iso, parse_iso

if TYPE_CHECKING:
    from tests.fakes.openstack.app import FakeCloud

DEFAULT_LIMIT, MAX_LIMIT = 25, 1000
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at")
TIME_OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
RESERVED = {"limit", "marker", "sort_key", "sort_dir", "sort", "visibility", "member_status", "tag",
            "size_min", "size_max", "created_at", "updated_at", "os_hidden", "protected"}  # fmt: skip
VERSIONS = [("v2.17", "CURRENT"), ("v2.16", "SUPPORTED"), ("v2.9", "SUPPORTED"), ("v2.0", "SUPPORTED")]


def route(cloud: FakeCloud, ctx: Ctx, rest: list[str]) -> Response:
    method = ctx.request.method
    if method == "GET" and rest in ([], ["versions"]):
        values = [
            {"id": vid, "status": status, "links": [{"rel": "self", "href": f"{ctx.root}/v2/"}]}
            for vid, status in VERSIONS
        ]
        return json_response({"versions": values}, 300 if not rest else 200)
    if rest[:2] != ["v2", "images"]:
        raise HTTPError(404, "The resource could not be found.")
    token = cloud.authenticate(ctx)
    region = ctx.region
    assert region is not None
    rest = rest[2:]
    if method == "GET" and rest == []:
        return list_images(cloud, ctx, region, token.project_id)
    image = region.images.get(rest[0]) if rest else None
    if image is None or cloud.gone(image) or not cloud.visible(image, token.project_id, community=True):
        raise HTTPError(404, f"No image found with ID {rest[0] if rest else ''}")
    if method == "GET" and len(rest) == 1:
        return json_response(image_view(image))
    if method == "DELETE" and len(rest) == 1:
        if image.owner != token.project_id:
            raise HTTPError(403, "You are not permitted to delete this image.")
        if image.protected:
            raise HTTPError(403, f"Image {image.id} is protected and cannot be deleted.")
        if image.status in ("uploading", "importing"):
            raise HTTPError(409, f"Image status transition from {image.status} to deleted is not allowed")
        cloud.delete_image(ctx, image)
        return Response(status=204)
    if (
        method == "POST"
        and len(rest) == 3
        and rest[1] == "actions"
        and rest[2] in ("deactivate", "reactivate")
    ):
        if image.status not in ("active", "deactivated"):
            raise HTTPError(400, f"Not allowed to {rest[2]} image in status '{image.status}'")
        image.status = "deactivated" if rest[2] == "deactivate" else "active"
        image.updated_at = cloud.state.now()
        region.changed()
        return Response(status=204)
    raise HTTPError(405, "The method specified is not allowed for this resource.")


def image_view(image: Image) -> dict[str, Any]:
    view: dict[str, Any] = {
        "status": image.status,
        "name": image.name,
        "tags": list(image.tags),
        "container_format": image.container_format,
        "created_at": iso(image.created_at),
        "disk_format": image.disk_format,
        "updated_at": iso(image.updated_at),
        "visibility": image.visibility,
        "self": f"/v2/images/{image.id}",
        "min_disk": image.min_disk,
        "protected": image.protected,
        "id": image.id,
        "file": f"/v2/images/{image.id}/file",
        "checksum": image.checksum,
        "os_hash_algo": "sha512" if image.checksum else None,
        "os_hash_value": (image.checksum * 4) if image.checksum else None,
        "os_hidden": image.os_hidden,
        "owner": image.owner,
        "size": image.size,
        "min_ram": image.min_ram,
        "schema": "/v2/schemas/image",
        "virtual_size": None,
    }
    view.update(image.properties)
    return view


def _sort(ctx: Ctx) -> list[tuple[str, str]]:
    args = ctx.request.args
    keys: list[tuple[str, str]] = []
    if "sort" in args:
        if "sort_key" in args or "sort_dir" in args:
            raise HTTPError(400, "The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.")
        for part in args["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            keys.append((key, direction or "desc"))
    else:
        dirs = args.getlist("sort_dir")
        for n, key in enumerate(args.getlist("sort_key") or ["created_at"]):
            keys.append((key, dirs[n] if n < len(dirs) else (dirs[-1] if dirs else "desc")))
    for key, direction in keys:
        if key not in SORT_KEYS:
            raise HTTPError(
                400, f"Invalid sort key: {key}. It should be one of the following: {', '.join(SORT_KEYS)}."
            )
        if direction not in ("asc", "desc"):
            raise HTTPError(400, f"Invalid sort direction: {direction}")
    # Glance adds the id (and created_at) so the order is total and markers work.
    for extra in ("created_at", "id"):
        if extra not in (k for k, _ in keys):
            keys.append((extra, keys[-1][1]))
    return keys


def _filters(ctx: Ctx) -> list[Callable[[Image], bool]]:
    checks: list[Callable[[Image], bool]] = []
    args = ctx.request.args
    for key in ("created_at", "updated_at"):
        for spec in args.getlist(key):
            op, _, when = spec.partition(":")
            if op not in TIME_OPS or not when:
                raise HTTPError(400, f"Unable to filter by unknown operator '{op}'.")
            try:
                at = parse_iso(when)
            except ValueError:
                raise HTTPError(400, f"Invalid date format: {when}") from None
            # Glance compares stored (whole-second) times.
            checks.append(lambda i, k=key, f=TIME_OPS[op], t=at: f(int(getattr(i, k)), int(t)))
    for key in ("size_min", "size_max"):
        if key in args:
            try:
                bound = int(args[key])
            except ValueError:
                raise HTTPError(
                    400, f"Unable to filter on a range with a non-numeric value: {args[key]}"
                ) from None
            if key == "size_min":
                checks.append(lambda i, b=bound: i.size is not None and i.size >= b)
            else:
                checks.append(lambda i, b=bound: i.size is not None and i.size <= b)
    for tag in args.getlist("tag"):
        checks.append(lambda i, t=tag: t in i.tags)
    for key in ("protected", "os_hidden"):
        if key in args:
            if args[key] not in ("true", "false"):
                raise HTTPError(400, f"Invalid value '{args[key]}' for parameter '{key}': Expected boolean")
            checks.append(lambda i, k=key, v=args[key] == "true": getattr(i, k) is v)
    for key, value in args.items():
        if key in RESERVED:
            continue
        if value.startswith("in:") and key in ("id", "name", "status", "container_format", "disk_format"):
            wanted = {v.strip('"') for v in value[3:].split(",")}
            checks.append(lambda i, k=key, w=wanted: str(i.field(k)) in w)
        else:
            checks.append(lambda i, k=key, v=value: i.field(k) is not None and str(i.field(k)) == v)
    return checks


def list_images(cloud: FakeCloud, ctx: Ctx, region: Region, project: str) -> Response:
    args = ctx.request.args
    try:
        limit = int(args.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise HTTPError(400, "limit param must be an integer") from None
    if limit < 0:
        raise HTTPError(400, "limit param must be positive")
    limit = min(limit, MAX_LIMIT)
    visibility = args.get("visibility")
    if visibility not in (None, "public", "private", "shared", "community", "all"):
        raise HTTPError(400, f"Invalid visibility value: {visibility}")
    keys, checks = _sort(ctx), _filters(ctx)
    if "os_hidden" not in args:
        checks.append(lambda i: not i.os_hidden)

    def predicate(image: Image) -> bool:
        if cloud.gone(image) or not cloud.visible(
            image, project, community=visibility in ("community", "all")
        ):
            return False
        if visibility in (None,) and image.visibility == "community" and image.owner != project:
            return False
        if visibility not in (None, "all") and image.visibility != visibility:
            return False
        return all(check(image) for check in checks)

    cache_key = (
        project,
        tuple(sorted((k, tuple(v)) for k, v in args.lists() if k not in ("limit", "marker"))),
    )
    listing = region.listing(cache_key, predicate, keys)
    start = 0
    marker = args.get("marker")
    if marker:
        found = region.images.get(marker)
        if found is None or cloud.gone(found) or not cloud.visible(found, project, community=True):
            raise HTTPError(400, f"No image found with ID {marker}")
        start = listing.after(found)
    page = listing.images[start : start + limit]
    query = [(k, v) for k, vs in args.lists() if k not in ("limit", "marker") for v in vs]
    body: dict[str, Any] = {
        "images": [image_view(i) for i in page],
        "schema": "/v2/schemas/images",
        "first": "/v2/images" + (f"?{urlencode(query)}" if query else ""),
    }
    if page and len(page) == limit:
        body["next"] = "/v2/images?" + urlencode([*query, ("marker", page[-1].id), ("limit", limit)])
    return json_response(body)
