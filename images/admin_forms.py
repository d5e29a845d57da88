"""The account form, generated from the driver's declared parameters.

Each driver declares its parameters and credential fields as typed
dataclasses (``providers.params``); the form shows one field per parameter,
keeps secrets write-only (never rendered, blank keeps the stored value), and
validates through the same parser the registry builds drivers with.
"""

from __future__ import annotations

from typing import Any

from django import forms

from images.models import ProviderAccount
from providers import registry
from providers.exceptions import DriverUnavailable, InvalidParameter
from providers.params import ParamSpec

PARAM_PREFIX, CREDENTIAL_PREFIX = "param__", "credential__"
BOOL_CHOICES = [("", "Default"), ("true", "Yes"), ("false", "No")]


def _help(spec: ParamSpec) -> str:
    text = spec.help
    if spec.secret:
        text += " Write-only: leave empty to keep the stored value."
    elif not spec.required and spec.default not in (None, "", ()):
        shown = ", ".join(spec.default) if isinstance(spec.default, tuple) else spec.default
        text += f" Default: {shown}."
    return text


def form_field(spec: ParamSpec) -> forms.Field:
    """One form field for one declared parameter."""
    required = spec.required and not spec.secret
    common: dict[str, Any] = {"label": spec.title, "help_text": _help(spec), "required": required}
    if spec.secret:
        return forms.CharField(widget=forms.PasswordInput(render_value=False), **common)
    if spec.kind == "bool":
        if spec.nullable:
            return forms.TypedChoiceField(
                choices=BOOL_CHOICES, coerce=lambda v: {"true": True, "false": False}.get(v), **common
            )
        return forms.BooleanField(**{**common, "required": False})
    if spec.kind == "choice":
        choices = [(c, c) for c in spec.choices]
        if spec.nullable or not spec.required:
            choices = [("", "Default"), *choices]
        return forms.ChoiceField(choices=choices, **common)
    if spec.kind == "int":
        return forms.IntegerField(min_value=spec.minimum, max_value=spec.maximum, **common)
    if spec.kind == "float":
        return forms.FloatField(min_value=spec.minimum, max_value=spec.maximum, **common)
    if spec.kind == "str_list":
        common["help_text"] += " One per line."
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **common)
    if spec.kind == "json":
        return forms.JSONField(**common)
    return forms.CharField(**common)


def _initial(spec: ParamSpec, stored: dict[str, Any]) -> Any:
    if spec.secret:
        return None
    value = stored.get(spec.name, None if spec.nullable else spec.default)
    if spec.kind == "bool" and spec.nullable:
        return {True: "true", False: "false"}.get(value, "")
    if spec.kind == "str_list" and value is not None:
        return "\n".join([value] if isinstance(value, str) else value)
    return value


def _value(spec: ParamSpec, raw: Any) -> Any:
    """A cleaned form value as the parser expects it; None: not given."""
    if raw in (None, ""):
        return None
    if spec.kind == "str_list":
        return [line.strip() for line in str(raw).splitlines() if line.strip()]
    return raw


class ProviderAccountForm(forms.ModelForm):
    """Account fields plus the chosen driver's parameters and credentials."""

    driver_name = "mock"
    param_specs: tuple[ParamSpec, ...] = ()
    credential_specs: tuple[ParamSpec, ...] = ()

    class Meta:
        model = ProviderAccount
        fields = [
            "name",
            "driver",
            "provider",
            "users",
            "groups",
            "is_default",
            "enabled",
            "sync_interval",
            "full_sync_interval",
            "create_timeout",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored_params = self.instance.params if self.instance.driver == self.driver_name else {}
        stored_credentials = self.instance.credentials if self.instance.pk else {}
        for prefix, specs, stored in (
            (PARAM_PREFIX, self.param_specs, stored_params or {}),
            (CREDENTIAL_PREFIX, self.credential_specs, stored_credentials),
        ):
            for spec in specs:
                field = self.fields.get(prefix + spec.name)
                if field is None:
                    continue
                field.initial = _initial(spec, stored)
                if spec.secret and spec.required and not stored.get(spec.name):
                    field.required = True  # nothing stored yet: it must be given now
        if "driver" in self.fields:
            # admin_account.js reloads the add page with the chosen driver's fields.
            self.fields["driver"].widget.attrs["data-driver-switch"] = "1"

    def _collect(self, specs: tuple[ParamSpec, ...], prefix: str, base: dict[str, Any]) -> dict[str, Any]:
        values = dict(base)
        for spec in specs:
            value = _value(spec, self.cleaned_data.get(prefix + spec.name))
            if value is None:
                if not spec.secret:
                    values.pop(spec.name, None)  # blank: the default (secrets: keep stored)
                continue
            values[spec.name] = value
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("driver") and cleaned["driver"] != self.driver_name:
            self.add_error("driver", "Choose the driver first: its parameters differ.")
        if self.errors:
            return cleaned
        params = self._collect(self.param_specs, PARAM_PREFIX, {})
        stored = self.instance.credentials if self.instance.pk else {}
        kept = {k: v for k, v in stored.items() if k in {s.name for s in self.credential_specs}}
        credentials = self._collect(self.credential_specs, CREDENTIAL_PREFIX, kept)
        for kind, values, parse in (
            ("params", params, registry.parse_params),
            ("credentials", credentials, registry.parse_credentials),
        ):
            try:
                parse(self.driver_name, values)
            except InvalidParameter as exc:
                self.add_error(None, str(exc))
            cleaned[kind] = values
        return cleaned

    def save(self, commit: bool = True) -> ProviderAccount:
        self.instance.params = self.cleaned_data.get("params", {})
        self.instance.credentials = self.cleaned_data.get("credentials", {})
        return super().save(commit)


def driver_specs(driver_name: str) -> tuple[tuple[ParamSpec, ...], tuple[ParamSpec, ...]]:
    try:
        return registry.describe(driver_name)
    except (KeyError, DriverUnavailable):
        return (), ()


def account_form_for(driver_name: str) -> type[ProviderAccountForm]:
    """The form class for an account on ``driver_name``: one declared field per parameter."""
    param_specs, credential_specs = driver_specs(driver_name)
    attrs: dict[str, Any] = {
        "driver_name": driver_name,
        "param_specs": param_specs,
        "credential_specs": credential_specs,
    }
    for spec in param_specs:
        attrs[PARAM_PREFIX + spec.name] = form_field(spec)
    for spec in credential_specs:
        attrs[CREDENTIAL_PREFIX + spec.name] = form_field(spec)
    return type("ProviderAccountForm", (ProviderAccountForm,), attrs)


def parameter_field_names(driver_name: str) -> tuple[list[str], list[str]]:
    param_specs, credential_specs = driver_specs(driver_name)
    return [PARAM_PREFIX + s.name for s in param_specs], [
        CREDENTIAL_PREFIX + s.name for s in credential_specs
    ]
