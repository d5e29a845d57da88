"""Deltacloud's wire shapes: XML as the real server's Haml views wrote it, and
the 1.1 dictionary dialect of JSON.

Plain string building with explicit escaping: element order, single-quoted
attributes in alphabetical order and self-closing links are part of the
contract, and this is several times faster than a generic XML serializer
(performance-facts.md). These functions only translate data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson

from providers.base import Driver, Feature, HardwareProfile, Realm

XML_PROLOG = "<?xml version='1.0' encoding='utf-8' ?>\n"
UNITS = {"memory": "MB", "storage": "GB", "architecture": "label", "cpu": "count"}


def esc(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def attr(text: Any) -> str:
    return esc(text).replace("'", "&#39;").replace('"', "&quot;")


def cdata(text: Any) -> str:
    return "<![CDATA[" + str(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def seg(object_id: str) -> str:
    """An id as one URL path segment."""
    return quote(object_id, safe="~@!$&'()*+,=:")


def dump_json(data: Any) -> bytes:
    return orjson.dumps(data)


@dataclass(frozen=True)
class Urls:
    """Absolute URLs built from the request's scheme and host."""

    base: str

    def collection(self, name: str) -> str:
        return f"{self.base}/api/{name}"

    def member(self, collection: str, object_id: str) -> str:
        return f"{self.base}/api/{collection}/{seg(object_id)}"


# -- images ----------------------------------------------------------------------


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


def image_xml(img: ImageRow, urls: Urls, can_destroy: bool, indent: str = "") -> str:
    i = indent
    href = urls.member("images", img.external_id)
    out = [
        f"{i}<image href='{attr(href)}' id='{attr(img.external_id)}'>",
        f"{i}  <name>{esc(img.name)}</name>",
        f"{i}  <description>{esc(img.description or '')}</description>",
        f"{i}  <owner_id>{esc(img.owner_id)}</owner_id>",
        f"{i}  <architecture>{esc(img.architecture)}</architecture>",
        f"{i}  <state>{esc(img.state)}</state>",
    ]
    if img.creation_time is not None:
        out.append(f"{i}  <creation_time>{esc(img.creation_time)}</creation_time>")
    if img.hardware_profiles is not None:
        out.append(f"{i}  <hardware_profiles>")
        for hwp in img.hardware_profiles:
            out.append(
                f"{i}    <hardware_profile href='{attr(urls.member('hardware_profiles', hwp))}' "
                f"id='{attr(hwp)}' rel='hardware_profile'></hardware_profile>"
            )
        out.append(f"{i}  </hardware_profiles>")
    if img.failure_reason:
        # Not in Deltacloud's views: why the provider (or the deadline) failed it.
        out.append(f"{i}  <state_reason>{esc(img.failure_reason)}</state_reason>")
    out.append(f"{i}  <root_type>{esc(img.root_type)}</root_type>")
    out.append(f"{i}  <actions>")
    out.append(
        f"{i}    <link href='{attr(urls.collection('instances'))};image_id={attr(seg(img.external_id))}' "
        "method='post' rel='create_instance' />"
    )
    if can_destroy:
        out.append(f"{i}    <link href='{attr(href)}' method='delete' rel='destroy_image' />")
    out.append(f"{i}  </actions>")
    out.append(f"{i}</image>")
    return "\n".join(out)


def image_dict(img: ImageRow, urls: Urls) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": img.external_id,
        "href": urls.member("images", img.external_id),
        "name": img.name,
        "description": img.description,
        "owner": img.owner_id,
        "architecture": img.architecture,
        "state": img.state,
        "root_type": img.root_type,
        "creation_time": img.creation_time,
        "hardware_profiles": [
            {"id": h, "href": urls.member("hardware_profiles", h), "rel": "hardware_profile"}
            for h in img.hardware_profiles or ()
        ],
    }
    if img.failure_reason:
        data["state_reason"] = img.failure_reason
    return data


def images_xml(rows: Iterable[ImageRow], urls: Urls, can_destroy: bool) -> bytes:
    body = "\n".join(image_xml(r, urls, can_destroy, "  ") for r in rows)
    return f"{XML_PROLOG}<images>\n{body + chr(10) if body else ''}</images>\n".encode()


def image_show_xml(row: ImageRow, urls: Urls, can_destroy: bool) -> bytes:
    return f"{XML_PROLOG}{image_xml(row, urls, can_destroy)}\n".encode()


# -- instances -------------------------------------------------------------------


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


@dataclass(frozen=True)
class InstanceOptions:
    """What the driver lets clients do with instances (shapes the action links)."""

    can_create_image: bool
    can_run: bool
    auth_feature: str | None


