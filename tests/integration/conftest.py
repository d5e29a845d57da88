"""A real Celery worker (and beat) process on the configured broker.

The broker is whatever the suite runs with: Redis in CI (CELERY_BROKER_URL),
the filesystem broker of the embedded default otherwise. Tests here use
committed transactions so the worker process sees their rows.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from images.api.render_cache import render_cache

BIN = Path(sys.executable).parent
FAST = {
    "DELTAWEB_POLL_BASE_SECONDS": "0.5",
    "DELTAWEB_POLL_MAX_SECONDS": "1.5",
    "DELTAWEB_CLAIM_SECONDS": "3",
    "DELTAWEB_REAPER_GRACE_SECONDS": "2",
    "DELTAWEB_REAPER_TICK": "1",
    "DELTAWEB_SYNC_TICK": "3600",
    "DELTAWEB_SEARCH_TICK": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def broker_is_redis() -> bool:
    return settings.CELERY_BROKER_URL.startswith("redis")


def flush_broker() -> None:
    """Lose every queued message, as a Redis FLUSHDB (or a wiped spool) would.

    FLUSHDB, not FLUSHALL: other suites may share this Redis on other databases."""
    if broker_is_redis():
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    else:
        for key in ("data_folder_in", "control_folder"):
            folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key])
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)


class Process:
    """A child process in its own group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self.handle = open(log, "ab")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=settings.BASE_DIR,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{self.name} never printed {text!r}:\n{self.output()[-3000:]}")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.handle.close()


class Stack:
    """Starts and stops worker and beat processes for one test."""

    def __init__(self, tmp: Path, mock_storage: Path) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "deltaweb.settings.test",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "DELTAWEB_MOCK_STORAGE": str(mock_storage),
            **FAST,
        }
        self.processes: list[Process] = []
        self.workers = 0

    def worker(self, concurrency: int = 2, queues: str = "operations,sync") -> Process:
        self.workers += 1
        name = f"worker{self.workers}"
        proc = Process(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "deltaweb",
                "worker",
                "-l",
                "info",
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "-Q",
                queues,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            self.env,
            self.tmp / f"{name}.log",
        )
        self.processes.append(proc)
        proc.wait_for(" ready.")
        return proc

    def web(self, **env: str) -> str:
        """The API in gunicorn, as deployed; returns its base URL. ``env``
        adds to the processes' environment (another settings module...)."""
        port = free_port()
        proc = Process(
            "web",
            [
                str(BIN / "gunicorn"),
                "-c",
                "deltaweb/gunicorn_conf.py",
                "-b",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "deltaweb.wsgi",
            ],
            {**self.env, **env},
            self.tmp / "web.log",
        )
        self.processes.append(proc)
        proc.wait_for("Booting worker")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api", timeout=2)
                return base
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"web never answered:\n{proc.output()[-3000:]}")

    def manage(self, *args: str) -> str:
        """A management command, in its own process like an operator's."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=self.env,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def beat(self) -> Process:
        proc = Process(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "deltaweb",
                "beat",
                "-l",
                "info",
                "-s",
                str(self.tmp / "beat-schedule"),
            ],
            self.env,
            self.tmp / "beat.log",
        )
        self.processes.append(proc)
        proc.wait_for("beat: Starting")
        return proc

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


@pytest.fixture
def stack(tmp_path, settings, transactional_db):
    mock_storage = tmp_path / "mock"
    settings.DELTAWEB_MOCK_STORAGE = mock_storage
    render_cache.clear()
    flush_broker()
    running = Stack(tmp_path, mock_storage)
    yield running
    running.stop()
    flush_broker()
