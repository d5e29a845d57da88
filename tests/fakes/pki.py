"""A throwaway certificate authority, made at test time with ``cryptography``.

FGCP issues each user a client certificate (UserCert.p12) from its own CA and
serves its API with a server certificate; the fake needs both sides, and tests
need a second, unrelated CA to present a certificate FGCP never issued.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# RSA, as FGCP's SHA1withRSA signatures need.
KEY_BITS = 2048


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _name(common_name: str, country: str = "AU") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deltaweb tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_pem(key: rsa.RSAPrivateKey, passphrase: str = "") -> str:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@dataclass
class Issued:
    """A certificate and its key, in the forms an FGCP account's credentials take."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)
    ca: x509.Certificate | None = None

    def pem_credentials(self, passphrase: str = "") -> dict[str, str]:
        creds = {"certificate": pem(self.cert), "private_key": key_pem(self.key, passphrase)}
        if passphrase:
            creds["passphrase"] = passphrase
        return creds

    def pkcs12_credentials(self, passphrase: str) -> dict[str, str]:
        blob = pkcs12.serialize_key_and_certificates(
            b"UserCert",
            self.key,
            self.cert,
            [self.ca] if self.ca is not None else None,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
        return {"pkcs12": base64.b64encode(blob).decode("ascii"), "passphrase": passphrase}


class Authority:
    """A CA that issues FGCP-style user certificates and a server certificate."""

    def __init__(self, name: str = "FGCP Test CA") -> None:
        self.key = _key()
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return pem(self.cert)

    def _issue(self, subject: x509.Name, usage, sans: list[x509.GeneralName] | None = None) -> Issued:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key, self.cert)

    def user(self, user_id: str, country: str = "AU") -> Issued:
        """A user certificate; FGCP puts the user id in the CN and the region's country in C."""
        return self._issue(_name(user_id, country), ExtendedKeyUsageOID.CLIENT_AUTH)

    def server(self, host: str = "127.0.0.1") -> Issued:
        sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
        return self._issue(_name(host), ExtendedKeyUsageOID.SERVER_AUTH, sans)
