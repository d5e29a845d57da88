"""``driver`` and the driver's instance state machine (``/api/instance_states``).

Both were written without an XML prolog by the real server, and their JSON
is not a list of members, so they override the collection forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from images.api.representations.base import Env, Representation, line
from images.api.representations.markup import attr, dump_json, esc, opening
from providers.base import Driver, Transition

StateItem = tuple[str, Sequence[Transition]]


class Drivers(Representation):
    plural, singular, title = "drivers", "driver", "Drivers"

    def xml(self, d: type[Driver], env: Env, indent: str = "") -> str:
        i = indent
        out = [
            opening(i, "driver", env.urls.member("drivers", d.name), d.name),
            f"{i}  <name>{esc(d.label)}</name>",
        ]
        out += [f"{i}  <provider id='{attr(p)}'></provider>" for p in d.providers]
        out.append(f"{i}</driver>")
        return "\n".join(out)

    def json(self, d: type[Driver], env: Env) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if d.providers:
            data["providers"] = list(d.providers)
        data["name"] = d.label
        return data

    def entry(self, d: type[Driver], env: Env) -> dict[str, Any]:
        return line(env.urls.member("drivers", d.name), d.label, ", ".join(d.providers))

    def page(self, d: type[Driver], env: Env) -> bytes:
        fields = [("Name", d.label, None), *[("Provider", p, None) for p in d.providers]]
        return env.page("member.html", f"Driver {d.name}", fields=fields)

    def member_xml(self, d: type[Driver], env: Env) -> bytes:
        return (self.xml(d, env) + "\n").encode()

    def member_json(self, d: type[Driver], env: Env) -> bytes:
        return dump_json({"driver": {**self.json(d, env), "id": d.name}})

    def stream_xml(
        self, items: Iterable[type[Driver]], env: Env, extra: Mapping[str, Any]
    ) -> Iterator[bytes]:
        body = "".join(self.xml(d, env, "  ") + "\n" for d in items)
        yield f"<drivers>\n{body}</drivers>\n".encode()

    def stream_json(
        self, items: Iterable[type[Driver]], env: Env, extra: Mapping[str, Any]
    ) -> Iterator[bytes]:
        yield dump_json({d.name: self.json(d, env) for d in items})


class InstanceStates(Representation):
    plural, singular, title = "states", "state", "Instance states"

    def xml(self, item: StateItem, env: Env, indent: str = "") -> str:
        state, transitions = item
        out = [f"{indent}<state name='{attr(state)}'>"]
        for t in transitions:
            how = f"action='{attr(t.action)}'" if t.action else "auto='true'"
            out.append(f"{indent}  <transition {how} to='{attr(t.to)}'></transition>")
        out.append(f"{indent}</state>")
        return "\n".join(out)

    def json(self, item: StateItem, env: Env) -> dict[str, Any]:
        state, transitions = item
        return {
            "name": state,
            "transitions": [
                {"to": t.to, "action": t.action} if t.action else {"to": t.to, "auto": "true"}
                for t in transitions
            ],
        }

    def entry(self, item: StateItem, env: Env) -> dict[str, Any]:
        state, transitions = item
        subtitle = ", ".join(f"{t.action or 'auto'} → {t.to}" for t in transitions)
        return line("#", state, subtitle)

    def stream_xml(self, items: Iterable[StateItem], env: Env, extra: Mapping[str, Any]) -> Iterator[bytes]:
        body = "".join(self.xml(item, env, "  ") + "\n" for item in items)
        yield f"<states>\n{body}</states>\n".encode()

    def stream_json(self, items: Iterable[StateItem], env: Env, extra: Mapping[str, Any]) -> Iterator[bytes]:
        yield dump_json([self.json(item, env) for item in items])


DRIVERS = Drivers()
INSTANCE_STATES = InstanceStates()
