"""A stateful fake OpenStack (Keystone, Nova, Glance) and Rackspace cloud over HTTP.

``with FakeOpenStack() as cloud:`` serves it on 127.0.0.1 from a thread;
``python -m tests.fakes.openstack PORT [--rackspace] [--images N]`` serves it
from its own process (the benchmark). Tests drive the real openstacksdk at
``cloud.auth_url`` and steer the cloud through ``cloud.state``,
``cloud.inject(...)``, ``cloud.expire_tokens()`` and ``cloud.logged(...)``.
"""

from tests.fakes.openstack.app import Fault, Logged
from tests.fakes.openstack.cloud import FakeOpenStack
from tests.fakes.openstack.rackspace import FakeRackspace

__all__ = ["FakeOpenStack", "FakeRackspace", "Fault", "Logged"]
