"""``image``: XML as the real server's Haml wrote it, JSON in the 1.1 dialect, HTML pages.

``env.options`` is whether the driver can destroy images (the ``destroy_image`` link).
"""

from __future__ import annotations

from typing import Any

from images.api.representations.base import Env, Representation, line
from images.api.representations.markup import attr, esc, opening, seg
from images.rows import ImageRow


class Images(Representation):
    plural, singular, title = "images", "image", "Images"

    def xml(self, img: ImageRow, env: Env, indent: str = "") -> str:
        i, urls = indent, env.urls
        href = urls.member("images", img.external_id)
        out = [
            opening(i, "image", href, img.external_id),
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
        if env.options:
            out.append(f"{i}    <link href='{attr(href)}' method='delete' rel='destroy_image' />")
        out.append(f"{i}  </actions>")
        out.append(f"{i}</image>")
        return "\n".join(out)

    def json(self, img: ImageRow, env: Env) -> dict[str, Any]:
        urls = env.urls
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

    def entry(self, img: ImageRow, env: Env) -> dict[str, Any]:
        subtitle = f"{img.description or ''}, {img.owner_id}, {img.architecture}"
        href = env.urls.member("images", img.external_id)
        return line(href, img.name or img.external_id, subtitle, img.state, img.status)

    def page(self, img: ImageRow, env: Env) -> bytes:
        urls = env.urls
        fields = [
            ("Name", img.name, None),
            ("Description", img.description or "", None),
            ("Owner", img.owner_id, f"{urls.collection('images')}?owner_id={seg(img.owner_id)}"),
            ("State", img.state, None),
            ("Normalized state", img.status, None),
        ]
        if img.failure_reason:
            fields.append(("Reason", img.failure_reason, None))
        if img.creation_time:
            fields.append(("Creation time", img.creation_time, None))
        fields += [("Root device type", img.root_type, None), ("Architecture", img.architecture, None)]
        fields += [
            ("Hardware profile", h, urls.member("hardware_profiles", h)) for h in img.hardware_profiles or ()
        ]
        actions: list[dict[str, Any]] = [
            {
                "label": "Launch…",
                "method": "get",
                "href": f"{urls.collection('instances')}/new?image_id={seg(img.external_id)}",
            }
        ]
        if env.options:
            actions.append(destroy_action(urls.member("images", img.external_id)))
        return env.page("member.html", f"Image {img.external_id}", fields=fields, actions=actions)


def destroy_action(href: str) -> dict[str, Any]:
    """The HTML form button that DELETEs a member (forms send ``_method``)."""
    return {
        "label": "Destroy",
        "method": "post",
        "danger": True,
        "href": href,
        "fields": [("_method", "delete")],
    }


IMAGES = Images()
