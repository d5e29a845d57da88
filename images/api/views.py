"""The Deltacloud collections as DRF viewsets.

Reads come from the cache and are rendered once per catalog version
(``render_cache``); a conditional GET whose ETag matches costs no rendering.
Writes and provider calls go through ``images.services``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, NotAcceptable, NotAuthenticated
from rest_framework.permissions import AllowAny, IsAuthenticated

from images import operations, selectors, services, sync
from images.api import html
from images.api import serializers as s
from images.api.context import ApiContext, build_context
from images.api.exceptions import ApiError
from images.api.render_cache import Rendered, make_rendered, render_cache
from images.api.renderers import CONTENT_TYPES, HTMLRenderer, JSONRenderer, XMLRenderer
from providers.registry import driver_names, get_driver

CACHE_CONTROL = "max-age=0, private, must-revalidate"


def etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    bare = etag.strip('"')
    return any(tag.strip().removeprefix("W/").strip('"') == bare for tag in header.split(","))


def empty_response(status: int) -> HttpResponse:
    response = HttpResponse(status=status)
    del response["Content-Type"]
    return response


def document_response(
    request, rendered: Rendered, fmt: str, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    if status == 200 and etag_matches(request.META.get("HTTP_IF_NONE_MATCH", ""), rendered.etag):
        response = empty_response(304)
    else:
        response = HttpResponse(rendered.body, status=status, content_type=CONTENT_TYPES[fmt])
    response["ETag"] = rendered.etag
    response["Cache-Control"] = CACHE_CONTROL
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class DeltacloudViewSet(viewsets.ViewSet):
    """Negotiation, authentication, account resolution and document responses."""

    renderer_classes = [XMLRenderer, JSONRenderer, HTMLRenderer]
    permission_classes = [IsAuthenticated]
    lookup_value_regex = "[^/]+"
    # Deltacloud names the member parameter `id` (it shows in error documents).
    lookup_url_kwarg = "id"
    needs_account = True
    ctx: ApiContext

    def perform_authentication(self, request):
        if self.needs_account or "force_auth" in request.query_params:
            request.user  # noqa: B018 - authenticates now, so 401s come before any work
            if request.user is None and not self.needs_account:
                raise NotAuthenticated()
            return
        # Views that only describe a driver demand no credentials and, like
        # Deltacloud, ignore wrong ones (a user's default driver still applies).
        try:
            request.user  # noqa: B018
        except AuthenticationFailed:
            request._authenticator, request.user, request.auth = None, None, None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.ctx = build_context(request, needs_account=self.needs_account)
        request._request.dc_context = self.ctx

    def options(self, request, *args, **kwargs):
        """``OPTIONS``: the methods this resource allows, in ``Allow``, no body."""
        response = empty_response(200)
        response["Allow"] = ", ".join(self.allowed_methods)
        return response

    @property
    def fmt(self) -> str:
        return self.request.accepted_renderer.format

    @property
    def urls(self) -> s.Urls:
        return self.ctx.urls

    def page(self, template: str, title: str, **context) -> bytes:
        return html.page(
            template,
            title=title,
            driver=self.ctx.driver,
            provider=self.ctx.provider,
            base=self.urls.base,
            path=self.request.path,
            **context,
        )

    def respond(
        self,
        key: Hashable | None,
        render: Callable[[], bytes],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        rendered = make_rendered(render()) if key is None else render_cache.get_or_render(key, render)
        return document_response(self.request, rendered, self.fmt, status, headers)

    def cache_key(self, *parts: Hashable) -> tuple:
        account = self.ctx.account
        return (
            type(self).__name__,
            self.action,
            account.pk,
            account.catalog_version,
            self.fmt,
            self.urls.base,
            *parts,
        )

    def param(self, name: str) -> str | None:
        """A request parameter: body (form, multipart or JSON), then query
        string, then matrix parameters on the collection (the advertised
        ``/api/images;instance_id=X`` links)."""
        for source in (self.request.data, self.request.query_params, self.request._request.dc_matrix):
            if hasattr(source, "getlist") and name in source:
                return source.getlist(name)[-1]
            if name in source:
                value = source[name]
                if value is not None and not isinstance(value, str):
                    raise ApiError(400, f"Parameter '{name}' must be a string")
                return value
        return None

    def deleted(self, collection: str) -> HttpResponse:
        """204 without a body; browsers go back to the list, as Deltacloud's HTML did."""
        if self.fmt == "html":
            return HttpResponseRedirect(self.urls.collection(collection))
        return empty_response(204)

    def form(self, title: str, collection: str, key: str, inputs, submit: str) -> HttpResponse:
        """A browser form (``/new?<key>=...``) that POSTs to the collection."""
        value = self.request.query_params.get(key)
        if self.fmt != "html":
            raise NotAcceptable()
        if not value:
            raise ApiError(404)
        body = self.page(
            "form.html",
            title,
            action=self.urls.collection(collection),
            hidden=[(key, value)],
            inputs=inputs,
            submit=submit,
        )
        return self.respond(None, lambda: body)

    def created(self, location: str, body: bytes) -> HttpResponse:
        response = self.respond(None, lambda: body, status=201)
        response["Location"] = location
        return response

    def freshness(self) -> dict[str, str]:
        synced = self.ctx.account.last_sync_succeeded_at
        return {"X-Deltaweb-Synced-At": synced.isoformat() if synced else "never"}

    def ensure_synced(self) -> None:
        """A catalog never synced is not answered as empty: the client is told
        to come back (503, Retry-After) while the worker fills the cache."""
        account = self.ctx.account
        if account.last_sync_succeeded_at is not None:
            return
        sync.catalog_sync_enqueue(account_id=account.pk)
        message = f"The catalog of account '{account.name}' has not been synced yet"
        if account.last_sync_error:
            message += f"; its last sync failed: {account.last_sync_error}"
        raise ApiError(503, message, headers={"Retry-After": "10"})


