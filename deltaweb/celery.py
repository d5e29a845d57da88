"""The Celery app; settings come from Django's under the CELERY_ namespace.

Also the two pieces that keep background work going through ``kill -9``
(settings ``CELERY_WORKER_POOL`` and ``CELERY_BEAT_SCHEDULER`` name them):

- ``KillSafeTaskPool``: on a transport without an event loop (the embedded
  filesystem broker) Celery's prefork pool shares one pipe among its children,
  and an idle child waits for work *holding* that pipe's read lock (a
  process-shared semaphore). After ``kill -9`` of that child the lock stays
  taken forever and every other child blocks on it: tasks are "received" and
  never run. Here the locks know their holder and are released when it is
  gone. (On Redis the pool has a pipe per child without locks.)
- ``ReapingScheduler``: beat runs the operations reaper in its own process, so
  the reaper never depends on the worker it is meant to rescue, and writes a
  heartbeat that ``manage.py worker_health --beat`` reads.
"""

from __future__ import annotations

import logging
import os
import time

from billiard.pool import Pool as BlockingPool
from billiard.queues import SimpleQueue
from celery import Celery, bootsteps
from celery.beat import PersistentScheduler
from celery.concurrency.prefork import TaskPool

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deltaweb.settings.local")

logger = logging.getLogger(__name__)

app = Celery("deltaweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie not yet reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


class OwnedLock:
    """A process-shared lock that remembers its holder's pid, and is handed
    over when the holder died holding it (the pool's children block in a read
    while holding their queue's read lock, so this is the common case)."""

    POLL_SECONDS = 0.5

    def __init__(self, ctx) -> None:
        self._lock = ctx.Lock()
        self._guard = ctx.Lock()  # held only for a few instructions, never across I/O
        self._owner = ctx.RawValue("i", 0)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self.POLL_SECONDS if block else 0
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            if self._lock.acquire(True, wait) if wait else self._lock.acquire(False):
                self._owner.value = os.getpid()
                return True
            self._take_over_from_the_dead()
            if not block or (deadline is not None and time.monotonic() >= deadline):
                return False

    def _take_over_from_the_dead(self) -> None:
        owner = self._owner.value
        if not owner or owner == os.getpid() or not _gone(owner):
            return
        with self._guard:
            if self._owner.value == owner:
                self._owner.value = 0
                self._lock.release()
                logger.warning("process %s died holding a pool lock; released it", owner)

    def release(self) -> None:
        self._owner.value = 0
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class OwnedSimpleQueue(SimpleQueue):
    def __init__(self, *, ctx) -> None:
        super().__init__(ctx=ctx)
        self._rlock = OwnedLock(ctx)
        self._wlock = OwnedLock(ctx)


class KillSafeBlockingPool(BlockingPool):
    """The prefork pool used when the transport has no event loop (the
    embedded filesystem broker): one pipe shared by all children, whose locks
    survive the death of the child holding them."""

    def _setup_queues(self) -> None:
        # billiard's own, with OwnedSimpleQueue for SimpleQueue
        ctx = self._ctx.get_context()
        self._inqueue = OwnedSimpleQueue(ctx=ctx)
        self._outqueue = OwnedSimpleQueue(ctx=ctx)
        self._quick_put = self._inqueue._writer.send
        self._quick_get = self._outqueue._reader.recv

        def _poll_result(timeout):
            if self._outqueue._reader.poll(timeout):
                return True, self._quick_get()
            return False, None

        self._poll_result = _poll_result


class KillSafeTaskPool(TaskPool):
    BlockingPool = KillSafeBlockingPool


class Heartbeat(bootsteps.StartStopStep):
    """The worker's consumer writes a heartbeat file every few seconds (from
    its event loop, so a hung loop stops it): pid, concurrency, and what the
    pool is running. ``worker_health`` reads it, then pings through the pool."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, c) -> None:
        from images import health

        def beat() -> None:
            try:
                health.write_worker_heartbeat(c)
            except Exception:  # a full disk must not kill the consumer
                logger.exception("could not write the worker heartbeat")

        beat()
        self.timer_ref = c.timer.call_repeatedly(health.HEARTBEAT_SECONDS, beat)

    def stop(self, c) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None


app.steps["consumer"].add(Heartbeat)


class ReapingScheduler(PersistentScheduler):
    """Celery beat's scheduler that also reaps overdue operations itself."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next_reap = 0.0

    def tick(self, *args, **kwargs) -> float:
        delay = super().tick(*args, **kwargs)
        from django.conf import settings

        from images import health

        interval = float(settings.DELTAWEB_REAPER_TICK)
        now = time.monotonic()
        if now >= self._next_reap:
            self._next_reap = now + interval
            health.reap_and_beat()
        return min(delay, max(0.1, self._next_reap - time.monotonic()))
