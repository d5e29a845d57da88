"""A small client for Fujitsu Global Cloud Platform's API ("OViSS").

No FGCP client exists on PyPI and libcloud never had one, so this speaks the
protocol Deltacloud's ``fgcp_client.rb`` spoke: HTTPS with the user's client
certificate to a regional endpoint; ``Action``, ``Version``, ``Locale``, a
signed ``AccessKeyId`` and ``Signature`` on every call (query string, or the
``Document`` part of a multipart POST when a call carries an XML document);
HTTP 200 always, with the outcome in ``<responseStatus>``.

``_call`` is the one place where transport failures and non-SUCCESS statuses
become the typed errors of ``providers.exceptions``. Responses are parsed with
defusedxml, which refuses DTDs and entity expansion.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import certifi
import requests
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import fromstring as safe_fromstring
from requests.adapters import HTTPAdapter

from providers.exceptions import (
    AuthFailure,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    ProviderTimeout,
    Unavailable,
)
from providers.fgcp_identity import ClientIdentity, access_key_id

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
LOCALES = ("en", "ja")
USER_AGENT = "OViSS-API-CLIENT"  # what Fujitsu's own tools and Deltacloud sent

# vsys ids are "<contract>-<code>"; vservers "<vsys>-S-<nnnn>", networks "<vsys>-N-<name>".
_VSERVER_ID = re.compile(r"^([A-Za-z0-9]+-[A-Za-z0-9]+)-S-[0-9]{4}$")

# FGCP's own status names for rejected credentials were never published or
# recorded; Deltacloud matched the message a certificate of another region
# gets ("User not found in selectData."). Both checks are needed.
_AUTH_STATUS = re.compile(r"AUTH|SIGNATURE|CERTIFICATE")
_AUTH_MESSAGE = re.compile(r"User not found in selectData", re.IGNORECASE)
_QUERY = re.compile(r"\?[^\s)'\"]*")
# TLS alerts by which a server refuses the certificate we presented.
_REJECTED_CERT = re.compile(
    r"alert (bad certificate|unknown ca|certificate (unknown|revoked|expired|required)|"
    r"unsupported certificate|access denied)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DiskImage:
    """One ``<diskimage>`` of ListDiskImage / GetDiskImageAttributes."""

    id: str
    name: str
    description: str
    os_name: str
    os_type: str
    creator: str
    registrant: str
    license_info: str
    size: str
    softwares: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VSys:
    """A virtual system: FGCP's unit holding vservers, networks and a firewall."""

    id: str
    name: str
    creator: str
    base_descriptor: str
    description: str


@dataclass(frozen=True, slots=True)
class VNic:
    network_id: str
    nic_no: str
    private_ip: str


@dataclass(frozen=True, slots=True)
class VServer:
    """One ``<vserver>`` of ListVServer / GetVServerAttributes."""

    id: str
    name: str
    type: str
    creator: str
    disk_image_id: str
    vnics: tuple[VNic, ...] = ()

    @property
    def vsys_id(self) -> str:
        return vsys_id_of(self.id) or ""

    @property
    def is_appliance(self) -> bool:
        """Firewalls (``-S-0001``) and load balancers (NIC number above 0) are
        listed like vservers but are not servers one can image."""
        return (
            self.id.endswith("-S-0001")
            or self.type.lower() in ("firewall", "slb")
            or any(n.nic_no not in ("", "0") for n in self.vnics[:1])
        )


def vsys_id_of(vserver_id: str) -> str | None:
    """The vsys a vserver id belongs to, or None when it is not a vserver id."""
    found = _VSERVER_ID.match(vserver_id)
    return found.group(1) if found else None


# -- XML ----------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _text(elem: ET.Element, name: str) -> str:
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def _children(elem: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in elem or () if _local(c.tag) == name]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    found = _children(elem, name)
    return found[0] if found else None


def parse_response(body: bytes, action: str = "") -> ET.Element:
    """The response document, or the typed error its responseStatus means."""
    try:
        root = safe_fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise ProviderError(
            f"FGCP answered {action or 'a call'} with a DTD or entities, which we refuse"
        ) from None
    except ET.ParseError:
        # A proxy or load balancer page, not the API: worth another try later.
        raise Unavailable(f"FGCP answered {action or 'a call'} with something that is not XML") from None
    if not _local(root.tag).endswith("Response"):
        raise Unavailable(f"FGCP answered {action or 'a call'} with an unexpected <{_local(root.tag)}>")
    status = _text(root, "responseStatus")
    if status != "SUCCESS":
        raise status_error(status, _text(root, "responseMessage"), action)
    return root


def status_error(status: str, message: str, action: str = "") -> ProviderError:
    """The typed error for a non-SUCCESS ``responseStatus``."""
    detail = f"{action}: {status}" if action else status
    message = message or f"FGCP answered {status or 'no status'}"
    if _AUTH_STATUS.search(status) or _AUTH_MESSAGE.search(message):
        return AuthFailure(f"FGCP rejected the account's certificate: {message}", detail=detail)
    if "synchronized" in message:
        # The host's clock, not the request: neither a bad parameter nor the credentials.
        return ProviderError(f"FGCP refused the request time: {message}", detail=detail)
    if status == "RESOURCE_NOT_FOUND":
        return NotFound(message, detail=detail)
    if status == "VALIDATION_ERROR":
        return InvalidParameter(message, detail=detail)
    if status.startswith(("ILLEGAL_STATE", "ALREADY_")) or status == "NEVER_BOOTED":
        return InvalidState(message, detail=detail)
    if status in ("BUSY", "SYSTEM_ERROR", "SERVICE_UNAVAILABLE"):
        return Unavailable(f"{status}: {message}", detail=detail)
    return ProviderError(f"{status}: {message}" if status else message, detail=detail)