def instance_links(inst: InstanceRow, urls: Urls, opts: InstanceOptions) -> list[tuple[str, str, str]]:
    """(rel, method, href) per advertised action, in Deltacloud's order."""
    href = urls.member("instances", inst.external_id)
    links = []
    for action in inst.actions:
        if action == "destroy":
            links.append(("destroy", "delete", href))
        else:
            links.append((action, "post", f"{href}/{action}"))
    if opts.can_run:
        links.append(("run", "post", f"{href}/run;id={seg(inst.external_id)}"))
    if opts.can_create_image and not inst.create_image_refusal:
        links.append(
            ("create_image", "post", f"{urls.collection('images')};instance_id={seg(inst.external_id)}")
        )
    return links


def _addresses_xml(tag: str, addresses: Sequence[Mapping[str, str]]) -> str:
    inner = "".join(
        f"<address type='{attr(a.get('type', 'hostname'))}'>{esc(a['address'])}</address>" for a in addresses
    )
    return f"<{tag}>{inner}</{tag}>"


def instance_xml(inst: InstanceRow, urls: Urls, opts: InstanceOptions, indent: str = "") -> str:
    i = indent
    out = [
        f"{i}<instance href='{attr(urls.member('instances', inst.external_id))}' "
        f"id='{attr(inst.external_id)}'>",
        f"{i}  <name>{esc(inst.name)}</name>",
        f"{i}  <owner_id>{esc(inst.owner_id)}</owner_id>",
    ]
    if inst.image_id:
        out.append(
            f"{i}  <image href='{attr(urls.member('images', inst.image_id))}' "
            f"id='{attr(inst.image_id)}'></image>"
        )
    if inst.realm_id:
        out.append(
            f"{i}  <realm href='{attr(urls.member('realms', inst.realm_id))}' "
            f"id='{attr(inst.realm_id)}'></realm>"
        )
    out.append(f"{i}  <state>{esc(inst.state)}</state>")
    if inst.hardware_profile_id:
        hwp_href = urls.member("hardware_profiles", inst.hardware_profile_id)
        out.append(f"{i}  <hardware_profile href='{attr(hwp_href)}' id='{attr(inst.hardware_profile_id)}'>")
        for name, value in inst.hardware_profile_overrides:
            out.append(
                f"{i}    <property kind='fixed' name='{attr(name)}' "
                f"unit='{attr(UNITS.get(name, ''))}' value='{attr(value)}'></property>"
            )
        out.append(f"{i}  </hardware_profile>")
    out.append(f"{i}  <actions>")
    for rel, method, href in instance_links(inst, urls, opts):
        out.append(f"{i}    <link href='{attr(href)}' method='{method}' rel='{rel}' />")
    out.append(f"{i}  </actions>")
    if inst.launch_time:
        out.append(f"{i}  <launch_time>{esc(inst.launch_time)}</launch_time>")
    out.append(f"{i}  {_addresses_xml('public_addresses', inst.public_addresses)}")
    out.append(f"{i}  {_addresses_xml('private_addresses', inst.private_addresses)}")
    volumes = "".join(
        f"<storage_volume href='{attr(urls.member('storage_volumes', v))}' id='{attr(v)}'></storage_volume>"
        for v in inst.storage_volumes
    )
    out.append(f"{i}  <storage_volumes>{volumes}</storage_volumes>")
    if opts.auth_feature:
        out.append(f"{i}  <authentication type='{attr(opts.auth_feature)}'>")
        if inst.keyname is not None and opts.auth_feature == "key":
            out += [f"{i}    <login>", f"{i}      <keyname>{esc(inst.keyname)}</keyname>", f"{i}    </login>"]
        out.append(f"{i}  </authentication>")
    if inst.network_interfaces is not None:
        nics = "".join(
            f"<network_interface href='{attr(urls.member('network_interfaces', n))}' "
            f"id='{attr(n)}'></network_interface>"
            for n in inst.network_interfaces
        )
        out.append(f"{i}  <network_interfaces>{nics}</network_interfaces>")
    out.append(f"{i}</instance>")
    return "\n".join(out)


