"""``python -m bench attack``: can a few hostile clients lock normal clients out?

Starts deltaweb under gunicorn with ``deltaweb/gunicorn_conf.py`` and the production
settings (real password hashing) on 127.0.0.1 only, then, for a bounded time:

* holds ``--half-open`` connections (50) that send part of their request headers and
  then trickle a byte every few seconds, never finishing (reconnecting when dropped);
* runs ``--guessers`` clients (16) sending Basic credentials with fresh wrong
  passwords as fast as they are answered;
* measures one normal client (keep-alive, a verified cached credential, the JSON
  list of 50 images): p50, p99, max, and requests that failed or timed out.

A quiet phase (no attackers) is measured first for reference. ``--worker-class``
runs the same attack against another gunicorn worker class (``sync``, ``gthread``)
to compare with the configured one. Nothing is sent anywhere but the server it started.

    python -m bench attack [--seconds 20] [--half-open 50] [--guessers 16] [--worker-class sync]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.reads import BIN, ROOT, bench_env, free_port, wait_up

HOST = "127.0.0.1"  # never anything else: this script attacks the server it starts
MAX_SECONDS = 120
MAX_CONNECTIONS = 200


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Measure:
    latencies: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, float | int | str]:
        lat = sorted(self.latencies)
        if not lat:
            return {"requests": 0, "failures": dict(self.failures)}
        return {
            "requests": len(lat),
            "p50_ms": round(statistics.median(lat), 1),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
            "max_ms": round(lat[-1], 1),
            "failures": dict(self.failures),
        }


def normal_client(port: int, stop: float, headers: dict[str, str], measure: Measure) -> None:
    conn = None
    while time.monotonic() < stop:
        if conn is None:
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/api/images?format=json", headers=headers)
            response = conn.getresponse()
            response.read()
        except OSError as exc:
            measure.failures[type(exc).__name__] += 1
            conn.close()
            conn = None
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status != 200:
            measure.failures[str(response.status)] += 1
        else:
            measure.latencies.append(elapsed)
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None


def half_open(port: int, stop: float, held: list[int], index: int) -> None:
    """Sends the start of a request, then a header byte now and then, never the end."""
    sock = None
    while time.monotonic() < stop:
        try:
            if sock is None:
                sock = socket.create_connection((HOST, port), timeout=5)
                sock.sendall(b"GET /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                held[index] = 1
            time.sleep(3)
            sock.sendall(b"a")
        except OSError:
            held[index] = 0
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.2)
    if sock is not None:
        sock.close()


def guesser(port: int, stop: float, statuses: Counter, lock: threading.Lock) -> None:
    conn = None
    while time.monotonic() < stop:
        if conn is None:
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
        header = basic(secrets.choice(["bench", "admin", "root"]), secrets.token_urlsafe(8))
        try:
            conn.request("GET", "/api/images", headers={"Authorization": header})
            response = conn.getresponse()
            response.read()
            status = str(response.status)
        except OSError as exc:
            status = type(exc).__name__
            conn.close()
            conn = None
        with lock:
            statuses[status] += 1
        if status == "429":
            time.sleep(0.05)  # a real attacker would not wait longer


def phase(port: int, seconds: float, half: int, guessers: int, auth: dict[str, str]) -> dict:
    stop = time.monotonic() + seconds
    held = [0] * half
    statuses: Counter = Counter()
    lock = threading.Lock()
    threads = [
        threading.Thread(target=half_open, args=(port, stop, held, i), daemon=True) for i in range(half)
    ]
    threads += [
        threading.Thread(target=guesser, args=(port, stop, statuses, lock), daemon=True)
        for _ in range(guessers)
    ]
    for thread in threads:
        thread.start()
    if half:
        time.sleep(1.0)  # let the half-open connections take their places first
    measure = Measure()
    normal_client(port, stop, auth, measure)
    held_at_end = sum(held)
    for thread in threads:
        thread.join(timeout=15)
    return {"normal": measure.summary(), "half_open_held": held_at_end, "guesses": dict(statuses)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench attack")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--half-open", type=int, default=50)
    parser.add_argument("--guessers", type=int, default=16)
    parser.add_argument("--worker-class", default=None, help="compare with another gunicorn worker class")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker for gthread")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, MAX_SECONDS)
    if args.half_open + args.guessers > MAX_CONNECTIONS:
        sys.exit(f"at most {MAX_CONNECTIONS} attacking connections")
    port = int(os.environ.get("BENCH_PORT") or free_port())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env, _db = bench_env(tmp, WEB_CONCURRENCY="2")
        subprocess.run(
            [sys.executable, "-m", "bench.seed", "50"], env=env, cwd=ROOT, check=True, capture_output=True
        )
        command = [str(BIN / "gunicorn"), "-c", "deltaweb/gunicorn_conf.py", "--access-logfile", "/dev/null"]
        command += ["-b", f"{HOST}:{port}"]
        if args.worker_class:
            command += ["-k", args.worker_class]
            if args.worker_class == "gthread":
                command += ["--threads", str(args.threads)]
        server = subprocess.Popen(
            [*command, "deltaweb.wsgi"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_up(port, "/api")
            auth = {"Authorization": basic("bench", "bench-password"), "X-Deltacloud-Provider": "p50"}
            # Each worker verifies the credential once; later requests use the remembered result.
            for _ in range(8):
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                conn.request("GET", "/api/images?format=json", headers={**auth, "Connection": "close"})
                conn.getresponse().read()
                conn.close()
            label = args.worker_class or "configured (deltaweb/gunicorn_conf.py)"
            print(f"worker class: {label}; {seconds:.0f} s per phase on {HOST}:{port}")
            quiet = phase(port, min(seconds, 10), 0, 0, auth)
            print(f"quiet:  {quiet['normal']}")
            attacked = phase(port, seconds, args.half_open, args.guessers, auth)
            print(
                f"attack: {attacked['normal']}\n"
                f"        half-open held at the end: {attacked['half_open_held']}/{args.half_open}; "
                f"guesses answered: {attacked['guesses']}"
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
