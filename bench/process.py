"""One sync in its own process, timed: shared by the EC2 and OpenStack sync benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.reads import ROOT


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """(seconds, exit status, peak RSS in MiB, output) of one child process."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    return time.monotonic() - started, status, usage.ru_maxrss // 1024, output


def timed_sync(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB, command output) of one sync in its own process;
    ``args`` are sync_catalog's (options, then the account)."""
    elapsed, status, rss, output = run_child([sys.executable, "manage.py", "sync_catalog", *args], env)
    if status != 0:
        raise RuntimeError(output)
    return elapsed, rss, output.strip().splitlines()[-1]
