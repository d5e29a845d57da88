"""Browser pages: a readable rendering of the same documents, with forms for
the actions (HTML forms send ``_method=delete`` for DELETE)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.template.loader import render_to_string


def page(
    template: str, *, title: str, driver: str, provider: str | None, base: str, path: str, **context: Any
) -> bytes:
    return render_to_string(
        f"deltaweb/{template}",
        {
            "title": title,
            "version": settings.DELTAWEB_API_VERSION,
            "driver": driver,
            "provider": provider or "default",
            "api_href": f"{base}/api",
            "formats": [("XML", f"{base}{path}?format=xml"), ("JSON", f"{base}{path}?format=json")],
            **context,
        },
    ).encode()


def error_page(status: int, message: str, path: str, driver: str, provider: str) -> bytes:
    return page(
        "error.html",
        title=f"Error {status}",
        driver=driver,
        provider=provider,
        base="",
        path=path,
        status=status,
        message=message,
        url=path,
    )
