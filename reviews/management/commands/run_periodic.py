"""Run the periodic tasks (CELERY_BEAT_SCHEDULE) in this process, without beat or a broker."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from reviews.demo.periodic import Scheduler, entries_from, task_run


class Command(BaseCommand):
    help = "Run the periodic tasks in-process (the demo's beat). --once runs each once and exits."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run every task once, then exit")

    def handle(self, *args, once: bool, **options) -> None:
        scheduler = Scheduler(entries_from(settings.CELERY_BEAT_SCHEDULE))
        while True:
            for name in scheduler.run_due(task_run):
                self.stdout.write(f"ran {name}")
            self.stdout.flush()
            if once:
                return
            time.sleep(min(5.0, scheduler.seconds_to_next()) or 0.5)
