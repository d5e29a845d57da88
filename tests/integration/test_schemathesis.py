"""Schemathesis fuzzes the live API from its own OpenAPI document.

The stack as deployed: gunicorn serving the API, a real Celery worker carrying
creates and deletes, the configured database and broker. Schemathesis (its
command line, as a developer would run it) loads ``/openapi.json`` from the
server, then runs every phase: the document's examples, coverage of the
boundaries (and invalid values), random fuzzing, and stateful sequences along
the document's links (``POST /api/images`` -> ``GET``/``DELETE
/api/images/{id}``). Every response must be declared (status, media type),
JSON bodies must match their schemas, and none may be a 5xx. (Schemathesis
has no reader for XML and HTML, so it leaves those bodies alone; the links
need JSON bodies. ``tests/images/test_openapi.py`` checks XML and HTML
bodies against their documented patterns on every route.)

``DELTAWEB_FUZZ_EXAMPLES`` (default 8) bounds the examples per operation;
``DELTAWEB_FUZZ_SEED`` replays a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from images import sync
from tests.conftest import make_account

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def schemathesis(base: str, report: Path, *extra: str) -> subprocess.CompletedProcess:
    """``st run`` against ``base``, in the report's folder (Hypothesis keeps files where it runs)."""
    argv = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        ",".join(PHASES),
        "--auth",
        "mockuser:mockpassword",
        "--max-examples",
        os.environ.get("DELTAWEB_FUZZ_EXAMPLES", "8"),
        "--seed",
        os.environ.get("DELTAWEB_FUZZ_SEED", "20261204"),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--max-redirects",
        "0",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--output-sanitize",
        "false",
        *extra,
    ]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.run(
        argv, env=env, cwd=report.parent, capture_output=True, text=True, timeout=600, check=False
    )


def summary(output: str, width: int = 400) -> str:
    """Schemathesis's report with its longest lines cut (ids of 300 characters, rule lists)."""
    return "\n".join(line if len(line) <= width else line[:width] + " ..." for line in output.splitlines())


def response_statuses(report: Path) -> list[int]:
    """The status of every response schemathesis received, from its event log."""
    statuses: list[int] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            response = node.get("response")
            if isinstance(response, dict) and isinstance(response.get("status_code"), int):
                statuses.append(response["status_code"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for line in report.read_text().splitlines():
        if line.strip():
            walk(json.loads(line))
    return statuses


def test_the_live_api_keeps_its_schema_under_fuzzing(stack, api_user, tmp_path):
    # given: the demo account, synced, a worker for creates and deletes, and the API in gunicorn
    account = make_account("mock", users=[api_user], is_default=True)
    sync.catalog_sync(account=account)
    stack.worker()
    base = stack.web()
    report = tmp_path / "schemathesis.ndjson"
    # when
    run = schemathesis(base, report)
    # then: every check held on every response, none of which was a server error
    output = run.stdout + run.stderr
    (tmp_path / "schemathesis.log").write_text(output)
    statuses = response_statuses(report)
    assert run.returncode == 0, f"{summary(output)}\n(all of it: {tmp_path}/schemathesis.log and web.log)"
    assert statuses, output[-3000:]
    assert [s for s in statuses if s >= 500] == []
    # and the fuzzing got past authentication into the API's own answers
    assert {200, 201, 204, 404} <= set(statuses), sorted(set(statuses))
