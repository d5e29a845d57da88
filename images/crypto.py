"""Provider credentials encrypted at rest (Fernet), so a database dump leaks no keys."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@cache
def _fernet(key_material: str) -> Fernet:
    if settings.DELTAWEB_CREDENTIALS_KEY:
        return Fernet(settings.DELTAWEB_CREDENTIALS_KEY.encode())
    digest = hashlib.sha256(f"deltaweb-credentials:{key_material}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _current() -> Fernet:
    return _fernet(settings.SECRET_KEY)


class CredentialsUnreadable(ImproperlyConfigured):
    """The stored credentials were encrypted with another key."""


def encrypt_json(value: dict[str, str]) -> str:
    return _current().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, str]:
    try:
        return json.loads(_current().decrypt(token.encode()))
    except InvalidToken as exc:
        # Never include the token: it is the secret.
        raise CredentialsUnreadable(
            "Stored provider credentials cannot be decrypted: SECRET_KEY or "
            "DELTAWEB_CREDENTIALS_KEY changed since they were saved"
        ) from exc
