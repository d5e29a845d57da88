"""The operators' console: accounts (with sync health), images, instances."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages

from images import operations, sync
from images.admin_forms import ProviderAccountForm, account_form_for, parameter_field_names
from images.models import Image, Instance, Operation, ProviderAccount
from providers import registry


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = (
        "name",
        "driver",
        "provider",
        "enabled",
        "is_default",
        "needs_attention",
        "last_sync_succeeded_at",
        "last_sync_failed_at",
        "last_sync_duration",
        "consecutive_failures",
    )
    list_filter = ("driver", "enabled", "needs_attention")
    search_fields = ("name", "provider")
    filter_horizontal = ("users", "groups")
    readonly_fields = (
        "has_credentials",
        "owner_identity",
        "catalog_version",
        "last_sync_started_at",
        "last_sync_succeeded_at",
        "last_sync_failed_at",
        "last_sync_error",
        "last_sync_duration",
        "consecutive_failures",
        "needs_attention",
        "attention_reason",
        "next_sync_at",
        "fast_sync_until",
    )
    actions = ["sync_now"]

    class Media:
        js = ("images/admin_account.js",)

    @staticmethod
    def _driver_name(request, obj) -> str:
        chosen = request.POST.get("driver") or request.GET.get("driver")
        if chosen in registry.DRIVERS:
            return chosen
        return obj.driver if obj is not None else settings.DELTAWEB_DEFAULT_DRIVER

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = account_form_for(self._driver_name(request, obj))
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        driver = self._driver_name(request, obj)
        params, credentials = parameter_field_names(driver)
        fieldsets = [
            (None, {"fields": ["name", "driver", "provider", "enabled", "is_default"]}),
            (f"{driver} parameters", {"fields": params}),
            (f"{driver} credentials", {"fields": [*credentials, "has_credentials"]}),
            ("Access", {"fields": ["users", "groups"]}),
            ("Sync", {"fields": ["sync_interval", "full_sync_interval", "create_timeout"]}),
        ]
        if obj is not None:
            fieldsets.append(
                ("Health", {"fields": [f for f in self.readonly_fields if f != "has_credentials"]})
            )
        return [(name, opts) for name, opts in fieldsets if opts["fields"]]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.enabled and obj.last_sync_succeeded_at is None:
            sync.catalog_sync_enqueue(account_id=obj.pk)  # fill the cache now

    @admin.display(boolean=True, description="Credentials stored")
    def has_credentials(self, obj):
        return bool(obj.credentials_encrypted)

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset):
        queued = sum(sync.catalog_sync_enqueue(account_id=account.pk) for account in queryset)
        self.message_user(request, f"{queued} sync(s) queued; running ones were merged.", messages.SUCCESS)


class OperationInline(admin.TabularInline):
    model = Operation
    fk_name = "image"
    extra = 0
    can_delete = False
    fields = ("kind", "status", "attempts", "last_error", "created_at", "finished_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "name",
        "account",
        "owner_id",
        "architecture",
        "state",
        "status",
        "first_seen",
        "last_seen_display",
        "missing_since",
        "deleted_at",
    )
    list_filter = (
        "account",
        "status",
        "architecture",
        "root_type",
        ("missing_since", admin.EmptyFieldListFilter),
        ("deleted_at", admin.EmptyFieldListFilter),
    )
    inlines = [OperationInline]

    @admin.display(description="Last seen")
    def last_seen_display(self, obj):
        return obj.seen_at

    search_fields = ("external_id", "name", "description", "owner_id")
    list_select_related = ("account",)
    readonly_fields = [f.name for f in Image._meta.fields]


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "name",
        "account",
        "state",
        "image_id",
        "realm_id",
        "create_image_refusal",
        "missing_since",
    )
    list_filter = ("account", "state", "root_type")
    search_fields = ("external_id", "name", "image_id")
    list_select_related = ("account",)
    readonly_fields = [f.name for f in Instance._meta.fields]


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "account",
        "external_id",
        "provisional_id",
        "name",
        "attempts",
        "next_poll_at",
        "deadline",
        "short_error",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "account")
    search_fields = ("external_id", "provisional_id", "name", "instance_id", "last_error")
    list_select_related = ("account",)
    readonly_fields = [f.name for f in Operation._meta.fields]
    actions = ["poll_now"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Last error")
    def short_error(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.action(description="Run the next step now")
    def poll_now(self, request, queryset):
        count = operations.operations_poll_now(operation_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} active operation(s) queued.", messages.SUCCESS)