# -- /api -------------------------------------------------------------------------


class ApiEntryViewSet(DeltacloudViewSet):
    """``GET /api``: the collections and features of the request's driver."""

    needs_account = False
    permission_classes = [AllowAny]

    def list(self, request):
        driver = self.ctx.driver_class
        links = selectors.entry_point_links(driver)
        version = settings.DELTAWEB_API_VERSION
        provider = self.ctx.provider

        def render() -> bytes:
            if self.fmt == "json":
                return s.dump_json(s.api_dict(links, self.urls, driver.name, provider, version))
            if self.fmt == "html":
                items = [
                    {
                        "href": self.urls.collection(rel),
                        "title": rel.replace("_", " ").title(),
                        "subtitle": ", ".join(f.name for f in feats),
                    }
                    for rel, feats in links
                ]
                return self.page("collection.html", "API", items=items)
            return s.api_xml(links, self.urls, driver.name, provider, version)

        return self.respond(("api", driver.name, provider, self.fmt, self.urls.base), render)

    def create(self, request):
        """``POST /api`` with driver/provider: redirect to the matrix form."""
        parts = [f";{k}={request.data[k]}" for k in ("driver", "provider") if request.data.get(k)]
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
        caps = services.capabilities(account=account)

        def render() -> bytes:
            rows = selectors.image_rows(account=account, filters=filters)
            if self.fmt == "json":
                return s.dump_json({"images": [s.image_dict(r, self.urls) for r in rows]})
            if self.fmt == "html":
                items = [
                    {
                        "href": self.urls.member("images", r.external_id),
                        "title": r.name or r.external_id,
                        "subtitle": f"{r.description or ''}, {r.owner_id}, {r.architecture}",
                        "badge": r.state,
                        "status": r.status,
                    }
                    for r in rows
                ]
                return self.page("collection.html", "Images", items=items)
            return s.images_xml(rows, self.urls, caps.destroy_image)

        return self.respond(self.cache_key(filters, caps.destroy_image), render, headers=self.freshness())

    def retrieve(self, request, id=None):
        account = self.ctx.account
        caps = services.capabilities(account=account)

        real_id = operations.image_resolve_alias(account=account, external_id=id)
        headers = self.freshness()
        if real_id is not None:
            # The provisional id of a create keeps working: it shows the real image.
            headers["Content-Location"] = self.urls.member("images", real_id)

        def render() -> bytes:
            wanted = real_id or id
            row = selectors.image_row(account=account, external_id=wanted)
            if row is None:
                if services.image_lookup(account=account, external_id=wanted) is None:
                    raise ApiError(404)
                row = selectors.image_row(account=account, external_id=wanted)
            return self._render_image(row, caps)

        return self.respond(self.cache_key(id, caps.destroy_image), render, headers=headers)

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
        body = self._render_image(row, services.capabilities(account=account))
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

    def _render_image(self, row: s.ImageRow, caps) -> bytes:
        if self.fmt == "json":
            return s.dump_json({"image": s.image_dict(row, self.urls)})
        if self.fmt == "html":
            fields = [
                ("Name", row.name, None),
                ("Description", row.description or "", None),
                ("Owner", row.owner_id, f"{self.urls.collection('images')}?owner_id={s.seg(row.owner_id)}"),
                ("State", row.state, None),
                ("Normalized state", row.status, None),
            ]
            if row.failure_reason:
                fields.append(("Reason", row.failure_reason, None))
            if row.creation_time:
                fields.append(("Creation time", row.creation_time, None))
            fields += [("Root device type", row.root_type, None), ("Architecture", row.architecture, None)]
            fields += [
                ("Hardware profile", h, self.urls.member("hardware_profiles", h))
                for h in row.hardware_profiles or ()
            ]
            actions = [
                {
                    "label": "Launch…",
                    "method": "get",
                    "href": f"{self.urls.collection('instances')}/new?image_id={s.seg(row.external_id)}",
                }
            ]
            if caps.destroy_image:
                actions.append(
                    {
                        "label": "Destroy",
                        "method": "post",
                        "danger": True,
                        "href": self.urls.member("images", row.external_id),
                        "fields": [("_method", "delete")],
                    }
                )
            return self.page("member.html", f"Image {row.external_id}", fields=fields, actions=actions)
        return s.image_show_xml(row, self.urls, caps.destroy_image)


