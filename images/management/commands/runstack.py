"""Run the whole service in the foreground: API (gunicorn), Celery workers and beat.

Ctrl-C (or SIGTERM) stops all three; if one of them dies, the others are
stopped too and the command fails, so a supervisor sees the outage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the API, a Celery worker and Celery beat until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--concurrency", default=os.environ.get("WORKER_CONCURRENCY", "2"))

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

    def handle(self, *args, host, port, concurrency, **options):
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "HOST": host, "PORT": str(port)}
        schedule = settings.CELERY_BEAT_SCHEDULE_FILENAME
        Path(schedule).parent.mkdir(parents=True, exist_ok=True)
        for folder in getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).values():
            if isinstance(folder, str) and folder.startswith("/"):
                Path(folder).mkdir(parents=True, exist_ok=True)
        commands = {
            "web": [str(bin_dir / "gunicorn"), "-c", "deltaweb/gunicorn_conf.py", "deltaweb.wsgi"],
            # Two workers, so a long catalog listing never delays operation polls.
            "worker": self._worker(bin_dir, "operations", str(concurrency)),
            "sync-worker": self._worker(bin_dir, "sync", "1"),
            "beat": [str(bin_dir / "celery"), "-A", "deltaweb", "beat", "-l", "info", "-s", schedule],
        }
        children = {
            name: subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR, start_new_session=True)
            for name, cmd in commands.items()
        }
        self.stdout.write(f"deltaweb on http://{host}:{port}/api (Ctrl-C stops everything)")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        failed = None
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    failed, stopping = name, True
                    break
            time.sleep(0.5)
        for proc in children.values():
            if proc.poll() is None:
                proc.terminate()  # warm shutdown: the worker finishes or requeues its tasks
        deadline = time.monotonic() + 20
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if failed:
            self.stderr.write(f"{failed} exited; stopped the others")
            sys.exit(1)
