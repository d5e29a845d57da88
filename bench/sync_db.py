"""Catalog sync with the provider taken out: the database side alone.

A driver that generates its listing in memory, lazily, page by page (so the
process's memory stays flat whatever the catalog size), is synced through
the real ``images.sync.catalog_sync``. Each case runs in its own process,
which first times the generation alone (a full pass over the listing) and
then the sync; the report subtracts the first from the second. Cases, in
order, on one account: first sync, unchanged re-sync, N changed, N vanished.

``python -m bench sync --db-only [--images 100000] [--changes 1000]``
(``python -m bench.sync_db case <account>`` is the per-case child process.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.process import run_child
from providers.base import Driver, ImageState, ProviderImage, RootType
from providers.params import param

ROOT = Path(__file__).resolve().parent.parent
DRIVER_NAME = "bench-generated"
ARCHES = ("x86_64", "x86_64", "x86_64", "arm64", "i386")
PROFILES = {
    "x86_64": ("t2.micro", "m1.large", "m1.xlarge", "c5.large", "m5.large"),
    "arm64": ("t4g.micro", "m6g.large", "c6g.large"),
    "i386": ("t1.micro", "m1.small", "c1.medium"),
}


@dataclass(frozen=True, slots=True)
class GeneratedParams:
    count: int = param("Images in the catalog.", default=100_000, minimum=0)
    page_size: int = param("Images per page.", default=1000, minimum=1)
    changed: int = param("The first N images carry `revision` in their description.", default=0, minimum=0)
    revision: int = param("Revision of the changed images.", default=0, minimum=0)
    vanished: int = param("The last N images are not listed.", default=0, minimum=0)


class GeneratedDriver(Driver):
    """A catalog made up on the fly: EC2-like rows, nothing kept in memory."""

    name = DRIVER_NAME
    label = "Generated (benchmark)"
    Params = GeneratedParams

    def identity(self) -> str:
        return "123456789012"

    def _image(self, i: int) -> ProviderImage:
        p = self.params
        arch = ARCHES[i % len(ARCHES)]
        root = RootType.PERSISTENT if i % 4 else RootType.TRANSIENT
        description = f"Generated benchmark image {i}"
        if i < p.changed and p.revision:
            description += f" (revision {p.revision})"
        return ProviderImage(
            id=f"ami-{i:017x}",
            name=f"bench-{arch}-{i:06d}",
            state=ImageState.AVAILABLE,
            raw_state="available",
            description=description,
            owner_id=("137112412989", "099720109477", "801119661308", "123456789012")[i % 4],
            architecture=arch,
            root_type=root,
            creation_time="2024-05-01T12:00:00.000Z",
            hardware_profiles=PROFILES[arch],
            extra={
                "platform": "Linux/UNIX",
                "virtualization_type": "hvm",
                "image_location": f"bench/image-{i}",
                "image_type": "machine",
                "public": True,
            },
        )

    def iter_image_pages(self) -> Iterator[Sequence[ProviderImage]]:
        listed = self.params.count - self.params.vanished
        size = self.params.page_size
        for start in range(0, listed, size):
            yield [self._image(i) for i in range(start, min(start + size, listed))]


# -- the per-case child process --------------------------------------------------------


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend on this machine (None when not readable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _case(account_name: str) -> None:
    import django

    django.setup()
    from providers import registry

    registry.DRIVERS[DRIVER_NAME] = f"{__name__}.GeneratedDriver"
    from django.db import connection

    from images import services, sync
    from images.models import ProviderAccount

    account = ProviderAccount.objects.get(name=account_name)
    driver = services.build_driver(account=account)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()" if connection.vendor == "postgresql" else "SELECT 0")
        backend = cursor.fetchone()[0]
    wall, cpu = time.monotonic(), time.process_time()
    listed = sum(len(page) for page in driver.iter_image_pages())
    generation, generation_cpu = time.monotonic() - wall, time.process_time() - cpu
    db_cpu = _backend_cpu(backend) if backend else None
    wall, cpu = time.monotonic(), time.process_time()
    result = sync.catalog_sync(account=account, full=True)
    elapsed, sync_cpu = time.monotonic() - wall, time.process_time() - cpu
    if db_cpu is not None:
        db_cpu = _backend_cpu(backend) - db_cpu
    images = result.images
    print(
        json.dumps(
            {
                "listed": listed,
                "generation": generation,
                "sync": elapsed,
                "generation_cpu": generation_cpu,
                "sync_cpu": sync_cpu,
                "db_cpu": db_cpu,
                "created": images.created,
                "updated": images.updated,
                "missing": images.missing,
                "version": account.catalog_version,
            }
        )
    )


def _run_case(env: dict[str, str], account: str) -> dict:
    """One case in a fresh process: its result and its peak RSS in MiB."""
    _, status, rss, output = run_child([sys.executable, "-m", "bench.sync_db", "case", account], env)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if status != 0 or not lines:
        raise RuntimeError(f"sync case failed:\n{output}")
    return {**json.loads(lines[-1]), "rss": rss}


def _set_params(env: dict[str, str], account: str, params: dict) -> None:
    script = (
        "import django, json, sys; django.setup()\n"
        "from images.models import ProviderAccount\n"
        "name, params = sys.argv[1], json.loads(sys.argv[2])\n"
        "ProviderAccount.objects.update_or_create(name=name, defaults={'driver': "
        f"{DRIVER_NAME!r}, 'provider': name, 'params': params}})\n"
    )
    subprocess.run([sys.executable, "-c", script, account, json.dumps(params)], cwd=ROOT, env=env, check=True)


def run(env: dict[str, str], images: int, changes: int) -> list[str]:
    """The report lines of the database-side cases."""
    account = "generated"
    base = {"count": images}
    cases = [
        ("first sync", base),
        ("unchanged re-sync", base),
        (f"{changes:,} changed", {**base, "changed": changes, "revision": 1}),
        (f"{changes:,} vanished", {**base, "changed": changes, "revision": 1, "vanished": changes}),
        ("unchanged again", {**base, "changed": changes, "revision": 1, "vanished": changes}),
    ]
    _set_params(env, "generated-empty", {"count": 0})
    empty = _run_case(env, "generated-empty")
    rows = [
        f"generated in-memory listing of {images:,} images (1000 per page), each case in its own process;",
        "sync = (generation + sync) - generation; "
        "CPU = this process's (likewise net) + the database backend's",
        f"  {'case':<20} {'sync':>8} {'generation':>11} {'CPU (py + db)':>20} "
        f"{'rows (new/changed/missing)':>28} {'peak RSS':>9}",
    ]
    for label, params in [*cases, ("empty catalog", None)]:
        if params is None:
            r = empty
        else:
            _set_params(env, account, params)
            r = _run_case(env, account)
        py_cpu = r["sync_cpu"] - r["generation_cpu"]
        cpu = f"{py_cpu:.2f}" + (f" + {r['db_cpu']:.2f}" if r["db_cpu"] is not None else "")
        counts = f"{r['created']}/{r['updated']}/{r['missing']}"
        rows.append(
            f"  {label:<20} {r['sync'] - r['generation']:7.2f}s {r['generation']:10.2f}s {cpu:>19}s "
            f"{counts:>28} {r['rss']:>5} MiB"
        )
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] != ["case"] or len(sys.argv) != 3:
        sys.exit("usage: python -m bench.sync_db case <account>")
    _case(sys.argv[2])
