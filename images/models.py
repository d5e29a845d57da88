"""The catalog cache: provider accounts and what their clouds last told us."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from images import crypto
from providers import registry
from providers.base import ImageState
from providers.exceptions import DriverUnavailable, InvalidParameter


def _driver_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in registry.driver_names()]


class ProviderAccount(models.Model):
    """One account on one cloud (one EC2 account in one region, one mock cloud...).

    ``params`` holds what is safe to show (endpoint, owners to cache, mock
    profile); ``credentials`` are encrypted at rest and never displayed.
    """

    name = models.CharField(max_length=100, unique=True)
    driver = models.CharField(max_length=32, choices=_driver_choices)
    # The X-Deltacloud-Provider value that selects this account: an EC2
    # region, an OpenStack region, an FGCP region...
    provider = models.CharField(max_length=255, blank=True)
    params = models.JSONField(default=dict, blank=True)
    credentials_encrypted = models.TextField(blank=True, editable=False)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="provider_accounts",
        help_text="API users who may use this account (superusers may use every account).",
    )
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="provider_accounts",
        help_text="Every member of these groups may use this account.",
    )
    is_default = models.BooleanField(
        default=False, help_text="Used when a request names no driver or provider."
    )
    enabled = models.BooleanField(default=True)
    sync_interval = models.PositiveIntegerField(
        default=300, help_text="Seconds between scheduled catalog syncs."
    )
    full_sync_interval = models.PositiveIntegerField(
        default=3600,
        help_text="Seconds between full listings where the driver can list changes only; "
        "a full listing is what notices vanished images.",
    )
    create_timeout = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1)],
        help_text="Seconds a create may take before it is failed (default: the deployment's).",
    )

    # Bumped whenever the cached catalog changes; rendered documents are keyed
    # by it, and each changed image row records it (``Image.changed_version``).
    catalog_version = models.PositiveBigIntegerField(default=0, editable=False)
    # Changes before this version are no longer all known (rows were purged).
    feed_floor = models.PositiveBigIntegerField(default=0, editable=False)
    # Provider time the last listing reached, for incremental listings.
    sync_cursor = models.CharField(max_length=64, blank=True, editable=False)
    last_full_sync_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What owner_id=self means on this account (EC2: the AWS account id).
    owner_identity = models.CharField(max_length=255, blank=True, editable=False)

    last_sync_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_succeeded_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_failed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_error = models.TextField(blank=True, editable=False)
    last_sync_duration = models.FloatField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    needs_attention = models.BooleanField(
        default=False,
        editable=False,
        help_text="Set after repeated sync failures or rejected credentials.",
    )
    attention_reason = models.TextField(blank=True, editable=False)
    next_sync_at = models.DateTimeField(null=True, blank=True, editable=False)
    # After a create or delete the account is polled faster until then.
    fast_sync_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The sync lease: held by one sync at a time, renewed while it runs, and
    # taken over once it expires (its owner is gone). See images.sync.
    sync_lock_until = models.DateTimeField(null=True, blank=True, editable=False)
    sync_lock_token = models.CharField(max_length=64, blank=True, editable=False)
    sync_lock_owner = models.CharField(
        max_length=255,
        blank=True,
        editable=False,
        help_text="host:pid of the process holding the sync lease.",
    )
    sync_requested_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.driver}{'/' + self.provider if self.provider else ''})"

    def clean(self) -> None:
        if self.driver not in registry.DRIVERS:
            raise ValidationError({"driver": f"Unknown driver '{self.driver}'"})
        self.provider = self.provider.strip().lower()
        try:
            registry.parse_params(self.driver, self.params)
        except DriverUnavailable as exc:
            raise ValidationError({"driver": str(exc)}) from exc
        except InvalidParameter as exc:
            raise ValidationError({"params": str(exc)}) from exc

    @property
    def credentials(self) -> dict[str, str]:
        return crypto.decrypt_json(self.credentials_encrypted) if self.credentials_encrypted else {}

    @credentials.setter
    def credentials(self, value: dict[str, str]) -> None:
        self.credentials_encrypted = crypto.encrypt_json(value) if value else ""


class Image(models.Model):
    """One cached catalog row: an image as its provider last described it."""

    Status = models.TextChoices("Status", [(s.value, s.value) for s in ImageState])

    # Sync inserts up to a whole catalog at once (images.merge), always for the
    # account whose row it holds locked. A database foreign key would check
    # every row (as much work again as the insert) and an index of its own
    # would duplicate the (account, external_id) constraint's, so neither
    # exists; Django cascades an account's deletion itself.
    account = models.ForeignKey(
        ProviderAccount,
        on_delete=models.CASCADE,
        related_name="images",
        db_index=False,
        db_constraint=False,
    )
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(null=True, blank=True)
    owner_id = models.CharField(max_length=255, blank=True)
    architecture = models.CharField(max_length=64, blank=True)
    # The provider's own word (EC2 `available`, Nova `SAVING`); shown in the API.
    state = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=ImageState.UNKNOWN)
    root_type = models.CharField(max_length=16, default="transient")
    # Free-form, passed through from the provider as Deltacloud did.
    creation_time = models.CharField(max_length=64, null=True, blank=True)
    hardware_profiles = models.JSONField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    extra = models.JSONField(default=dict, blank=True)
    # The account's catalog_version when this row last changed (the delta feed).
    changed_version = models.PositiveBigIntegerField(default=0)
    # Hash of the content sync last wrote (images.merge); cleared by a
    # PostgreSQL trigger when anything else changes the content.
    content_hash = models.BigIntegerField(null=True, blank=True, editable=False)

    first_seen = models.DateTimeField(default=timezone.now)
    # Updated when the row changes or disappears; a present row was seen by
    # the account's last successful sync (see ``seen_at``).
    last_seen = models.DateTimeField(default=timezone.now)
    missing_since = models.DateTimeField(null=True, blank=True)
    # Tombstone: deleted through the API, gone from lists at once, removed
    # for good when the provider confirms.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "external_id"], name="image_account_external_id")
        ]
        indexes = [
            # The delta feed's order (images.feed): the change sequence is (changed_version, id).
            models.Index(fields=["account", "changed_version", "id"], name="image_account_change_seq"),
            # Sync's purge of long-vanished rows; only those rows are in it.
            models.Index(
                fields=["account", "missing_since"],
                name="image_account_missing",
                condition=models.Q(missing_since__isnull=False),
            ),
            # The console's date hierarchy (first/last dates without a scan).
            models.Index(fields=["first_seen"], name="image_first_seen"),
            # The console's architecture filter reads its values from this index.
            models.Index(fields=["architecture"], name="image_architecture"),
            # The API's owner_id filter, and the console's count of each account's
            # visible images, read from this index alone (one index for both: each
            # costs a first sync of 100,000 images about 0.1 s).
            models.Index(
                fields=["account", "owner_id"],
                condition=models.Q(missing_since__isnull=True, deleted_at__isnull=True),
                name="image_visible_owner",
            ),
            # Keyset pages of the visible catalog (?sort=name|creation_time|state, ties by id).
            models.Index(
                fields=["account", "name", "external_id"],
                condition=models.Q(missing_since__isnull=True, deleted_at__isnull=True),
                name="image_visible_name",
            ),
            models.Index(
                fields=["account", "creation_time", "external_id"],
                condition=models.Q(missing_since__isnull=True, deleted_at__isnull=True),
                name="image_visible_created",
            ),
            models.Index(
                fields=["account", "state", "external_id"],
                condition=models.Q(missing_since__isnull=True, deleted_at__isnull=True),
                name="image_visible_state",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.name})"

    @property
    def seen_at(self):
        """When the provider last listed it (present rows: the account's last successful sync)."""
        if self.missing_since is None and self.account.last_sync_succeeded_at:
            return max(self.last_seen, self.account.last_sync_succeeded_at)
        return self.last_seen


class Instance(models.Model):
    """One cached instance: enough to list it and to decide whether it can be imaged."""

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="instances")
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=32, blank=True)
    owner_id = models.CharField(max_length=255, blank=True)
    image_id = models.CharField(max_length=255, blank=True)
    realm_id = models.CharField(max_length=255, blank=True)
    hardware_profile_id = models.CharField(max_length=255, blank=True)
    hardware_profile_overrides = models.JSONField(default=list, blank=True)
    actions = models.JSONField(default=list, blank=True)
    # Empty when the driver would image this instance, else the reason it would not.
    create_image_refusal = models.TextField(blank=True)
    root_type = models.CharField(max_length=16, default="transient")
    public_addresses = models.JSONField(default=list, blank=True)
    private_addresses = models.JSONField(default=list, blank=True)
    storage_volumes = models.JSONField(default=list, blank=True)
    keyname = models.CharField(max_length=255, null=True, blank=True)
    launch_time = models.CharField(max_length=64, null=True, blank=True)
    network_interfaces = models.JSONField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    # As Image.content_hash.
    content_hash = models.BigIntegerField(null=True, blank=True, editable=False)

    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    missing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "external_id"], name="instance_account_external_id")
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.name or '-'})"


