"""The mock cloud's behaviour profiles and the parameters that choose them.

A profile makes image creation act like one of the real clouds (a delay, a
failure rate, stopped-only instances, no id returned...). An account picks a
preset and may override any field; ``MockParams`` is generated from
``BehaviourProfile`` so each field is documented once.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, replace
from typing import Any, Literal

from providers.exceptions import InvalidParameter
from providers.params import param

IdStyle = Literal["name", "ami", "uuid", "fgcp", "numeric", "instance"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviourProfile:
    """How the mock cloud creates images, after one of the real clouds."""

    create_delay: float = param("Seconds before a new image is ready.", default=0.0, minimum=0)
    failure_rate: float = param("Share of creates that fail (0 to 1).", default=0.0, minimum=0, maximum=1)
    failure_reason: str = param(
        "Why a failed create failed.", default="The mock provider failed to create the image"
    )
    stopped_only: bool = param("Only STOPPED instances can be imaged (RHEV-M, vSphere, FGCP).", default=False)
    running_only: bool = param("Only RUNNING instances can be imaged (OpenStack).", default=False)
    ebs_only: bool = param("Only EBS-backed (persistent) instances can be imaged (EC2).", default=False)
    returns_id: bool = param("Create answers with the new id (false: FGCP).", default=True)
    honours_name: bool = param("The given name is used (false: vSphere).", default=True)
    honours_description: bool = param("The given description is used.", default=True)
    converts_instance: bool = param(
        "The instance itself becomes the image and leaves the instance list (vSphere).", default=False
    )
    unique_names: bool = param("Image names are unique in the account (EC2).", default=True)
    id_style: IdStyle = param("How new image ids look.", default="name")
    raw_states: tuple[str, ...] = param(
        "The provider's words for pending, available and failed images.",
        default=("PENDING", "AVAILABLE", "FAILED"),
    )
    legacy_create: bool = param(
        "Created images are owned by root and i386, as Deltacloud's mock stored them.", default=False
    )
    refuse_delete_in_use: bool = param(
        "Deleting an image some instance was made from is refused (RHEV-M).", default=False
    )
    incremental: bool = param(
        "Lists the images changed since a time, as Glance's updated_at filter does.", default=False
    )
    page_size: int = param("Images per listing page.", default=1000, minimum=1)
    list_delay: float = param("Seconds of delay per listing page.", default=0.0, minimum=0)
    list_fault_after_pages: int = param(
        "Fail the listing after this many pages (-1: never), for sync tests.", default=-1, minimum=-1
    )

    def __post_init__(self) -> None:
        states = self.raw_states
        if len(states) != 3 or len(set(states)) != 3 or not all(states):
            raise InvalidParameter(
                "Mock parameter 'raw_states' must be three distinct names: pending, available, failed"
            )


PROFILES: dict[str, BehaviourProfile] = {
    "deltacloud": BehaviourProfile(legacy_create=True),
    "ec2": BehaviourProfile(
        create_delay=5.0, ebs_only=True, id_style="ami", raw_states=("pending", "available", "failed")
    ),
    "openstack": BehaviourProfile(
        create_delay=5.0,
        running_only=True,
        honours_description=False,
        unique_names=False,
        id_style="uuid",
        raw_states=("SAVING", "ACTIVE", "ERROR"),
    ),
    "rackspace": BehaviourProfile(
        create_delay=5.0,
        running_only=True,
        unique_names=False,
        id_style="numeric",
        raw_states=("QUEUED", "ACTIVE", "FAILED"),
    ),
    "rhevm": BehaviourProfile(
        create_delay=5.0,
        stopped_only=True,
        refuse_delete_in_use=True,
        id_style="uuid",
        raw_states=("LOCKED", "OK", "ILLEGAL"),
    ),
    "vsphere": BehaviourProfile(
        stopped_only=True,
        honours_name=False,
        honours_description=False,
        converts_instance=True,
        id_style="instance",
        raw_states=("PENDING", "AVAILABLE", "FAILED"),
    ),
    "fgcp": BehaviourProfile(
        create_delay=5.0,
        stopped_only=True,
        returns_id=False,
        unique_names=False,
        id_style="fgcp",
        raw_states=("REGISTERING", "AVAILABLE", "FAILED"),
    ),
}
ProfileName = Literal["deltacloud", "ec2", "openstack", "rackspace", "rhevm", "vsphere", "fgcp"]
assert set(typing.get_args(ProfileName)) == set(PROFILES)


def _override_fields() -> list[tuple[str, Any, Any]]:
    """Every profile field again, optional: None keeps the preset's value."""
    hints = typing.get_type_hints(BehaviourProfile)
    out = []
    for f in dataclasses.fields(BehaviourProfile):
        meta = f.metadata
        field = param(
            f"{meta['help']} Default: the profile's.",
            default=None,
            minimum=meta["minimum"],
            maximum=meta["maximum"],
        )
        out.append((f.name, hints[f.name] | None, field))
    return out


def _behaviour(self: Any) -> BehaviourProfile:
    """The preset with this account's overrides applied (validated)."""
    overrides = {
        f.name: getattr(self, f.name)
        for f in dataclasses.fields(BehaviourProfile)
        if getattr(self, f.name) is not None
    }
    return replace(PROFILES[self.profile], **overrides)


MockParams = dataclasses.make_dataclass(
    "MockParams",
    [
        (
            "profile",
            ProfileName,
            param("Which real cloud image creation imitates.", default="deltacloud"),
        ),
        (
            "cloud",
            str,
            param(
                "Name of the mock cloud; accounts naming the same cloud share its images and "
                "instances. Default: the account's provider, else 'default'.",
                default="",
            ),
        ),
        *_override_fields(),
    ],
    namespace={
        "behaviour": _behaviour,
        "__post_init__": lambda self: _behaviour(self) and None,
        "__doc__": "A behaviour profile preset plus per-account overrides.",
        "__module__": __name__,
    },
    frozen=True,
    slots=True,
    kw_only=True,
)