# -- instances -----------------------------------------------------------------------


class InstanceViewSet(DeltacloudViewSet):
    """``/api/instances``: cached instances, with the actions their driver allows."""

    def options(self) -> s.InstanceOptions:
        caps = services.capabilities(account=self.ctx.account)
        return s.InstanceOptions(caps.create_image, caps.run_on_instance, self.ctx.driver_class.auth_feature)

    def list(self, request):
        self.ensure_synced()
        account, opts = self.ctx.account, self.options()
        filters = selectors.instance_filters(request.query_params)

        def render() -> bytes:
            rows = selectors.instance_rows(account=account, filters=filters)
            if self.fmt == "json":
                return s.dump_json({"instances": [s.instance_dict(r, self.urls, opts) for r in rows]})
            if self.fmt == "html":
                items = [
                    {
                        "href": self.urls.member("instances", r.external_id),
                        "title": r.name or r.external_id,
                        "subtitle": f"{r.external_id}, image {r.image_id}, {r.realm_id}",
                        "badge": r.state,
                    }
                    for r in rows
                ]
                return self.page("collection.html", "Instances", items=items)
            return s.instances_xml(rows, self.urls, opts)

        return self.respond(self.cache_key(filters, opts), render, headers=self.freshness())

    def retrieve(self, request, id=None):
        account, opts = self.ctx.account, self.options()

        def render() -> bytes:
            row = selectors.instance_row(account=account, external_id=id)
            if row is None:
                if services.instance_lookup(account=account, external_id=id) is None:
                    raise ApiError(404)
                row = selectors.instance_row(account=account, external_id=id)
            return self._render_instance(row, opts)

        return self.respond(self.cache_key(id, opts), render, headers=self.freshness())

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
        return self._render_instance(row, self.options())

    def _act(self, id, action_name):
        self._require_action(id, action_name)
        operations.instance_action(account=self.ctx.account, external_id=id, action=action_name)
        return self.respond(None, lambda: self._instance_body(id), status=202)

    def _require_action(self, id, action_name):
        row = selectors.instance_row(account=self.ctx.account, external_id=id)
        if row is None:
            row_model = services.instance_lookup(account=self.ctx.account, external_id=id)
            if row_model is None:
                raise ApiError(404, f"Instance {id} not found")
            row = selectors.instance_row(account=self.ctx.account, external_id=id)
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
        if self.fmt == "json":
            body = s.dump_json(
                {
                    "instance": {
                        "id": id,
                        "href": self.urls.member("instances", id),
                        "public_address": result.public_address,
                        "command": result.command,
                        "output": result.output,
                    }
                }
            )
        elif self.fmt == "html":
            body = self.page(
                "member.html",
                f"Run on {id}",
                fields=[("Command", result.command, None), ("Output", result.output, None)],
            )
        else:
            body = s.run_xml(id, self.urls, result.public_address, result.command, result.output)
        return self.respond(None, lambda: body)

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

    def _render_instance(self, row: s.InstanceRow, opts: s.InstanceOptions) -> bytes:
        if self.fmt == "json":
            return s.dump_json({"instance": s.instance_dict(row, self.urls, opts)})
        if self.fmt == "html":
            fields = [
                ("Name", row.name, None),
                ("Owner", row.owner_id, None),
                ("Image", row.image_id, self.urls.member("images", row.image_id)),
                ("Realm", row.realm_id, self.urls.member("realms", row.realm_id)),
                ("State", row.state, None),
                (
                    "Hardware profile",
                    row.hardware_profile_id,
                    self.urls.member("hardware_profiles", row.hardware_profile_id),
                ),
            ]
            fields += [("Public address", a["address"], None) for a in row.public_addresses]
            fields += [("Private address", a["address"], None) for a in row.private_addresses]
            if row.create_image_refusal:
                fields.append(("Imaging", row.create_image_refusal, None))
            actions = []
            for rel, method, href in s.instance_links(row, self.urls, opts):
                if rel == "run":
                    continue
                if rel == "create_image":
                    actions.append(
                        {
                            "label": "Create image…",
                            "method": "get",
                            "href": f"{self.urls.collection('images')}/new"
                            f"?instance_id={s.seg(row.external_id)}",
                        }
                    )
                elif method == "delete":
                    actions.append(
                        {
                            "label": "Destroy",
                            "method": "post",
                            "href": href,
                            "danger": True,
                            "fields": [("_method", "delete")],
                        }
                    )
                else:
                    actions.append({"label": rel.title(), "method": "post", "href": href})
            return self.page("member.html", f"Instance {row.external_id}", fields=fields, actions=actions)
        return s.instance_show_xml(row, self.urls, opts)


