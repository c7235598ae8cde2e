"""Enqueue Celery work by task name, after the current transaction commits.

Services never import a tasks module (tasks import services): they name the task. Without
`REDIS_URL` the project runs tasks eagerly in-process (`CELERY_TASK_ALWAYS_EAGER`), and so
does this helper, because it looks the task up in the app's registry and calls its
`apply_async` (Celery's `send_task` would skip the eager setting).
"""

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import Task, current_app
from celery.exceptions import NotRegistered
from django.db import transaction

logger = logging.getLogger(__name__)
_IMPORT_LOCK = threading.Lock()


def task_get(name: str) -> Task:
    """The registered task `name`. A web process has not imported the tasks modules (Celery's
    autodiscovery runs when a worker starts), so the first look-up imports them."""
    try:
        return current_app.tasks[name]
    except NotRegistered:
        # One thread imports; the others wait for it (a web process's threads race here on
        # their first enqueue, and a half-filled registry would refuse a task that exists).
        with _IMPORT_LOCK:
            current_app.loader.import_default_modules()
        return current_app.tasks[name]


def task_send(name: str, *args: Any, **options: Any) -> None:
    """Send task `name` with positional `args` now; `options` go to `apply_async`."""
    task_get(name).apply_async(args=list(args), **options)


def enqueue_on_commit(name: str, *args: Any, robust: bool = False, **options: Any) -> None:
    """Send task `name` once the transaction commits (at once outside a transaction).

    `robust=True` logs a broker failure instead of raising it: for work that a periodic sweep
    redoes from the database, so a web request is never failed by an unreachable broker.
    """
    send: Callable[[], None] = partial(task_send, name, *args, **options)
    if robust:
        send = partial(_send_logged, send, name)
    transaction.on_commit(send)


def _send_logged(send: Callable[[], None], name: str) -> None:
    try:
        send()
    except Exception:
        logger.exception("could not enqueue %s; a periodic sweep takes it up", name)
