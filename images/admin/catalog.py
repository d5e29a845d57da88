"""Cached images and instances, and the sync history: what the providers listed.

These rows are the providers' catalog, so the console never adds or edits
them. Deleting an image goes through the same service as
``DELETE /api/images/<id>``: tombstone, operation, provider call.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from images import operations, search
from images.admin.common import (
    IMAGE_TONES,
    RUN_TONES,
    ConsoleModelAdmin,
    badge,
    change_url,
    changelist_url,
    human_duration,
    shorten,
    values_filter,
)
from images.models import Image, Instance, Operation, ProviderAccount, SyncRun
from providers.base import RootType
from providers.exceptions import ProviderError

# A bulk delete at the provider is one provider call per image: keep it to what
# an operator means to select by hand.
BULK_DELETE_LIMIT = 500
ROOT_TYPES = values_filter("root_type", "root type", tuple(t.value for t in RootType))


class ReadOnlyAdmin(ConsoleModelAdmin):
    """Rows a sync or the worker writes: the console shows them, never edits them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OperationInline(admin.TabularInline):
    model = Operation
    fk_name = "image"
    extra = 0
    fields = ("kind", "status", "requested_by", "attempts", "last_error", "created_at", "finished_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = (
        "external_id",
        "short_name",
        "account",
        "owner_id",
        "architecture",
        "status_badge",
        "first_seen",
        "seen",
        "presence",
    )
    list_filter = (
        "account",
        "status",
        values_filter("architecture", "architecture"),
        ROOT_TYPES,
        ("missing_since", admin.EmptyFieldListFilter),
        ("deleted_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("external_id", "name")
    search_help_text = "Part of an image's id or name, or an account's exact name"
    date_hierarchy = "first_seen"
    list_select_related = ("account",)
    readonly_fields = [*(f.name for f in Image._meta.fields), "seen"]
    inlines = [OperationInline]
    actions = ["delete_at_provider"]

    def get_search_results(self, request, queryset, search_term):
        """An account's name lists its images (by the account, not a join per row);
        anything else matches ids and names (``images.search``: trigram-indexed
        on PostgreSQL, beside the catalog)."""
        term = search_term.strip()
        accounts = list(ProviderAccount.objects.filter(name__iexact=term).values_list("pk", flat=True))
        if term and accounts:
            return queryset.filter(account_id__in=accounts), False
        return search.filter_images(queryset, search_term), False

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.deleted_at is not None or obj.missing_since is not None):
            return False  # already being deleted, or the provider no longer lists it
        return ConsoleModelAdmin.has_delete_permission(self, request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would only drop cached rows
        return actions

    @admin.display(description="Name", ordering="name")
    def short_name(self, obj):
        return shorten(obj.name, 40)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.state or obj.status, IMAGE_TONES.get(obj.status, "off"), obj.failure_reason)

    @admin.display(description="Last seen")
    def seen(self, obj):
        return obj.seen_at

    @admin.display(description="Listed")
    def presence(self, obj):
        if obj.deleted_at is not None:
            return badge("deleting", "busy", f"Deleted through the API at {obj.deleted_at:%Y-%m-%d %H:%M}")
        if obj.missing_since is not None:
            return badge("vanished", "off", f"Not listed since {obj.missing_since:%Y-%m-%d %H:%M}")
        return badge("listed", "ok")

    # -- deleting at the provider ------------------------------------------------

    def _delete_at_provider(self, request, image: Image) -> Operation | None:
        try:
            op = operations.image_delete(
                account=image.account, user=request.user, external_id=image.external_id
            )
        except ProviderError as exc:
            self.message_user(request, f"Image {image.external_id} was not deleted: {exc}", messages.ERROR)
            self.log(request, image, f"Delete at the provider refused: {exc}")
            return None
        self.log(request, image, f"Delete at the provider requested (operation {op.pk})")
        return op

    def delete_view(self, request, object_id, extra_context=None):
        image = self.get_object(request, unquote(object_id))
        if image is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_delete_permission(request, image):
            raise PermissionDenied
        if request.method == "POST":
            op = self._delete_at_provider(request, image)
            if op is None:
                return HttpResponseRedirect(change_url(image))
            self.message_user(
                request,
                format_html(
                    'Image {} is hidden from the API; <a href="{}">operation {}</a> asks the provider to '
                    "delete it.",
                    image.external_id,
                    change_url(op),
                    op.pk,
                ),
                messages.SUCCESS,
            )
            return HttpResponseRedirect(change_url(op))
        return self._confirm(request, [image], title=f"Delete {image.external_id} at the provider?")

    def _confirm(self, request, images, title: str, bulk: bool = False):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "images": images,
            "bulk": bulk,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/images/image/delete_at_provider.html", context)

    @admin.action(description="Delete selected images at the provider", permissions=["delete"])
    def delete_at_provider(self, request, queryset):
        images = list(queryset.select_related("account")[: BULK_DELETE_LIMIT + 1])
        if len(images) > BULK_DELETE_LIMIT:
            text = f"Select at most {BULK_DELETE_LIMIT} images: each is one provider call."
            self.message_user(request, text, messages.ERROR)
            return None
        if request.POST.get("post") != "yes":
            return self._confirm(
                request, images, title=f"Delete {len(images)} images at the provider?", bulk=True
            )
        started = [op for op in (self._delete_at_provider(request, image) for image in images) if op]
        if started:
            self.message_user(
                request,
                format_html(
                    '{} deletion(s) requested: see <a href="{}">the running operations</a>.',
                    len(started),
                    changelist_url(Operation, status="active"),
                ),
                messages.SUCCESS,
            )
        return None


@admin.register(Instance)
class InstanceAdmin(ReadOnlyAdmin):
    list_display = (
        "external_id",
        "name",
        "account",
        "state",
        "image_link",
        "realm_id",
        "can_image",
        "presence",
    )
    list_filter = ("account", "state", ROOT_TYPES, ("missing_since", admin.EmptyFieldListFilter))
    search_fields = ("external_id", "name", "image_id", "account__name")
    list_select_related = ("account",)
    readonly_fields = ["image", *(f.name for f in Instance._meta.fields)]

    @admin.display(description="Image", ordering="image_id")
    def image_link(self, obj):
        if not obj.image_id:
            return "–"
        url = changelist_url(Image, account__id__exact=obj.account_id, external_id=obj.image_id)
        return format_html('<a href="{}">{}</a>', url, obj.image_id)

    @admin.display(description="Image")
    def image(self, obj):
        """On the instance's own page: straight to the image, when it is cached."""
        image = Image.objects.filter(account_id=obj.account_id, external_id=obj.image_id).only("pk").first()
        if image is None:
            return obj.image_id or "–"
        return format_html('<a href="{}">{}</a>', change_url(image), obj.image_id)

    @admin.display(description="Can be imaged")
    def can_image(self, obj):
        if obj.create_image_refusal:
            return badge("no", "warn", obj.create_image_refusal)
        return badge("yes", "ok")

    @admin.display(description="Listed")
    def presence(self, obj):
        if obj.missing_since is not None:
            return badge("vanished", "off", f"Not listed since {obj.missing_since:%Y-%m-%d %H:%M}")
        return badge("listed", "ok")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "account",
        "kind",
        "outcome_badge",
        "took",
        "pages",
        "images_listed",
        "images_added",
        "images_changed",
        "images_vanished",
        "instances_listed",
        "short_error",
    )
    list_filter = ("account", "outcome", "kind")
    search_fields = ("account__name", "error")
    date_hierarchy = "started_at"
    list_select_related = ("account",)
    readonly_fields = [f.name for f in SyncRun._meta.fields]

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_badge(self, obj):
        return badge(obj.outcome, RUN_TONES[obj.outcome], obj.error)

    @admin.display(description="Took", ordering="duration")
    def took(self, obj):
        return human_duration(obj.duration)

    @admin.display(description="Error")
    def short_error(self, obj):
        return (
            format_html('<span title="{}">{}</span>', obj.error, shorten(obj.error, 50)) if obj.error else "–"
        )