def instance_dict(inst: InstanceRow, urls: Urls, opts: InstanceOptions) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": inst.external_id,
        "href": urls.member("instances", inst.external_id),
        "name": inst.name,
        "state": inst.state,
        "owner": inst.owner_id,
    }
    if inst.image_id:
        data["image"] = {"href": urls.member("images", inst.image_id), "id": inst.image_id, "rel": "image"}
    if inst.realm_id:
        data["realm"] = {"href": urls.member("realms", inst.realm_id), "id": inst.realm_id, "rel": "realm"}
    data["actions"] = [
        {"href": href, "rel": rel, "method": method} for rel, method, href in instance_links(inst, urls, opts)
    ]
    if inst.hardware_profile_id:
        data["hardware_profile"] = {
            "id": inst.hardware_profile_id,
            "href": urls.member("hardware_profiles", inst.hardware_profile_id),
            "rel": "hardware_profile",
            "properties": dict(inst.hardware_profile_overrides),
        }
    data["public_addresses"] = [
        {"address": a["address"], "type": a.get("type", "hostname")} for a in inst.public_addresses
    ]
    data["private_addresses"] = [
        {"address": a["address"], "type": a.get("type", "hostname")} for a in inst.private_addresses
    ]
    if opts.can_create_image and not inst.create_image_refusal:
        data["create_image"] = True
    if inst.launch_time:
        data["create_time"] = inst.launch_time
    data["storage_volumes"] = [
        {"id": v, "href": urls.member("storage_volumes", v), "rel": "storage_volume"}
        for v in inst.storage_volumes
    ]
    if opts.auth_feature:
        data["authentication_type"] = opts.auth_feature
        if inst.keyname is not None:
            data["authentication"] = {"keyname": inst.keyname}
    return data


def instances_xml(rows: Iterable[InstanceRow], urls: Urls, opts: InstanceOptions) -> bytes:
    body = "\n".join(instance_xml(r, urls, opts, "  ") for r in rows)
    return f"{XML_PROLOG}<instances>\n{body + chr(10) if body else ''}</instances>\n".encode()


def instance_show_xml(row: InstanceRow, urls: Urls, opts: InstanceOptions) -> bytes:
    return f"{XML_PROLOG}{instance_xml(row, urls, opts)}\n".encode()


def run_xml(instance_id: str, urls: Urls, public_address: str, command: str, output: str) -> bytes:
    return (
        f"{XML_PROLOG}<instance href='{attr(urls.member('instances', instance_id))}' "
        f"id='{attr(instance_id)}'>\n  <public_address>{esc(public_address)}</public_address>\n"
        f"  <command>{esc(command)}</command>\n  <output>{esc(output)}</output>\n</instance>\n"
    ).encode()


# -- hardware profiles, realms, states, drivers ------------------------------------


def hardware_profile_xml(hwp: HardwareProfile, urls: Urls, indent: str = "") -> str:
    i = indent
    out = [
        f"{i}<hardware_profile href='{attr(urls.member('hardware_profiles', hwp.id))}' id='{attr(hwp.id)}'>",
        f"{i}  <name>{esc(hwp.id)}</name>",
    ]
    for p in hwp.properties:
        attrs = f"kind='{p.kind}' name='{attr(p.name)}' unit='{attr(p.unit)}' value='{attr(p.value)}'"
        if p.kind == "fixed":
            out.append(f"{i}  <property {attrs} />")
            continue
        out.append(f"{i}  <property {attrs}>")
        out.append(
            f"{i}    <param href='{attr(urls.collection('instances'))}' method='post' "
            f"name='hwp_{attr(p.name)}' operation='create' />"
        )
        if p.kind == "range":
            out.append(f"{i}    <range first='{attr(p.first)}' last='{attr(p.last)}' />")
        else:
            out.append(f"{i}    <enum>")
            out += [f"{i}      <entry value='{attr(v)}' />" for v in p.values]
            out.append(f"{i}    </enum>")
        out.append(f"{i}  </property>")
    out.append(f"{i}</hardware_profile>")
    return "\n".join(out)


def hardware_profile_dict(hwp: HardwareProfile, urls: Urls) -> dict[str, Any]:
    props = []
    for p in hwp.properties:
        prop: dict[str, Any] = {"kind": p.kind, "name": p.name, "unit": p.unit, "value": p.value}
        if p.kind == "range":
            prop["range"] = {"first": p.first, "last": p.last}
        elif p.kind == "enum":
            prop["enum"] = list(p.values)
        props.append(prop)
    return {
        "id": hwp.id,
        "href": urls.member("hardware_profiles", hwp.id),
        "name": hwp.id,
        "properties": props,
    }


def realm_xml(realm: Realm, urls: Urls, indent: str = "") -> str:
    i = indent
    return "\n".join(
        [
            f"{i}<realm href='{attr(urls.member('realms', realm.id))}' id='{attr(realm.id)}'>",
            f"{i}  <name>{esc(realm.name)}</name>",
            f"{i}  <state>{esc(realm.state)}</state>",
            f"{i}  <limit>{esc(realm.limit)}</limit>",
            f"{i}</realm>",
        ]
    )


def realm_dict(realm: Realm, urls: Urls) -> dict[str, Any]:
    return {
        "id": realm.id,
        "href": urls.member("realms", realm.id),
        "name": realm.name,
        "state": realm.state,
        "limit": realm.limit,
    }


def collection_xml(tag: str, items: Iterable[str]) -> bytes:
    body = "\n".join(items)
    return f"{XML_PROLOG}<{tag}>\n{body + chr(10) if body else ''}</{tag}>\n".encode()


