"""Fill a benchmark database: a user and accounts holding N generated images."""

import sys

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.utils import timezone  # noqa: E402

from images import search  # noqa: E402
from images.models import Image, ProviderAccount  # noqa: E402


def main(sizes: list[int]) -> None:
    user, _ = get_user_model().objects.get_or_create(username="bench")
    user.set_password("bench-password")
    user.save()
    now = timezone.now()
    for size in sizes:
        account, _ = ProviderAccount.objects.get_or_create(
            name=f"bench-{size}", defaults={"driver": "mock", "provider": f"p{size}"}
        )
        account.credentials = {"username": "mockuser", "password": "mockpassword"}
        account.last_sync_succeeded_at = now
        account.owner_identity = "mockuser"
        account.save()
        account.users.add(user)
        Image.objects.filter(account=account).delete()
        for start in range(0, size, 10_000):  # in slices: bulk_create materializes its input
            Image.objects.bulk_create(
                (
                    Image(
                        account=account,
                        external_id=f"gen-{i:06d}",
                        name=f"image {i}",
                        description=f"Generated image number {i}",
                        owner_id="mockuser" if i % 3 else "other",
                        architecture="x86_64" if i % 2 else "i386",
                        state="AVAILABLE",
                        status="AVAILABLE",
                        creation_time="Thu Oct 25 14:27:53 CEST 2012",
                        hardware_profiles=["m1-small", "m1-large", "m1-xlarge", "opaque"],
                        first_seen=now,
                        last_seen=now,
                    )
                    for i in range(start, min(size, start + 10_000))
                ),
                batch_size=1000,
            )
        search.catch_up(account.pk)  # as the worker does after a sync
        print(f"{size}={account.pk}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]])
