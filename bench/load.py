"""Load generation: wrk when installed (Debian's `wrk`), else a thread pool of keep-alive clients."""

from __future__ import annotations

import base64
import http.client
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass


@dataclass
class Result:
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    tool: str


def run(url: str, headers: dict[str, str], seconds: float, connections: int = 32) -> Result:
    if shutil.which("wrk"):
        return _wrk(url, headers, seconds, connections)
    return _threads(url, headers, seconds, connections)


def _wrk(url, headers, seconds, connections) -> Result:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} failed responses")

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return None
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    return Result(rps, pct(50), pct(99), "wrk")


def _threads(url, headers, seconds, workers) -> Result:
    match = re.match(r"http://([^/:]+):(\d+)(/.*)", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection(host, port)
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status >= 400 or (response.status >= 300 and response.status != 304):
                with lock:
                    errors.append(f"{url}: HTTP {response.status}")
                return
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(workers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    if errors:
        raise RuntimeError(errors[0])
    latencies.sort()
    p = lambda q: latencies[int(q * (len(latencies) - 1))] * 1000 if latencies else None  # noqa: E731
    return Result(len(latencies) / elapsed, p(0.5), p(0.99), "python")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
