"""Create the demo: Deltacloud's API user and a mock provider account."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from images import sync
from images.models import ProviderAccount
from providers.exceptions import ProviderError

DEMO_USER, DEMO_PASSWORD = "mockuser", "mockpassword"


class Command(BaseCommand):
    help = "Seed the mock demo (API user mockuser/mockpassword, a mock account). Never in production."

    def handle(self, *args, **options):
        if not settings.DELTAWEB_DEMO_SEED_ALLOWED:
            raise CommandError("Demo seeding is disabled by these settings (production?)")
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=DEMO_USER)
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save()
        account, _ = ProviderAccount.objects.get_or_create(
            name="mock", defaults={"driver": "mock", "is_default": True}
        )
        if not account.credentials_encrypted:
            account.credentials = {"username": DEMO_USER, "password": DEMO_PASSWORD}
            account.save()
        account.users.add(user)
        try:
            sync.catalog_sync(account=account)
        except (sync.SyncInProgress, ProviderError) as exc:
            self.stderr.write(f"initial sync skipped: {exc}")
        self.stdout.write(f"demo ready: API user {DEMO_USER}, account {account}")
