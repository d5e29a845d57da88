"""Operations: never deleted; failed ones retried, running ones cancelled, by an operator."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from images import operations
from images.admin.catalog import ReadOnlyAdmin
from images.admin.common import OPERATION_TONES, badge, change_url, human_duration, shorten
from images.models import Operation
from images.operation_control import operation_cancel, operation_retry
from providers.exceptions import ProviderError

ACTIVE = "active"


class OperationStatusFilter(admin.SimpleListFilter):
    """The statuses, plus "running" for every one the worker still owns."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(ACTIVE, "running (queued, calling, polling)"), *Operation.Status.choices]

    def queryset(self, request, queryset):
        if self.value() == ACTIVE:
            return queryset.filter(status__in=Operation.ACTIVE)
        if self.value() in Operation.Status.values:
            return queryset.filter(status=self.value())
        return queryset


def _user_link(user):
    if user is None:
        return "–"
    url = reverse(f"admin:{user._meta.app_label}_{user._meta.model_name}_change", args=[user.pk])
    return format_html('<a href="{}">{}</a>', url, user.get_username())


def _operation_link(op) -> str:
    return format_html('<a href="{}">operation {}</a>', change_url(op), op.pk)


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "status_badge",
        "account",
        "image_link",
        "requester",
        "attempts",
        "short_error",
        "created_at",
        "took",
    )
    list_display_links = ("id",)
    list_filter = (OperationStatusFilter, "kind", "account")
    search_fields = (
        "external_id",
        "provisional_id",
        "name",
        "instance_id",
        "account__name",
        "requested_by__username",
    )
    date_hierarchy = "created_at"
    list_select_related = ("account", "image", "requested_by")
    fields = (
        ("kind", "status_badge"),
        "account",
        "image_link",
        "requester",
        ("instance_id", "name"),
        "description",
        ("external_id", "provisional_id"),
        "last_error",
        ("attempts", "next_poll_at", "deadline"),
        ("created_at", "finished_at", "took"),
        "retry_of_link",
        "retries_links",
    )
    readonly_fields = [
        *(f for row in fields for f in (row if isinstance(row, tuple) else (row,))),
    ]
    actions = ["retry", "cancel", "poll_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "image", "requested_by", "retry_of")

    def has_control_permission(self, request, obj=None):
        """Retry, cancel, run now: operators who may change operations."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    # -- columns ---------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, OPERATION_TONES[obj.status], obj.last_error)

    @admin.display(description="Image")
    def image_link(self, obj):
        label = obj.external_id or obj.provisional_id or "–"
        if obj.image_id is None:
            return label
        return format_html('<a href="{}">{}</a>', change_url(obj.image), label)

    @admin.display(description="Requested by", ordering="requested_by__username")
    def requester(self, obj):
        return _user_link(obj.requested_by)

    @admin.display(description="Last error")
    def short_error(self, obj):
        if not obj.last_error:
            return "–"
        return format_html('<span title="{}">{}</span>', obj.last_error, shorten(obj.last_error, 60))

    @admin.display(description="Took")
    def took(self, obj):
        if obj.finished_at is None:
            return "running" if obj.active else "–"
        return human_duration((obj.finished_at - obj.created_at).total_seconds())

    @admin.display(description="Retry of")
    def retry_of_link(self, obj):
        return _operation_link(obj.retry_of) if obj.retry_of_id else "–"

    @admin.display(description="Retried as")
    def retries_links(self, obj):
        retries = list(obj.retries.order_by("pk"))
        if not retries:
            return "–"
        return format_html_join(", ", "{} ({})", ((_operation_link(r), r.status) for r in retries))

    # -- retry and cancel: actions on the list, buttons on the page ------------------------

    def _retry(self, request, op: Operation) -> Operation | None:
        try:
            retry = operation_retry(operation=op, user=request.user)
        except ProviderError as exc:
            self.message_user(request, f"Operation {op.pk} was not retried: {exc}", messages.ERROR)
            return None
        self.log(request, op, f"Retried as operation {retry.pk}")
        self.log(request, retry, f"Started as a retry of operation {op.pk}")
        self.message_user(
            request,
            format_html("Operation {} retried as {}.", op.pk, _operation_link(retry)),
            messages.SUCCESS,
        )
        return retry

    def _cancel(self, request, op: Operation) -> bool:
        try:
            operation_cancel(operation=op, user=request.user)
        except ProviderError as exc:
            self.message_user(request, f"Operation {op.pk} was not cancelled: {exc}", messages.ERROR)
            return False
        self.log(request, op, "Cancelled")
        text = f"Operation {op.pk} cancelled; the worker leaves it alone and its image has a final state."
        self.message_user(request, text, messages.SUCCESS)
        return True

    @admin.action(description="Retry selected failed or cancelled operations", permissions=["control"])
    def retry(self, request, queryset):
        for op in queryset.select_related("account"):
            self._retry(request, op)

    @admin.action(description="Cancel selected running operations", permissions=["control"])
    def cancel(self, request, queryset):
        for op in queryset.select_related("account"):
            self._cancel(request, op)

    @admin.action(description="Run the next step now", permissions=["control"])
    def poll_now(self, request, queryset):
        ids = list(queryset.filter(status__in=Operation.ACTIVE).values_list("pk", flat=True))
        count = operations.operations_poll_now(operation_ids=ids)
        for op in queryset.filter(pk__in=ids):
            self.log(request, op, "Next step run now")
        self.message_user(request, f"{count} running operation(s) queued now.", messages.SUCCESS)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/retry/", view(self.retry_view), name="images_operation_retry"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="images_operation_cancel"),
            *super().get_urls(),
        ]

    def _control(self, request, object_id, run):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        op = self.get_object(request, unquote(object_id))
        if op is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_control_permission(request, op):
            raise PermissionDenied
        result = run(request, op)
        return HttpResponseRedirect(change_url(result if isinstance(result, Operation) else op))

    def retry_view(self, request, object_id):
        return self._control(request, object_id, self._retry)

    def cancel_view(self, request, object_id):
        return self._control(request, object_id, self._cancel)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_control_permission(request, obj):
            context["can_retry"] = obj.status in Operation.RETRYABLE
            context["can_cancel"] = obj.active
        return super().render_change_form(request, context, add, change, form_url, obj)
