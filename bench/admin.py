"""The operators' console at scale: every changelist and change page, timed in-process.

Production settings (static files collected with the manifest storage, as
deployed) on a database of its own. Each page is timed at 1,000 images, the
baseline, then again once the catalog has grown to ``--images`` (100,000 by
default): the request's time and its SQL time, and the SQL ratio, since the
SQL is what could grow with the catalog (the rest renders a fixed page of rows).
Run with DATABASE_URL=postgres://... for the PostgreSQL numbers (the README's).

``python -m bench admin [--images 100000] [--rounds 9]``
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_IMAGES = 1000
ACCOUNTS = 20
PAGES = (
    ("fleet overview (admin index)", "/admin/"),
    ("accounts", "/admin/images/provideraccount/"),
    ("account page (biggest account)", "/admin/images/provideraccount/{big}/change/"),
    ("account delete confirmation", "/admin/images/provideraccount/{big}/delete/"),
    ("images", "/admin/images/image/"),
    (
        "images of the biggest account",
        "/admin/images/image/?account__id__exact={big}&missing_since__isempty=1",
    ),
    ("images, status filter", "/admin/images/image/?status__exact=AVAILABLE"),
    ("images, search", "/admin/images/image/?q=image+4242"),
    ("image page", "/admin/images/image/{image}/change/"),
    ("instances", "/admin/images/instance/"),
    ("instance page", "/admin/images/instance/{instance}/change/"),
    ("operations", "/admin/images/operation/"),
    ("operation page", "/admin/images/operation/{operation}/change/"),
    ("sync runs", "/admin/images/syncrun/"),
    ("sync run page", "/admin/images/syncrun/{run}/change/"),
)


def database(tmp: Path) -> str:
    """A database of the benchmark's own, next to the configured one."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        print("DATABASE_URL is not PostgreSQL: measuring SQLite (the README's numbers are PostgreSQL's)")
        return f"sqlite:///{tmp / 'bench-admin.sqlite3'}"
    base, _, name = url.rpartition("/")
    bench = f"{name.split('?')[0]}_bench_admin"
    for sql in (f"DROP DATABASE IF EXISTS {bench}", f"CREATE DATABASE {bench}"):
        subprocess.run(["psql", f"{base}/postgres", "-qc", sql], check=True, capture_output=True)
    return f"{base}/{bench}"


