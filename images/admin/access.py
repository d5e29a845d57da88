"""Who may use which account, seen and edited from the user's and the group's own pages.

The grants are ``ProviderAccount.users`` and ``ProviderAccount.groups``; here
they also appear from the other side, so an operator can grant a group or a
user its accounts without visiting each account. The API honours both
(``services.account_resolve``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.utils.html import format_html_join

from images.admin.common import change_url
from images.models import ProviderAccount

User = get_user_model()


def accounts_field(help_text: str) -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=ProviderAccount.objects.order_by("name"),
        required=False,
        label="Provider accounts",
        widget=FilteredSelectMultiple("provider accounts", is_stacked=False),
        help_text=help_text,
    )


class GrantsFormMixin:
    """Loads and saves the reverse ``provider_accounts`` relation of a user or group."""

    def _load_grants(self) -> None:
        if self.instance.pk:
            self.fields["provider_accounts"].initial = list(
                self.instance.provider_accounts.values_list("pk", flat=True)
            )

    def save_grants(self) -> None:
        self.instance.provider_accounts.set(self.cleaned_data["provider_accounts"])


class GroupGrantsForm(GrantsFormMixin, forms.ModelForm):
    provider_accounts = accounts_field("Every member of this group may use these accounts through the API.")

    class Meta:
        model = Group
        fields = ("name", "permissions")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._load_grants()


class UserGrantsForm(GrantsFormMixin, UserChangeForm):
    provider_accounts = accounts_field(
        "Accounts granted to this user directly (superusers may use every account)."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._load_grants()


class GrantsAdminMixin:
    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if "provider_accounts" in form.cleaned_data:
            form.save_grants()


admin.site.unregister(Group)
admin.site.unregister(User)


@admin.register(Group)
class ConsoleGroupAdmin(GrantsAdminMixin, GroupAdmin):
    form = GroupGrantsForm
    fields = ("name", "provider_accounts", "permissions")


@admin.register(User)
class ConsoleUserAdmin(GrantsAdminMixin, UserAdmin):
    form = UserGrantsForm
    readonly_fields = ("accounts_through_groups",)

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.insert(
                1, ("Provider accounts", {"fields": ("provider_accounts", "accounts_through_groups")})
            )
        return fieldsets

    @admin.display(description="Through groups")
    def accounts_through_groups(self, obj):
        accounts = (
            ProviderAccount.objects.filter(groups__user=obj)
            .values("pk", "name", "groups__name")
            .order_by("name", "groups__name")
        )
        if not accounts:
            return "–"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> (group {})',
            ((change_url(ProviderAccount(pk=a["pk"])), a["name"], a["groups__name"]) for a in accounts),
        )
