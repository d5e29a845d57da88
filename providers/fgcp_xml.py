"""FGCP's XML: the documents the API answers with, parsed safely, and the one
document a call sends (RegisterPrivateDiskImage's).

Every answer is parsed by defusedxml, which refuses DTDs and entity expansion.
``parse_response`` and ``ItemCollector`` (for answers read as they stream in)
read ``<responseStatus>``; ``status_error`` is the single table from FGCP's
statuses to the typed errors of ``providers.exceptions``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from providers.exceptions import (
    AuthFailure,
    InvalidParameter,
    InvalidState,
    NotFound,
    ProviderError,
    Unavailable,
)

LOCALES = ("en", "ja")

# vsys ids are "<contract>-<code>"; vservers "<vsys>-S-<nnnn>", networks "<vsys>-N-<name>".
_VSERVER_ID = re.compile(r"^([A-Za-z0-9]+-[A-Za-z0-9]+)-S-[0-9]{4}$")

# FGCP's own status names for rejected credentials were never published or
# recorded; Deltacloud matched the message a certificate of another region
# gets ("User not found in selectData."). Both checks are needed.
_AUTH_STATUS = re.compile(r"AUTH|SIGNATURE|CERTIFICATE")
_AUTH_MESSAGE = re.compile(r"User not found in selectData", re.IGNORECASE)


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


def local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def text_of(elem: ET.Element, name: str) -> str:
    """The stripped text of ``elem``'s first child ``name`` (any namespace), or ""."""
    node = child(elem, name)
    return (node.text or "").strip() if node is not None else ""


def children(elem: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in elem or () if local_name(c.tag) == name]


def child(elem: ET.Element, name: str) -> ET.Element | None:
    found = children(elem, name)
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
    if not local_name(root.tag).endswith("Response"):
        raise Unavailable(f"FGCP answered {action or 'a call'} with an unexpected <{local_name(root.tag)}>")
    status = text_of(root, "responseStatus")
    if status != "SUCCESS":
        raise status_error(status, text_of(root, "responseMessage"), action)
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


class ItemCollector:
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
            self.root = local_name(tag)
            if not self.root.endswith("Response"):
                raise Unavailable(f"FGCP answered with an unexpected <{self.root}>")
        if self._builder is None and local_name(tag) == self.item:
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
            if local_name(tag) == self.item:
                self.ready.append(self._builder.close())
                self._builder = None
        elif self.depth == 1:
            self.top[local_name(tag)] = "".join(self._text).strip()

    def close(self) -> None:
        return None


def parse_disk_image(elem: ET.Element) -> DiskImage:
    softwares = tuple(text_of(s, "name") for s in children(child(elem, "softwares"), "software"))
    return DiskImage(
        id=text_of(elem, "diskimageId"),
        name=text_of(elem, "diskimageName"),
        description=text_of(elem, "description"),
        os_name=text_of(elem, "osName"),
        os_type=text_of(elem, "osType"),
        creator=text_of(elem, "creatorName"),
        registrant=text_of(elem, "registrant"),
        license_info=text_of(elem, "licenseInfo"),
        size=text_of(elem, "size"),
        softwares=softwares,
    )


def parse_vserver(elem: ET.Element) -> VServer:
    vnics = tuple(
        VNic(text_of(v, "networkId"), text_of(v, "nicNo"), text_of(v, "privateIp"))
        for v in children(child(elem, "vnics"), "vnic")
    )
    return VServer(
        id=text_of(elem, "vserverId"),
        name=text_of(elem, "vserverName"),
        type=text_of(elem, "vserverType"),
        creator=text_of(elem, "creator"),
        disk_image_id=text_of(elem, "diskimageId"),
        vnics=vnics,
    )


def parse_vsys(elem: ET.Element) -> VSys:
    return VSys(
        id=text_of(elem, "vsysId"),
        name=text_of(elem, "vsysName"),
        creator=text_of(elem, "creator"),
        base_descriptor=text_of(elem, "baseDescriptor"),
        description=text_of(elem, "description"),
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