# -- driver descriptions ---------------------------------------------------------------


class HardwareProfileViewSet(DeltacloudViewSet):
    """``/api/hardware_profiles``: static per driver, no credentials needed."""

    needs_account = False
    permission_classes = [AllowAny]

    def list(self, request):
        driver = self.ctx.driver_class
        profiles = selectors.hardware_profiles(driver)

        def render() -> bytes:
            if self.fmt == "json":
                return s.dump_json(
                    {"hardware_profiles": [s.hardware_profile_dict(p, self.urls) for p in profiles]}
                )
            if self.fmt == "html":
                items = [
                    {
                        "href": self.urls.member("hardware_profiles", p.id),
                        "title": p.id,
                        "subtitle": ", ".join(f"{q.name} {q.value} {q.unit}" for q in p.properties),
                    }
                    for p in profiles
                ]
                return self.page("collection.html", "Hardware profiles", items=items)
            return s.collection_xml(
                "hardware_profiles", (s.hardware_profile_xml(p, self.urls, "  ") for p in profiles)
            )

        return self.respond(("hwp", driver.name, self.fmt, self.urls.base), render)

    def retrieve(self, request, id=None):
        driver = self.ctx.driver_class
        profile = next((p for p in selectors.hardware_profiles(driver) if p.id == id), None)
        if profile is None:
            raise ApiError(404)

        def render() -> bytes:
            if self.fmt == "json":
                return s.dump_json({"hardware_profile": s.hardware_profile_dict(profile, self.urls)})
            if self.fmt == "html":
                fields = [
                    (
                        p.name,
                        f"{p.value} {p.unit}"
                        if p.kind == "fixed"
                        else f"{p.first}-{p.last} {p.unit} (default {p.value})"
                        if p.kind == "range"
                        else f"{', '.join(p.values)} {p.unit} (default {p.value})",
                        None,
                    )
                    for p in profile.properties
                ]
                return self.page("member.html", f"Hardware profile {id}", fields=fields)
            return s.member_xml(s.hardware_profile_xml(profile, self.urls))

        return self.respond(("hwp", driver.name, id, self.fmt, self.urls.base), render)


