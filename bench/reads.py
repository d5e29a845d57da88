"""Read throughput: deltaweb against a framework-free baseline, same machine, same run.

Starts three gunicorn servers (2 sync workers each) on one database:
the raw WSGI baseline, deltaweb, and deltaweb with its render cache off.
Rounds are interleaved and medians reported, since absolute numbers move
with machine load while the ratios hold.
"""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.load import basic, run

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(tmp: Path) -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        # Named after the configured database, so benchmarks run beside each other never share one.
        base, _, name = url.partition("?")[0].rpartition("/")
        bench = f"{name or 'deltaweb'}_bench"
        for statement in (f"DROP DATABASE IF EXISTS {bench}", f"CREATE DATABASE {bench}"):
            subprocess.run(["psql", f"{base}/postgres", "-qc", statement], check=True, capture_output=True)
        return f"{base}/{bench}"
    return f"sqlite:///{tmp / 'bench.sqlite3'}"


def wait_up(port: int, path: str = "/") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None):
                return  # an HTTP error is an answer
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


def bench_env(tmp: Path, **extra: str) -> tuple[dict[str, str], str]:
    """Production settings on a fresh database; returns (environment, database URL)."""
    db = database_url(tmp)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deltaweb.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "DATABASE_URL": db,
        "DELTAWEB_DATA_DIR": str(tmp),
        **extra,
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    return env, db


def main(args: list[str]) -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env, db = bench_env(tmp, WEB_CONCURRENCY="2")
        env["BENCH_DATABASE"] = db
        seeded = subprocess.run(
            [sys.executable, "-m", "bench.seed", "50", "1000"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        accounts = dict(line.split("=") for line in seeded.split())
        servers = {}
        procs = []
        for name, extra, app in [
            ("baseline", {}, "bench.baseline:application"),
            ("deltaweb", {}, "deltaweb.wsgi"),
            ("deltaweb, render cache off", {"DELTAWEB_RENDER_CACHE_MAX_ITEM": "0"}, "deltaweb.wsgi"),
        ]:
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "gunicorn"),
                        "-c",
                        "deltaweb/gunicorn_conf.py",
                        "--access-logfile",
                        "/dev/null",
                        "-b",
                        f"127.0.0.1:{port}",
                        app,
                    ],
                    env={**env, **extra},
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            servers[name] = port
        try:
            for port in servers.values():
                wait_up(port)
            auth = basic("bench", "bench-password")
            cases = []
            for size in ("50", "1000"):
                cases.append((f"list {size}", "/api/images", size))
            cases.append(("single", "/api/images/gen-000010", "1000"))
            rows = []
            for label, path, size in cases:
                targets = {
                    "baseline (json)": (servers["baseline"], path, {"X-Bench-Account": accounts[size]}),
                    "deltaweb json": (
                        servers["deltaweb"],
                        path + "?format=json",
                        {"Authorization": auth, "X-Deltacloud-Provider": f"p{size}"},
                    ),
                    "deltaweb xml": (
                        servers["deltaweb"],
                        path + "?format=xml",
                        {"Authorization": auth, "X-Deltacloud-Provider": f"p{size}"},
                    ),
                    "deltaweb xml, cache off": (
                        servers["deltaweb, render cache off"],
                        path + "?format=xml",
                        {"Authorization": auth, "X-Deltacloud-Provider": f"p{size}"},
                    ),
                }
                samples: dict[str, list] = {name: [] for name in targets}
                for port, p, headers in targets.values():  # warm up: auth caches, connections
                    run(f"http://127.0.0.1:{port}{p}", headers, 1)
                for _ in range(rounds):
                    for name, (port, p, headers) in targets.items():
                        samples[name].append(run(f"http://127.0.0.1:{port}{p}", headers, seconds))
                base = statistics.median(r.rps for r in samples["baseline (json)"])
                for name, results in samples.items():
                    rps = statistics.median(r.rps for r in results)
                    p99 = statistics.median(r.p99_ms for r in results if r.p99_ms is not None)
                    rows.append((label, name, rps, rps / base, p99, results[0].tool))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
        engine = "PostgreSQL" if db.startswith("postgres") else "SQLite"
        print(
            f"\nReads on {engine}, gunicorn 2 sync workers per server, {rounds} interleaved rounds "
            f"of {seconds:.0f}s, medians ({rows[0][5]}, 32 connections)\n"
        )
        print(f"{'case':<10} {'server':<26} {'req/s':>9} {'x baseline':>11} {'p99 ms':>8}")
        for label, name, rps, ratio, p99, _tool in rows:
            print(f"{label:<10} {name:<26} {rps:>9.0f} {ratio:>10.2f}x {p99:>8.1f}")
