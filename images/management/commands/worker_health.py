"""Exit 0 if a Celery worker (or beat) on this host is doing its work, else 1.

Docker's healthcheck for the worker, worker-sync and beat services; runstack
runs the same checks in-process (images/health.py explains them).
"""

from __future__ import annotations

import socket
import sys

from django.core.management.base import BaseCommand, CommandError

from images import health


class Command(BaseCommand):
    help = "Check that a worker answers a ping through its pool (or that beat's reaper runs)."

    def add_arguments(self, parser):
        parser.add_argument("--queue", help="The worker's queue; its node name is <queue>@<this host>.")
        parser.add_argument("--node", help="The worker's node name, instead of --queue.")
        parser.add_argument("--beat", action="store_true", help="Check beat (its reaper) instead.")
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait for the ping.")

    def handle(self, *args, queue, node, beat, timeout, **options):
        if beat:
            result = health.check_beat()
        else:
            if not (node or queue):
                raise CommandError("Give --queue, --node or --beat")
            result = health.check_worker(node or f"{queue}@{socket.gethostname()}", timeout=timeout)
        (self.stdout if result.ok else self.stderr).write(result.reason)
        sys.exit(0 if result.ok else 1)
