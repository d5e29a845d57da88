"""Sync accounts' catalogs now, in this process."""

from django.core.management.base import BaseCommand, CommandError

from images import sync
from images.models import ProviderAccount
from providers.exceptions import ProviderError


class Command(BaseCommand):
    help = "Sync the catalog of the named accounts (all enabled accounts by default)."

    def add_arguments(self, parser):
        parser.add_argument("accounts", nargs="*", help="account names")
        parser.add_argument(
            "--full", action="store_true", help="a full listing even where the driver can list changes only"
        )

    def handle(self, *args, **options):
        accounts = ProviderAccount.objects.filter(enabled=True)
        if options["accounts"]:
            accounts = accounts.filter(name__in=options["accounts"])
            missing = set(options["accounts"]) - set(accounts.values_list("name", flat=True))
            if missing:
                raise CommandError(f"Unknown or disabled accounts: {', '.join(sorted(missing))}")
        failed = False
        for account in accounts:
            try:
                result = sync.catalog_sync(account=account, full=options["full"])
            except (sync.SyncInProgress, ProviderError) as exc:
                failed = True
                self.stderr.write(f"{account.name}: {type(exc).__name__}: {exc}")
                continue
            images = result.images
            kind = "changes" if result.incremental else "images"
            self.stdout.write(
                f"{account.name}: {images.staged} {kind} ({images.created} new, "
                f"{images.updated} changed, {images.missing} missing) in {result.duration:.2f}s"
            )
        if failed:
            raise CommandError("some syncs failed")
