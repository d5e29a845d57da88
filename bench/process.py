"""One sync in its own process, timed: shared by the EC2 and OpenStack sync benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.reads import ROOT


def timed_sync(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB, command output) of one sync in its own process;
    ``args`` are sync_catalog's (options, then the account)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "sync_catalog", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    if status != 0:
        raise RuntimeError(output)
    return elapsed, usage.ru_maxrss // 1024, output.strip().splitlines()[-1]