class InstanceStateViewSet(DeltacloudViewSet):
    """``/api/instance_states``: the driver's instance state machine."""

    needs_account = False
    permission_classes = [AllowAny]

    def list(self, request):
        driver = self.ctx.driver_class

        def render() -> bytes:
            if self.fmt == "json":
                return s.dump_json(s.instance_states_data(driver))
            if self.fmt == "html":
                items = [
                    {
                        "href": "#",
                        "title": state,
                        "subtitle": ", ".join(f"{t.action or 'auto'} → {t.to}" for t in trans),
                    }
                    for state, trans in driver.instance_states
                ]
                return self.page("collection.html", "Instance states", items=items)
            return s.instance_states_xml(driver)

        return self.respond(("states", driver.name, self.fmt, self.urls.base), render)


class RealmViewSet(DeltacloudViewSet):
    """``/api/realms``: asked of the provider (they are few and rarely read)."""

    def list(self, request):
        realms = services.realm_list(account=self.ctx.account)
        if "id" in request.query_params:
            realms = [r for r in realms if r.id == request.query_params["id"]]
        if self.fmt == "json":
            body = s.dump_json({"realms": [s.realm_dict(r, self.urls) for r in realms]})
        elif self.fmt == "html":
            body = self.page(
                "collection.html",
                "Realms",
                items=[
                    {
                        "href": self.urls.member("realms", r.id),
                        "title": r.name,
                        "subtitle": r.id,
                        "badge": r.state,
                    }
                    for r in realms
                ],
            )
        else:
            body = s.collection_xml("realms", (s.realm_xml(r, self.urls, "  ") for r in realms))
        return self.respond(None, lambda: body)

    def retrieve(self, request, id=None):
        realm = services.realm_get(account=self.ctx.account, realm_id=id)
        if self.fmt == "json":
            body = s.dump_json({"realm": s.realm_dict(realm, self.urls)})
        elif self.fmt == "html":
            body = self.page(
                "member.html",
                f"Realm {realm.id}",
                fields=[
                    ("Name", realm.name, None),
                    ("State", realm.state, None),
                    ("Limit", realm.limit, None),
                ],
            )
        else:
            body = s.member_xml(s.realm_xml(realm, self.urls))
        return self.respond(None, lambda: body)


class DriverViewSet(DeltacloudViewSet):
    """``/api/drivers``: the drivers this server has."""

    needs_account = False
    permission_classes = [AllowAny]

    def list(self, request):
        drivers = [get_driver(name) for name in driver_names()]

        def render() -> bytes:
            if self.fmt == "json":
                return s.dump_json({d.name: s.driver_dict(d) for d in drivers})
            if self.fmt == "html":
                items = [
                    {
                        "href": self.urls.member("drivers", d.name),
                        "title": d.label,
                        "subtitle": ", ".join(d.providers),
                    }
                    for d in drivers
                ]
                return self.page("collection.html", "Drivers", items=items)
            return s.drivers_xml(drivers, self.urls)

        return self.respond(("drivers", self.fmt, self.urls.base), render)

    def retrieve(self, request, id=None):
        if id not in driver_names():
            raise ApiError(404)
        driver = get_driver(id)
        if self.fmt == "json":
            body = s.dump_json({"driver": {**s.driver_dict(driver), "id": driver.name}})
        elif self.fmt == "html":
            body = self.page(
                "member.html",
                f"Driver {driver.name}",
                fields=[("Name", driver.label, None), *[("Provider", p, None) for p in driver.providers]],
            )
        else:
            body = s.driver_xml(driver, self.urls)
        return self.respond(None, lambda: body)
