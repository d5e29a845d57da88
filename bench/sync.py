"""EC2 catalog sync at scale, against moto's server on 127.0.0.1.

For moto's default public catalog (~1,300 AMIs) and a generated one
(100,000 AMIs by default, through MOTO_AMIS_PATH) it reports:
* the sync time (first sync, then an unchanged re-sync),
* the sync process's peak RSS, next to the same process syncing an empty
  catalog: memory must not grow with the catalog beyond one page,
* list latency from the cache (HTTP, cold render and warm) next to the time
  of listing the provider directly (all DescribeImages pages).

It first prints the database side alone (``bench/sync_db.py``: a generated
in-memory listing, no provider); ``--db-only`` stops there.

``python -m bench sync [--amis 100000] [--page-size 1000] [--db-only] [--images 100000]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import sync_db
from bench.load import basic
from bench.process import timed_sync
from bench.reads import ROOT, bench_env, free_port, wait_up

BIN = Path(sys.executable).parent
ARCHES = ("x86_64", "x86_64", "x86_64", "arm64", "i386")


def generate_catalog(path: Path, count: int) -> None:
    rng = random.Random(42)
    owners = ["137112412989", "099720109477", "801119661308", "123456789012", "679593333241"]
    with open(path, "w") as out:
        out.write("[")
        for i in range(count):
            arch = ARCHES[i % len(ARCHES)]
            ami = {
                "ami_id": f"ami-{rng.getrandbits(68):017x}",
                "state": "available",
                "public": True,
                "owner_id": owners[i % len(owners)],
                "image_location": f"bench/image-{i}",
                "sriov": "simple",
                "root_device_type": "ebs" if i % 4 else "instance-store",
                "root_device_name": "/dev/xvda",
                "description": f"Generated benchmark image {i}",
                "image_type": "machine",
                "architecture": arch,
                "name": f"bench-{arch}-{i:06d}",
                "virtualization_type": "hvm",
                "hypervisor": "xen",
                "creation_date": "2024-05-01T12:00:00.000Z",
            }
            out.write(("," if i else "") + json.dumps(ami))
        out.write("]")


def start_moto(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.moto_ec2", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    if "listening" not in line:
        raise RuntimeError("moto did not start")
    url = f"http://127.0.0.1:{port}"
    return proc, url


def setup_accounts(env: dict[str, str], url: str, page_size: int) -> None:
    script = f"""
import django; django.setup()
from django.contrib.auth import get_user_model
from images.models import ProviderAccount
user, _ = get_user_model().objects.get_or_create(username="bench")
user.set_password("bench-password"); user.save()
creds = {{"access_key_id": "testing", "secret_access_key": "testing"}}
ProviderAccount.objects.filter(name="catalog").delete()  # each scenario starts empty
for name, owners, region in (("catalog", [], "us-east-1"), ("empty", ["self"], "us-west-2")):
    account, _ = ProviderAccount.objects.update_or_create(
        name=name, defaults={{"driver": "ec2", "provider": region,
            "params": {{"endpoint_url": "{url}", "owners": owners, "page_size": {page_size}}}}})
    account.credentials = creds; account.save(); account.users.add(user)
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)


def provider_listing_seconds(url: str, page_size: int) -> tuple[float, int]:
    from providers import registry

    driver = registry.create(
        "ec2",
        provider="us-east-1",
        params={"endpoint_url": url, "owners": [], "page_size": page_size, "read_timeout": 600},
        credentials={"access_key_id": "testing", "secret_access_key": "testing"},
    )
    started = time.monotonic()
    count = sum(len(page) for page in driver.iter_image_pages())
    return time.monotonic() - started, count


def http_get(url: str, headers: dict[str, str]) -> tuple[float, bytes]:
    """(milliseconds, body) of one GET."""
    request = urllib.request.Request(url, headers=headers)
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=600) as response:
        body = response.read()
    return (time.monotonic() - started) * 1000, body


