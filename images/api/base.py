"""The view base every Deltacloud route shares, and the generic handlers.

A collection is: filters → selector (one page, or the whole list streamed)
→ representation → response with an ETag. A member is: row (cached, else
asked of the provider once, else 404) → representation → response. Views
only say what is particular to their route.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from rest_framework import viewsets
from rest_framework.exceptions import NotAcceptable, NotAuthenticated
from rest_framework.permissions import IsAuthenticated

from images import selectors, sync
from images.api.context import ApiContext, build_context
from images.api.exceptions import ApiError
from images.api.render_cache import Document, Rendered, key_etag, make_rendered, render_cache
from images.api.renderers import CONTENT_TYPES, HTMLRenderer, JSONRenderer, XMLRenderer
from images.api.representations.base import Env, Representation
from images.api.representations.markup import Urls

CACHE_CONTROL = "max-age=0, private, must-revalidate"


def etag_matches(header: str, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/").strip('"')
    return any(tag.strip().removeprefix("W/").strip('"') == bare for tag in header.split(","))


def empty_response(status: int) -> HttpResponse:
    response = HttpResponse(status=status)
    del response["Content-Type"]
    return response


def _finish(response: HttpResponse, etag: str, headers: Iterable[tuple[str, str]]) -> HttpResponse:
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    for name, value in headers:
        response[name] = value
    return response


def document_response(
    request, rendered: Rendered, fmt: str, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    """The document, or a bodiless 304 when the client already has it."""
    if status == 200 and etag_matches(request.META.get("HTTP_IF_NONE_MATCH", ""), rendered.etag):
        response = empty_response(304)
    else:
        response = HttpResponse(rendered.body, status=status, content_type=CONTENT_TYPES[fmt])
    return _finish(response, rendered.etag, (*rendered.headers, *(headers or {}).items()))


@dataclass(frozen=True)
class Paging:
    """``?limit``, ``?marker`` and ``?sort`` of a collection request (limit None: whole list)."""

    limit: int | None
    marker: str | None
    sort: selectors.Sort


def parse_limit(raw: str) -> int:
    """``?limit=``: a positive integer, capped by ``DELTAWEB_PAGE_MAX``."""
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, "Parameter 'limit' must be a positive integer")
    return min(int(raw), settings.DELTAWEB_PAGE_MAX)


def parse_paging(params, sorts: dict[str, str]) -> Paging:
    limit = parse_limit(params.getlist("limit")[-1]) if "limit" in params else None
    marker = params.getlist("marker")[-1] if "marker" in params else None
    if marker is not None and limit is None:
        limit = settings.DELTAWEB_PAGE_MAX
    sort = selectors.Sort()
    if "sort" in params:
        raw = params.getlist("sort")[-1]
        name = raw.removeprefix("-")
        if name not in sorts:
            names = ", ".join(sorts)
            raise ApiError(400, f"Parameter 'sort' must be one of {names}, with '-' for descending")
        sort = selectors.Sort(sorts[name], raw.startswith("-"))
    return Paging(limit, marker, sort)


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
        if self.needs_account:
            request.user  # noqa: B018 - authenticates now, so 401s come before any work
            return
        # Views that only describe a driver demand no credentials and, like
        # Deltacloud, do not even look at them unless ?force_auth asks to.
        if "force_auth" in request.query_params:
            if request.user is None:
                raise NotAuthenticated()
            return
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
    def browser(self) -> bool:
        """HTML was negotiated: answers meant for a person (redirects, forms)."""
        return self.fmt == "html"

    @property
    def urls(self) -> Urls:
        return self.ctx.urls

    def env(self, options: Any = None) -> Env:
        return Env(self.urls, self.ctx.driver, self.ctx.provider, self.request.path, options)

    def respond(
        self,
        key: Hashable | None,
        render: Callable[[], Document],
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

    # -- the generic handlers --------------------------------------------------------

    def member(
        self, rep: Representation, key: Hashable | None, load: Callable[[], Any], options: Any = None, **kw
    ) -> HttpResponse:
        env = self.env(options)
        return self.respond(key, lambda: rep.member(self.fmt, load(), env), **kw)

    def collection(
        self,
        rep: Representation,
        rows: Callable[..., Iterable[Any]],
        page: Callable[..., tuple[list[Any], bool]],
        sorts: dict[str, str],
        filters: selectors.Filters,
        options: Any = None,
    ) -> HttpResponse:
        """The account's whole list (streamed when big), or one keyset page with its
        next link. ``rows`` and ``page`` are the resource's selectors."""
        account, env, headers = self.ctx.account, self.env(options), self.freshness()
        paging = parse_paging(self.request.query_params, sorts)
        key = self.cache_key(filters, options, paging)
        if paging.limit is None:
            return self._whole(
                rep, env, key, lambda: rows(account=account, filters=filters, sort=paging.sort), headers
            )

        def render() -> Document:
            try:
                items, more = page(
                    account=account,
                    filters=filters,
                    sort=paging.sort,
                    limit=paging.limit,
                    marker=paging.marker,
                )
            except selectors.UnknownMarker:
                raise ApiError(400, f"Unknown marker '{paging.marker}'") from None
            link = self.next_url(marker=items[-1].external_id, limit=str(paging.limit)) if more else None
            return self.listing(rep, items, env, link)

        return self.respond(key, render, headers=headers)

    def listing(
        self, rep: Representation, items: list[Any], env: Env, link: str | None, extra: dict | None = None
    ) -> Document:
        """A page: the next one in ``Link`` (every format) and in the JSON body."""
        extra = dict(extra or {})
        if link is None:
            return rep.collection(self.fmt, items, env, extra), ()
        extra["next"] = link
        return rep.collection(self.fmt, items, env, extra), (("Link", f'<{link}>; rel="next"'),)

    def _whole(self, rep, env, key, rows, headers) -> HttpResponse:
        cached = render_cache.get(key)
        if cached is not None:
            return document_response(self.request, cached, self.fmt, headers=headers)
        weak = key_etag(key)
        if etag_matches(self.request.META.get("HTTP_IF_NONE_MATCH", ""), weak):
            return _finish(empty_response(304), weak, (headers or {}).items())
        it = iter(rows())
        head = list(islice(it, settings.DELTAWEB_STREAM_ROWS))
        if len(head) < settings.DELTAWEB_STREAM_ROWS:
            rendered = render_cache.put(key, make_rendered(rep.collection(self.fmt, head, env)))
            return document_response(self.request, rendered, self.fmt, headers=headers)
        if self.request.method == "HEAD":
            getattr(it, "close", lambda: None)()  # no body to send: the cursor closes now
            return _finish(HttpResponse(content_type=CONTENT_TYPES[self.fmt]), weak, (headers or {}).items())
        # Too big to keep: streamed from the cursor, memory flat in the catalog size.
        body = rep.stream(self.fmt, chain(head, it), env)
        response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[self.fmt])
        return _finish(response, weak, (headers or {}).items())

    def next_url(self, **replace: str) -> str:
        query = self.request._request.GET.copy()
        for name, value in replace.items():
            query[name] = value
        return f"{self.urls.base}{self.request.path}?{query.urlencode(safe='/:')}"

    # -- what several routes share ------------------------------------------------

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
        if self.browser:
            return HttpResponseRedirect(self.urls.collection(collection))
        return empty_response(204)

    def form(self, title: str, collection: str, key: str, inputs, submit: str) -> HttpResponse:
        """A browser form (``/new?<key>=...``) that POSTs to the collection."""
        value = self.request.query_params.get(key)
        if not self.browser:
            raise NotAcceptable()
        if not value:
            raise ApiError(404)
        body = self.env().page(
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
