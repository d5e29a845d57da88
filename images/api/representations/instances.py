"""``instance``: the cached instances, with the action links their driver allows.

``env.options`` is an ``InstanceOptions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from images.api.representations.base import Env, Representation, line
from images.api.representations.images import destroy_action
from images.api.representations.markup import Urls, attr, esc, opening, seg
from images.rows import InstanceRow

UNITS = {"memory": "MB", "storage": "GB", "architecture": "label", "cpu": "count"}


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


def _ref_xml(tag: str, collection: str, object_id: str, urls: Urls) -> str:
    return f"<{tag} href='{attr(urls.member(collection, object_id))}' id='{attr(object_id)}'></{tag}>"


def _refs(rel: str, collection: str, ids: Sequence[str], urls: Urls) -> list[dict[str, str]]:
    return [{"id": v, "href": urls.member(collection, v), "rel": rel} for v in ids]


class Instances(Representation):
    plural, singular, title = "instances", "instance", "Instances"

    def xml(self, inst: InstanceRow, env: Env, indent: str = "") -> str:
        i, urls, opts = indent, env.urls, env.options
        out = [
            opening(i, "instance", urls.member("instances", inst.external_id), inst.external_id),
            f"{i}  <name>{esc(inst.name)}</name>",
            f"{i}  <owner_id>{esc(inst.owner_id)}</owner_id>",
        ]
        if inst.image_id:
            out.append(f"{i}  {_ref_xml('image', 'images', inst.image_id, urls)}")
        if inst.realm_id:
            out.append(f"{i}  {_ref_xml('realm', 'realms', inst.realm_id, urls)}")
        out.append(f"{i}  <state>{esc(inst.state)}</state>")
        if inst.hardware_profile_id:
            hwp_href = urls.member("hardware_profiles", inst.hardware_profile_id)
            out.append(
                f"{i}  <hardware_profile href='{attr(hwp_href)}' id='{attr(inst.hardware_profile_id)}'>"
            )
            for name, value in inst.hardware_profile_overrides:
                out.append(
                    f"{i}    <property kind='fixed' name='{attr(name)}' "
                    f"unit='{attr(UNITS.get(name, ''))}' value='{attr(value)}'></property>"
                )
            out.append(f"{i}  </hardware_profile>")
        out.append(f"{i}  <actions>")
        for rel, method, href in instance_links(inst, urls, opts):
            out.append(f"{i}    <link href='{attr(href)}' method='{attr(method)}' rel='{attr(rel)}' />")
        out.append(f"{i}  </actions>")
        if inst.launch_time:
            out.append(f"{i}  <launch_time>{esc(inst.launch_time)}</launch_time>")
        out.append(f"{i}  {_addresses_xml('public_addresses', inst.public_addresses)}")
        out.append(f"{i}  {_addresses_xml('private_addresses', inst.private_addresses)}")
        volumes = "".join(
            _ref_xml("storage_volume", "storage_volumes", v, urls) for v in inst.storage_volumes
        )
        out.append(f"{i}  <storage_volumes>{volumes}</storage_volumes>")
        if opts.auth_feature:
            out.append(f"{i}  <authentication type='{attr(opts.auth_feature)}'>")
            if inst.keyname is not None and opts.auth_feature == "key":
                out += [
                    f"{i}    <login>",
                    f"{i}      <keyname>{esc(inst.keyname)}</keyname>",
                    f"{i}    </login>",
                ]
            out.append(f"{i}  </authentication>")
        if inst.network_interfaces is not None:
            nics = "".join(
                _ref_xml("network_interface", "network_interfaces", n, urls) for n in inst.network_interfaces
            )
            out.append(f"{i}  <network_interfaces>{nics}</network_interfaces>")
        out.append(f"{i}</instance>")
        return "\n".join(out)

    def json(self, inst: InstanceRow, env: Env) -> dict[str, Any]:
        urls, opts = env.urls, env.options
        data: dict[str, Any] = {
            "id": inst.external_id,
            "href": urls.member("instances", inst.external_id),
            "name": inst.name,
            "state": inst.state,
            "owner": inst.owner_id,
        }
        if inst.image_id:
            data["image"] = {
                "href": urls.member("images", inst.image_id),
                "id": inst.image_id,
                "rel": "image",
            }
        if inst.realm_id:
            data["realm"] = {
                "href": urls.member("realms", inst.realm_id),
                "id": inst.realm_id,
                "rel": "realm",
            }
        data["actions"] = [
            {"href": href, "rel": rel, "method": method}
            for rel, method, href in instance_links(inst, urls, opts)
        ]
        if inst.hardware_profile_id:
            data["hardware_profile"] = {
                **_refs("hardware_profile", "hardware_profiles", [inst.hardware_profile_id], urls)[0],
                "properties": dict(inst.hardware_profile_overrides),
            }
        for key in ("public_addresses", "private_addresses"):
            data[key] = [
                {"address": a["address"], "type": a.get("type", "hostname")} for a in getattr(inst, key)
            ]
        if opts.can_create_image and not inst.create_image_refusal:
            data["create_image"] = True
        if inst.launch_time:
            data["create_time"] = inst.launch_time
        data["storage_volumes"] = _refs("storage_volume", "storage_volumes", inst.storage_volumes, urls)
        if opts.auth_feature:
            data["authentication_type"] = opts.auth_feature
            if inst.keyname is not None:
                data["authentication"] = {"keyname": inst.keyname}
        return data

    def entry(self, inst: InstanceRow, env: Env) -> dict[str, Any]:
        subtitle = f"{inst.external_id}, image {inst.image_id}, {inst.realm_id}"
        href = env.urls.member("instances", inst.external_id)
        return line(href, inst.name or inst.external_id, subtitle, inst.state)

    def page(self, inst: InstanceRow, env: Env) -> bytes:
        urls = env.urls
        fields = [
            ("Name", inst.name, None),
            ("Owner", inst.owner_id, None),
            ("Image", inst.image_id, urls.member("images", inst.image_id)),
            ("Realm", inst.realm_id, urls.member("realms", inst.realm_id)),
            ("State", inst.state, None),
            (
                "Hardware profile",
                inst.hardware_profile_id,
                urls.member("hardware_profiles", inst.hardware_profile_id),
            ),
        ]
        fields += [("Public address", a["address"], None) for a in inst.public_addresses]
        fields += [("Private address", a["address"], None) for a in inst.private_addresses]
        if inst.create_image_refusal:
            fields.append(("Imaging", inst.create_image_refusal, None))
        actions: list[dict[str, Any]] = []
        for rel, method, href in instance_links(inst, urls, env.options):
            if rel == "run":
                continue
            if rel == "create_image":
                new = f"{urls.collection('images')}/new?instance_id={seg(inst.external_id)}"
                actions.append({"label": "Create image…", "method": "get", "href": new})
            elif method == "delete":
                actions.append(destroy_action(href))
            else:
                actions.append({"label": rel.title(), "method": "post", "href": href})
        return env.page("member.html", f"Instance {inst.external_id}", fields=fields, actions=actions)


class RunResult(Representation):
    """The answer to ``POST /api/instances/<id>/run``: (id, address, command, output)."""

    plural, singular, title = "instances", "instance", "Run"

    def xml(self, item: tuple[str, str, str, str], env: Env, indent: str = "") -> str:
        instance_id, address, command, output = item
        return (
            f"{opening('', 'instance', env.urls.member('instances', instance_id), instance_id)}\n"
            f"  <public_address>{esc(address)}</public_address>\n"
            f"  <command>{esc(command)}</command>\n  <output>{esc(output)}</output>\n</instance>"
        )

    def json(self, item: tuple[str, str, str, str], env: Env) -> dict[str, Any]:
        instance_id, address, command, output = item
        return {
            "id": instance_id,
            "href": env.urls.member("instances", instance_id),
            "public_address": address,
            "command": command,
            "output": output,
        }

    def page(self, item: tuple[str, str, str, str], env: Env) -> bytes:
        instance_id, _, command, output = item
        fields = [("Command", command, None), ("Output", output, None)]
        return env.page("member.html", f"Run on {instance_id}", fields=fields)


INSTANCES = Instances()
RUN = RunResult()
