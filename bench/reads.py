"""Read throughput: deltaweb against framework-free baselines, same machine, same run.

Starts gunicorn servers (2 workers each, deltaweb/gunicorn_conf.py) on one PostgreSQL database:
the raw WSGI baseline (one query, orjson), a static-bytes app (deltaweb's
own bytes after the same kind of Basic-auth check), deltaweb, and deltaweb
with its render and replay caches off (so a page's keyset query runs every time). Then
one deltaweb worker alone streams the 100,000-image list while its peak RSS
is read. Rounds are interleaved and medians reported, since absolute numbers
move with machine load while the ratios hold.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.load import basic, run

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port, never one handed out before (servers bind them later);
    within BENCH_PORT_RANGE (e.g. ``18500-18599``) when set."""
    low, _, high = os.environ.get("BENCH_PORT_RANGE", "0-0").partition("-")
    for port in range(int(low), int(high) + 1):
        if port and port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port in BENCH_PORT_RANGE")


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


SIZES = ("3", "50", "1000", "10000", "100000")
AUTH = basic("bench", "bench-password")


def _fetch(port: int, path: str, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read(), dict(response.headers)


@contextmanager
def servers(
    env: dict[str, str], apps: dict[str, tuple[str, dict[str, str], int]]
) -> Iterator[dict[str, int]]:
    """name -> port, for (wsgi app, extra environment, workers) each."""
    procs, ports = [], {}
    for name, (app, extra, workers) in apps.items():
        port = free_port()
        argv = [str(BIN / "gunicorn"), "-c", "deltaweb/gunicorn_conf.py", "--access-logfile", "/dev/null"]
        argv += ["-b", f"127.0.0.1:{port}", "-w", str(workers), app]
        procs.append(
            subprocess.Popen(
                argv, env={**env, **extra}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        ports[name] = port
    try:
        for port in ports.values():
            wait_up(port)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def _workers(master: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            found.append(int(stat.parent.name))
    return found


def _kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def streamed_rss(env: dict[str, str], account_header: dict[str, str]) -> list[tuple[str, float, float, int]]:
    """(format, seconds, peak RSS growth in MiB, bytes) of the 100k list, one worker alone."""
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-c", "deltaweb/gunicorn_conf.py", "--access-logfile", "/dev/null"]
    argv += ["-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "600", "deltaweb.wsgi"]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        wait_up(port)
        headers = {"Authorization": AUTH, **account_header}
        for _ in range(3):  # warm: imports, templates, credentials, connection
            _fetch(port, "/api/images?limit=50&format=html", headers)
        (worker,) = _workers(proc.pid)
        before = _kib(worker, "VmRSS")
        for fmt in ("xml", "json", "html"):
            t0 = time.perf_counter()
            body, _ = _fetch(port, f"/api/images?format={fmt}", headers)
            elapsed = time.perf_counter() - t0
            results.append((fmt, elapsed, (_kib(worker, "VmHWM") - before) / 1024, len(body)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def _measure(targets: dict, seconds: float, rounds: int) -> dict[str, list]:
    samples: dict[str, list] = {name: [] for name in targets}
    for port, path, headers in targets.values():  # warm up: auth caches, render caches, connections
        run(f"http://127.0.0.1:{port}{path}", headers, 1)
    for _ in range(rounds):
        for name, (port, path, headers) in targets.items():
            samples[name].append(run(f"http://127.0.0.1:{port}{path}", headers, seconds))
    return samples


def _median(results, attr: str) -> float:
    values = [getattr(r, attr) for r in results if getattr(r, attr) is not None]
    return statistics.median(values) if values else float("nan")


def main(args: list[str]) -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "3"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env, db = bench_env(tmp, WEB_CONCURRENCY="2")
        env["BENCH_DATABASE"] = db
        t0 = time.perf_counter()
        seeded = subprocess.run(
            [sys.executable, "-m", "bench.seed", *SIZES],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        if db.startswith("postgres"):  # fresh statistics, as autovacuum would leave them
            subprocess.run(["psql", db, "-qc", "ANALYZE"], check=True, capture_output=True)
        print(f"seeded {', '.join(SIZES)} images in {time.perf_counter() - t0:.0f}s", flush=True)
        accounts = dict(line.split("=") for line in seeded.split())
        static_dir = tmp / "static"
        static_dir.mkdir()
        (static_dir / "authorization").write_text(AUTH)
        rows, pages, statics = [], [], []
        apps = {
            "baseline": ("bench.baseline:application", {}, 2),
            "static": ("bench.baseline:static_application", {"BENCH_STATIC_DIR": str(static_dir)}, 2),
            "deltaweb": ("deltaweb.wsgi", {}, 2),
            "cache off": (
                "deltaweb.wsgi",
                {"DELTAWEB_RENDER_CACHE_MAX_ITEM": "0", "DELTAWEB_REPLAY_MAX_ITEM": "0"},
                2,
            ),
        }
        with servers(env, apps) as ports:

            def dw(size: str, **extra: str) -> dict[str, str]:
                return {"Authorization": AUTH, "X-Deltacloud-Provider": f"p{size}", **extra}

            # the static app serves deltaweb's own bytes for the mock-sized list, one image and /api
            static_paths = {"mock list": "/api/images", "one image": "/api/images/gen-000001", "/api": "/api"}
            for path in static_paths.values():
                body, _ = _fetch(ports["deltaweb"], path + "?format=xml", dw("3"))
                (static_dir / (path.replace("/", "_") + ".xml")).write_bytes(body)
            _, single_headers = _fetch(ports["deltaweb"], "/api/images/gen-000010?format=xml", dw("1000"))
            cases = []
            for label, path, size in (
                ("list 50", "/api/images", "50"),
                ("list 1,000", "/api/images", "1000"),
                ("single", "/api/images/gen-000010", "1000"),
            ):
                cases.append(
                    (
                        label,
                        {
                            "baseline (json)": (ports["baseline"], path, {"X-Bench-Account": accounts[size]}),
                            "deltaweb json": (ports["deltaweb"], path + "?format=json", dw(size)),
                            "deltaweb xml": (ports["deltaweb"], path + "?format=xml", dw(size)),
                        },
                    )
                )
            # the 304 revalidation is measured with the single image, against its baseline
            revalidate = dw("1000", **{"If-None-Match": single_headers["ETag"]})
            cases[-1][1]["deltaweb xml 304"] = (
                ports["deltaweb"],
                "/api/images/gen-000010?format=xml",
                revalidate,
            )
            for label, targets in cases:
                samples = _measure(targets, seconds, rounds)
                base = _median(samples["baseline (json)"], "rps")
                for name, results in samples.items():
                    rows.append((label, name, _median(results, "rps"), base, _median(results, "p99_ms")))

            page_targets = {
                size: (
                    ports["cache off"],
                    f"/api/images?limit=50&marker=gen-{int(size) // 2:06d}&format=xml",
                    dw(size),
                )
                for size in ("1000", "10000", "100000")
            }
            for size, results in _measure(page_targets, seconds, rounds).items():
                pages.append(
                    (size, _median(results, "rps"), _median(results, "p50_ms"), _median(results, "p99_ms"))
                )

            static_targets = {}
            for label, path in static_paths.items():
                static_targets[(label, "static")] = (ports["static"], path, {"Authorization": AUTH})
                static_targets[(label, "deltaweb")] = (ports["deltaweb"], path + "?format=xml", dw("3"))
            static_samples = _measure(static_targets, seconds, rounds)
            for label in static_paths:
                s_rps = _median(static_samples[(label, "static")], "rps")
                d = static_samples[(label, "deltaweb")]
                statics.append((label, s_rps, _median(d, "rps"), _median(d, "p99_ms")))
            tool = static_samples[(label, "deltaweb")][0].tool

        rss = streamed_rss(env, {"X-Deltacloud-Provider": "p100000"})
        engine = "PostgreSQL" if db.startswith("postgres") else "SQLite"
        print(
            f"\nReads on {engine}, gunicorn_conf.py's workers (2 per server), {rounds} interleaved rounds "
            f"of {seconds:.0f}s, medians ({tool} load, 32 connections)\n"
        )
        print(f"{'case':<11} {'server':<18} {'req/s':>8} {'x baseline':>11} {'p99 ms':>8}")
        for label, name, rps, base, p99 in rows:
            ratio = "" if name.startswith("baseline") else f"{rps / base:.2f}x"
            print(f"{label:<11} {name:<18} {rps:>8.0f} {ratio:>11} {p99:>8.1f}")
        print("\n50-item pages, render and replay caches off (the keyset query runs every time)")
        print(f"{'catalog':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for size, rps, p50, p99 in pages:
            print(f"{int(size):>10,} imgs {rps:>8.0f} {p50:>8.1f} {p99:>8.1f}")
        print(f"page p50 at 100,000 / at 1,000: {pages[2][2] / pages[0][2]:.2f}")
        print(
            f"\n{'static bytes':<12} {'static req/s':>13} {'deltaweb':>9} {'x static':>9} {'dw p99 ms':>10}"
        )
        for label, s_rps, d_rps, p99 in statics:
            print(f"{label:<12} {s_rps:>13.0f} {d_rps:>9.0f} {d_rps / s_rps:>8.2f}x {p99:>10.1f}")
        print(f"\n{'100k list, streamed':<20} {'seconds':>8} {'peak RSS growth MiB':>20} {'MB sent':>8}")
        for fmt, elapsed, growth, size in rss:
            print(f"{fmt:<20} {elapsed:>8.1f} {growth:>20.1f} {size / 1e6:>8.0f}")
