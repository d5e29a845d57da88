"""EC2 as a contract back end: real boto3 against moto in this process.

moto lacks a few EC2 behaviours; ``tests/fakes/moto_ec2.py`` adds them
(paging, duplicate names, pending images). Failures moto cannot produce
(throttling) are answered on the wire with EC2's own error XML through a
botocore before-send hook, so botocore's parser and retries still run.
"""

from __future__ import annotations

import io
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from moto.ec2.models import ec2_backends

from providers.base import ImageState
from tests.fakes import moto_ec2
from tests.providers.harnesses.base import Harness

ACCOUNT, REGION = "123456789012", "us-east-1"


class _Raw(io.BytesIO):
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.getvalue()


def ec2_error(code: str, message: str, status: int) -> Callable[..., AWSResponse]:
    """A before-send handler answering with EC2's error document."""

    def reply(request: Any, **kwargs: Any) -> AWSResponse:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            "</Errors><RequestID>0f2b1a8e-aaaa-bbbb-cccc-123456789abc</RequestID></Response>"
        ).encode()
        return AWSResponse(request.url, status, {"Content-Type": "text/xml;charset=UTF-8"}, _Raw(body))

    return reply


class EC2Harness(Harness):
    driver_name = "ec2"
    page_size = 5  # EC2's MaxResults minimum
    refusal_words = ("instance-store", "EBS-backed")
    state_samples = {
        "pending": ImageState.PENDING,
        "available": ImageState.AVAILABLE,
        "failed": ImageState.FAILED,
        "invalid": ImageState.FAILED,
        "deregistered": ImageState.DELETED,
        "disabled": ImageState.UNKNOWN,
    }

    def start(self) -> None:
        self.patch = pytest.MonkeyPatch()
        self.patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            self.patch.delenv(var, raising=False)
        # New images stay pending until the suite settles them.
        moto_ec2.apply(self.patch, pending_seconds=3600)
        self.aws = mock_aws()
        self.aws.start()
        self.backend = ec2_backends[ACCOUNT][REGION]
        self.client = boto3.client(
            "ec2", region_name=REGION, aws_access_key_id="AKIDARRANGE", aws_secret_access_key="arrange"
        )

    def stop(self) -> None:
        self.aws.stop()
        self.patch.undo()

    def provider(self) -> str:
        return REGION

    def params(self) -> dict[str, Any]:
        return {"page_size": self.page_size, "max_attempts": 1}

    def credentials(self) -> dict[str, Any]:
        return {
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRETz",
            "session_token": "FQoGZXIvYXdzEBaaTOKEN",
        }

    def bad_credentials(self) -> dict[str, Any]:
        return {"access_key_id": "AKIAWRONGWRONGWRONG1", "secret_access_key": "wrong-secret-key-value"}

    def driver(self, **overrides: Any):
        driver = super().driver(**overrides)
        if overrides.get("credentials") is not None:
            # moto then checks signatures against its IAM, where these keys do not exist
            self._enforce_auth(driver)
        return driver

    @staticmethod
    def _enforce_auth(driver: Any) -> None:
        for name in ("list_images", "identity", "get_image"):
            setattr(driver, name, set_initial_no_auth_action_count(0)(getattr(driver, name)))

    def add_images(self, count: int, *, name: str = "") -> list[str]:
        instance = self._run()
        ids = []
        for _ in range(count):
            image_id = self.client.create_image(InstanceId=instance, Name=name or f"img-{uuid.uuid4().hex}")[
                "ImageId"
            ]
            self.backend.amis[image_id].state = "available"
            ids.append(image_id)
        return ids

    def unknown_image_id(self) -> str:
        return "ami-0000000000000000f"

    def unknown_instance_id(self) -> str:
        return "i-0123456789abcdef0"

    def _run(self, root_device_type: str = "ebs") -> str:
        instance_id = self.client.run_instances(
            ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.micro"
        )["Instances"][0]["InstanceId"]
        self.backend.get_instance(instance_id).root_device_type = root_device_type
        return instance_id

    def imageable_instance(self) -> str:
        return self._run()

    def refused_instance(self) -> str:
        return self._run("instance-store")

    def settle(self, created: str, *, ok: bool, reason: str = "") -> None:
        ami = self.backend.amis[created]
        ami.state = "available" if ok else "failed"
        if not ok:
            ami.state_reason = {"Code": "Client.InternalError", "Message": f"Client.InternalError: {reason}"}

    def set_state(self, image_id: str, raw_state: str) -> None:
        self.backend.amis[image_id].state = raw_state

    def provoke(self, kind: str) -> Callable[[], object] | None:
        driver = self.driver()
        if kind == "throttled":
            reply = ec2_error("RequestLimitExceeded", "Request limit exceeded.", 503)
            driver.client().meta.events.register_first("before-send.ec2.DescribeImages", reply)
            return driver.list_images
        if kind == "unreachable":
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            return self.driver(endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=1).list_images
        if kind == "timeout":
            self.silent = socket.socket()
            self.silent.bind(("127.0.0.1", 0))
            self.silent.listen(8)
            port = self.silent.getsockname()[1]
            return self.driver(endpoint_url=f"http://127.0.0.1:{port}", read_timeout=0.3).list_images
        if kind == "auth":
            return self.driver(credentials=self.bad_credentials()).list_images
        name = f"taken-{uuid.uuid4().hex[:8]}"
        return {
            "not_found": lambda: driver.destroy_image(self.unknown_image_id()),
            "bad_input": lambda: driver.get_image("bogus"),
            "conflict": lambda: [driver.create_image(instance_id=self._run(), name=name) for _ in range(2)],
        }[kind]


os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
