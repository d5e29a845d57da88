"""Every driver's harness for the shared contract suite (``tests/providers/test_contract.py``).

Dotted paths, imported when the suite runs, like the driver registry: a
harness whose client library or simulator is missing here is skipped locally
with the reason, and fails under ``CI=true``.
"""

from __future__ import annotations

import importlib
import os

import pytest

HARNESSES: dict[str, str] = {
    "mock-ec2-profile": "tests.providers.harnesses.mock.MockEC2ProfileHarness",
    "mock-fgcp-profile": "tests.providers.harnesses.mock.MockFGCPProfileHarness",
    "ec2": "tests.providers.harnesses.ec2.EC2Harness",
    "fgcp": "tests.providers.harnesses.fgcp.FGCPHarness",
    "openstack": "tests.providers.harnesses.openstack.OpenStackHarness",
    "rackspace": "tests.providers.harnesses.openstack.RackspaceHarness",
    "ovirt": "tests.providers.harnesses.rhevm.OVirtHarness",
    "rhevm": "tests.providers.harnesses.rhevm.RHEVMHarness",
    "vsphere": "tests.providers.harnesses.vsphere.VSphereHarness",
    "vsphere-clone": "tests.providers.harnesses.vsphere.VSphereCloneHarness",
}


def load(key: str):
    module_name, _, class_name = HARNESSES[key].rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"harness {key} needs {exc.name}, which is not installed here")
    return getattr(module, class_name)
