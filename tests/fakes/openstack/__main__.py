"""``python -m tests.fakes.openstack PORT [--rackspace] [--images N] [--region R]``"""

from __future__ import annotations

import argparse
import json
import time

from tests.fakes.openstack import FakeOpenStack, FakeRackspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--rackspace", action="store_true", help="the Rackspace flavour")
    parser.add_argument("--images", type=int, default=0, help="extra private images of the demo project")
    parser.add_argument("--region", default="", help="where the extra images go (default: the first region)")
    parser.add_argument("--snapshot-delay", type=float, default=1.0)
    args = parser.parse_args()
    cloud = (FakeRackspace if args.rackspace else FakeOpenStack)()
    cloud.snapshot_delay = args.snapshot_delay
    if args.images:
        cloud.seed_images(args.images, args.region)
    cloud.start(args.port)
    print(f"fake {cloud.flavour} listening on {cloud.base}", flush=True)
    print(json.dumps(cloud.info()), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        cloud.stop()


if __name__ == "__main__":
    main()
