"""A stateful fake of FGCP's API endpoint, over mutual TLS on 127.0.0.1.

What it checks, as the real endpoint does: the client certificate (TLS
handshake against its CA), the RSA-SHA1 ``Signature`` over the
``AccessKeyId`` with that certificate's key, and the AccessKeyId's time
(clock skew). What it answers: HTTP 200 and the real XML shapes (the public
catalog is the 2013 ListDiskImage recording in ``tests/fixtures/fgcp/``),
with ``responseStatus`` carrying errors.

The part nobody ever recorded, ``RegisterPrivateDiskImage``, behaves as
Fujitsu documented it and Deltacloud coped with it: a status-only answer; the
vserver shows REGISTERING; the image stays out of ListDiskImage for
``register_seconds`` and then appears under a new ``IMG_`` id. A running
vserver is refused (ILLEGAL_STATE). ``add_image`` lets a test register a
same-named image as another user of the contract.

Signature checks here use ``cryptography``'s verifier and a decoder of their
own, not the client's signing code.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import ssl
import string
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import NameOID
from defusedxml.ElementTree import fromstring as safe_fromstring

from providers.fgcp_identity import transient_file
from tests.fakes.fgcp_server import PATH, Handler, Server
from tests.fakes.pki import Authority, key_pem, pem

NS = "http://apioviss.jp.fujitsu.com"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fgcp"
VERSIONS = {"2011-01-31", "2012-02-18", "2012-07-20", "2015-01-30"}
DONE = "Processing was completed."
IMAGE_ID = re.compile(r"^IMG[A-Za-z0-9_]+$")


@dataclass
class Image:
    id: str
    name: str
    registrant: str
    creator: str = ""
    description: str = ""
    os_name: str = "CentOS 6.2 64bit (English)"
    os_type: str = "pv"
    license_info: str = ""
    size: str = "10.0"
    contract: str | None = None  # None: public, listed to everyone
    softwares: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class VServer:
    id: str
    name: str
    status: str
    creator: str
    disk_image_id: str
    type: str = "economy"
    private_ip: str = "192.168.0.10"
    never_booted: bool = False

    @property
    def vsys_id(self) -> str:
        return self.id.rsplit("-S-", 1)[0]


@dataclass
class Registration:
    image: Image
    vserver_id: str
    ready_at: float


def recorded_images() -> list[Image]:
    """The public catalog of the February 2013 recording."""
    record = yaml.safe_load((FIXTURES / "test_0002_must_return_list_of_images.yml").read_text())
    body = record["http_interactions"][0]["response"]["body"]["string"]
    root = safe_fromstring(body.encode(), forbid_dtd=True)
    images = []
    for elem in root.iter(f"{{{NS}}}diskimage"):
        text = {c.tag.rpartition("}")[2]: (c.text or "").strip() for c in elem}
        softwares = [
            (s.findtext(f"{{{NS}}}name") or "", s.findtext(f"{{{NS}}}license") or "")
            for s in elem.iter(f"{{{NS}}}software")
        ]
        images.append(
            Image(
                id=text["diskimageId"],
                name=text["diskimageName"],
                registrant=text["registrant"],
                creator=text["creatorName"],
                description=text["description"],
                os_name=text["osName"],
                os_type=text["osType"],
                license_info=text["licenseInfo"],
                size=text["size"],
                softwares=softwares,
            )
        )
    return images


def _element(tag: str, fields: dict[str, object]) -> ET.Element:
    """Children in alphabetical order, as FGCP's JAXB output has them."""
    elem = ET.Element(tag)
    for name in sorted(fields):
        value = fields[name]
        if isinstance(value, ET.Element):
            elem.append(value)
        elif isinstance(value, list):
            holder = ET.SubElement(elem, name)
            holder.extend(value)
        else:
            ET.SubElement(elem, name).text = str(value) if value not in (None, "") else None
    return elem


def response(
    action: str, fields: dict[str, object] | None = None, status: str = "SUCCESS", message: str = DONE
):
    root = _element(
        f"{action}Response", {**(fields or {}), "responseMessage": message, "responseStatus": status}
    )
    root.set("xmlns", NS)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


