"""The periodic tasks without Celery beat or a broker: what `./bin/demo` runs beside its server.

It reads the same `CELERY_BEAT_SCHEDULE` as beat and runs each due task in this process
(`Task.apply`), so expiry, stale claims, breakers, sweeps and folds happen in the demo as they
would in production. One process only (like beat); every task is safe to run twice anyway.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from core.tasks import task_get

logger = logging.getLogger(__name__)


@dataclass
class Entry:
    name: str
    task: str
    every: float  # seconds
    due: float = 0.0  # on the scheduler's clock


def entries_from(schedule: dict) -> list[Entry]:
    """Beat's schedule as entries; every one is due at once (a demo starts with a sweep)."""
    entries = []
    for name, spec in schedule.items():
        every = spec["schedule"]
        seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
        entries.append(Entry(name=name, task=spec["task"], every=seconds))
    return entries


class Scheduler:
    """Runs entries when they are due. A run that overran its interval is not repeated to
    catch up (beat's `expires` drops such runs too)."""

    def __init__(self, entries: list[Entry], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.entries = entries
        self.clock = clock

    def run_due(self, run: Callable[[str], None]) -> list[str]:
        """Run every entry that is due now; the names run, in schedule order."""
        ran = []
        for entry in self.entries:
            now = self.clock()
            if entry.due > now:
                continue
            try:
                run(entry.task)
            except Exception:
                logger.exception("periodic task %s failed; it runs again in %.0f s", entry.task, entry.every)
            entry.due = self.clock() + entry.every
            ran.append(entry.task)
        return ran

    def seconds_to_next(self) -> float:
        return max(0.0, min(e.due for e in self.entries) - self.clock()) if self.entries else 60.0


def task_run(name: str) -> None:
    """Run task `name` here and now (not through a broker), raising what it raises."""
    task_get(name).apply(throw=True)
