"""The Deltacloud collections as DRF viewsets: only what is particular to each route.

Rendering lives in ``representations``, the shared request handling in
``base``. Reads come from the cache and are rendered once per catalog
version; writes and provider calls go through ``images.operations`` and
``images.services``.
"""

from __future__ import annotations

import contextlib
from urllib.parse import quote

from django.conf import settings
from django.http import HttpResponseRedirect
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny

from images import operations, selectors, services
from images.api.base import DeltacloudViewSet
from images.api.changes import changes_response
from images.api.exceptions import ApiError
from images.api.representations.drivers import DRIVERS, INSTANCE_STATES
from images.api.representations.entry import ENTRY, EntryPoint
from images.api.representations.hardware_profiles import HARDWARE_PROFILES
from images.api.representations.images import IMAGES
from images.api.representations.instances import INSTANCES, RUN, InstanceOptions
from images.api.representations.realms import REALMS
from images.rows import ImageRow, InstanceRow
from providers.exceptions import ProviderError
from providers.registry import driver_names, get_driver


class DescriptionViewSet(DeltacloudViewSet):
    """Routes that describe the driver: no account, no credentials needed."""

    needs_account = False
    permission_classes = [AllowAny]

    def driver_key(self, *parts) -> tuple:
        return (type(self).__name__, self.ctx.driver, self.ctx.provider, self.fmt, self.urls.base, *parts)


class ApiEntryViewSet(DescriptionViewSet):
    """``GET /api``: the collections and features of the request's driver."""

    def list(self, request):
        driver = self.ctx.driver_class
        api = EntryPoint(
            selectors.entry_point_links(driver), driver.name, self.ctx.provider, settings.DELTAWEB_API_VERSION
        )
        return self.member(ENTRY, self.driver_key(), lambda: api)

    def create(self, request):
        """``POST /api`` with driver/provider: redirect to the matrix form."""
        chosen = {k: self.param(k) for k in ("driver", "provider")}
        # Percent-encoded: the Location must stay a URI whatever the client sent.
        parts = [f";{k}={quote(v, safe='')}" for k, v in chosen.items() if v]
        if not parts:
            raise ApiError(400, "Give a driver or provider to select")
        return HttpResponseRedirect(f"{self.urls.base}/api{''.join(parts)}", status=301)


# -- images ------------------------------------------------------------------------


class ImageViewSet(DeltacloudViewSet):
    """``/api/images``: the cached catalog of the request's account."""

    def list(self, request):
        self.ensure_synced()
        account = self.ctx.account
        filters = selectors.image_filters(request.query_params, account)
        can_destroy = services.capabilities(account=account).destroy_image
        if "changes_since" in request.query_params:
            return changes_response(self, filters, can_destroy)
        return self.collection(
            IMAGES, selectors.image_rows, selectors.image_page, selectors.IMAGE_SORTS, filters, can_destroy
        )

    def retrieve(self, request, id=None):
        account = self.ctx.account
        can_destroy = services.capabilities(account=account).destroy_image
        real_id = operations.image_resolve_alias(account=account, external_id=id)
        headers = self.freshness()
        if real_id is not None:
            # The provisional id of a create keeps working: it shows the real image.
            headers["Content-Location"] = self.urls.member("images", real_id)

        def load() -> ImageRow:
            wanted = real_id or id
            row = selectors.image_row(account=account, external_id=wanted)
            if row is None:
                if services.image_lookup(account=account, external_id=wanted) is None:
                    raise ApiError(404)
                row = selectors.image_row(account=account, external_id=wanted)
            return row

        return self.member(IMAGES, self.cache_key(id, can_destroy), load, can_destroy, headers=headers)

    def create(self, request):
        account = self.ctx.account
        image, _ = operations.image_create(
            account=account,
            user=request.user,
            instance_id=self.param("instance_id") or "",
            name=self.param("name") or None,
            description=self.param("description"),
        )
        row = selectors.image_row(account=account, external_id=image.external_id)
        can_destroy = services.capabilities(account=account).destroy_image
        # The 201 shows the image as the create call answered (the real server's bytes) ...
        body = IMAGES.member(self.fmt, row, self.env(can_destroy))
        if row.hardware_profiles is None and not image.external_id.startswith(operations.PROVISIONAL_PREFIX):
            # ... and the cached row is completed by one read of the image, so
            # list and show carry its hardware profiles at once, not after a sync.
            with contextlib.suppress(ProviderError):
                services.image_lookup(account=account, external_id=image.external_id)
        return self.created(self.urls.member("images", image.external_id), body)

    def destroy(self, request, id=None):
        operations.image_delete(account=self.ctx.account, user=request.user, external_id=id)
        return self.deleted("images")

    @action(detail=False, url_path="new", methods=["get"])
    def new(self, request):
        """The browser form for creating an image from an instance."""
        return self.form(
            "Create new image",
            "images",
            "instance_id",
            [("name", "Name"), ("description", "Description")],
            "Create image",
        )


# -- instances -----------------------------------------------------------------------


