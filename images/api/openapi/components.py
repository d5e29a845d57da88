"""The shared OpenAPI components besides the JSON shapes (``shapes.py``):
parameters (format, account selection, filters, pages, the change feed),
response headers, and the error responses of each status.
"""

from __future__ import annotations

from images.api.openapi.shapes import ID, NO_CONTROL, SCHEMAS, STR, TEXT, URL, Schema, ref, schema_ref
from providers.registry import driver_names

__all__ = ["HEADERS", "ID", "PARAMETERS", "RESPONSES", "SCHEMAS", "ref", "schema_ref"]

# -- parameters ------------------------------------------------------------------------

FORMAT_PARAMETER: Schema = {
    "name": "format",
    "in": "query",
    "required": False,
    "description": "The answer's format; wins over `Accept`. Without both: XML. `Accept: */*` alone: HTML.",
    "schema": {"enum": ["xml", "json", "html"]},
}

PARAMETERS: dict[str, Schema] = {
    "format": FORMAT_PARAMETER,
    "driver": {
        "name": "X-Deltacloud-Driver",
        "in": "header",
        "required": False,
        "description": "Chooses the provider account by driver (also `/api;driver=NAME/...`); "
        "without it the user's default account serves the request",
        # The built-in mock driver first: tools that start from an enum's first value (the
        # fuzzer's boundary phase) then reach an account in a demo or test deployment.
        "schema": {"enum": sorted(driver_names(), key=lambda name: name != "mock")},
    },
    "provider": {
        "name": "X-Deltacloud-Provider",
        "in": "header",
        "required": False,
        "description": "Chooses the provider account by provider, e.g. an EC2 region "
        "(also `/api;provider=NAME/...`)",
        "schema": {"type": "string", "maxLength": 64, "pattern": NO_CONTROL},
    },
    "force_auth": {
        "name": "force_auth",
        "in": "query",
        "required": False,
        "description": "Verify the credentials although this resource needs none (401 when wrong)",
        "schema": {"type": "string"},
        "allowEmptyValue": True,
    },
}


def filter_parameter(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " Exact; an empty value still filters.",
        "schema": TEXT,
    }


IMAGE_FILTERS = [
    filter_parameter("id", "Only the image with this id."),
    filter_parameter("owner_id", "Only images of this owner; `self` is the account's own owner id."),
    filter_parameter("architecture", "Only images of this architecture (`x86_64`, `i386`, ...)."),
    filter_parameter(
        "state",
        "Only images in this state: the provider's word, case-insensitively, or the normalized state.",
    ),
]

SORT_KEYS = ("id", "name", "creation_time", "state")

PAGINATION = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "At most this many images: one keyset page (capped by the server). "
        'The next page is announced in `Link: <...>; rel="next"` (and `next` in JSON). '
        "Without it the answer is the whole list, as Deltacloud's was.",
        "schema": {"type": "integer", "minimum": 1},
    },
    {
        "name": "marker",
        "in": "query",
        "required": False,
        "description": "The id of the last image of the previous page; an unknown marker is a 400.",
        "schema": ID,
    },
    {
        "name": "sort",
        "in": "query",
        "required": False,
        "description": "The order of the list; `-` before the key for descending. Default `id`.",
        "schema": {"enum": [*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)]},
    },
    {
        "name": "changes_since",
        "in": "query",
        "required": False,
        "description": "A token from an earlier answer: only the images added, changed or gone since "
        "(gone ones with state `DELETED`), and a new token. Filters combine with it. A token older than "
        "the kept history is a 410: list everything again.",
        "schema": TEXT,
    },
]

INSTANCE_FILTERS = [
    filter_parameter("id", "Only the instance with this id."),
    filter_parameter("state", "Only instances in this state."),
    filter_parameter("realm_id", "Only instances in this realm."),
    filter_parameter("owner_id", "Only instances of this owner."),
]

# -- headers ---------------------------------------------------------------------------

HEADERS: dict[str, Schema] = {
    "ETag": {
        "required": True,
        "description": "MD5 of the body; send it in `If-None-Match` for a 304",
        "schema": STR,
    },
    "Cache-Control": {
        "required": True,
        "description": "`max-age=0, private, must-revalidate`",
        "schema": STR,
    },
    "X-Deltaweb-Synced-At": {
        "required": True,
        "description": "When the account's catalog was last synced (ISO 8601), or `never`",
        "schema": STR,
    },
    "Link": {
        "description": 'RFC 8288: `<URL>; rel="next"` when a `limit`ed page has a next one',
        "schema": STR,
    },
    "X-Deltaweb-Changes-Token": {
        "description": "With `changes_since`: the token for the next delta",
        "schema": STR,
    },
    "Location": {"required": True, "description": "The new resource's URL", "schema": URL},
    "Content-Location": {
        "description": "A provisional id (`PENDING-<name>`) shows the real image found since: its URL",
        "schema": URL,
    },
    "Retry-After": {"description": "Seconds to wait before asking again", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": '`Basic realm="<driver>-deltacloud@<host>"`', "schema": STR},
    "Allow": {"description": "The methods the resource allows", "schema": STR},
}

# Each error status, what it means in this API, and its response headers.
ERRORS: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("Bad input: a parameter, an unknown driver, a bad page or sort request", ()),
    401: ("No or wrong credentials", ("WWW-Authenticate",)),
    403: ("No provider account of this user matches the request's driver/provider", ()),
    404: ("No such resource", ()),
    405: ("The method or the instance action is not allowed (in the instance's state)", ("Allow",)),
    409: ("Conflict: a duplicate name, or an instance that cannot be imaged (the reason says why)", ()),
    410: ("The `changes_since` token is older than the kept history: list everything again", ()),
    413: ("The request body is too large", ()),
    415: ("The request body's media type is not form, multipart or JSON", ()),
    429: ("Too many failed logins from this user or address", ("Retry-After",)),
    501: ("The account's driver cannot do this", ()),
    502: ("The provider failed or rejected the account's stored credentials", ("Retry-After",)),
    503: ("The account's catalog has never been synced yet; a sync was started", ("Retry-After",)),
    504: ("The provider did not answer in time", ()),
}


def error_response(status: int) -> Schema:
    description, headers = ERRORS[status]
    response: Schema = {
        "description": description,
        "content": {
            "application/xml": {"schema": schema_ref("XmlDocument")},
            "application/json": {"schema": schema_ref("Error")},
            "text/html": {"schema": schema_ref("HtmlPage")},
        },
    }
    if headers:
        response["headers"] = {h: ref("headers", h) for h in headers}
    return response


RESPONSES: dict[str, Schema] = {
    **{f"Error{status}": error_response(status) for status in ERRORS},
    "NotAcceptable": {
        "description": "Nothing the `Accept` header or `format` asks for can be produced (no body)"
    },
    "NotModified": {
        "description": "`If-None-Match` matched the ETag (no body)",
        "headers": {"ETag": ref("headers", "ETag"), "Cache-Control": ref("headers", "Cache-Control")},
    },
}
