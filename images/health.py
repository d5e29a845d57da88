"""Health of the background processes, judged by work done, not by "alive".

A worker's consumer writes a heartbeat file every few seconds (deltaweb/celery.py);
a check then sends a ping task to that worker's own queue and waits for a child
of its pool to answer, so a worker whose main process is fine but whose pool no
longer runs anything is found unhealthy. A worker whose every child is busy on
a recent task is healthy without a ping (a long catalog listing is work).
Beat runs the operations reaper itself and writes its own heartbeat after
each pass. ``runstack`` and ``manage.py worker_health`` (compose) use these.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str


def health_dir() -> Path:
    folder = Path(settings.DELTAWEB_HEALTH_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "@.-_" else "_" for ch in name)


def heartbeat_path(nodename: str) -> Path:
    return health_dir() / f"worker-{_safe(nodename)}.json"


def write_worker_heartbeat(consumer) -> None:
    """Called in the worker's main process, from its event loop."""
    from celery.worker import state

    started = [req.time_start for req in list(state.active_requests) if req.time_start]
    _write_json(
        heartbeat_path(consumer.hostname),
        {
            "pid": os.getpid(),
            "at": time.time(),
            "concurrency": consumer.pool.num_processes if consumer.pool else 0,
            "active": len(started),
            "oldest_active": min(started) if started else None,
        },
    )


def answer_ping(token: str) -> None:
    """Run by a pool child: proves that the pool takes and finishes work."""
    _write_json(health_dir() / f"ping-{_safe(token)}", {"pid": os.getpid(), "at": time.time()})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_worker(nodename: str, *, timeout: float = 10.0, stale: float = 20.0) -> Health:
    """Is the worker named ``nodename`` (on this host) taking and running work?"""
    from celery import current_app
    from celery.utils.nodenames import worker_direct

    beat = _read_json(heartbeat_path(nodename))
    if beat is None:
        return Health(False, f"{nodename}: no heartbeat yet")
    age = time.time() - beat["at"]
    if age > stale:
        return Health(False, f"{nodename}: last heartbeat {age:.0f} s ago")
    if not _alive(beat["pid"]):
        return Health(False, f"{nodename}: process {beat['pid']} is gone")
    oldest = beat.get("oldest_active")
    busy_limit = settings.DELTAWEB_WORKER_TASK_MAX_SECONDS
    if beat["concurrency"] and beat["active"] >= beat["concurrency"] and time.time() - oldest < busy_limit:
        return Health(True, f"{nodename}: every child busy on recent tasks")
    token = uuid.uuid4().hex
    answer = health_dir() / f"ping-{token}"
    # By name, as images/queue.py sends: images.tasks imports this module.
    current_app.send_task(
        "images.tasks.worker_ping_task", (token,), queue=worker_direct(nodename), expires=timeout
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer.exists():
            answer.unlink(missing_ok=True)
            return Health(True, f"{nodename}: ping answered")
        time.sleep(0.1)
    return Health(False, f"{nodename}: no child answered a ping within {timeout:.0f} s")


def reap_and_beat() -> int:
    """Beat's own reaper pass; then the heartbeat, which says whether it worked."""
    import django
    from django.db import close_old_connections

    from images.operations import operations_reap

    django.setup()
    count, ok = 0, True
    try:
        close_old_connections()
        count = operations_reap()
    except Exception:  # the database may be down; beat keeps going and retries
        ok = False
        logger.exception("operations reaper failed")
    finally:
        close_old_connections()
    _write_json(health_dir() / "beat.json", {"pid": os.getpid(), "at": time.time(), "reap_ok": ok})
    return count


def check_beat(*, stale: float | None = None) -> Health:
    """Beat is healthy if its reaper ran (and worked) recently."""
    stale = stale if stale is not None else max(30.0, 3 * float(settings.DELTAWEB_REAPER_TICK))
    beat = _read_json(health_dir() / "beat.json")
    if beat is None:
        return Health(False, "beat: no heartbeat yet")
    age = time.time() - beat["at"]
    if age > stale:
        return Health(False, f"beat: last reaper pass {age:.0f} s ago")
    if not _alive(beat["pid"]):
        return Health(False, f"beat: process {beat['pid']} is gone")
    if not beat.get("reap_ok"):
        return Health(False, "beat: the last reaper pass failed (see its log)")
    return Health(True, "beat: reaper ran")