class InstanceViewSet(DeltacloudViewSet):
    """``/api/instances``: cached instances, with the actions their driver allows."""

    def instance_options(self) -> InstanceOptions:
        caps = services.capabilities(account=self.ctx.account)
        return InstanceOptions(caps.create_image, caps.run_on_instance, self.ctx.driver_class.auth_feature)

    def list(self, request):
        self.ensure_synced()
        filters = selectors.instance_filters(request.query_params)
        return self.collection(
            INSTANCES,
            selectors.instance_rows,
            selectors.instance_page,
            selectors.INSTANCE_SORTS,
            filters,
            self.instance_options(),
        )

    def retrieve(self, request, id=None):
        opts = self.instance_options()
        return self.member(
            INSTANCES, self.cache_key(id, opts), lambda: self._row(id), opts, headers=self.freshness()
        )

    def _row(self, id: str) -> InstanceRow:
        """The cached instance, else asked of the provider once, else 404."""
        account = self.ctx.account
        row = selectors.instance_row(account=account, external_id=id)
        if row is None:
            if services.instance_lookup(account=account, external_id=id) is None:
                raise ApiError(404, f"Instance {id} not found")
            row = selectors.instance_row(account=account, external_id=id)
        return row

    def create(self, request):
        """``POST /api/instances`` (the ``create_instance`` link of every image)."""
        options = {}
        for key in ("name", "realm_id", "hwp_id", "keyname", "hwp_cpu", "hwp_memory", "hwp_storage"):
            value = self.param(key)
            if value:
                options[key] = value
        instance = operations.instance_create(
            account=self.ctx.account, image_id=self.param("image_id") or "", options=options
        )
        return self.created(
            self.urls.member("instances", instance.external_id), self._instance_body(instance.external_id)
        )

    def _instance_body(self, external_id: str) -> bytes:
        row = selectors.instance_row(account=self.ctx.account, external_id=external_id)
        return INSTANCES.member(self.fmt, row, self.env(self.instance_options()))

    def _act(self, id, action_name):
        self._require_action(id, action_name)
        operations.instance_action(account=self.ctx.account, external_id=id, action=action_name)
        return self.respond(None, lambda: self._instance_body(id), status=202)

    def _require_action(self, id, action_name):
        row = self._row(id)
        if action_name not in row.actions:
            # Deltacloud: an action the instance's state does not allow is a 405.
            raise ApiError(405, f"Instance {id} cannot {action_name} while {row.state}")

    @action(detail=True, methods=["post"])
    def start(self, request, id=None):
        return self._act(id, "start")

    @action(detail=True, methods=["post"])
    def stop(self, request, id=None):
        return self._act(id, "stop")

    @action(detail=True, methods=["post"])
    def reboot(self, request, id=None):
        return self._act(id, "reboot")

    def destroy(self, request, id=None):
        self._require_action(id, "destroy")
        operations.instance_destroy(account=self.ctx.account, external_id=id)
        return self.deleted("instances")

    @action(detail=True, methods=["post"], url_path="run")
    def run(self, request, id=None):
        result = operations.instance_run(
            account=self.ctx.account, external_id=id, command=self.param("cmd") or ""
        )
        item = (id, result.public_address, result.command, result.output)
        return self.member(RUN, None, lambda: item)

    @action(detail=False, url_path="new", methods=["get"])
    def new(self, request):
        """The browser form for launching an instance from an image."""
        return self.form(
            "Launch instance",
            "instances",
            "image_id",
            [("name", "Name"), ("hwp_id", "Hardware profile"), ("realm_id", "Realm")],
            "Launch",
        )


# -- driver descriptions ---------------------------------------------------------------


class HardwareProfileViewSet(DescriptionViewSet):
    """``/api/hardware_profiles``: static per driver, no credentials needed."""

    def list(self, request):
        profiles = selectors.hardware_profiles(self.ctx.driver_class)
        return self.respond(
            self.driver_key(), lambda: HARDWARE_PROFILES.collection(self.fmt, profiles, self.env())
        )

    def retrieve(self, request, id=None):
        profiles = selectors.hardware_profiles(self.ctx.driver_class)
        profile = next((p for p in profiles if p.id == id), None)
        if profile is None:
            raise ApiError(404)
        return self.member(HARDWARE_PROFILES, self.driver_key(id), lambda: profile)


class InstanceStateViewSet(DescriptionViewSet):
    """``/api/instance_states``: the driver's instance state machine."""

    def list(self, request):
        states = self.ctx.driver_class.instance_states
        return self.respond(
            self.driver_key(), lambda: INSTANCE_STATES.collection(self.fmt, states, self.env())
        )


class RealmViewSet(DeltacloudViewSet):
    """``/api/realms``: asked of the provider (they are few and rarely read)."""

    def list(self, request):
        realms = services.realm_list(account=self.ctx.account)
        if "id" in request.query_params:
            realms = [r for r in realms if r.id == request.query_params["id"]]
        return self.respond(None, lambda: REALMS.collection(self.fmt, realms, self.env()))

    def retrieve(self, request, id=None):
        realm = services.realm_get(account=self.ctx.account, realm_id=id)
        return self.member(REALMS, None, lambda: realm)


class DriverViewSet(DescriptionViewSet):
    """``/api/drivers``: the drivers this server has."""

    def list(self, request):
        drivers = [get_driver(name) for name in driver_names()]
        return self.respond(self.driver_key(), lambda: DRIVERS.collection(self.fmt, drivers, self.env()))

    def retrieve(self, request, id=None):
        if id not in driver_names():
            raise ApiError(404)
        return self.member(DRIVERS, self.driver_key(id), lambda: get_driver(id))
