"""The 2013 RHEV-M recordings (tests/fixtures/rhevm/), read through ovirtsdk4.

They are RHEV-M 3.x documents (API v3). ovirtsdk4's v4 readers parse them
except for two shapes that changed in v4: status was ``<status><state>ok</state>
</status>`` and the OS type an attribute, ``<os type="rhel_6x64">``. ``v4()``
rewrites just those two, so everything else is the SDK's own parsing.
"""

from __future__ import annotations

import re
from pathlib import Path

import ovirtsdk4.readers  # noqa: F401  (registers the readers)
import yaml
from ovirtsdk4 import reader

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rhevm"


def interactions(name: str) -> list[dict]:
    """``(request, response)`` pairs of one cassette, e.g. ``test_0005``."""
    (path,) = FIXTURES.glob(f"{name}_*.yml")
    return yaml.safe_load(path.read_text())["http_interactions"]


def v4(body: str) -> str:
    body = re.sub(r"<status>\s*<state>([^<]*)</state>\s*</status>", r"<status>\1</status>", body)

    def os_element(match: re.Match) -> str:
        element = f'<os type="{match.group(1)}"><type>{match.group(1)}</type>'
        return element + "</os>" if match.group(2) else element

    return re.sub(r'<os type="([^"]*)"\s*(/)?>', os_element, body)


def read(body: str) -> object:
    return reader.Reader.read(v4(body).encode())