class FGCPError(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _new_image_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return f"IMG_{secrets.token_hex(3)}_{''.join(secrets.choice(alphabet) for _ in range(12))}"


class FakeFGCP:
    """The fake endpoint and its state; ``with FakeFGCP(ca) as fake: fake.url``."""

    def __init__(
        self,
        authority: Authority,
        *,
        register_seconds: float = 2.0,
        max_skew_seconds: float = 300.0,
        public_images: list[Image] | None = None,
    ) -> None:
        self.authority = authority
        self.register_seconds = register_seconds
        self.max_skew_seconds = max_skew_seconds
        self.lock = threading.RLock()
        self.users: dict[str, str] = {}  # user id (certificate CN) -> contract
        self.vsyss: dict[str, tuple[str, str]] = {}  # vsys id -> (contract, name)
        self.vservers: dict[str, VServer] = {}
        self.images: dict[str, Image] = {
            i.id: i for i in (recorded_images() if public_images is None else public_images)
        }
        self.registrations: list[Registration] = []
        self.calls: list[tuple[str, str, str]] = []  # (HTTP method, Action, user)
        self.last_fields: dict[str, str] = {}
        self.handshake_failures: list[str] = []
        self.server_errors: list[str] = []  # connections that broke after the handshake
        self.stall_seconds = 0.0
        self._canned: dict[str, bytes] = {}
        self._server: Server | None = None

    # -- the world -------------------------------------------------------------------------

    def add_user(self, user: str, contract: str | None = None) -> str:
        with self.lock:
            self.users[user] = contract or user
        return user

    def add_vsys(self, contract: str, code: str, name: str) -> str:
        vsys_id = f"{contract}-{code}"
        with self.lock:
            self.vsyss[vsys_id] = (contract, name)
        return vsys_id

    def add_vserver(self, vsys_id: str, number: int, name: str, status: str = "RUNNING", **kw) -> str:
        vserver_id = f"{vsys_id}-S-{number:04d}"
        contract = self.vsyss[vsys_id][0]
        kw.setdefault("disk_image_id", "IMG_3c9820_S24FWXU0Q9VH0JK")
        with self.lock:
            self.vservers[vserver_id] = VServer(vserver_id, name, status, creator=contract, **kw)
        return vserver_id

    def set_status(self, vserver_id: str, status: str) -> None:
        with self.lock:
            self.vservers[vserver_id].status = status

    def add_image(self, name: str, registrant: str, **kw) -> str:
        """An image registered outside deltaweb (another user, another tool), listed at once."""
        contract = kw.pop("contract", self.users.get(registrant, registrant))
        image = Image(_new_image_id(), name, registrant, creator=registrant, contract=contract, **kw)
        with self.lock:
            self.images[image.id] = image
        return image.id

    def finish_registrations(self, name: str | None = None) -> None:
        """End the copies now (all, or those registering ``name``)."""
        with self.lock:
            for reg in self.registrations:
                if name is None or reg.image.name == name:
                    reg.ready_at = 0
            self._settle()

    def listed(self, contract: str) -> list[Image]:
        with self.lock:
            self._settle()
            return sorted(
                (i for i in self.images.values() if i.contract in (None, contract)), key=lambda i: i.id
            )

    def fail_next(self, action: str, status: str, message: str) -> None:
        """The next ``action`` (after authentication) answers this status."""
        self._canned[action] = response(action, status=status, message=message)

    def answer_next(self, action: str, body: bytes) -> None:
        self._canned[action] = body

    @classmethod
    def standard(cls, authority: Authority, **kw) -> FakeFGCP:
        """Contract DWUSER01 with a colleague DWUSER02, two systems, three vservers."""
        fake = cls(authority, **kw)
        fake.add_user("DWUSER01")
        fake.add_user("DWUSER02", contract="DWUSER01")
        web = fake.add_vsys("DWUSER01", "WEB00001", "web-system")
        dev = fake.add_vsys("DWUSER01", "DEV00001", "dev-system")
        fake.add_vserver(web, 2, "web1", "RUNNING", private_ip="192.168.0.12")
        fake.add_vserver(web, 3, "db1", "STOPPED", disk_image_id="IMG_3c9820_D30U8UNY6I9S")
        fake.add_vserver(dev, 2, "build", "STOPPED", private_ip="192.168.0.22")
        return fake

    # -- serving ------------------------------------------------------------------------------

    def start(self) -> FakeFGCP:
        issued = self.authority.server()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.authority.pem)
        with transient_file((pem(issued.cert) + key_pem(issued.key)).encode()) as path:
            context.load_cert_chain(path)
        self._server = Server(("127.0.0.1", 0), Handler, context, self)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-fgcp", daemon=True
        ).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"https://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeFGCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API -------------------------------------------------------------------------------

    def handle(self, cert: x509.Certificate, method: str, fields: dict[str, str], files: dict[str, bytes]):
        action = fields.get("Action", "")
        user = next(iter(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)), None)
        user_id = str(user.value) if user else ""
        with self.lock:
            self.calls.append((method, action, user_id))
            self.last_fields = dict(fields)
        try:
            self._authenticate(cert, fields)
            contract = self.users.get(user_id)
            if contract is None:
                raise FGCPError("AUTH_ERROR", "User not found in selectData.")
            if fields.get("Version") not in VERSIONS:
                raise FGCPError("NOTFOUND", f"API to the Version [{fields.get('Version')}] was not found.")
            canned = self._canned.pop(action, None)
            if canned is not None:
                return canned
            handler = getattr(self, f"_do_{action}", None)
            if handler is None:
                raise FGCPError("NOTFOUND", f"API [{action}] was not found.")
            with self.lock:
                self._settle()
                return response(action, handler(contract, user_id, fields, files))
        except FGCPError as exc:
            return response(action or "Error", status=exc.status, message=exc.message)

    def _authenticate(self, cert: x509.Certificate, fields: dict[str, str]) -> None:
        key_id, signature = fields.get("AccessKeyId", ""), fields.get("Signature", "")
        if not key_id or not signature:
            raise FGCPError("AUTH_ERROR", "AccessKeyId and Signature are required.")
        try:
            plain = base64.b64decode("".join(key_id.split()), validate=True).decode()
            _tz, millis, version, method = plain.split("&")
            expires = int(millis)
            raw_signature = base64.b64decode("".join(signature.split()), validate=True)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise FGCPError("AUTH_ERROR", "The AccessKeyId or Signature is malformed.") from None
        if (version, method) != ("1.0", "SHA1withRSA"):
            raise FGCPError("AUTH_ERROR", f"Unsupported signature {version}/{method}.")
        try:
            cert.public_key().verify(raw_signature, key_id.encode(), padding.PKCS1v15(), hashes.SHA1())
        except InvalidSignature:
            raise FGCPError("AUTH_ERROR", "The signature does not match the certificate.") from None
        if abs(time.time() * 1000 - expires) > self.max_skew_seconds * 1000:
            raise FGCPError(
                "VALIDATION_ERROR", "The time of the client is not synchronized with the API-Server time."
            )

    def _settle(self) -> None:
        now = time.monotonic()
        for reg in [r for r in self.registrations if r.ready_at <= now]:
            self.registrations.remove(reg)
            self.images[reg.image.id] = reg.image
            vserver = self.vservers.get(reg.vserver_id)
            if vserver is not None and vserver.status == "REGISTERING":
                vserver.status = "STOPPED"

    def _vsys(self, contract: str, fields: dict[str, str]) -> str:
        vsys_id = fields.get("vsysId", "")
        if self.vsyss.get(vsys_id, ("",))[0] != contract:
            raise FGCPError("VALIDATION_ERROR", f"A wrong value is set. [vsysId:{vsys_id}]")
        return vsys_id

    def _vserver(self, contract: str, fields: dict[str, str]) -> VServer:
        vsys_id = self._vsys(contract, fields)
        vserver = self.vservers.get(fields.get("vserverId", ""))
        if vserver is None or vserver.vsys_id != vsys_id:
            raise FGCPError("RESOURCE_NOT_FOUND", f"The VServer [{fields.get('vserverId')}] does not exist.")
        return vserver

    @staticmethod
    def _image_xml(image: Image) -> ET.Element:
        fields: dict[str, object] = {
            "creatorName": image.creator,
            "description": image.description,
            "diskimageId": image.id,
            "diskimageName": image.name,
            "licenseInfo": image.license_info,
            "osName": image.os_name,
            "osType": image.os_type,
            "registrant": image.registrant,
            "size": image.size,
        }
        if image.softwares:
            fields["softwares"] = [
                _element("software", {"name": n, "license": lic}) for n, lic in image.softwares
            ]
        return _element("diskimage", fields)

    @staticmethod
    def _vserver_xml(vserver: VServer) -> ET.Element:
        vnic = _element(
            "vnic", {"networkId": f"{vserver.vsys_id}-N-DMZ", "nicNo": "0", "privateIp": vserver.private_ip}
        )
        return _element(
            "vserver",
            {
                "creator": vserver.creator,
                "diskimageId": vserver.disk_image_id,
                "vdisks": [],
                "vnics": [vnic],
                "vserverId": vserver.id,
                "vserverName": vserver.name,
                "vserverType": vserver.type,
            },
        )

    def _do_ListDiskImage(self, contract, user, fields, files):
        return {"diskimages": [self._image_xml(i) for i in self.listed(contract)]}

    def _image(self, contract: str, fields: dict[str, str]) -> Image:
        image_id = fields.get("diskImageId", "")
        if not IMAGE_ID.match(image_id):
            raise FGCPError("VALIDATION_ERROR", f"A wrong value is set. [diskImageId:{image_id}]")
        image = self.images.get(image_id)
        if image is None or image.contract not in (None, contract):
            raise FGCPError("RESOURCE_NOT_FOUND", f"The disk image [{image_id}] does not exist.")
        return image

    def _do_GetDiskImageAttributes(self, contract, user, fields, files):
        return {"diskimage": self._image_xml(self._image(contract, fields))}

    def _do_ListVSYS(self, contract, user, fields, files):
        vsyss = [
            _element(
                "vsys",
                {
                    "baseDescriptor": "2-tier Skeleton",
                    "creator": owner,
                    "description": "2-tier Skeleton",
                    "vsysId": vsys_id,
                    "vsysName": name,
                },
            )
            for vsys_id, (owner, name) in sorted(self.vsyss.items())
            if owner == contract
        ]
        return {"vsyss": vsyss}

    def _do_ListVServer(self, contract, user, fields, files):
        vsys_id = self._vsys(contract, fields)
        found = sorted((v for v in self.vservers.values() if v.vsys_id == vsys_id), key=lambda v: v.id)
        return {"vservers": [self._vserver_xml(v) for v in found]}

    def _do_GetVServerAttributes(self, contract, user, fields, files):
        return {"vserver": self._vserver_xml(self._vserver(contract, fields))}

    def _do_GetVServerStatus(self, contract, user, fields, files):
        return {"vserverStatus": self._vserver(contract, fields).status}

    def _do_RegisterPrivateDiskImage(self, contract, user, fields, files):
        document = files.get("diskImageXMLFilePath")
        if not document:
            raise FGCPError("VALIDATION_ERROR", "diskImageXMLFilePath is required.")
        request = safe_fromstring(document, forbid_dtd=True)
        vserver_id = request.findtext("vserverId") or ""
        locales = {loc.findtext("lcid"): loc for loc in request.iter("locale")}
        locale = locales.get("en") or next(iter(locales.values()), None)
        name = (locale.findtext("name") if locale is not None else "") or ""
        description = (locale.findtext("description") if locale is not None else "") or ""
        vserver = self._vserver(contract, {"vsysId": vserver_id.rsplit("-S-", 1)[0], "vserverId": vserver_id})
        if not name.strip():
            raise FGCPError("VALIDATION_ERROR", "A wrong value is set. [name]")
        if vserver.never_booted:
            raise FGCPError("NEVER_BOOTED", f"The VServer [{vserver_id}] has never been booted.")
        if vserver.status != "STOPPED":
            raise FGCPError(
                "ILLEGAL_STATE", f"The VServer [{vserver_id}] is {vserver.status}; it must be STOPPED."
            )
        source = self.images.get(vserver.disk_image_id)
        template = source or Image("", "", "")
        image = replace(
            template,
            id=_new_image_id(),
            name=name,
            description=description,
            registrant=user,
            creator=user,
            contract=contract,
            license_info="",
            softwares=[],
        )
        vserver.status = "REGISTERING"
        self.registrations.append(Registration(image, vserver_id, time.monotonic() + self.register_seconds))
        return {}

    def _do_UnregisterDiskImage(self, contract, user, fields, files):
        image = self._image(contract, fields)
        if image.contract is None:
            raise FGCPError("ACCESS_NOT_PERMIT", "User doesn't have the right of access.")
        del self.images[image.id]
        return {}