def configure(tmp: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "deltaweb.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "DATABASE_URL": database(tmp),
            "DELTAWEB_DATA_DIR": str(tmp),
            "STATIC_ROOT": str(tmp / "static"),
            "ALLOWED_HOSTS": "testserver",
            "SESSION_COOKIE_SECURE": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def seed(ids: dict[str, int]) -> None:
    """Accounts with history, operations and instances; the images come from ``grow``."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from images.models import Instance, Operation, ProviderAccount, SyncRun

    now = timezone.now()
    operator = get_user_model().objects.create_superuser("operator", password="operator-pw")
    for n in range(ACCOUNTS):
        account = ProviderAccount.objects.create(
            name=f"account-{n:02d}",
            driver="mock",
            provider=f"p{n}",
            last_sync_succeeded_at=now,
            last_sync_duration=12.5,
            last_sync_error="" if n % 5 else "Unavailable: the provider timed out",
        )
        account.users.add(operator)
        SyncRun.objects.bulk_create(
            SyncRun(
                account=account,
                started_at=now - timedelta(minutes=5 * i),
                finished_at=now - timedelta(minutes=5 * i - 1),
                duration=10 + i % 7,
                pages=50,
                images_listed=5000 + i,
                outcome=SyncRun.Outcome.FAILED if i % 9 == 0 else SyncRun.Outcome.SUCCEEDED,
            )
            for i in range(200)
        )
        Instance.objects.bulk_create(
            Instance(account=account, external_id=f"i-{n}-{i}", image_id=f"gen-{i:06d}", state="RUNNING")
            for i in range(100)
        )
        Operation.objects.bulk_create(
            Operation(
                account=account,
                kind=Operation.Kind.DELETE_IMAGE,
                status=(Operation.Status.SUCCEEDED, Operation.Status.FAILED, Operation.Status.POLLING)[i % 3],
                requested_by=operator,
                external_id=f"gen-{i:06d}",
                deadline=now,
                finished_at=now - timedelta(hours=i % 300),
            )
            for i in range(500)
        )
        if n == 0:
            ids["big"] = account.pk
    ids["instance"] = Instance.objects.filter(account_id=ids["big"]).values_list("pk", flat=True).first()
    ids["operation"] = Operation.objects.filter(account_id=ids["big"]).values_list("pk", flat=True).first()
    ids["run"] = SyncRun.objects.filter(account_id=ids["big"]).values_list("pk", flat=True).first()


def grow(ids: dict[str, int], total: int) -> None:
    """Images up to ``total``: four in five in the biggest account, the rest spread out."""
    from django.db import connection
    from django.db.models import F
    from django.utils import timezone

    from images import search
    from images.models import Image, Operation, ProviderAccount

    now = timezone.now()
    # New rows carry their account's next catalog version, as every writer's do.
    ProviderAccount.objects.update(catalog_version=F("catalog_version") + 1)
    versions = dict(ProviderAccount.objects.values_list("pk", "catalog_version"))
    accounts = sorted(versions)
    start = Image.objects.count()
    batch = []
    for i in range(start, total):
        account = accounts[0] if i % 5 else accounts[1 + i % (len(accounts) - 1)]
        batch.append(
            Image(
                account_id=account,
                external_id=f"gen-{i:06d}",
                name=f"image {i}",
                description=f"Generated image {i}",
                owner_id="mockuser",
                architecture=("x86_64", "arm64", "i386")[i % 3],
                state="available",
                status="AVAILABLE" if i % 50 else "FAILED",
                first_seen=now - timedelta(hours=i % 5000),
                last_seen=now,
                changed_version=versions[account],
            )
        )
        if len(batch) == 5000:
            Image.objects.bulk_create(batch)
            batch = []
    Image.objects.bulk_create(batch)
    if "image" not in ids:
        ids["image"] = Image.objects.filter(account_id=ids["big"]).values_list("pk", flat=True).first()
        big_images = Image.objects.filter(account_id=ids["big"]).order_by("pk").values_list("pk", flat=True)
        for op_id, image_id in zip(
            Operation.objects.filter(account_id=ids["big"]).values_list("pk", flat=True),
            big_images,
            strict=False,
        ):
            Operation.objects.filter(pk=op_id).update(image_id=image_id)
    search.catch_up_lagging()  # what the worker does after a sync
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # what autovacuum keeps up to date in production


def measure(client, ids: dict[str, int], rounds: int) -> dict[str, tuple[float, float]]:
    """Per page: the request's wall time and its SQL time, each the best of ``rounds``.

    The SQL time is what grows with the catalog if anything does; the rest is
    rendering a fixed page of rows.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = {}
    for label, path in PAGES:
        url = path.format(**ids)
        assert client.get(url).status_code == 200, url  # warm: connection, templates, caches
        walls, sqls = [], []
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                response = client.get(url)
                walls.append(time.perf_counter() - started)
            assert response.status_code == 200, url
            sqls.append(sum(float(q["time"]) for q in ctx.captured_queries))
        # Best of N, as timeit does: on a shared machine the slower rounds measure the neighbours.
        times[label] = (min(walls) * 1000, min(sqls) * 1000)
    return times


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench admin")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    options = parser.parse_args(args)
    with tempfile.TemporaryDirectory() as tmp_name:
        configure(Path(tmp_name))
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        ids: dict[str, int] = {}
        seed(ids)
        grow(ids, BASELINE_IMAGES)
        client = Client()
        client.force_login(get_user_model().objects.get(username="operator"))
        small = measure(client, ids, options.rounds)
        started = time.monotonic()
        grow(ids, options.images)
        print(f"seeded {options.images:,} images in {time.monotonic() - started:.0f} s ({connection.vendor})")
        large = measure(client, ids, options.rounds)
        print(
            f"\n| console page ({connection.vendor}, best of {options.rounds}) | "
            f"{BASELINE_IMAGES:,} images: request / SQL | {options.images:,} images: request / SQL | "
            "SQL ratio |"
        )
        print("|---|---:|---:|---:|")
        for label, _ in PAGES:
            (wall_s, sql_s), (wall_l, sql_l) = small[label], large[label]
            ratio = sql_l / sql_s if sql_s else float("nan")
            print(
                f"| {label} | {wall_s:.0f} / {sql_s:.0f} ms | {wall_l:.0f} / {sql_l:.0f} ms | {ratio:.1f} |"
            )
        slowest = max(large, key=lambda label: large[label][0])
        print(f"\nslowest at {options.images:,} images: {slowest}, {large[slowest][0]:.0f} ms")
        connection.close()
