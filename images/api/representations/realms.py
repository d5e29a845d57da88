"""``realm``: asked of the provider on each request (few, rarely read)."""

from __future__ import annotations

from typing import Any

from images.api.representations.base import Env, Representation, line
from images.api.representations.markup import esc, opening
from providers.base import Realm


class Realms(Representation):
    plural, singular, title = "realms", "realm", "Realms"

    def xml(self, realm: Realm, env: Env, indent: str = "") -> str:
        i = indent
        return "\n".join(
            [
                opening(i, "realm", env.urls.member("realms", realm.id), realm.id),
                f"{i}  <name>{esc(realm.name)}</name>",
                f"{i}  <state>{esc(realm.state)}</state>",
                f"{i}  <limit>{esc(realm.limit)}</limit>",
                f"{i}</realm>",
            ]
        )

    def json(self, realm: Realm, env: Env) -> dict[str, Any]:
        return {
            "id": realm.id,
            "href": env.urls.member("realms", realm.id),
            "name": realm.name,
            "state": realm.state,
            "limit": realm.limit,
        }

    def entry(self, realm: Realm, env: Env) -> dict[str, Any]:
        return line(env.urls.member("realms", realm.id), realm.name, realm.id, realm.state)

    def page(self, realm: Realm, env: Env) -> bytes:
        fields = [("Name", realm.name, None), ("State", realm.state, None), ("Limit", realm.limit, None)]
        return env.page("member.html", f"Realm {realm.id}", fields=fields)


REALMS = Realms()
