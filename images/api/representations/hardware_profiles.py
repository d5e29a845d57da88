"""``hardware_profile``: static per driver; ranges and enums carry their create params."""

from __future__ import annotations

from typing import Any

from images.api.representations.base import Env, Representation, line
from images.api.representations.markup import attr, esc, opening
from providers.base import HardwareProfile, HardwareProperty


def _describe(p: HardwareProperty) -> str:
    if p.kind == "fixed":
        return f"{p.value} {p.unit}"
    if p.kind == "range":
        return f"{p.first}-{p.last} {p.unit} (default {p.value})"
    return f"{', '.join(p.values)} {p.unit} (default {p.value})"


class HardwareProfiles(Representation):
    plural, singular, title = "hardware_profiles", "hardware_profile", "Hardware profiles"

    def xml(self, hwp: HardwareProfile, env: Env, indent: str = "") -> str:
        i, urls = indent, env.urls
        out = [
            opening(i, "hardware_profile", urls.member("hardware_profiles", hwp.id), hwp.id),
            f"{i}  <name>{esc(hwp.id)}</name>",
        ]
        for p in hwp.properties:
            attrs = (
                f"kind='{attr(p.kind)}' name='{attr(p.name)}' unit='{attr(p.unit)}' value='{attr(p.value)}'"
            )
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

    def json(self, hwp: HardwareProfile, env: Env) -> dict[str, Any]:
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
            "href": env.urls.member("hardware_profiles", hwp.id),
            "name": hwp.id,
            "properties": props,
        }

    def entry(self, hwp: HardwareProfile, env: Env) -> dict[str, Any]:
        subtitle = ", ".join(f"{q.name} {q.value} {q.unit}" for q in hwp.properties)
        return line(env.urls.member("hardware_profiles", hwp.id), hwp.id, subtitle)

    def page(self, hwp: HardwareProfile, env: Env) -> bytes:
        fields = [(p.name, _describe(p), None) for p in hwp.properties]
        return env.page("member.html", f"Hardware profile {hwp.id}", fields=fields)


HARDWARE_PROFILES = HardwareProfiles()
