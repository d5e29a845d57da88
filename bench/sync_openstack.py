"""OpenStack catalog sync at scale, against the fake cloud (tests/fakes/openstack)
in its own process on 127.0.0.1, printed after EC2's in the same shape by
``python -m bench sync``, or alone by ``python -m bench sync-openstack
[--os-images 1000,100000] [--page-size 1000]``.

For catalogs of 1,000 and 100,000 images (``--os-images``) it reports the
provider listing time through the driver, the first full sync, an unchanged
full re-sync, an incremental sync that finds one renamed image through
Glance's ``updated_at`` filter, and each sync process's peak RSS next to the
same process syncing an empty catalog.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.process import timed_sync
from bench.reads import ROOT, bench_env, free_port


def start_fake(images: int) -> tuple[subprocess.Popen, dict]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openstack", str(port), "--images", str(images)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if "listening" not in proc.stdout.readline():
        raise RuntimeError("the fake OpenStack did not start")
    return proc, json.loads(proc.stdout.readline())


def setup_accounts(env: dict[str, str], info: dict, page_size: int) -> None:
    """``os-catalog`` (RegionOne, the generated images) and ``os-empty`` (the
    project's private images in RegionTwo: none)."""
    script = f"""
import django; django.setup()
from django.contrib.auth import get_user_model
from images.models import ProviderAccount
user, _ = get_user_model().objects.get_or_create(username="bench")
ProviderAccount.objects.filter(name__in=["os-catalog", "os-empty"]).delete()
for name, region, visibility in (
    ("os-catalog", "RegionOne", "default"), ("os-empty", "RegionTwo", "private")
):
    account = ProviderAccount(name=name, driver="openstack", provider=region, params={{
        "auth_url": "{info["auth_url"]}", "project_name": "{info["project"]}",
        "page_size": {page_size}, "visibility": visibility}})
    account.credentials = {{"username": "{info["username"]}", "password": "{info["password"]}"}}
    account.full_clean(); account.save(); account.users.add(user)
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)


def provider_listing_seconds(info: dict, page_size: int) -> tuple[float, int]:
    from providers import registry

    driver = registry.create(
        "openstack",
        provider="RegionOne",
        params={"auth_url": info["auth_url"], "project_name": info["project"], "page_size": page_size},
        credentials={"username": info["username"], "password": info["password"]},
    )
    started = time.monotonic()
    count = sum(len(page) for page in driver.iter_image_pages())
    return time.monotonic() - started, count


def touch(base: str) -> None:
    request = urllib.request.Request(
        f"{base}/_fake/touch", data=b'{"count": 1}', headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=30).read()


def scenario(label: str, images: int, env: dict[str, str], page_size: int) -> list[str]:
    fake, info = start_fake(images)
    try:
        setup_accounts(env, info, page_size)
        direct, listed = provider_listing_seconds(info, page_size)
        empty_time, empty_rss, _ = timed_sync(env, "os-empty")
        first_time, first_rss, first_out = timed_sync(env, "os-catalog")
        again_time, again_rss, again_out = timed_sync(env, "--full", "os-catalog")
        touch(info["auth_url"].rsplit("/identity", 1)[0])
        delta_time, delta_rss, delta_out = timed_sync(env, "os-catalog")
    finally:
        fake.terminate()
        fake.wait(timeout=30)
    return [
        f"{label}: {listed} images listed by the provider in {direct:.2f}s ({page_size} per page)",
        f"  first sync      {first_time:7.2f}s  peak RSS {first_rss:4d} MiB   [{first_out}]",
        f"  unchanged sync  {again_time:7.2f}s  peak RSS {again_rss:4d} MiB   [{again_out}]",
        f"  one change      {delta_time:7.2f}s  peak RSS {delta_rss:4d} MiB   [{delta_out}] (incremental)",
        f"  empty catalog   {empty_time:7.2f}s  peak RSS {empty_rss:4d} MiB   (same process, 0 images)",
    ]


def report(env: dict[str, str], sizes: list[int], page_size: int) -> list[str]:
    rows: list[str] = []
    for size in sizes:
        rows += scenario(f"fake OpenStack, {size:,} generated images", size, env, page_size)
    return rows


def sizes(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench sync-openstack")
    parser.add_argument("--os-images", default="1000,100000", help="catalog sizes, comma-separated")
    parser.add_argument("--page-size", type=int, default=1000)
    opts = parser.parse_args(args)
    with tempfile.TemporaryDirectory() as tmp_name:
        env, db = bench_env(Path(tmp_name))
        rows = report(env, sizes(opts.os_images), opts.page_size)
    engine = "PostgreSQL" if db.startswith("postgres") else "SQLite"
    print(f"\nOpenStack sync through the fake cloud (tests/fakes/openstack), {engine}\n")
    print("\n".join(rows))