class Operation(models.Model):
    """A create or delete the worker carries to a terminal state.

    The database, not the broker, is the source of truth: a lost task (worker
    killed, Redis flushed) is found again by the reaper through ``next_poll_at``.
    """

    class Kind(models.TextChoices):
        CREATE_IMAGE = "create_image"
        DELETE_IMAGE = "delete_image"

    class Status(models.TextChoices):
        QUEUED = "QUEUED"  # the provider has not been called yet
        CALLING = "CALLING"  # the provider call is (or was) in flight
        POLLING = "POLLING"  # waiting for the provider to finish
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"  # an operator stopped it; the worker leaves it alone

    ACTIVE = (Status.QUEUED, Status.CALLING, Status.POLLING)
    # What an operator may retry: a new operation repeats the request.
    RETRYABLE = (Status.FAILED, Status.CANCELLED)

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="operations")
    image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    instance_id = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(null=True, blank=True)
    # The provider's id once known; for drivers that return none, the id we
    # answered with until then (Deltacloud's FGCP convention PENDING-<name>).
    external_id = models.CharField(max_length=255, blank=True)
    provisional_id = models.CharField(max_length=255, blank=True)
    # Images with the create's name that existed before it: never adopted.
    preexisting_ids = models.JSONField(default=list, blank=True)
    # An operator's retry repeats a failed or cancelled operation as a new one.
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    attempts = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_poll_at"], name="operation_due"),
            models.Index(fields=["account", "provisional_id"], name="operation_provisional"),
            # The console's list, newest first, and its date hierarchy: history grows forever.
            models.Index(fields=["-created_at", "-id"], name="operation_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.external_id or self.provisional_id or self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE


class SyncRun(models.Model):
    """One sync of one account, kept as history for operators."""

    class Kind(models.TextChoices):
        FULL = "full"
        INCREMENTAL = "incremental"

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="sync_runs")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FULL)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    images_listed = models.PositiveIntegerField(default=0)
    images_added = models.PositiveIntegerField(default=0)
    images_changed = models.PositiveIntegerField(default=0)
    images_vanished = models.PositiveIntegerField(default=0)
    instances_listed = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["account", "-started_at"], name="syncrun_account_started"),
            models.Index(fields=["-started_at", "-id"], name="syncrun_started"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.kind} sync of {self.account_id} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"
        )


class ImageSearch(models.Model):
    """An image's searchable columns, copied beside the catalog (``images.search``).

    The console's trigram indexes live on this table, so a sync's writes to
    the catalog do not pay for them (they were a third of a first sync).
    """

    image = models.OneToOneField(
        Image, primary_key=True, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    account_id = models.BigIntegerField(db_index=True)
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"{self.external_id} ({self.name})"


class ImageSearchState(models.Model):
    """The catalog version an account's search entries are current for.

    Its own row, not a column of the account: the API's replays compare the
    account row's version, which this would otherwise change after every sync.
    """

    account = models.OneToOneField(
        ProviderAccount, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    version = models.BigIntegerField(default=-1)

    def __str__(self) -> str:
        return f"search of {self.account_id} at version {self.version}"
