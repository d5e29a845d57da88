"""The JSON shapes of the Deltacloud API: the 1.1 dictionary dialect of its
documents (``images/api/representations/`` writes them), the error document
and the request bodies.

Plain data (JSON Schema 2020-12, as OpenAPI 3.1 uses it), registered in the
document only when an operation refers to it (``images/api/schema.py``).
The shapes follow the real server's answers in ``tests/golden/``; the tests
validate live responses against them, so a shape that drifts fails there.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> Schema:
    return ref("schemas", name)


STR: Schema = {"type": "string"}
NULLABLE_STR: Schema = {"type": ["string", "null"]}
URL: Schema = {"type": "string", "format": "uri"}
# Unicode "Cc" characters, which names refuse (descriptions allow tab, CR and LF).
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
# Ids and filter values: what the API edge accepts (longer ones, or control characters, are a 400).
ID_MAX_LENGTH = 255
ID: Schema = {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": NO_CONTROL}
TEXT: Schema = {"type": "string", "maxLength": ID_MAX_LENGTH, "pattern": NO_CONTROL}
NO_CONTROL_BUT_WHITESPACE = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


def obj(
    properties: dict[str, Schema], required: tuple[str, ...] | None = None, closed: bool = True
) -> Schema:
    """An object; every property required unless ``required`` says otherwise."""
    out: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }
    if closed:
        out["additionalProperties"] = False
    return out


def link(rel: str) -> Schema:
    return obj({"id": STR, "href": URL, "rel": {"const": rel}})


def array_of(name: str) -> Schema:
    return {"type": "array", "items": schema_ref(name)}


def member(key: str, name: str) -> Schema:
    return obj({key: schema_ref(name)})


IMAGE = obj(
    {
        "id": STR,
        "href": URL,
        "name": STR,
        "description": {**NULLABLE_STR, "description": "null when the provider has none"},
        "owner": {**STR, "description": "The owner id (`owner_id` in XML and in the filter)"},
        "architecture": STR,
        "state": {**STR, "description": "The provider's own state word (`available`, `AVAILABLE`, ...)"},
        "root_type": STR,
        "creation_time": NULLABLE_STR,
        "hardware_profiles": {"type": "array", "items": schema_ref("HardwareProfileLink")},
        "state_reason": {
            **STR,
            "description": "Why the provider (or the deadline) failed the image; deltaweb's addition",
        },
    },
    required=(
        "id",
        "href",
        "name",
        "description",
        "owner",
        "architecture",
        "state",
        "root_type",
        "creation_time",
        "hardware_profiles",
    ),
)

IMAGE_COLLECTION = obj(
    {
        "images": array_of("Image"),
        "next": {
            **URL,
            "description": 'With `limit`: the next page\'s URL, as in the `Link: <...>; rel="next"` header; '
            "absent on the last page",
        },
        "changes_token": {
            **STR,
            "description": "With `changes_since`: the token to ask for the changes after this answer",
        },
    },
    required=("images",),
    # Deltacloud clients read `images` only; later additions must not break validation.
    closed=False,
)

ADDRESS = obj({"address": STR, "type": STR})

ACTION = obj({"href": URL, "rel": STR, "method": {"enum": ["post", "delete"]}})

INSTANCE = obj(
    {
        "id": STR,
        "href": URL,
        "name": STR,
        "state": STR,
        "owner": STR,
        "image": link("image"),
        "realm": link("realm"),
        "actions": {"type": "array", "items": schema_ref("Action")},
        "hardware_profile": obj(
            {
                "id": STR,
                "href": URL,
                "rel": {"const": "hardware_profile"},
                "properties": {"type": "object", "additionalProperties": STR},
            }
        ),
        "public_addresses": {"type": "array", "items": schema_ref("Address")},
        "private_addresses": {"type": "array", "items": schema_ref("Address")},
        "create_image": {"const": True},
        "create_time": STR,
        "storage_volumes": {"type": "array", "items": link("storage_volume")},
        "authentication_type": STR,
        "authentication": obj({"keyname": STR}),
    },
    required=("id", "href", "name", "state", "owner", "actions", "public_addresses", "private_addresses"),
)

RUN_RESULT = obj(
    {
        "instance": obj(
            {"id": STR, "href": URL, "public_address": STR, "command": STR, "output": STR},
        )
    }
)

HARDWARE_PROPERTY = obj(
    {
        "kind": {"enum": ["fixed", "range", "enum"]},
        "name": STR,
        "unit": STR,
        "value": STR,
        "range": obj({"first": STR, "last": STR}),
        "enum": {"type": "array", "items": STR},
    },
    required=("kind", "name", "unit", "value"),
)

HARDWARE_PROFILE = obj(
    {"id": STR, "href": URL, "name": STR, "properties": array_of("HardwareProperty")},
)

REALM = obj({"id": STR, "href": URL, "name": STR, "state": STR, "limit": STR})

INSTANCE_STATE = obj(
    {
        "name": STR,
        "transitions": {
            "type": "array",
            "items": {
                "oneOf": [
                    obj({"to": STR, "action": STR}),
                    obj({"to": STR, "auto": {"const": "true"}}),
                ]
            },
        },
    }
)

DRIVER = obj(
    {"providers": {"type": "array", "items": STR}, "name": STR, "id": STR},
    required=("name",),
)

FEATURE = obj(
    {
        "name": STR,
        "rel": STR,
        "params": {"type": "array", "items": {**STR, "pattern": "^[^:]+:string:optional$"}},
        "constraints": {"type": "object", "additionalProperties": STR},
    }
)

API_ENTRY_POINT = obj(
    {
        "api": obj(
            {
                "version": STR,
                "driver": STR,
                "provider": STR,
                "links": {
                    "type": "array",
                    "items": obj(
                        {
                            "rel": STR,
                            "href": URL,
                            # Deltacloud 1.1 wraps each feature in a list of its own.
                            "features": {"type": "array", "items": array_of("Feature")},
                        }
                    ),
                },
            }
        )
    }
)

ERROR = obj(
    {
        "code": {"type": "integer", "minimum": 400, "maximum": 599},
        "message": STR,
        "error": {**STR, "description": "The Ruby exception class Deltacloud clients read"},
    }
)

IMAGE_CREATE_BODY: Schema = {
    "type": "object",
    "properties": {
        "instance_id": {**ID, "description": "The instance to image", "examples": ["inst1"]},
        "name": {
            "type": "string",
            "description": "The new image's name (default: the provider's choice); at most the driver's "
            "limit (128 for most), no control characters",
            "maxLength": 128,
            "pattern": NO_CONTROL,
        },
        "description": {"type": "string", "maxLength": 1024, "pattern": NO_CONTROL_BUT_WHITESPACE},
    },
    "required": ["instance_id"],
}

INSTANCE_CREATE_BODY: Schema = {
    "type": "object",
    "properties": {
        "image_id": ID,
        "name": {"type": "string"},
        "realm_id": {"type": "string"},
        "hwp_id": {"type": "string"},
        "keyname": {"type": "string"},
        "hwp_cpu": {"type": "string"},
        "hwp_memory": {"type": "string"},
        "hwp_storage": {"type": "string"},
    },
    "required": ["image_id"],
}

RUN_BODY: Schema = {
    "type": "object",
    "properties": {"cmd": {"type": "string", "description": "The command to run over SSH"}},
}

SELECT_BODY: Schema = {
    "type": "object",
    "properties": {"driver": {"type": "string"}, "provider": {"type": "string"}},
}

SCHEMAS: dict[str, Schema] = {
    "ApiSelect": SELECT_BODY,
    "ImageCreate": IMAGE_CREATE_BODY,
    "InstanceCreate": INSTANCE_CREATE_BODY,
    "InstanceRun": RUN_BODY,
    "ApiEntryPoint": API_ENTRY_POINT,
    "Feature": FEATURE,
    "Image": IMAGE,
    "ImageCollection": IMAGE_COLLECTION,
    "ImageMember": member("image", "Image"),
    "HardwareProfileLink": link("hardware_profile"),
    "Address": ADDRESS,
    "Action": ACTION,
    "Instance": INSTANCE,
    "InstanceCollection": obj({"instances": array_of("Instance")}),
    "InstanceMember": member("instance", "Instance"),
    "InstanceRunResult": RUN_RESULT,
    "HardwareProperty": HARDWARE_PROPERTY,
    "HardwareProfile": HARDWARE_PROFILE,
    "HardwareProfileCollection": obj({"hardware_profiles": array_of("HardwareProfile")}),
    "HardwareProfileMember": member("hardware_profile", "HardwareProfile"),
    "Realm": REALM,
    "RealmCollection": obj({"realms": array_of("Realm")}),
    "RealmMember": member("realm", "Realm"),
    "InstanceStates": array_of("InstanceState"),
    "InstanceState": INSTANCE_STATE,
    "Driver": DRIVER,
    "DriverCollection": {
        "type": "object",
        "description": "The drivers by name",
        "additionalProperties": schema_ref("Driver"),
    },
    "DriverMember": member("driver", "Driver"),
    "Error": ERROR,
    "XmlDocument": {
        "type": "string",
        "description": "A Deltacloud 1.1.3 XML document, byte for byte as the real server wrote it "
        "(single-quoted attributes, the same element order).",
        # An optional prolog, then the root element.
        "pattern": "^(<\\?xml [^>]*\\?>\\n)?<[a-z_]+[ >]",
    },
    "HtmlPage": {"type": "string", "description": "A page for browsers", "pattern": "^<!DOCTYPE html>"},
}
