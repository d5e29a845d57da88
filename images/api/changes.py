"""``GET /api/images?changes_since=<token>``: what changed in the catalog since a token.

The feed itself (tokens, the change sequence, retained tombstones) is
``images.feed``; this module only turns its answer into the collection
document: vanished and deleted images are listed with state ``DELETED``, the
new token goes in ``X-Deltaweb-Changes-Token`` (and the JSON body), and when
more changes wait the next call is announced in ``Link`` like a next page.
"""

from __future__ import annotations

from django.http import HttpResponse

from images import selectors
from images.api.base import DeltacloudViewSet, parse_limit
from images.api.exceptions import ApiError
from images.api.representations.images import IMAGES
from images.rows import IMAGE_ROW_FIELDS, ImageRow

TOKEN_HEADER = "X-Deltaweb-Changes-Token"
DELETED = "DELETED"


def changed_row(values: tuple) -> ImageRow:
    """A feed row (the image's fields, then whether it is gone) as an image row."""
    row = ImageRow._make(values[:-1])
    return row._replace(state=DELETED, status=DELETED) if values[-1] else row


def changes_response(view: DeltacloudViewSet, filters: selectors.Filters, can_destroy: bool) -> HttpResponse:
    from images import feed  # the delta feed's own module (change sequence, tokens)

    params = view.request.query_params
    for refused in ("marker", "sort"):
        if refused in params:
            raise ApiError(400, f"Parameter '{refused}' cannot be combined with 'changes_since'")
    limit = parse_limit(params.getlist("limit")[-1]) if "limit" in params else None
    try:
        changes = feed.changes(
            account=view.ctx.account,
            token=params.getlist("changes_since")[-1] or None,
            q=selectors.image_q(filters),
            fields=IMAGE_ROW_FIELDS,
            limit=limit,
        )
    except feed.TokenExpired as exc:
        message = str(exc) or "The changes token has expired"
        raise ApiError(
            410, f"{message}; list the images again (without changes_since) for a new token"
        ) from None
    except feed.BadToken as exc:
        raise ApiError(400, str(exc) or "Parameter 'changes_since' is not a valid changes token") from None
    rows = [changed_row(values) for values in changes.rows]
    link = view.next_url(changes_since=changes.token) if changes.more else None
    document = view.listing(IMAGES, rows, view.env(can_destroy), link, {"changes_token": changes.token})
    return view.respond(None, lambda: document, headers={**view.freshness(), TOKEN_HEADER: changes.token})
