"""moto, taught the EC2 behaviour deltaweb relies on and moto 5.2 lacks.

* DescribeImages pages with MaxResults/NextToken, as real EC2 does (moto
  returns everything in one response);
* CreateImage refuses a name the account already uses (InvalidAMIName.Duplicate);
* an image made from an EBS-backed instance is EBS-backed (moto says
  "standard");
* optionally, a new image stays ``pending`` for a while before ``available``
  (moto makes it available at once), so pollers see the real life cycle.

``python -m tests.fakes.moto_ec2 PORT`` serves this moto on 127.0.0.1 for
the end-to-end test and the benchmark (set MOTO_AMIS_PATH for a big catalog).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.amis import AmiBackend
from moto.ec2.responses.amis import AmisResponse

ORIGINAL_DESCRIBE = AmisResponse.describe_images
ORIGINAL_CREATE = AmiBackend.create_image


# Like EC2, a NextToken names a cursor over the result of the first call, so
# later pages cost one page, not another scan of the whole catalog.
_cursors: dict[str, list] = {}


def paged_describe_images(self: AmisResponse) -> ActionResult:
    token = self._get_param("NextToken")
    if token:
        cursor, _, offset = token.partition(":")
        images, start = _cursors.get(cursor), int(offset)
        if images is None:
            raise EC2ClientError("InvalidParameterValue", f"Unknown NextToken {token}")
    else:
        images, start, cursor = (
            self.ec2_backend.describe_images(
                ami_ids=self._get_param("ImageIds", []),
                filters=self._filters_from_querystring(),
                exec_users=self._get_param("ExecutableUsers", []),
                owners=self._get_param("Owners", []),
            ),
            0,
            uuid.uuid4().hex,
        )
    size = int(self._get_param("MaxResults") or 0) or max(len(images), 1)
    result: dict[str, object] = {"Images": images[start : start + size]}
    if start + size < len(images):
        _cursors[cursor] = images
        result["NextToken"] = f"{cursor}:{start + size}"
    else:
        _cursors.pop(cursor, None)
    return ActionResult(result)


def unique_names(original: Callable, pending_seconds: float = 0) -> Callable:
    def create_image(self, instance_id, name, description, tag_specifications):
        owner = self.get_instance(instance_id).owner_id if hasattr(self, "get_instance") else None
        taken = next(
            (a for a in self.amis.values() if a.name == name and (owner is None or a.owner_id == owner)),
            None,
        )
        if taken is not None:
            raise EC2ClientError(
                "InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {taken.id}"
            )
        ami = original(self, instance_id, name, description, tag_specifications)
        # An image of an EBS-backed instance is EBS-backed (moto says "standard").
        ami.root_device_type = self.get_instance(instance_id).root_device_type
        if pending_seconds:
            ami.state = "pending"
            timer = threading.Timer(pending_seconds, setattr, (ami, "state", "available"))
            timer.daemon = True
            timer.start()
        return ami

    return create_image


def apply(monkeypatch=None, pending_seconds: float = 0) -> None:
    """Patch moto in this process (through pytest's monkeypatch when given)."""
    setter = monkeypatch.setattr if monkeypatch is not None else setattr
    setter(AmisResponse, "describe_images", paged_describe_images)
    setter(AmiBackend, "create_image", unique_names(ORIGINAL_CREATE, pending_seconds))


def serve(port: int) -> None:
    from moto.server import ThreadedMotoServer

    apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"moto listening on 127.0.0.1:{port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
