"""``/api``: the collections and features of the request's driver.

The item is an ``EntryPoint``; ``/api`` has no collection form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from images.api.representations.base import Env, Representation
from images.api.representations.markup import attr, dump_json, esc
from providers.base import Feature


@dataclass(frozen=True)
class EntryPoint:
    links: Sequence[tuple[str, Sequence[Feature]]]
    driver: str
    provider: str | None
    version: str


class Entry(Representation):
    plural, singular, title = "api", "api", "API"

    def member_xml(self, api: EntryPoint, env: Env) -> bytes:
        provider_attr = f" provider='{attr(api.provider)}'" if api.provider else ""
        out = [f"<api driver='{attr(api.driver)}'{provider_attr} version='{attr(api.version)}'>"]
        for rel, features in api.links:
            out.append(f"  <link href='{attr(env.urls.collection(rel))}' rel='{attr(rel)}'>")
            for f in features:
                out.append(f"    <feature name='{attr(f.name)}' rel='{attr(f.operation)}'>")
                out += [f"      <param name='{attr(p)}' />" for p in f.params]
                out += [f"      <constraint name='{attr(k)}'>{esc(v)}</constraint>" for k, v in f.constraints]
                out.append("    </feature>")
            out.append("  </link>")
        out.append("</api>")
        return ("\n".join(out) + "\n").encode()

    def json(self, api: EntryPoint, env: Env) -> dict[str, Any]:
        return {
            "version": api.version,
            "driver": api.driver,
            "provider": api.provider or "default",
            "links": [
                {
                    "rel": rel,
                    "href": env.urls.collection(rel),
                    "features": [
                        [
                            {
                                "name": f.name,
                                "rel": f.operation,
                                "params": [f"{p}:string:optional" for p in f.params],
                                "constraints": dict(f.constraints),
                            }
                        ]
                        for f in features
                    ],
                }
                for rel, features in api.links
            ],
        }

    def member_json(self, api: EntryPoint, env: Env) -> bytes:
        return dump_json({"api": self.json(api, env)})

    def page(self, api: EntryPoint, env: Env) -> bytes:
        items = [
            {
                "href": env.urls.collection(rel),
                "title": rel.replace("_", " ").title(),
                "subtitle": ", ".join(f.name for f in feats),
            }
            for rel, feats in api.links
        ]
        return env.page("collection.html", "API", items=items)


ENTRY = Entry()
