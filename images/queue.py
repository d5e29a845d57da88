"""The one way services hand work to the worker.

Services name the task instead of importing ``images.tasks`` (which imports
them), so there is no import circle. Sending waits for the transaction to
commit, and a broker outage only delays work: operations and syncs are found
again through their rows (the reaper, beat's due-accounts tick). Which queue
a task goes to is the settings' ``CELERY_TASK_ROUTES``.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

# Long catalog listings must never sit in front of one-second create polls.
SYNC_QUEUE = "sync"
OPERATIONS_QUEUE = "operations"


def enqueue(task: str, *args: object, countdown: float = 0) -> None:
    """Send ``images.tasks.<task>(*args)`` once the current transaction commits."""
    registered = current_app.tasks[f"images.tasks.{task}"]

    def send() -> None:
        registered.apply_async(args, countdown=countdown)

    transaction.on_commit(send, robust=True)
