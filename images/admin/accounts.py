"""Provider accounts: health first, counts that link to the rows, history and charts."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from images import charts, console, sync
from images.admin.common import (
    ConsoleModelAdmin,
    ago,
    change_url,
    changelist_url,
    count_link,
    health_badge,
    human_duration,
    shorten,
)
from images.admin_forms import ProviderAccountForm, account_form_for, parameter_field_names
from images.models import Image, Instance, Operation, ProviderAccount, SyncRun
from providers import registry

HEALTH_FIELDS = (
    "health",
    "counts",
    ("last_success", "last_failure"),
    "duration",
    "last_sync_error",
    "attention_reason",
    ("next_sync_at", "last_full_sync_at"),
    "consecutive_failures",
)


# The overview's order: what needs a person first, what is off last.
WORST_FIRST = (
    console.Health.CREDENTIALS_REJECTED,
    console.Health.FAILING,
    console.Health.SYNCING,
    console.Health.NEVER_SYNCED,
    console.Health.HEALTHY,
    console.Health.DISABLED,
)


def image_filters(account_id: int) -> dict[str, object]:
    """The account's visible images, as the image list's own filters."""
    return {"account__id__exact": account_id, "missing_since__isempty": "1", "deleted_at__isempty": "1"}


class HealthFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [(h.name.lower(), str(h)) for h in console.Health]

    def queryset(self, request, queryset):
        value = (self.value() or "").upper()
        if value in console.Health.__members__:
            return queryset.filter(console.health_filter(console.Health[value]))
        return queryset


def counts(account) -> str:
    """Images, instances, running and failed operations, each a link to the filtered list."""
    pk = account.pk
    return format_html(
        "{} images · {} instances · {} running · {} failed operations",
        count_link(account.image_count, Image, **image_filters(pk)),
        count_link(account.instance_count, Instance, account__id__exact=pk, missing_since__isempty="1"),
        count_link(account.running_count, Operation, account__id__exact=pk, status="active"),
        count_link(account.failed_count, Operation, account__id__exact=pk, status="FAILED"),
    )


def sync_accounts(model_admin, request, accounts) -> None:
    """Queue a sync of each account and say, per account, what happened."""
    for account in accounts:
        if not account.enabled:
            text = f"Account {account.name} is disabled: enable it to sync."
            model_admin.message_user(request, text, messages.WARNING)
            model_admin.log(request, account, "Sync now refused: the account is disabled")
        elif sync.catalog_sync_enqueue(account_id=account.pk):
            model_admin.message_user(request, f"Sync of {account.name} queued.", messages.SUCCESS)
            model_admin.log(request, account, "Sync now: queued")
        else:
            text = f"A sync of {account.name} is already queued or running; this request joins it."
            model_admin.message_user(request, text, messages.INFO)
            model_admin.log(request, account, "Sync now: joined the sync already queued or running")


@admin.register(ProviderAccount)
class ProviderAccountAdmin(ConsoleModelAdmin):
    form = ProviderAccountForm
    list_display = (
        "name",
        "health",
        "driver_provider",
        "last_success",
        "duration",
        "last_error",
        "images",
        "instances",
        "running",
        "failed",
    )
    list_filter = (HealthFilter, "driver", "enabled", "is_default")
    search_fields = ("name", "provider")
    filter_horizontal = ("users", "groups")
    readonly_fields = (
        "health",
        "counts",
        "last_success",
        "last_failure",
        "duration",
        "last_sync_error",
        "attention_reason",
        "next_sync_at",
        "last_full_sync_at",
        "consecutive_failures",
        "has_credentials",
        "owner_identity",
        "catalog_version",
    )
    actions = ["sync_now"]

    class Media:
        js = ("images/admin_account.js",)

    def get_queryset(self, request):
        return console.with_counts(super().get_queryset(request))

    # -- the form ---------------------------------------------------------------

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
            ("Health", {"fields": HEALTH_FIELDS}) if obj is not None else (None, {"fields": []}),
            ("Account", {"fields": ["name", "driver", "provider", "enabled", "is_default"]}),
            (f"{driver} parameters", {"fields": params}),
            (f"{driver} credentials", {"fields": [*credentials, "has_credentials"]}),
            ("Access", {"fields": ["users", "groups"]}),
            ("Sync schedule", {"fields": ["sync_interval", "full_sync_interval", "create_timeout"]}),
        ]
        if obj is not None:
            fieldsets.append(("Catalog", {"fields": ["owner_identity", "catalog_version"]}))
        return [(name, opts) for name, opts in fieldsets if opts["fields"]]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.enabled and obj.last_sync_succeeded_at is None:
            sync.catalog_sync_enqueue(account_id=obj.pk)  # fill the cache now

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._history_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _history_context(self, request, account) -> dict:
        runs = console.sync_history(account=account)
        days = console.operation_outcomes(account=account)
        full_runs = [
            r for r in runs if r.outcome == SyncRun.Outcome.SUCCEEDED and r.kind == SyncRun.Kind.FULL
        ]
        catalog = [
            charts.Point(
                r.started_at, r.images_listed, note=f"{r.started_at:%Y-%m-%d %H:%M}: {r.images_listed:,}"
            )
            for r in full_runs
        ]
        durations = [
            charts.Point(
                r.started_at,
                r.duration,
                ok=r.outcome != SyncRun.Outcome.FAILED,
                note=f"{r.started_at:%Y-%m-%d %H:%M} {r.outcome}: {human_duration(r.duration)}",
            )
            for r in runs
            if r.duration is not None
        ]
        bars = [
            charts.Bar(
                f"{d.day:%m-%d}",
                d.success_rate,
                f"{d.day:%Y-%m-%d}: {d.succeeded} succeeded, {d.failed} failed, {d.cancelled} cancelled",
            )
            for d in days
        ]
        return {
            "console": True,
            "can_sync": self.has_change_permission(request, account),
            "sync_url": reverse("admin:images_provideraccount_sync", args=[account.pk]),
            "runs": list(reversed(runs)),
            "runs_url": changelist_url(SyncRun, account__id__exact=account.pk),
            "days": list(reversed(days)),
            "operations_url": changelist_url(Operation, account__id__exact=account.pk),
            "catalog_chart": charts.line_chart(catalog, title="Catalog size (images listed by full syncs)"),
            "duration_chart": charts.line_chart(
                durations, title="Sync duration", fmt=lambda v: human_duration(v), legend="red: failed sync"
            ),
            "success_chart": charts.share_bars(
                bars, title="Operations' success rate per day", legend="green: succeeded, red: failed"
            ),
        }

    # -- columns and read-only fields ------------------------------------------

    @admin.display(description="Health")
    def health(self, obj):
        return health_badge(console.account_health(obj), obj.attention_reason or obj.last_sync_error)

    @admin.display(description="Driver", ordering="driver")
    def driver_provider(self, obj):
        return f"{obj.driver}/{obj.provider}" if obj.provider else obj.driver

    @admin.display(description="Last success", ordering="last_sync_succeeded_at")
    def last_success(self, obj):
        return ago(obj.last_sync_succeeded_at)

    @admin.display(description="Last failure", ordering="last_sync_failed_at")
    def last_failure(self, obj):
        return ago(obj.last_sync_failed_at)

    @admin.display(description="Sync took", ordering="last_sync_duration")
    def duration(self, obj):
        return human_duration(obj.last_sync_duration)

    @admin.display(description="Last error")
    def last_error(self, obj):
        text = obj.last_sync_error or (obj.attention_reason if obj.needs_attention else "")
        if not text:
            return "–"
        return format_html('<span class="dw-error" title="{}">{}</span>', text, shorten(text, 60))

    @admin.display(description="Images", ordering="image_count")
    def images(self, obj):
        return count_link(obj.image_count, Image, **image_filters(obj.pk))

    @admin.display(description="Instances", ordering="instance_count")
    def instances(self, obj):
        return count_link(obj.instance_count, Instance, account__id__exact=obj.pk, missing_since__isempty="1")

    @admin.display(description="Running ops", ordering="running_count")
    def running(self, obj):
        return count_link(obj.running_count, Operation, account__id__exact=obj.pk, status="active")

    @admin.display(description="Failed ops", ordering="failed_count")
    def failed(self, obj):
        return count_link(obj.failed_count, Operation, account__id__exact=obj.pk, status="FAILED")

    @admin.display(description="Cached rows")
    def counts(self, obj):
        return counts(obj)

    @admin.display(boolean=True, description="Credentials stored")
    def has_credentials(self, obj):
        return bool(obj.credentials_encrypted)

    # -- Sync now: the action and the button -------------------------------------

    @admin.action(description="Sync now", permissions=["change"])
    def sync_now(self, request, queryset):
        sync_accounts(self, request, queryset)

    def get_urls(self):
        sync_view = self.admin_site.admin_view(self.sync_view)
        return [
            path("<path:object_id>/sync/", sync_view, name="images_provideraccount_sync"),
            *super().get_urls(),
        ]

    def sync_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        account = self.get_object(request, unquote(object_id))
        if account is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        sync_accounts(self, request, [account])
        return HttpResponseRedirect(change_url(account))

    # -- deleting: counts, not every row; set-based -----------------------------------

    def get_deleted_objects(self, objs, request):
        accounts = list(objs)
        summary = console.account_delete_summary(accounts=accounts)
        listed = [format_html("Provider account: {}", account) for account in accounts]
        listed += [
            f"{count:,} {label} (not listed one by one; nothing is deleted at the provider)"
            for label, count in summary.items()
            if label != "provider accounts" and count
        ]
        perms_needed = set() if self.has_delete_permission(request) else {"provider account"}
        return listed, summary, perms_needed, []

    def delete_model(self, request, obj):
        console.account_delete(account=obj)

    def delete_queryset(self, request, queryset):
        for account in queryset:
            console.account_delete(account=account)


def overview(request, model_admin) -> dict:
    """The fleet at a glance for the admin index: every account, worst first."""
    accounts = list(console.with_counts(ProviderAccount.objects.all()))
    rows = []
    for account in accounts:
        health = console.account_health(account)
        rows.append(
            {
                "order": (WORST_FIRST.index(health), account.name),
                "account": account,
                "url": change_url(account),
                "health": model_admin.health(account),
                "driver": model_admin.driver_provider(account),
                "last_success": model_admin.last_success(account),
                "duration": model_admin.duration(account),
                "last_error": model_admin.last_error(account),
                "images": model_admin.images(account),
                "instances": model_admin.instances(account),
                "running": model_admin.running(account),
                "failed": model_admin.failed(account),
                "state": health,
            }
        )
    rows.sort(key=lambda row: row["order"])
    tally = {h: sum(1 for row in rows if row["state"] == h) for h in console.Health}
    return {
        "rows": rows,
        "tally": [(health_badge(h), n) for h, n in tally.items() if n],
        "accounts_url": changelist_url(ProviderAccount),
        "can_sync": model_admin.has_change_permission(request),
    }