def member_xml(item: str) -> bytes:
    return f"{XML_PROLOG}{item}\n".encode()


def instance_states_xml(driver: type[Driver]) -> bytes:
    out = ["<states>"]
    for state, transitions in driver.instance_states:
        out.append(f"  <state name='{attr(state)}'>")
        for t in transitions:
            how = f"action='{attr(t.action)}'" if t.action else "auto='true'"
            out.append(f"    <transition {how} to='{attr(t.to)}'></transition>")
        out.append("  </state>")
    out.append("</states>")
    return ("\n".join(out) + "\n").encode()


def instance_states_data(driver: type[Driver]) -> list[dict[str, Any]]:
    return [
        {
            "name": state,
            "transitions": [
                {"to": t.to, "action": t.action} if t.action else {"to": t.to, "auto": "true"}
                for t in transitions
            ],
        }
        for state, transitions in driver.instance_states
    ]


def drivers_xml(drivers: Sequence[type[Driver]], urls: Urls) -> bytes:
    out = ["<drivers>"]
    for d in drivers:
        out.append(f"  <driver href='{attr(urls.member('drivers', d.name))}' id='{attr(d.name)}'>")
        out.append(f"    <name>{esc(d.label)}</name>")
        out += [f"    <provider id='{attr(p)}'></provider>" for p in d.providers]
        out.append("  </driver>")
    out.append("</drivers>")
    return ("\n".join(out) + "\n").encode()


def driver_xml(d: type[Driver], urls: Urls) -> bytes:
    out = [
        f"<driver href='{attr(urls.member('drivers', d.name))}' id='{attr(d.name)}'>",
        f"  <name>{esc(d.label)}</name>",
    ]
    out += [f"  <provider id='{attr(p)}'></provider>" for p in d.providers]
    out.append("</driver>")
    return ("\n".join(out) + "\n").encode()


def driver_dict(d: type[Driver]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if d.providers:
        data["providers"] = list(d.providers)
    data["name"] = d.label
    return data


# -- the /api entry point -----------------------------------------------------------


def _feature_params(f: Feature) -> list[str]:
    return [f"{p}:string:optional" for p in f.params]


def api_xml(
    links: Sequence[tuple[str, Sequence[Feature]]],
    urls: Urls,
    driver: str,
    provider: str | None,
    version: str,
) -> bytes:
    provider_attr = f" provider='{attr(provider)}'" if provider else ""
    out = [f"<api driver='{attr(driver)}'{provider_attr} version='{attr(version)}'>"]
    for rel, features in links:
        out.append(f"  <link href='{attr(urls.collection(rel))}' rel='{attr(rel)}'>")
        for f in features:
            out.append(f"    <feature name='{attr(f.name)}' rel='{attr(f.operation)}'>")
            out += [f"      <param name='{attr(p)}' />" for p in f.params]
            out += [f"      <constraint name='{attr(k)}'>{esc(v)}</constraint>" for k, v in f.constraints]
            out.append("    </feature>")
        out.append("  </link>")
    out.append("</api>")
    return ("\n".join(out) + "\n").encode()


def api_dict(
    links: Sequence[tuple[str, Sequence[Feature]]],
    urls: Urls,
    driver: str,
    provider: str | None,
    version: str,
) -> dict[str, Any]:
    return {
        "api": {
            "version": version,
            "driver": driver,
            "provider": provider or "default",
            "links": [
                {
                    "rel": rel,
                    "href": urls.collection(rel),
                    "features": [
                        [
                            {
                                "name": f.name,
                                "rel": f.operation,
                                "params": _feature_params(f),
                                "constraints": dict(f.constraints),
                            }
                        ]
                        for f in features
                    ],
                }
                for rel, features in links
            ],
        }
    }


# -- errors --------------------------------------------------------------------------


def error_xml(
    status: int,
    url: str,
    driver: str,
    provider: str,
    message: str,
    params: Sequence[tuple[str, str]],
) -> bytes:
    out = [
        XML_PROLOG + f"<error status='{status}' url='{attr(url)}'>",
        f"  <backend driver='{attr(driver)}' provider='{attr(provider)}'></backend>",
        f"  <code>{status}</code>",
        f"  <message>{cdata(message)}</message>",
        "  <backtrace>",
        f"    {cdata('')}",
        "  </backtrace>",
        "  <request>",
    ]
    out += [f"    <param name='{attr(k)}'>{cdata(v)}</param>" for k, v in params]
    out += ["  </request>", "</error>"]
    return ("\n".join(out) + "\n").encode()


def error_json(status: int, message: str, error_class: str) -> bytes:
    return dump_json({"code": status, "message": message, "error": error_class})
