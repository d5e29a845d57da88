"""Run the service in the foreground and keep it running: API (gunicorn),
Celery workers and beat, each supervised.

A process that exits is started again (its whole process group is killed
first, so no orphaned pool child lingers). Workers and beat are also judged by
their work (images/health.py): a worker whose pool no longer answers a ping,
or a beat whose reaper stopped, is killed and started again. Ctrl-C (or
SIGTERM) stops everything. ``--services`` runs a subset: compose runs one
service per container this way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from images import health
from images.queue import OPERATIONS_QUEUE, SYNC_QUEUE

SERVICES = ("web", "worker", "sync-worker", "beat")
# The queue each worker service consumes (compose runs one service per container).
SERVICE_QUEUES = {"worker": OPERATIONS_QUEUE, "sync-worker": SYNC_QUEUE}


@dataclass
class Supervised:
    """One child process and what the supervisor knows about it."""

    name: str
    argv: list[str]
    check: Callable[[], health.Health] | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    failures: int = 0
    unhealthy: str = ""
    not_before: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Command(BaseCommand):
    help = "Run the API, the Celery workers and beat; restart any that dies or stops working."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--concurrency", default=os.environ.get("WORKER_CONCURRENCY", "2"))
        parser.add_argument(
            "--services", default=",".join(SERVICES), help=f"Comma-separated subset of {', '.join(SERVICES)}."
        )
        parser.add_argument(
            "--health-interval",
            type=float,
            default=float(os.environ.get("DELTAWEB_HEALTH_INTERVAL", "10")),
            help="Seconds between health checks of the workers and beat.",
        )
        parser.add_argument(
            "--health-grace",
            type=float,
            default=float(os.environ.get("DELTAWEB_HEALTH_GRACE", "30")),
            help="Seconds after a start before a process is checked.",
        )
        parser.add_argument(
            "--health-failures",
            type=int,
            default=int(os.environ.get("DELTAWEB_HEALTH_FAILURES", "2")),
            help="Failed checks in a row that get a process restarted.",
        )

    @staticmethod
    def _worker(bin_dir: Path, queue: str, concurrency: str) -> list[str]:
        return [
            str(bin_dir / "celery"),
            "-A",
            "deltaweb",
            "worker",
            "-l",
            "info",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "-c",
            concurrency,
            "--without-gossip",
            "--without-mingle",
        ]

    def _log(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        self.stderr.write(f"[{stamp}: runstack] {message}")

    def handle(self, *args, host, port, concurrency, services, **options):
        wanted = [name.strip() for name in services.split(",") if name.strip()]
        unknown = set(wanted) - set(SERVICES)
        if unknown or not wanted:
            raise CommandError(f"--services takes names from {', '.join(SERVICES)}")
        bin_dir = Path(sys.executable).parent
        self.env = {**os.environ, "HOST": host, "PORT": str(port)}
        schedule = settings.CELERY_BEAT_SCHEDULE_FILENAME
        Path(schedule).parent.mkdir(parents=True, exist_ok=True)
        for folder in getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).values():
            if isinstance(folder, str) and folder.startswith("/"):
                Path(folder).mkdir(parents=True, exist_ok=True)

        node = socket.gethostname()
        timeout = min(10.0, options["health_interval"])
        catalog = {
            "web": Supervised(
                "web", [str(bin_dir / "gunicorn"), "-c", "deltaweb/gunicorn_conf.py", "deltaweb.wsgi"]
            ),
            # Two workers, so a long catalog listing never delays operation polls.
            "worker": Supervised(
                "worker",
                self._worker(bin_dir, SERVICE_QUEUES["worker"], str(concurrency)),
                lambda: health.check_worker(f"{SERVICE_QUEUES['worker']}@{node}", timeout=timeout),
            ),
            "sync-worker": Supervised(
                "sync-worker",
                self._worker(bin_dir, SERVICE_QUEUES["sync-worker"], "1"),
                lambda: health.check_worker(f"{SERVICE_QUEUES['sync-worker']}@{node}", timeout=timeout),
            ),
            "beat": Supervised(
                "beat",
                [str(bin_dir / "celery"), "-A", "deltaweb", "beat", "-l", "info", "-s", schedule],
                health.check_beat,
            ),
        }
        children = [catalog[name] for name in SERVICES if name in wanted]
        for child in children:
            self._start(child)
        if "web" in wanted:
            self.stdout.write(f"deltaweb on http://{host}:{port}/api (Ctrl-C stops everything)")
        stopping = threading.Event()

        def stop(signum, frame):
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        checker = threading.Thread(
            target=self._check_loop, args=(children, stopping, options), daemon=True, name="health"
        )
        checker.start()
        while not stopping.is_set():
            for child in children:
                self._tend(child)
            stopping.wait(0.5)
        self._stop_all(children)

    def _start(self, child: Supervised) -> None:
        child.proc = subprocess.Popen(child.argv, env=self.env, cwd=settings.BASE_DIR, start_new_session=True)
        child.started = time.monotonic()
        child.failures, child.unhealthy = 0, ""

    @staticmethod
    def _kill_group(child: Supervised) -> None:
        """SIGKILL the process and everything it started (its pool children)."""
        try:
            os.killpg(child.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def _tend(self, child: Supervised) -> None:
        """Restart ``child`` if it exited or was found unhealthy."""
        with child.lock:
            code = child.proc.poll()
            reason = child.unhealthy
            if code is None and not reason:
                return
            now = time.monotonic()
            if child.not_before == 0.0:
                why = f"exited with {code}" if code is not None else f"unhealthy ({reason})"
                self._kill_group(child)
                # Quick deaths back off (up to 30 s); a process that ran a while restarts at once.
                lived = now - child.started
                child.restarts = child.restarts + 1 if lived < 30 else 0
                delay = min(30.0, 0.5 * 2**child.restarts) if child.restarts else 0.5
                child.not_before = now + delay
                self._log(f"{child.name} {why}; restarting in {delay:.1f} s")
            if now >= child.not_before:
                child.not_before = 0.0
                self._start(child)
                self._log(f"{child.name} started again (pid {child.proc.pid})")

    def _check_loop(self, children: list[Supervised], stopping: threading.Event, options: dict) -> None:
        interval, grace = options["health_interval"], options["health_grace"]
        threshold = max(1, options["health_failures"])
        while not stopping.wait(interval):
            for child in children:
                if child.check is None or stopping.is_set():
                    continue
                with child.lock:
                    proc, started = child.proc, child.started
                if proc.poll() is not None or time.monotonic() - started < grace:
                    continue
                try:
                    result = child.check()
                except Exception as exc:  # noqa: BLE001 (a broker outage fails the check, not the supervisor)
                    result = health.Health(False, f"check failed: {exc.__class__.__name__}: {exc}")
                with child.lock:
                    if child.proc is not proc:
                        continue  # restarted meanwhile
                    if result.ok:
                        child.failures = 0
                        continue
                    child.failures += 1
                    self._log(f"{child.name} check {child.failures}/{threshold} failed: {result.reason}")
                    if child.failures >= threshold:
                        child.unhealthy = result.reason

    def _stop_all(self, children: list[Supervised]) -> None:
        for child in children:
            if child.proc.poll() is None:
                child.proc.terminate()  # warm shutdown: the worker finishes or requeues its tasks
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill_group(child)
