"""What each route of the API does, as a declarative table for the OpenAPI document.

drf-spectacular walks the real URL configuration; ``images/api/schema.py``
looks every (path, method) it finds up here. A route without an entry, or an
entry without a route, stops the generation, so the document and the routes
cannot drift apart silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from images.api.openapi.components import ID, IMAGE_FILTERS, INSTANCE_FILTERS, PAGINATION, TEXT, Schema

# Every route can answer these (and 406, without a body).
COMMON_ERRORS = (400, 401, 403, 429)
# Routes that may ask the provider.
PROVIDER_ERRORS = (501, 502, 504)
BODY_ERRORS = (409, 413, 415)


@dataclass(frozen=True)
class Success:
    """A 2xx/3xx answer: its JSON schema (None: no body) and response headers."""

    status: int
    description: str
    json: str | None = None
    headers: tuple[str, ...] = ()
    formats: tuple[str, ...] = ("application/xml", "application/json", "text/html")
    links: dict[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    tag: str
    success: tuple[Success, ...]
    errors: tuple[int, ...] = COMMON_ERRORS
    parameters: tuple[Schema, ...] = ()
    body: str | None = None  # a schema in components.SCHEMAS
    description: str = ""
    needs_credentials: bool = True
    cacheable: bool = False

    @property
    def statuses(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.errors)))


CACHED = ("ETag", "Cache-Control")
LISTED = (*CACHED, "X-Deltaweb-Synced-At")


def read(status_doc: str, json: str, headers: tuple[str, ...] = CACHED, **links: Schema) -> Success:
    return Success(200, status_doc, json, headers, links=links)


MEMBER_BY_ID = "$response.body#/{key}/id"


def member_links(collection: str, key: str, show: str, delete: str | None) -> dict[str, Schema]:
    """OpenAPI links from a created resource (JSON body) to its show and delete."""
    links = {
        f"Get{key.title()}": {
            "operationId": show,
            "parameters": {"id": MEMBER_BY_ID.format(key=key)},
            "description": f"The {key} just created",
        }
    }
    if delete:
        links[f"Delete{key.title()}"] = {
            "operationId": delete,
            "parameters": {"id": MEMBER_BY_ID.format(key=key)},
            "description": f"Delete the {key} just created",
        }
    return links


def instance_action(name: str) -> Operation:
    return Operation(
        f"instances_{name}",
        f"{name.title()} an instance",
        "instances",
        (Success(202, f"Accepted: the {name} is under way; the instance as it is now", "InstanceMember"),),
        (*COMMON_ERRORS, 404, 405, *PROVIDER_ERRORS),
        description="Allowed only when the instance's `actions` list it (else 405, with its state).",
    )


FORM_ONLY = ("text/html",)
# A DELETE answered in HTML (a browser's form) sends the browser back to the list.
BACK_TO_LIST = Success(302, "Deleted; `format=html` (browsers): back to the collection", None, ("Location",))

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/api", "GET"): Operation(
        "api_entry_point",
        "The entry point: the collections and features of the request's driver",
        "api",
        (read("The entry point", "ApiEntryPoint"),),
        parameters=({"$ref": "force_auth"},),
        description="Also at `/api/`. Matrix parameters on it choose the account for every URL "
        "below: `/api;driver=ec2;provider=us-east-1/images`.",
        needs_credentials=False,
        cacheable=True,
    ),
    ("/api", "POST"): Operation(
        "api_select_driver",
        "Choose a driver/provider: redirects to `/api;driver=...;provider=...`",
        "api",
        (Success(301, "Moved: the entry point of the chosen driver and provider", None, ("Location",), ()),),
        body="ApiSelect",
        needs_credentials=False,
    ),
    ("/api/images", "GET"): Operation(
        "images_list",
        "The images of the request's account, from the cache",
        "images",
        (
            read(
                "The images (one page with `limit`)",
                "ImageCollection",
                (*LISTED, "Link", "X-Deltaweb-Changes-Token"),
            ),
        ),
        (*COMMON_ERRORS, 410, 503),
        parameters=(*IMAGE_FILTERS, *PAGINATION),
        description="Filters are exact and ANDed. Without `limit` the whole list, as Deltacloud answered.",
        cacheable=True,
    ),
    ("/api/images", "POST"): Operation(
        "images_create",
        "Create an image from an instance",
        "images",
        (
            Success(
                201,
                "Created: the image, usually `pending`; a worker follows it to its end state",
                "ImageMember",
                ("Location", *CACHED),
                links=member_links("images", "image", "images_retrieve", "images_destroy"),
            ),
        ),
        (*COMMON_ERRORS, 404, *BODY_ERRORS, *PROVIDER_ERRORS),
        body="ImageCreate",
        description="The parameters may also come in the query string or as matrix parameters "
        "(`/api/images;instance_id=X`, the link instances advertise). Drivers whose provider gives "
        "no id at once (FGCP) answer `PENDING-<name>`, a provisional id that keeps working.",
    ),
    ("/api/images/new", "GET"): Operation(
        "images_new_form",
        "The browser form for creating an image",
        "images",
        (Success(200, "The form", None, CACHED, FORM_ONLY),),
        (*COMMON_ERRORS, 404),
        parameters=({"name": "instance_id", "in": "query", "required": True, "schema": ID},),
    ),
    ("/api/images/{id}", "GET"): Operation(
        "images_retrieve",
        "One image",
        "images",
        (read("The image", "ImageMember", (*LISTED, "Content-Location")),),
        (*COMMON_ERRORS, 404, *PROVIDER_ERRORS),
        description="An id the cache does not know is looked up at the provider once.",
        cacheable=True,
    ),
    ("/api/images/{id}", "DELETE"): Operation(
        "images_destroy",
        "Delete an image",
        "images",
        (
            Success(204, "Deleted: the image is hidden at once and a worker deletes it at the provider"),
            BACK_TO_LIST,
        ),
        (*COMMON_ERRORS, 404, 409, *PROVIDER_ERRORS),
        description="Also `POST` with `_method=delete` from a form; browsers are redirected to the list.",
    ),
    ("/api/instances", "GET"): Operation(
        "instances_list",
        "The instances of the request's account, from the cache",
        "instances",
        (read("The instances", "InstanceCollection", LISTED),),
        (*COMMON_ERRORS, 503),
        parameters=tuple(INSTANCE_FILTERS),
        cacheable=True,
    ),
    ("/api/instances", "POST"): Operation(
        "instances_create",
        "Launch an instance from an image",
        "instances",
        (Success(201, "Created: the new instance", "InstanceMember", ("Location", *CACHED)),),
        (*COMMON_ERRORS, 404, *BODY_ERRORS, *PROVIDER_ERRORS),
        body="InstanceCreate",
    ),
    ("/api/instances/new", "GET"): Operation(
        "instances_new_form",
        "The browser form for launching an instance",
        "instances",
        (Success(200, "The form", None, CACHED, FORM_ONLY),),
        (*COMMON_ERRORS, 404),
        parameters=({"name": "image_id", "in": "query", "required": True, "schema": ID},),
    ),
    ("/api/instances/{id}", "GET"): Operation(
        "instances_retrieve",
        "One instance, with the actions its state allows",
        "instances",
        (read("The instance", "InstanceMember", LISTED),),
        (*COMMON_ERRORS, 404, *PROVIDER_ERRORS),
        cacheable=True,
    ),
    ("/api/instances/{id}", "DELETE"): Operation(
        "instances_destroy",
        "Destroy an instance",
        "instances",
        (Success(204, "Destroyed"), BACK_TO_LIST),
        (*COMMON_ERRORS, 404, 405, *PROVIDER_ERRORS),
    ),
    ("/api/instances/{id}/start", "POST"): instance_action("start"),
    ("/api/instances/{id}/stop", "POST"): instance_action("stop"),
    ("/api/instances/{id}/reboot", "POST"): instance_action("reboot"),
    ("/api/instances/{id}/run", "POST"): Operation(
        "instances_run",
        "Run a command on an instance",
        "instances",
        (read("The command's output", "InstanceRunResult", ()),),
        (*COMMON_ERRORS, 404, *BODY_ERRORS, *PROVIDER_ERRORS),
        body="InstanceRun",
    ),
    ("/api/hardware_profiles", "GET"): Operation(
        "hardware_profiles_list",
        "The driver's hardware profiles",
        "driver",
        (read("The hardware profiles", "HardwareProfileCollection"),),
        parameters=({"$ref": "force_auth"},),
        needs_credentials=False,
        cacheable=True,
    ),
    ("/api/hardware_profiles/{id}", "GET"): Operation(
        "hardware_profiles_retrieve",
        "One hardware profile",
        "driver",
        (read("The hardware profile", "HardwareProfileMember"),),
        (*COMMON_ERRORS, 404),
        parameters=({"$ref": "force_auth"},),
        needs_credentials=False,
        cacheable=True,
    ),
    ("/api/realms", "GET"): Operation(
        "realms_list",
        "The provider's realms (asked of the provider)",
        "driver",
        (Success(200, "The realms", "RealmCollection", ()),),
        (*COMMON_ERRORS, *PROVIDER_ERRORS),
        parameters=({"name": "id", "in": "query", "required": False, "schema": TEXT},),
    ),
    ("/api/realms/{id}", "GET"): Operation(
        "realms_retrieve",
        "One realm",
        "driver",
        (Success(200, "The realm", "RealmMember", ()),),
        (*COMMON_ERRORS, 404, *PROVIDER_ERRORS),
    ),
    ("/api/instance_states", "GET"): Operation(
        "instance_states",
        "The driver's instance state machine",
        "driver",
        (read("The states and their transitions", "InstanceStates"),),
        parameters=({"$ref": "force_auth"},),
        needs_credentials=False,
        cacheable=True,
    ),
    ("/api/drivers", "GET"): Operation(
        "drivers_list",
        "The drivers this server has",
        "driver",
        (read("The drivers", "DriverCollection"),),
        parameters=({"$ref": "force_auth"},),
        needs_credentials=False,
        cacheable=True,
    ),
    ("/api/drivers/{id}", "GET"): Operation(
        "drivers_retrieve",
        "One driver and its providers",
        "driver",
        (Success(200, "The driver", "DriverMember", ()),),
        (*COMMON_ERRORS, 404),
        parameters=({"$ref": "force_auth"},),
        needs_credentials=False,
    ),
}


def lookup(path: str, method: str) -> Operation:
    try:
        return OPERATIONS[(path, method)]
    except KeyError:
        raise LookupError(
            f"{method} {path} is routed but not described in images/api/openapi/operations.py"
        ) from None


def undescribed(routes: set[tuple[str, str]]) -> list[str]:
    """Entries of the table that no route serves any more."""
    return [f"{m} {p}" for p, m in sorted(OPERATIONS) if (p, m) not in routes]
