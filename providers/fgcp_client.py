"""A small client for Fujitsu Global Cloud Platform's API ("OViSS").

No FGCP client exists on PyPI and libcloud never had one, so this speaks the
protocol Deltacloud's ``fgcp_client.rb`` spoke: HTTPS with the user's client
certificate to a regional endpoint; ``Action``, ``Version``, ``Locale``, a
signed ``AccessKeyId`` and ``Signature`` on every call (query string, or the
``Document`` part of a multipart POST when a call carries an XML document);
HTTP 200 always, with the outcome in ``<responseStatus>``.

``_translated`` is the one place where transport failures become the typed
errors of ``providers.exceptions``; ``providers.fgcp_xml`` reads the answers
(with defusedxml) and maps their statuses.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import certifi
import requests
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from requests.adapters import HTTPAdapter

from providers.exceptions import AuthFailure, NotFound, ProviderError, ProviderTimeout, Unavailable
from providers.fgcp_identity import ClientIdentity, access_key_id
from providers.fgcp_xml import (
    DiskImage,
    ItemCollector,
    VServer,
    VSys,
    child,
    children,
    disk_image_document,
    parse_disk_image,
    parse_response,
    parse_vserver,
    parse_vsys,
    status_error,
    text_of,
    vsys_id_of,
)

ENDPOINTS: Mapping[str, str] = {
    "au": "https://api.globalcloud.fujitsu.com.au/ovissapi/endpoint",
    "de": "https://api.globalcloud.de.fujitsu.com/ovissapi/endpoint",
    "jp-east": "https://api.oviss.jp.fujitsu.com/ovissapi/endpoint",
    "jp-west": "https://api.oviss2.jp.fujitsu.com/ovissapi/endpoint",
    "sg": "https://api.globalcloud.sg.fujitsu.com/ovissapi/endpoint",
    "uk": "https://api.globalcloud.uk.fujitsu.com/ovissapi/endpoint",
    "us": "https://api.globalcloud.us.fujitsu.com/ovissapi/endpoint",
}
VERSIONS = ("2011-01-31", "2015-01-30")
USER_AGENT = "OViSS-API-CLIENT"  # what Fujitsu's own tools and Deltacloud sent

_QUERY = re.compile(r"\?[^\s)'\"]*")
# TLS alerts by which a server refuses the certificate we presented.
_REJECTED_CERT = re.compile(
    r"alert (bad certificate|unknown ca|certificate (unknown|revoked|expired|required)|"
    r"unsupported certificate|access denied)",
    re.IGNORECASE,
)


# -- transport --------------------------------------------------------------------------


class _IdentityAdapter(HTTPAdapter):
    """requests with our own SSLContext: the client certificate is already in
    it, and only its trust store decides (no ambient CA bundle)."""

    def __init__(self, context: Any) -> None:
        self._context = context
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


def _chaintext_of(exc: BaseException) -> str:
    """The exception and its causes, with query strings (our signature) cut out."""
    seen, parts, current = set(), [], exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return _QUERY.sub("?…", " | ".join(parts))


class FGCPClient:
    """One FGCP account: a certificate and an endpoint.

    The TLS context and HTTP session are built on first use (many API requests
    never reach the provider) and then shared by all threads.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        identity: ClientIdentity,
        ca_pem: str | None = None,
        version: str = VERSIONS[0],
        locale: str = "en",
        timezone: str = "UTC",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.ca_pem = ca_pem
        self.version = version
        self.locale = locale
        self.timezone = timezone
        self.timeout = (connect_timeout, read_timeout)
        self.clock = clock
        self._lock = threading.Lock()
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"<FGCPClient endpoint={self.endpoint!r} user={self.identity.user!r}>"

    def signed(self) -> dict[str, str]:
        """Fresh ``AccessKeyId`` and ``Signature``; the expiry is the current time in ms."""
        key_id = access_key_id(self.timezone, int(self.clock() * 1000))
        return {"AccessKeyId": key_id, "Signature": self.identity.sign(key_id)}

    def session(self) -> requests.Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    context = self.identity.ssl_context(self.ca_pem, cafile=certifi.where())
                    session = requests.Session()
                    session.trust_env = False  # the account's settings, not the host's environment
                    session.headers.update({"User-Agent": USER_AGENT, "Accept": "text/xml"})
                    session.mount("https://", _IdentityAdapter(context))
                    self._session = session
        return self._session

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """requests' exceptions as typed provider errors; the only such place
        (responseStatus is read by ``parse_response`` and ``_stream``)."""
        try:
            yield
        except requests.Timeout:
            raise ProviderTimeout(f"FGCP did not answer {action} in time") from None
        except requests.RequestException as exc:
            text = _chaintext_of(exc)
            if _REJECTED_CERT.search(text):
                raise AuthFailure(
                    "FGCP refused the account's client certificate in the TLS handshake",
                    detail=f"{action}: {text[:500]}",
                ) from None
            if "timed out" in text:  # a stalled body: requests says ConnectionError
                raise ProviderTimeout(f"FGCP did not finish answering {action} in time") from None
            raise Unavailable(f"FGCP could not be reached for {action}", detail=text[:500]) from None

    def _request(self, action: str, params: Mapping[str, str] | None, document: bytes, stream: bool):
        fields = {"Action": action, "Version": self.version, "Locale": self.locale, **(params or {})}
        fields.update(self.signed())
        session = self.session()
        if document:
            response = session.post(
                self.endpoint, files=self._multipart(fields, document), timeout=self.timeout, stream=stream
            )
        else:
            response = session.get(self.endpoint, params=fields, timeout=self.timeout, stream=stream)
        if response.status_code != 200:
            response.close()
            # The API itself always answers 200; anything else is a proxy or an outage.
            code = response.status_code
            error = Unavailable if code >= 500 or code == 429 else ProviderError
            raise error(f"FGCP answered {action} with HTTP {code}")
        return response

    def _call(
        self, action: str, params: Mapping[str, str] | None = None, document: bytes = b""
    ) -> ET.Element:
        with self._translated(action):
            body = self._request(action, params, document, stream=False).content
        return parse_response(body, action)

    def _stream(
        self, action: str, item: str, params: Mapping[str, str] | None = None
    ) -> Iterator[ET.Element]:
        """Each ``<item>`` of the answer as it is parsed. The status comes last
        in FGCP's documents, so a failure is raised after the items: callers
        (sync) must treat a listing that ends in an error as failed whole."""
        collector = ItemCollector(item)
        parser = DefusedXMLParser(
            target=collector, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        with self._translated(action):
            response = self._request(action, params, b"", stream=True)
        with contextlib.closing(response):
            chunks = response.iter_content(chunk_size=64 * 1024)
            while True:
                with self._translated(action):
                    chunk = next(chunks, None)
                try:
                    if chunk is None:
                        parser.close()
                    else:
                        parser.feed(chunk)
                except DefusedXmlException:
                    raise ProviderError(
                        f"FGCP answered {action} with a DTD or entities, which we refuse"
                    ) from None
                except ET.ParseError:
                    raise Unavailable(f"FGCP answered {action} with something that is not XML") from None
                yield from collector.ready
                collector.ready.clear()
                if chunk is None:
                    break
        status = collector.top.get("responseStatus", "")
        if status != "SUCCESS":
            raise status_error(status, collector.top.get("responseMessage", ""), action)

    @staticmethod
    def _multipart(fields: Mapping[str, str], document: bytes) -> dict[str, tuple]:
        request = ET.Element("OViSSRequest")
        for key, value in fields.items():
            ET.SubElement(request, key).text = value
        body = ET.tostring(request, encoding="UTF-8", xml_declaration=True)
        return {
            "Document": (None, body, "text/xml; charset=UTF-8"),
            "diskImageXMLFilePath": ("diskImageXMLFilePath.xml", document, "application/octet-stream"),
        }

    # -- calls ------------------------------------------------------------------------------

    def iter_disk_images(self) -> Iterator[DiskImage]:
        """ListDiskImage, one image at a time as the answer streams in."""
        for elem in self._stream("ListDiskImage", "diskimage"):
            yield parse_disk_image(elem)

    def list_disk_images(self) -> list[DiskImage]:
        return list(self.iter_disk_images())

    def get_disk_image(self, image_id: str) -> DiskImage:
        found = child(self._call("GetDiskImageAttributes", {"diskImageId": image_id}), "diskimage")
        if found is None:
            raise NotFound(f"Image {image_id} not found")
        return parse_disk_image(found)

    def list_vsys(self) -> list[VSys]:
        return [parse_vsys(e) for e in children(child(self._call("ListVSYS"), "vsyss"), "vsys")]

    def list_vservers(self, vsys_id: str) -> list[VServer]:
        root = self._call("ListVServer", {"vsysId": vsys_id})
        return [parse_vserver(e) for e in children(child(root, "vservers"), "vserver")]

    def _vserver_params(self, vserver_id: str) -> dict[str, str]:
        vsys_id = vsys_id_of(vserver_id)
        if vsys_id is None:
            raise NotFound(f"Instance {vserver_id} not found")
        return {"vsysId": vsys_id, "vserverId": vserver_id}

    def get_vserver(self, vserver_id: str) -> VServer:
        found = child(self._call("GetVServerAttributes", self._vserver_params(vserver_id)), "vserver")
        if found is None:
            raise NotFound(f"Instance {vserver_id} not found")
        return parse_vserver(found)

    def get_vserver_status(self, vserver_id: str) -> str:
        return text_of(self._call("GetVServerStatus", self._vserver_params(vserver_id)), "vserverStatus")

    def register_private_disk_image(self, vserver_id: str, name: str, description: str) -> None:
        """Start copying a stopped vserver's disk. FGCP answers with a status only:
        the new image's id appears in ListDiskImage when the copy is done."""
        self._call("RegisterPrivateDiskImage", document=disk_image_document(vserver_id, name, description))

    def unregister_disk_image(self, image_id: str) -> None:
        self._call("UnregisterDiskImage", {"diskImageId": image_id})
