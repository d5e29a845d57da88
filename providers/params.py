"""Typed, documented driver parameters and credentials.

Each driver declares what an account must tell it as two frozen dataclasses
(``Params`` and ``Credentials``) whose fields are made with ``param()``. From
them the registry validates an account before any driver exists, the admin
generates its form (one field per parameter, secrets write-only), and the
scrubbing rules know which values must never be shown. Parsing is strict:
an unknown key is a typo that would otherwise be silently ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, Literal, TypeVar

from providers.exceptions import InvalidParameter

T = TypeVar("T")

# What a parameter holds, which decides how it is parsed and edited.
KINDS = ("str", "int", "float", "bool", "choice", "str_list", "json")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One declared parameter, as forms and validation see it."""

    name: str
    kind: str
    help: str
    required: bool
    default: Any
    secret: bool
    nullable: bool
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


def param(
    help: str,
    *,
    default: Any = MISSING,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    label: str = "",
) -> Any:
    """A dataclass field with the metadata ``parse`` and the admin form need.

    Secrets are left out of the dataclass ``repr``, so a driver's or an
    account's representation can never show them.
    """
    metadata = {"help": help, "secret": secret, "minimum": minimum, "maximum": maximum, "label": label}
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple for a sequence default: parameters are immutable")
    return dataclasses.field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True, slots=True)
class NoParams:
    """For drivers that need nothing from the account."""


@dataclass(frozen=True, slots=True)
class NoCredentials:
    """For drivers that authenticate with nothing."""


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return annotation, False


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    if annotation in (str, int, float, bool):
        return annotation.__name__, ()
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "choice", tuple(str(a) for a in args)
    if origin in (tuple, list) and args and args[0] is str:
        return "str_list", ()
    return "json", ()


@functools.cache
def specs(cls: type) -> tuple[ParamSpec, ...]:
    """The declared parameters of a Params/Credentials dataclass, in order."""
    hints = typing.get_type_hints(cls, include_extras=False)
    out = []
    for f in dataclasses.fields(cls):
        annotation, nullable = _unwrap(hints[f.name])
        kind, choices = _kind(annotation)
        meta = f.metadata
        required = f.default is MISSING and f.default_factory is MISSING
        default = None if required else (f.default if f.default is not MISSING else f.default_factory())
        out.append(
            ParamSpec(
                name=f.name,
                kind=kind,
                help=meta.get("help", ""),
                required=required,
                default=default,
                secret=bool(meta.get("secret")),
                nullable=nullable,
                choices=choices,
                minimum=meta.get("minimum"),
                maximum=meta.get("maximum"),
                label=meta.get("label", ""),
            )
        )
    return tuple(out)


def _number(spec: ParamSpec, value: Any, what: str) -> float | int:
    if isinstance(value, bool):
        raise InvalidParameter(f"{what} must be a number")
    try:
        number: float | int
        if spec.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = int(value)
        else:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
    except (TypeError, ValueError):
        kind = "an integer" if spec.kind == "int" else "a number"
        raise InvalidParameter(f"{what} must be {kind}") from None
    if spec.minimum is not None and number < spec.minimum:
        raise InvalidParameter(f"{what} must be at least {spec.minimum:g}")
    if spec.maximum is not None and number > spec.maximum:
        raise InvalidParameter(f"{what} must be at most {spec.maximum:g}")
    return number


def _coerce(spec: ParamSpec, value: Any, what: str) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise InvalidParameter(f"{what} must not be null")
    if spec.kind == "str":
        if not isinstance(value, str):
            raise InvalidParameter(f"{what} must be a string")
        if "\x00" in value:
            raise InvalidParameter(f"{what} must not contain NUL characters")
        return value
    if spec.kind in ("int", "float"):
        return _number(spec, value, what)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidParameter(f"{what} must be true or false")
        return value
    if spec.kind == "choice":
        if value not in spec.choices:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
            raise InvalidParameter(f"{what} must be one of {', '.join(spec.choices)}, not {shown}")
        return value
    if spec.kind == "str_list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) and v for v in items):
            raise InvalidParameter(f"{what} must be a list of non-empty strings")
        return tuple(items)
    return _freeze(value)


def _freeze(value: Any) -> Any:
    """JSON values made hashable, so parsed parameters stay immutable."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def parse(cls: type[T], values: Mapping[str, Any] | None, *, kind: str = "parameter", owner: str = "") -> T:
    """Validate ``values`` against ``cls`` and build it.

    Errors are ``InvalidParameter`` with a message fit for an operator
    ("EC2 parameter 'page_size' must be at most 1000"). The dataclass's own
    ``__post_init__`` may add rules across fields.
    """
    values = {} if values is None else values
    prefix = f"{owner} {kind}" if owner else kind.capitalize()
    if not isinstance(values, Mapping):
        raise InvalidParameter(f"{prefix}s must be a JSON object")
    declared = {s.name: s for s in specs(cls)}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise InvalidParameter(f"Unknown {prefix.lower()} '{unknown[0]}' (known: {known})")
    kwargs = {}
    for name, spec in declared.items():
        what = f"{prefix} '{name}'"
        if name in values:
            kwargs[name] = _coerce(spec, values[name], what)
        elif spec.required:
            raise InvalidParameter(f"{what} is required")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(f"Invalid {prefix.lower()}s: {exc}") from None


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def dump(obj: Any, *, include_defaults: bool = False) -> dict[str, Any]:
    """A parsed object back to JSON for storage (defaults left out unless asked)."""
    out = {}
    for spec in specs(type(obj)):
        value = getattr(obj, spec.name)
        if include_defaults or spec.required or value != spec.default:
            out[spec.name] = _thaw(value)
    return out


def secret_values(obj: Any) -> tuple[str, ...]:
    """The string values of an object's fields, for scrubbing provider text.

    Every credential value counts, not only the fields marked secret: an
    access key id is not a password, but there is no reason to echo it.
    """
    if not dataclasses.is_dataclass(obj):
        return ()
    found: Iterable[Any] = (getattr(obj, f.name) for f in dataclasses.fields(obj))
    return tuple(v for v in found if isinstance(v, str) and len(v) >= 4)
