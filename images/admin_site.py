"""The admin site of the operators' console: the fleet overview on its index."""

from __future__ import annotations

from django.contrib import admin


class ConsoleSite(admin.AdminSite):
    site_header = "deltaweb operators' console"
    site_title = "deltaweb console"
    index_title = "Fleet overview"
    index_template = "admin/console/index.html"

    def index(self, request, extra_context=None):
        from images.models import ProviderAccount

        context = dict(extra_context or {})
        account_admin = self.get_model_admin(ProviderAccount)
        if account_admin.has_view_permission(request):
            from images.admin.accounts import overview

            context["overview"] = overview(request, account_admin)
        return super().index(request, context)
