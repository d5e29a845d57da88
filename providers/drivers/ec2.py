"""Amazon EC2 (and EC2-compatible endpoints) through boto3.

One account is one set of AWS keys in one region. Clients are built on first
use because the API builds a driver per account and asks ``capabilities`` on
every request; most requests never talk to AWS at all. Every SDK call goes
through ``_aws()``, the single place where botocore's exceptions become the
typed errors of ``providers.exceptions``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import boto3
import boto3.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from providers.base import (
    Address,
    Capabilities,
    Driver,
    Feature,
    HardwareProfile,
    HardwareProperty,
    ImageState,
    ProviderImage,
    ProviderInstance,
    Realm,
    RootType,
    Transition,
)
from providers.exceptions import (
    AuthFailure,
    Conflict,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    ProviderError,
    ProviderTimeout,
    Throttled,
    Unavailable,
)
from providers.params import param

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
DEFAULT_PAGE_SIZE = 1000
# DescribeImages/DescribeInstances accept MaxResults within these bounds.
MIN_PAGE_SIZE, MAX_PAGE_SIZE = 5, 1000
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 4

# EC2 wants a Name on CreateImage, 3 to 128 characters.
IMAGE_NAME_MIN, IMAGE_NAME_MAX = 3, 128

AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "OptInRequired",
        "UnauthorizedOperation",
        # Temporary (session_token) credentials past their lifetime.
        "ExpiredToken",
    }
)
THROTTLE_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})
INVALID_PARAMETER_CODES = frozenset(
    {"InvalidParameterValue", "InvalidParameterCombination", "MissingParameter", "InvalidParameter"}
)
INVALID_STATE_CODES = frozenset({"IncorrectInstanceState", "IncorrectState"})
UNAVAILABLE_CODES = frozenset(
    {"InternalError", "InternalFailure", "Unavailable", "ServiceUnavailable", "ServiceUnavailableException"}
)
# Gone images answer Unavailable, which is not the service being down.
GONE_IMAGE_CODES = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"})

IMAGE_STATES: Mapping[str, ImageState] = {
    "pending": ImageState.PENDING,
    "available": ImageState.AVAILABLE,
    "failed": ImageState.FAILED,
    "invalid": ImageState.FAILED,
    "error": ImageState.FAILED,
    "deregistered": ImageState.DELETED,
}
INSTANCE_STATES: Mapping[str, str] = {
    "pending": "PENDING",
    "running": "RUNNING",
    "stopping": "STOPPING",
    "shutting-down": "STOPPING",
    "stopped": "STOPPED",
    "terminated": "FINISH",
}
INSTANCE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "RUNNING": ("reboot", "stop"),
    "STOPPED": ("start", "destroy"),
}
# Instance-store instances cannot stop; their only way down is terminate.
INSTANCE_STORE_ACTIONS: Mapping[str, tuple[str, ...]] = {"RUNNING": ("reboot", "destroy")}

REGIONS: tuple[str, ...] = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "me-south-1",
    "af-south-1",
)

BOTH_32_64 = ("i386", "x86_64")


def _profile(
    type_id: str, cpu: int, memory_mb: float, storage_gb: int | None, arch: str | tuple[str, ...]
) -> HardwareProfile:
    """A fixed EC2 instance type.

    Old families run 32- and 64-bit images, so their architecture is an enum
    (as Deltacloud defined them). EBS-only types have no instance storage, so
    they carry no storage property rather than a misleading 0 GB.
    """
    props = [
        HardwareProperty("cpu", "fixed", "count", str(cpu)),
        HardwareProperty("memory", "fixed", "MB", f"{memory_mb:g}"),
    ]
    if storage_gb is not None:
        props.append(HardwareProperty("storage", "fixed", "GB", str(storage_gb)))
    if isinstance(arch, tuple):
        props.append(HardwareProperty("architecture", "enum", "label", arch[0], values=arch))
    else:
        props.append(HardwareProperty("architecture", "fixed", "label", arch))
    return HardwareProfile(type_id, tuple(props))


HARDWARE_PROFILES: tuple[HardwareProfile, ...] = (
    # Previous generation, as Deltacloud listed them (cpu is vCPUs, not ECUs).
    _profile("t1.micro", 1, 613, None, BOTH_32_64),
    _profile("m1.small", 1, 1740.8, 160, BOTH_32_64),
    _profile("m1.medium", 1, 3840, 410, BOTH_32_64),
    _profile("m1.large", 2, 7680, 840, "x86_64"),
    _profile("m1.xlarge", 4, 15360, 1680, "x86_64"),
    _profile("c1.medium", 2, 1740.8, 350, BOTH_32_64),
    _profile("c1.xlarge", 8, 7168, 1680, "x86_64"),
    # Current x86_64 (EBS-only).
    _profile("t3.micro", 2, 1024, None, "x86_64"),
    _profile("t3.small", 2, 2048, None, "x86_64"),
    _profile("t3.medium", 2, 4096, None, "x86_64"),
    _profile("t3.large", 2, 8192, None, "x86_64"),
    _profile("m5.large", 2, 8192, None, "x86_64"),
    _profile("m5.xlarge", 4, 16384, None, "x86_64"),
    _profile("m5.2xlarge", 8, 32768, None, "x86_64"),
    # Graviton (EBS-only).
    _profile("t4g.micro", 2, 1024, None, "arm64"),
    _profile("t4g.small", 2, 2048, None, "arm64"),
    _profile("t4g.medium", 2, 4096, None, "arm64"),
    _profile("m6g.medium", 1, 4096, None, "arm64"),
    _profile("m6g.large", 2, 8192, None, "arm64"),
    _profile("m6g.xlarge", 4, 16384, None, "arm64"),
)
PROFILES_BY_ID: Mapping[str, HardwareProfile] = {p.id: p for p in HARDWARE_PROFILES}
# RunInstances needs a type; pick a cheap one the image's architecture can boot.
DEFAULT_INSTANCE_TYPES: Mapping[str, str] = {"x86_64": "t3.micro", "arm64": "t4g.micro", "i386": "m1.small"}
# t1.micro is EBS-only, so instance-store images cannot use it (as in Deltacloud).
EBS_ONLY_LEGACY = frozenset({"t1.micro"})

# One boto3 Session for every driver: building clients from it reuses the
# loaded service models (a fresh Session reloads EC2's ~2 MB model, ~150 ms per
# account). Sessions are not thread-safe, so client creation holds the lock.
# Created on first use so test doubles that hook botocore (moto) are in place.
_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def _new_client(service: str, **kwargs: Any) -> Any:
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(service, **kwargs)


CAPABILITIES = Capabilities(
    create_image=True,
    destroy_image=True,
    create_returns_id=True,
    honours_image_name=True,
    honours_image_description=True,
    unique_image_names=True,
    image_name_max_length=IMAGE_NAME_MAX,
    create_instance=True,
    run_on_instance=False,
)


def profile_architectures(profile: HardwareProfile) -> tuple[str, ...]:
    prop = profile.property("architecture")
    if prop is None:
        return ()
    return prop.values if prop.kind == "enum" else (prop.value,)


def image_hardware_profiles(architecture: str, root_type: RootType) -> tuple[str, ...]:
    """Profiles an image can boot on, by architecture (Deltacloud's image_profiles)."""
    return tuple(
        p.id
        for p in HARDWARE_PROFILES
        if architecture in profile_architectures(p)
        and not (root_type != RootType.PERSISTENT and p.id in EBS_ONLY_LEGACY)
    )


def _root_type(device_type: str | None) -> RootType:
    return RootType.PERSISTENT if device_type == "ebs" else RootType.TRANSIENT


def _timestamp(value: object) -> str | None:
    """botocore parses timestamps; hand back ISO 8601 in UTC like the mock cloud."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value) if value else None


def _compact(**values: object) -> dict[str, object]:
    """Drop empty values so ``extra`` stays small and JSON-safe."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


def _tag(tags: Sequence[Mapping[str, str]] | None, key: str) -> str:
    return next((t.get("Value", "") for t in tags or () if t.get("Key") == key), "")


def _address(dns: str | None, ip: str | None) -> tuple[Address, ...]:
    if dns:
        return (Address(dns, "hostname"),)
    if ip:
        return (Address(ip, "ipv4"),)
    return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EC2Params:
    """Which slice of EC2's catalog an account caches, and how it talks to AWS."""

    endpoint_url: str = param(
        "An EC2-compatible endpoint instead of AWS's regional one (e.g. https://ec2.example.com).",
        default="",
    )
    owners: tuple[str, ...] = param(
        "Image owners to cache: 'self', 'amazon', 'aws-marketplace' or account ids; "
        "empty caches every image the account may launch.",
        default=("self",),
    )
    executable_users: tuple[str, ...] = param(
        "Only images these users may launch ('self', 'all' or account ids).", default=()
    )
    filters: tuple[Mapping[str, Any], ...] = param(
        'DescribeImages filters, e.g. [{"Name": "architecture", "Values": ["arm64"]}].', default=()
    )
    page_size: int = param(
        "Images per DescribeImages call.",
        default=DEFAULT_PAGE_SIZE,
        minimum=MIN_PAGE_SIZE,
        maximum=MAX_PAGE_SIZE,
    )
    connect_timeout: float = param(
        "Seconds to wait for a connection.", default=DEFAULT_CONNECT_TIMEOUT, minimum=0.1, maximum=300
    )
    read_timeout: float = param(
        "Seconds to wait for an answer.", default=DEFAULT_READ_TIMEOUT, minimum=0.1, maximum=900
    )
    max_attempts: int = param(
        "Attempts per call, retries of throttling and 5xx included.",
        default=DEFAULT_MAX_ATTEMPTS,
        minimum=1,
        maximum=20,
    )
    retry_mode: Literal["standard", "adaptive", "legacy"] = param(
        "botocore's retry strategy.", default="standard"
    )

    def __post_init__(self) -> None:
        for item in self.filters:
            values = item.get("Values") if isinstance(item, Mapping) else None
            if not (
                isinstance(item, Mapping)
                and isinstance(item.get("Name"), str)
                and isinstance(values, tuple)
                and all(isinstance(v, str) for v in values)
            ):
                raise InvalidParameter(
                    'EC2 parameter \'filters\' must be a list of {"Name": ..., "Values": [...]}'
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class EC2Credentials:
    """An IAM access key (and a session token for temporary credentials)."""

    access_key_id: str = param("AWS access key id.")
    secret_access_key: str = param("AWS secret access key.", secret=True)
    session_token: str = param("STS session token, for temporary credentials.", default="", secret=True)


class EC2Driver(Driver):
    """EC2 images and instances for one AWS account in one region."""

    name = "ec2"
    label = "EC2"
    providers = REGIONS
    features: ClassVar[Mapping[str, tuple[Feature, ...]]] = {
        "images": (
            Feature("owner_id", "index", ("owner_id",)),
            Feature("image_name", "create", ("name",)),
            Feature("image_description", "create", ("description",)),
        ),
        "instances": (
            Feature("user_name", "create", ("name",)),
            Feature("authentication_key", "create", ("keyname",)),
        ),
    }
    instance_states = (
        ("start", (Transition("pending", None),)),
        ("pending", (Transition("running", None),)),
        ("running", (Transition("running", "reboot"), Transition("stopping", "stop"))),
        ("stopping", (Transition("stopped", None),)),
        ("stopped", (Transition("running", "start"), Transition("finish", "destroy"))),
        ("finish", ()),
    )
    auth_feature = "key"
    hardware_profiles = HARDWARE_PROFILES

    Params = EC2Params
    Credentials = EC2Credentials
    params: EC2Params
    credentials: EC2Credentials

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region = self.provider or DEFAULT_REGION
        self._config = Config(
            region_name=self.region,
            connect_timeout=self.params.connect_timeout,
            read_timeout=self.params.read_timeout,
            # botocore backs off and retries throttling and 5xx itself; we only
            # see the error once these attempts are spent.
            retries={"mode": self.params.retry_mode, "total_max_attempts": self.params.max_attempts},
            user_agent_extra="deltaweb",
            # The account's params alone say where EC2 is, not AWS_ENDPOINT_URL* on the host.
            ignore_configured_endpoint_urls=True,
        )
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._account_id: str | None = None

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} provider={self.provider!r} region={self.region!r}>"

    # -- clients and errors --------------------------------------------------

    def client(self, service: str = "ec2") -> Any:
        """The account's boto3 client, built on first use and shared by all threads.

        Credentials go to the client itself, never through the environment or
        ~/.aws, so one account can never act with another's (or the host's)
        keys. Tests use this to hook botocore's events.
        """
        existing = self._clients.get(service)
        if existing is not None:
            return existing
        with self._lock:
            if service not in self._clients:
                creds = self.credentials
                if not creds.access_key_id or not creds.secret_access_key:
                    # Never fall back to the server's own AWS environment.
                    raise AuthFailure("EC2 credentials need access_key_id and secret_access_key")
                with self._aws():
                    self._clients[service] = _new_client(
                        service,
                        aws_access_key_id=creds.access_key_id,
                        aws_secret_access_key=creds.secret_access_key,
                        aws_session_token=creds.session_token or None,
                        region_name=self.region,
                        endpoint_url=self.params.endpoint_url or None,
                        config=self._config,
                    )
            return self._clients[service]

    @contextmanager
    def _aws(self) -> Iterator[None]:
        """Turn botocore's exceptions into ``providers.exceptions``; the only such place."""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc) from None
        except ReadTimeoutError as exc:
            raise ProviderTimeout(self.scrub(f"EC2 did not answer in time: {exc}")) from None
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as exc:
            raise Unavailable(self.scrub(f"EC2 could not be reached: {exc}")) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise Unavailable(self.scrub(f"EC2 connection failed: {exc}")) from None
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise AuthFailure(f"EC2 credentials are incomplete: {type(exc).__name__}") from None
        except ParamValidationError as exc:
            raise InvalidParameter(self.scrub(str(exc).replace("\n", " "))) from None
        except BotoCoreError as exc:
            raise ProviderError(self.scrub(f"{type(exc).__name__}: {exc}")) from None
        except ResponseParserError:
            # Not EC2's XML at all: a proxy's or the endpoint's error page.
            raise Unavailable(
                "The EC2 endpoint answered with something that is not an EC2 response"
            ) from None

    def _client_error(self, exc: ClientError) -> ProviderError:
        error = exc.response.get("Error") or {}
        meta = exc.response.get("ResponseMetadata") or {}
        code = str(error.get("Code") or "Unknown")
        text = self.scrub(f"{code}: {error.get('Message') or 'no message'}")
        status = int(meta.get("HTTPStatusCode") or 0)
        detail = f"AWS request id {meta['RequestId']}" if meta.get("RequestId") else ""
        cls: type[ProviderError]
        if code in AUTH_CODES:
            cls = AuthFailure
        elif code in THROTTLE_CODES:
            cls = Throttled
        elif code in GONE_IMAGE_CODES or code.endswith(".NotFound"):
            cls = NotFound
        elif code.endswith(".Malformed") or code in INVALID_PARAMETER_CODES:
            cls = InvalidParameter
        elif code in INVALID_STATE_CODES:
            cls = InvalidState
        elif code.endswith(".Duplicate"):
            cls = Conflict
        elif code in UNAVAILABLE_CODES or status >= 500:
            cls = Unavailable
        else:
            cls = ProviderError
        error_obj = cls(text, detail=detail)
        # Callers that must tell codes apart (RunInstances) read it here.
        error_obj.aws_code = code  # type: ignore[attr-defined]
        return error_obj

    # -- description ---------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def identity(self) -> str:
        """The account id (what ``owner_id=self`` means); cached, keys never change owner."""
        if self._account_id is None:
            sts = self.client("sts")
            with self._aws():
                account = sts.get_caller_identity()["Account"]
            self._account_id = str(account)
        return self._account_id

    def realms(self) -> Sequence[Realm]:
        with self._aws():
            zones = self.client().describe_availability_zones().get("AvailabilityZones", [])
        return [self._realm(z) for z in zones]

    @staticmethod
    def _realm(zone: Mapping[str, Any]) -> Realm:
        name = zone.get("ZoneName", "")
        state = zone.get("State", "")
        return Realm(id=name, name=name, state="AVAILABLE" if state == "available" else state.upper())

    # -- images --------------------------------------------------------------

    def _image(self, img: Mapping[str, Any]) -> ProviderImage:
        raw = img.get("State", "")
        state = IMAGE_STATES.get(raw, ImageState.UNKNOWN)
        root_type = _root_type(img.get("RootDeviceType"))
        arch = img.get("Architecture", "")
        reason = (img.get("StateReason") or {}).get("Message", "") if state == ImageState.FAILED else ""
        return ProviderImage(
            id=img["ImageId"],
            # Deltacloud showed the id for the few (ancient) AMIs without a name.
            name=img.get("Name") or img["ImageId"],
            description=img.get("Description") or None,
            owner_id=img.get("OwnerId", ""),
            architecture=arch,
            state=state,
            raw_state=raw,
            root_type=root_type,
            creation_time=img.get("CreationDate") or None,
            hardware_profiles=image_hardware_profiles(arch, root_type),
            failure_reason=self.scrub(reason),
            extra=_compact(
                platform=img.get("PlatformDetails") or img.get("Platform"),
                virtualization_type=img.get("VirtualizationType"),
                image_location=img.get("ImageLocation"),
                image_type=img.get("ImageType"),
                owner_alias=img.get("ImageOwnerAlias"),
                public=img.get("Public"),
                source_instance_id=img.get("SourceInstanceId"),
                deprecation_time=img.get("DeprecationTime"),
            ),
        )

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        p = self.params
        request: dict[str, Any] = {"MaxResults": p.page_size}
        if p.owners:
            request["Owners"] = list(p.owners)
        if p.executable_users:
            request["ExecutableUsers"] = list(p.executable_users)
        if p.filters:
            request["Filters"] = [{"Name": f["Name"], "Values": list(f["Values"])} for f in p.filters]
        ec2 = self.client()
        while True:
            with self._aws():
                response = ec2.describe_images(**request)
            # Yield outside _aws(): the consumer's own errors are not AWS's.
            yield [self._image(i) for i in response.get("Images", [])]
            token = response.get("NextToken")
            if not token:
                return
            request["NextToken"] = token

    def _describe_image(self, image_id: str) -> Mapping[str, Any] | None:
        try:
            with self._aws():
                images = self.client().describe_images(ImageIds=[image_id]).get("Images", [])
        except NotFound:
            return None
        return next((i for i in images if i.get("ImageId") == image_id), None)

    def get_image(self, image_id: str) -> ProviderImage | None:
        raw = self._describe_image(image_id)
        return self._image(raw) if raw is not None else None

    def create_image(self, *, instance_id: str, name: str, description: str | None = None) -> ProviderImage:
        name = name or ""
        if not name.strip():
            raise InvalidParameter("EC2 needs a name for a new image (3 to 128 characters)")
        if not IMAGE_NAME_MIN <= len(name) <= IMAGE_NAME_MAX:
            raise InvalidParameter(
                f"EC2 image names must be {IMAGE_NAME_MIN} to {IMAGE_NAME_MAX} characters long"
            )
        found = self._describe_instance(instance_id)
        if found is None:
            raise NotFound(f"Instance {instance_id} not found")
        raw, owner_id = found
        refusal = self._refusal(raw)
        if refusal:
            raise InvalidState(refusal)
        request: dict[str, Any] = {"InstanceId": instance_id, "Name": name}
        if description:
            request["Description"] = description
        with self._aws():
            image_id = self.client().create_image(**request)["ImageId"]
        try:
            image = self.get_image(image_id)
        except ProviderError as exc:
            # The image exists; losing its id over a failed read-back is worse than a thin answer.
            logger.warning("EC2 image %s created but not read back: %s", image_id, exc)
            image = None
        if image is not None:
            return image
        arch = raw.get("Architecture", "")
        return ProviderImage(
            id=image_id,
            name=name,
            description=description or None,
            owner_id=owner_id,
            architecture=arch,
            state=ImageState.PENDING,
            raw_state="pending",
            root_type=RootType.PERSISTENT,
            hardware_profiles=image_hardware_profiles(arch, RootType.PERSISTENT),
            extra={"source_instance_id": instance_id},
        )

    def destroy_image(self, image_id: str) -> None:
        with self._aws():
            self.client().deregister_image(ImageId=image_id)

    # -- instances -----------------------------------------------------------

    def _refusal(self, inst: Mapping[str, Any]) -> str:
        iid = inst.get("InstanceId", "")
        if inst.get("RootDeviceType") != "ebs":
            return f"Instance {iid} is instance-store backed; only EBS-backed instances can be imaged"
        raw = (inst.get("State") or {}).get("Name", "")
        if raw in ("terminated", "shutting-down"):
            return f"Instance {iid} is {raw}; it can no longer be imaged"
        return ""

    def _instance(self, inst: Mapping[str, Any], owner_id: str) -> ProviderInstance:
        raw_state = (inst.get("State") or {}).get("Name", "")
        state = INSTANCE_STATES.get(raw_state, raw_state.upper())
        root_type = _root_type(inst.get("RootDeviceType"))
        actions_by_state = INSTANCE_STORE_ACTIONS if root_type == RootType.TRANSIENT else INSTANCE_ACTIONS
        type_id = inst.get("InstanceType", "")
        overrides: tuple[tuple[str, str], ...] = ()
        profile = PROFILES_BY_ID.get(type_id)
        arch_prop = profile.property("architecture") if profile else None
        if arch_prop is not None and arch_prop.kind == "enum" and inst.get("Architecture"):
            # Dual-architecture types: say which one this instance runs.
            overrides = (("architecture", inst["Architecture"]),)
        volumes = tuple(
            m["Ebs"]["VolumeId"]
            for m in inst.get("BlockDeviceMappings") or ()
            if m.get("Ebs", {}).get("VolumeId")
        )
        return ProviderInstance(
            id=inst["InstanceId"],
            name=_tag(inst.get("Tags"), "Name"),
            state=state,
            owner_id=owner_id,
            image_id=inst.get("ImageId", ""),
            realm_id=(inst.get("Placement") or {}).get("AvailabilityZone", ""),
            hardware_profile_id=type_id,
            hardware_profile_overrides=overrides,
            actions=actions_by_state.get(state, ()),
            create_image_refusal=self._refusal(inst),
            public_addresses=_address(inst.get("PublicDnsName"), inst.get("PublicIpAddress")),
            private_addresses=_address(inst.get("PrivateDnsName"), inst.get("PrivateIpAddress")),
            storage_volumes=volumes,
            keyname=inst.get("KeyName") or None,
            launch_time=_timestamp(inst.get("LaunchTime")),
            network_interfaces=None,
            root_type=root_type,
            extra=_compact(
                raw_state=raw_state,
                architecture=inst.get("Architecture"),
                platform=inst.get("PlatformDetails") or inst.get("Platform"),
                lifecycle=inst.get("InstanceLifecycle"),
                vpc_id=inst.get("VpcId"),
                subnet_id=inst.get("SubnetId"),
                state_reason=(inst.get("StateReason") or {}).get("Message"),
            ),
        )

    def iter_instance_pages(self) -> Iterator[Sequence[ProviderInstance]]:
        request: dict[str, Any] = {"MaxResults": self.params.page_size}
        ec2 = self.client()
        while True:
            with self._aws():
                response = ec2.describe_instances(**request)
            yield [
                self._instance(inst, res.get("OwnerId", ""))
                for res in response.get("Reservations", [])
                for inst in res.get("Instances", [])
            ]
            token = response.get("NextToken")
            if not token:
                return
            request["NextToken"] = token

    def _describe_instance(self, instance_id: str) -> tuple[Mapping[str, Any], str] | None:
        """The raw instance and its reservation's owner, or None when EC2 does not know it."""
        try:
            with self._aws():
                response = self.client().describe_instances(InstanceIds=[instance_id])
        except NotFound:
            return None
        for res in response.get("Reservations", []):
            for inst in res.get("Instances", []):
                if inst.get("InstanceId") == instance_id:
                    return inst, res.get("OwnerId", "")
        return None

    def get_instance(self, instance_id: str) -> ProviderInstance | None:
        found = self._describe_instance(instance_id)
        return self._instance(*found) if found else None

    def _require(self, instance_id: str) -> ProviderInstance:
        inst = self.get_instance(instance_id)
        if inst is None:
            raise NotFound(f"Instance {instance_id} not found")
        return inst

    def create_instance(self, *, image_id: str, **options: str) -> ProviderInstance:
        missing = f"Image {image_id} does not exists."
        try:
            image = self.get_image(image_id)
        except InvalidParameter:
            raise InvalidParameter(missing) from None
        if image is None or image.state == ImageState.DELETED:
            raise InvalidParameter(missing)
        if image.state != ImageState.AVAILABLE:
            raise InvalidState(
                f"Image {image_id} is {image.raw_state}; only available images can be launched"
            )
        hwp_id = options.get("hwp_id") or DEFAULT_INSTANCE_TYPES.get(image.architecture, "t3.micro")
        self._check_profile(hwp_id, image.architecture, options)
        request: dict[str, Any] = {
            "ImageId": image_id,
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": hwp_id,
        }
        if options.get("realm_id"):
            request["Placement"] = {"AvailabilityZone": options["realm_id"]}
        if options.get("keyname"):
            request["KeyName"] = options["keyname"]
        if options.get("user_data"):
            request["UserData"] = options["user_data"]  # boto3 base64-encodes it
        if options.get("name"):
            request["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": options["name"]}]}
            ]
        try:
            with self._aws():
                response = self.client().run_instances(**request)
        except NotFound as exc:
            # Whatever the request names and EC2 cannot find (key pair, zone) is a bad parameter.
            if getattr(exc, "aws_code", "").startswith("InvalidAMIID"):
                raise InvalidParameter(missing) from None
            raise InvalidParameter(exc.message, detail=exc.detail) from None
        inst = response["Instances"][0]
        if options.get("name") and not inst.get("Tags"):
            inst = {**inst, "Tags": [{"Key": "Name", "Value": options["name"]}]}
        return self._instance(inst, response.get("OwnerId", ""))

    @staticmethod
    def _check_profile(hwp_id: str, architecture: str, options: Mapping[str, str]) -> None:
        """EC2 types are fixed: refuse overrides and architectures the type cannot run."""
        profile = PROFILES_BY_ID.get(hwp_id)
        if profile is None:
            return  # a type we do not list; EC2 itself judges it
        archs = profile_architectures(profile)
        if architecture and archs and architecture not in archs:
            raise InvalidParameter(f"Hardware profile {hwp_id} cannot run {architecture} images")
        for prop_name in ("cpu", "memory", "storage"):
            wanted = options.get(f"hwp_{prop_name}")
            if not wanted:
                continue
            prop = profile.property(prop_name)
            try:
                same = prop is not None and float(wanted) == float(prop.value)
            except ValueError:
                same = False
            if not same:
                raise InvalidParameter(f"Hardware profile {hwp_id} has a fixed {prop_name}")

    def instance_action(self, instance_id: str, action: str) -> ProviderInstance:
        calls = {"start": "start_instances", "stop": "stop_instances", "reboot": "reboot_instances"}
        if action not in calls:
            raise NotSupported(f"EC2 instances have no '{action}' action")
        inst = self._require(instance_id)
        if action not in inst.actions:
            raise InvalidState(f"Instance {instance_id} cannot {action} while {inst.state}")
        with self._aws():
            getattr(self.client(), calls[action])(InstanceIds=[instance_id])
        return self.get_instance(instance_id) or inst

    def destroy_instance(self, instance_id: str) -> None:
        inst = self._require(instance_id)
        if "destroy" not in inst.actions:
            raise InvalidState(f"Instance {instance_id} cannot destroy while {inst.state}")
        with self._aws():
            self.client().terminate_instances(InstanceIds=[instance_id])
