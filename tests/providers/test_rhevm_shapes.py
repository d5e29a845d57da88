"""Parsing what RHEV-M engines send: the 2013 recordings and ovirtsdk4 v4 objects,
through the same functions the rhevm driver uses (``providers/ovirt_shapes.py``)."""

from __future__ import annotations

import datetime

import pytest
from ovirtsdk4 import types

from providers.base import ImageState, RootType
from providers.ovirt_shapes import (
    MUST_BE_DOWN,
    architecture,
    fault_text,
    template_image,
    vm_instance,
    vms_using,
)
from tests.providers.rhevm_recordings import interactions, read

OWNER = "fakeuser"


def _body(cassette: str, index: int) -> str:
    return interactions(cassette)[index]["response"]["body"]["string"]


def test_the_2013_template_listing_parses_into_images():
    # given: RHEV-M 3.x's answer to templates?search=datacenter=iscsi
    templates = read(_body("test_0002", 1))

    # when
    images = [template_image(t, owner_id=OWNER) for t in templates]

    # then: every template is an available x86_64 image with its creation time in UTC
    assert len(images) == 20
    assert {i.state for i in images} == {ImageState.AVAILABLE}
    assert {i.raw_state for i in images} == {"OK"}
    assert {i.architecture for i in images} == {"x86_64"}
    assert {i.owner_id for i in images} == {OWNER}
    assert {i.root_type for i in images} == {RootType.PERSISTENT}
    assert len({i.id for i in images}) == 20
    first = images[0]
    assert first.id == "da12fc7e-8f0c-4ebb-a524-5e99b3214d75"
    assert first.name == "07ef6eb0-2e43-43a2-b3f0-cb1f15882f13"
    assert first.creation_time == "2013-02-25T13:04:46Z"  # 08:04:46-05:00
    assert first.extra["os_type"] == "other_linux"
    assert first.extra["cluster_id"] == "b91b0346-4ba3-11e2-a3ac-0050568c6b2d"
    assert sum(i.extra["os_type"] == "rhel_5x64" for i in images) == 3


def test_the_2013_single_template_and_data_center_parse():
    template = read(_body("test_0004", 1))
    image = template_image(template, owner_id=OWNER)
    assert image.description == (
        "Template name (RHEL63) from base image (3ee78645-5d04-4584-9d35-fe93dde38ed5)"
    )
    assert (image.state, image.extra["memory"]) == (ImageState.AVAILABLE, 536870912)
    (datacenter,) = read(_body("test_0002", 0))
    assert datacenter.name == "iscsi"


def test_the_2013_in_use_delete_fault_names_the_vms():
    # given: what RHEV-M answered to DELETE of a template two VMs used (HTTP 400)
    response = interactions("test_0005")[2]["response"]
    fault = read(response["body"]["string"])

    # then
    assert response["status"]["code"] == 400
    assert isinstance(fault, types.Fault) and fault.reason == "Operation Failed"
    text = fault_text(fault)
    assert text == (
        "Cannot delete Template. Template is being used by the following VMs: i-1362693110,i-1362692460."
    )
    assert vms_using(text) == ("i-1362693110", "i-1362692460")
    assert vms_using("Cannot delete Template. Template is locked.") == ()


def test_fault_text_falls_back_to_the_reason():
    assert fault_text(types.Fault(reason="Operation Failed")) == "Operation Failed"
    assert fault_text(types.Fault(reason="r", detail="Entity not found: x")) == "Entity not found: x"
    assert fault_text(None) == ""


@pytest.mark.parametrize(
    ("cpu", "os_type", "expected"),
    [
        (types.Architecture.X86_64, "rhel_8x64", "x86_64"),
        (types.Architecture.PPC64, "rhel_7ppc64", "ppc64"),
        (types.Architecture.S390X, "rhel_8_s390x", "s390x"),
        (types.Architecture.AARCH64, "other_linux", "aarch64"),
        (types.Architecture.X86_64, "windows_7", "i386"),
        (None, "rhel_6", "i386"),
        (types.Architecture.UNDEFINED, "other", "x86_64"),
        (None, None, "x86_64"),
    ],
)
def test_architecture(cpu, os_type, expected):
    template = types.Template(
        cpu=types.Cpu(architecture=cpu), os=types.OperatingSystem(type=os_type) if os_type else None
    )
    assert architecture(template) == expected


@pytest.mark.parametrize(
    ("status", "state", "raw"),
    [
        (types.TemplateStatus.OK, ImageState.AVAILABLE, "OK"),
        (types.TemplateStatus.LOCKED, ImageState.PENDING, "LOCKED"),
        (types.TemplateStatus.ILLEGAL, ImageState.FAILED, "ILLEGAL"),
        (None, ImageState.UNKNOWN, ""),
    ],
)
def test_template_states(status, state, raw):
    image = template_image(
        types.Template(id="t1", name="n", status=status), owner_id=OWNER, failure_reason="disk error"
    )
    assert (image.state, image.raw_state) == (state, raw)
    # the reason is only kept for a failed template
    assert image.failure_reason == ("disk error" if state == ImageState.FAILED else "")


@pytest.mark.parametrize(
    ("status", "state", "refusal"),
    [
        (types.VmStatus.DOWN, "STOPPED", ""),
        (types.VmStatus.UP, "RUNNING", MUST_BE_DOWN),
        (types.VmStatus.POWERING_UP, "PENDING", MUST_BE_DOWN),
        (types.VmStatus.POWERING_DOWN, "STOPPING", MUST_BE_DOWN),
        (types.VmStatus.IMAGE_LOCKED, "PENDING", MUST_BE_DOWN),
        (types.VmStatus.SUSPENDED, "STOPPED", MUST_BE_DOWN),
        (types.VmStatus.NOT_RESPONDING, "UNKNOWN", MUST_BE_DOWN),
    ],
)
def test_vm_states_and_the_down_only_rule(status, state, refusal):
    started = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    vm = types.Vm(
        id="v1",
        name="web01",
        status=status,
        template=types.Template(id="t1"),
        start_time=started,
        cluster=types.Cluster(id="c1"),
    )
    instance = vm_instance(vm, owner_id=OWNER, realm_id="dc1")
    assert (instance.state, instance.create_image_refusal) == (state, refusal)
    assert instance.can_create_image == (refusal == "")
    assert (instance.image_id, instance.realm_id, instance.launch_time) == (
        "t1",
        "dc1",
        "2026-01-02T03:04:05Z",
    )
    assert instance.extra["raw_state"] == status.value