def scenario(label: str, moto_env: dict[str, str], base_env: dict[str, str], page_size: int) -> list[str]:
    moto, url = start_moto(moto_env)
    web = None
    try:
        setup_accounts(base_env, url, page_size)
        direct, listed = provider_listing_seconds(url, page_size)
        empty_time, empty_rss, _ = timed_sync(base_env, "empty")
        first_time, first_rss, first_out = timed_sync(base_env, "catalog")
        again_time, again_rss, again_out = timed_sync(base_env, "catalog")
        port = free_port()
        web = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-c",
                "deltaweb/gunicorn_conf.py",
                "--access-logfile",
                "/dev/null",
                "-b",
                f"127.0.0.1:{port}",
                "--timeout",
                "600",
                "deltaweb.wsgi",
            ],
            cwd=ROOT,
            env=base_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_up(port)
        headers = {
            "Authorization": basic("bench", "bench-password"),
            "X-Deltacloud-Provider": "us-east-1",
            "Accept": "application/json",
        }
        api = f"http://127.0.0.1:{port}/api/images"
        rows = [f"{label}: {listed} AMIs listed by the provider in {direct:.2f}s ({page_size} per page)"]
        rows.append(f"  first sync      {first_time:7.2f}s  peak RSS {first_rss:4d} MiB   [{first_out}]")
        rows.append(f"  unchanged sync  {again_time:7.2f}s  peak RSS {again_rss:4d} MiB   [{again_out}]")
        rows.append(
            f"  empty catalog   {empty_time:7.2f}s  peak RSS {empty_rss:4d} MiB   (same process, 0 AMIs)"
        )
        first_id = None
        for what, query in (
            ("full list", ""),
            ("filtered list", "?architecture=arm64"),
            ("single image", None),
        ):
            target = f"{api}/{first_id}" if query is None else api + query
            cold, body = http_get(target, headers)
            if first_id is None:
                first_id = json.loads(body)["images"][0]["id"]
            warm = min(http_get(target, headers)[0] for _ in range(5))
            rows.append(
                f"  {what:<14} cold {cold:9.1f} ms, warm {warm:8.1f} ms  ({len(body) / 1e6:.2f} MB JSON; "
                f"provider listing {direct * 1000:.0f} ms)"
            )
        return rows
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=30)
        moto.terminate()
        moto.wait(timeout=30)


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench sync")
    parser.add_argument("--amis", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--db-only", action="store_true", help="only the generated in-memory listing")
    parser.add_argument("--images", type=int, default=100_000, help="size of the generated listing")
    parser.add_argument("--changes", type=int, default=1000, help="images changed, then vanished")
    parser.add_argument(
        "--os-images", default="1000,100000", help="OpenStack catalog sizes (bench/sync_openstack.py)"
    )
    opts = parser.parse_args(args)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env, db = bench_env(
            tmp,
            WEB_CONCURRENCY="1",
            DELTAWEB_RENDER_CACHE_MAX_ITEM=str(512 * 1024 * 1024),
            DELTAWEB_RENDER_CACHE_BYTES=str(1024 * 1024 * 1024),
        )
        engine = "PostgreSQL" if db.startswith("postgres") else "SQLite"
        print(f"\nCatalog sync, the database side alone, {engine}\n")
        print("\n".join(sync_db.run(env, opts.images, opts.changes)), flush=True)
        if opts.db_only:
            return
        report = scenario(
            "moto's default public catalog",
            {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "true"},
            env,
            opts.page_size,
        )
        catalog = tmp / "amis.json"
        generate_catalog(catalog, opts.amis)
        report += scenario(
            "generated catalog", {**os.environ, "MOTO_AMIS_PATH": str(catalog)}, env, opts.page_size
        )
        from bench import sync_openstack

        openstack = sync_openstack.report(env, sync_openstack.sizes(opts.os_images), opts.page_size)
    print(f"\nEC2 sync through moto's server, {engine}\n")
    print("\n".join(report))
    print(f"\nOpenStack sync through the fake cloud (tests/fakes/openstack), {engine}\n")
    print("\n".join(openstack))
