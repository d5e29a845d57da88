"""The FGCP account's client certificate: loading it, signing with it, and
handing it to TLS without leaving the key on disk.

FGCP authenticates twice with one certificate: mutual TLS, and an RSA-SHA1
signature over a short-lived ``AccessKeyId`` on every call (Fujitsu's
``OViSSSignature``; Deltacloud's ``fgcp_client.rb`` did the same). Nothing here
imports Django, and no passphrase or key ever reaches a message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from providers.exceptions import AuthFailure

SIGNATURE_VERSION = "1.0"
SIGNATURE_METHOD = "SHA1withRSA"


def access_key_id(timezone: str, expires_ms: int) -> str:
    """``base64("<TZ>&<expiry ms>&1.0&SHA1withRSA")``: what every call signs."""
    plain = f"{timezone}&{expires_ms}&{SIGNATURE_VERSION}&{SIGNATURE_METHOD}"
    return base64.b64encode(plain.encode("utf-8")).decode("ascii")


def _user_of(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


@dataclass(frozen=True, eq=False)
class ClientIdentity:
    """A user certificate and its RSA key, as FGCP issues them (UserCert.p12).

    ``user`` is the certificate's common name, which FGCP shows as an image's
    ``registrant`` and a vsys' ``creator``, unless the account names it.
    """

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    user: str = ""

    def __repr__(self) -> str:  # the key and any passphrase stay out of reprs
        return f"<ClientIdentity user={self.user!r}>"

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str], *, user: str = "") -> ClientIdentity:
        """From ``{"pkcs12": <base64>, "passphrase": ...}`` or
        ``{"certificate": <PEM>, "private_key": <PEM>, "passphrase": ...}``.

        Unreadable credentials are the account's problem, so they raise
        AuthFailure (the account gets flagged), never naming the passphrase.
        """
        passphrase = credentials.get("passphrase") or ""
        password = passphrase.encode("utf-8") if passphrase else None
        if credentials.get("pkcs12"):
            key, cert, chain = cls._from_pkcs12(credentials["pkcs12"], password)
        elif credentials.get("certificate") and credentials.get("private_key"):
            key, cert, chain = cls._from_pem(credentials["certificate"], credentials["private_key"], password)
        else:
            raise AuthFailure(
                "FGCP credentials need 'pkcs12' (base64 of UserCert.p12) and 'passphrase', "
                "or 'certificate' and 'private_key' in PEM"
            )
        if not isinstance(key, rsa.RSAPrivateKey):
            raise AuthFailure("The FGCP client certificate must have an RSA key (SHA1withRSA signatures)")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise AuthFailure("The FGCP private key does not belong to the client certificate")
        return cls(certificate=cert, key=key, chain=tuple(chain), user=user or _user_of(cert))

    @staticmethod
    def _from_pkcs12(encoded: str, password: bytes | None) -> tuple[object, x509.Certificate, list]:
        try:
            data = base64.b64decode("".join(encoded.split()), validate=True)
        except binascii.Error:
            raise AuthFailure("The FGCP 'pkcs12' credential is not base64") from None
        try:
            key, cert, chain = pkcs12.load_key_and_certificates(data, password)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # The library's message can quote the input; ours says what to check.
            raise AuthFailure(
                "The FGCP PKCS#12 certificate could not be opened (wrong passphrase, or not PKCS#12)"
            ) from None
        if key is None or cert is None:
            raise AuthFailure("The FGCP PKCS#12 file holds no certificate and key pair")
        return key, cert, list(chain)

    @staticmethod
    def _from_pem(
        cert_pem: str, key_pem: str, password: bytes | None
    ) -> tuple[object, x509.Certificate, list]:
        try:
            certs = x509.load_pem_x509_certificates(cert_pem.encode("utf-8"))
        except ValueError:
            raise AuthFailure("The FGCP 'certificate' credential is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_pem.encode("utf-8"), password)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise AuthFailure(
                "The FGCP 'private_key' could not be read (wrong passphrase, or not a PEM key)"
            ) from None
        return key, certs[0], certs[1:]

    def sign(self, key_id: str) -> str:
        """The call's ``Signature``: base64(RSA-SHA1(AccessKeyId))."""
        raw = self.key.sign(key_id.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())
        return base64.b64encode(raw).decode("ascii")

    def ssl_context(self, ca_pem: str | None = None, cafile: str | None = None) -> ssl.SSLContext:
        """A client TLS context presenting this certificate.

        The stdlib loads certificates only from paths, so the key passes
        through an anonymous memory file (or, where there is none, a 0600
        file in a 0700 directory, removed at once), and even there it is
        encrypted under a one-time password that lives only in this call.
        """
        context = ssl.create_default_context(cafile=None if ca_pem else cafile, cadata=ca_pem or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        once = secrets.token_urlsafe(32)
        blob = b"".join(
            [
                self.certificate.public_bytes(serialization.Encoding.PEM),
                *(c.public_bytes(serialization.Encoding.PEM) for c in self.chain),
                self.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(once.encode("ascii")),
                ),
            ]
        )
        with transient_file(blob) as path:
            context.load_cert_chain(path, password=once)
        return context


def _memfd_path() -> str | None:
    """/proc/self/fd exists where memfd_create is useful (Linux)."""
    return "/proc/self/fd" if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd") else None


@contextlib.contextmanager
def transient_file(data: bytes, *, in_memory: bool | None = None) -> Iterator[str]:
    """A path holding ``data`` only for the ``with`` block."""
    fd_dir = _memfd_path() if in_memory is not False else None
    if fd_dir is not None:
        fd = os.memfd_create("fgcp-identity", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"{fd_dir}/{fd}"
        finally:
            os.close(fd)
        return
    folder = tempfile.mkdtemp(prefix="fgcp-")  # 0700
    path = os.path.join(folder, "identity.pem")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