class _Collector:
    """A parser target that hands over each finished ``<diskimage>`` while the
    document is still arriving, and keeps nothing else but the status. A
    catalog of any size then costs one image of memory, not one document."""

    def __init__(self, item: str) -> None:
        self.item = item
        self.root = ""
        self.depth = 0
        self.ready: list[ET.Element] = []
        self.top: dict[str, str] = {}  # responseStatus, responseMessage
        self._builder: ET.TreeBuilder | None = None
        self._text: list[str] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            self.root = _local(tag)
            if not self.root.endswith("Response"):
                raise Unavailable(f"FGCP answered with an unexpected <{self.root}>")
        if self._builder is None and _local(tag) == self.item:
            self._builder = ET.TreeBuilder()
        if self._builder is not None:
            self._builder.start(tag, attrs)
        self._text = []

    def data(self, text: str) -> None:
        if self._builder is not None:
            self._builder.data(text)
        else:
            self._text.append(text)

    def end(self, tag: str) -> None:
        self.depth -= 1
        if self._builder is not None:
            self._builder.end(tag)
            if _local(tag) == self.item:
                self.ready.append(self._builder.close())
                self._builder = None
        elif self.depth == 1:
            self.top[_local(tag)] = "".join(self._text).strip()

    def close(self) -> None:
        return None


def parse_disk_image(elem: ET.Element) -> DiskImage:
    softwares = tuple(_text(s, "name") for s in _children(_child(elem, "softwares"), "software"))
    return DiskImage(
        id=_text(elem, "diskimageId"),
        name=_text(elem, "diskimageName"),
        description=_text(elem, "description"),
        os_name=_text(elem, "osName"),
        os_type=_text(elem, "osType"),
        creator=_text(elem, "creatorName"),
        registrant=_text(elem, "registrant"),
        license_info=_text(elem, "licenseInfo"),
        size=_text(elem, "size"),
        softwares=softwares,
    )


def parse_vserver(elem: ET.Element) -> VServer:
    vnics = tuple(
        VNic(_text(v, "networkId"), _text(v, "nicNo"), _text(v, "privateIp"))
        for v in _children(_child(elem, "vnics"), "vnic")
    )
    return VServer(
        id=_text(elem, "vserverId"),
        name=_text(elem, "vserverName"),
        type=_text(elem, "vserverType"),
        creator=_text(elem, "creator"),
        disk_image_id=_text(elem, "diskimageId"),
        vnics=vnics,
    )


def parse_vsys(elem: ET.Element) -> VSys:
    return VSys(
        id=_text(elem, "vsysId"),
        name=_text(elem, "vsysName"),
        creator=_text(elem, "creator"),
        base_descriptor=_text(elem, "baseDescriptor"),
        description=_text(elem, "description"),
    )


def disk_image_document(vserver_id: str, name: str, description: str) -> bytes:
    """RegisterPrivateDiskImage's attached document (escaped, unlike string
    templates); the same name and description in both locales, as Deltacloud sent."""
    request = ET.Element("Request")
    ET.SubElement(request, "vserverId").text = vserver_id
    locales = ET.SubElement(request, "locales")
    for lcid in LOCALES:
        locale = ET.SubElement(locales, "locale")
        ET.SubElement(locale, "lcid").text = lcid
        ET.SubElement(locale, "name").text = name
        ET.SubElement(locale, "description").text = description
    return ET.tostring(request, encoding="UTF-8", xml_declaration=True)


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


def _chain_text(exc: BaseException) -> str:
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
            text = _chain_text(exc)
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
        collector = _Collector(item)
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
        found = _child(self._call("GetDiskImageAttributes", {"diskImageId": image_id}), "diskimage")
        if found is None:
            raise NotFound(f"Image {image_id} not found")
        return parse_disk_image(found)

    def list_vsys(self) -> list[VSys]:
        return [parse_vsys(e) for e in _children(_child(self._call("ListVSYS"), "vsyss"), "vsys")]

    def list_vservers(self, vsys_id: str) -> list[VServer]:
        root = self._call("ListVServer", {"vsysId": vsys_id})
        return [parse_vserver(e) for e in _children(_child(root, "vservers"), "vserver")]

    def _vserver_params(self, vserver_id: str) -> dict[str, str]:
        vsys_id = vsys_id_of(vserver_id)
        if vsys_id is None:
            raise NotFound(f"Instance {vserver_id} not found")
        return {"vsysId": vsys_id, "vserverId": vserver_id}

    def get_vserver(self, vserver_id: str) -> VServer:
        found = _child(self._call("GetVServerAttributes", self._vserver_params(vserver_id)), "vserver")
        if found is None:
            raise NotFound(f"Instance {vserver_id} not found")
        return parse_vserver(found)

    def get_vserver_status(self, vserver_id: str) -> str:
        return _text(self._call("GetVServerStatus", self._vserver_params(vserver_id)), "vserverStatus")

    def register_private_disk_image(self, vserver_id: str, name: str, description: str) -> None:
        """Start copying a stopped vserver's disk. FGCP answers with a status only:
        the new image's id appears in ListDiskImage when the copy is done."""
        self._call("RegisterPrivateDiskImage", document=disk_image_document(vserver_id, name, description))

    def unregister_disk_image(self, image_id: str) -> None:
        self._call("UnregisterDiskImage", {"diskImageId": image_id})
