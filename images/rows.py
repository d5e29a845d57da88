"""Plain rows the selectors return and the representations read.

Named tuples in column order, so a ``values_list(*FIELDS)`` row becomes one
with ``_make`` and nothing is built per field. They belong to no layer: the
selectors (database side) and the API (wire side) both import them.
"""

from __future__ import annotations

from typing import NamedTuple


class ImageRow(NamedTuple):
    external_id: str
    name: str
    description: str | None
    owner_id: str
    architecture: str
    state: str
    creation_time: str | None
    hardware_profiles: list[str] | None
    root_type: str
    status: str
    failure_reason: str


IMAGE_ROW_FIELDS = ImageRow._fields


class InstanceRow(NamedTuple):
    external_id: str
    name: str
    owner_id: str
    image_id: str
    realm_id: str
    state: str
    hardware_profile_id: str
    hardware_profile_overrides: list[list[str]]
    actions: list[str]
    create_image_refusal: str
    public_addresses: list[dict[str, str]]
    private_addresses: list[dict[str, str]]
    storage_volumes: list[str]
    keyname: str | None
    launch_time: str | None
    network_interfaces: list[str] | None


INSTANCE_ROW_FIELDS = InstanceRow._fields
