"""The Celery application. Workers: `celery -A config.celery_app worker -l info`."""

import functools
import os

from celery import Celery
from celery.signals import setup_logging
from django_structlog.celery.steps import DjangoStructLogInitStep
from kombu import Connection


def _forget_channels_on_collect(collect):
    """Patch around an upstream bug (kombu 5.7.0 with celery 5.7.0's worker; no release fixes it
    yet, and no earlier celery has the 5.7 reconnect fixes we rely on, so we patch rather than pin).

    When the worker loses Redis, `Consumer.on_connection_error_after_connected` calls
    `connection.collect()` and then `connection.close()`. `Connection.collect()` detaches the
    transport (`transport.client = None`) but keeps `_default_channel`, the task consumer's
    channel. If that channel's first close was cut short (Redis went away while the event loop
    had a BRPOP outstanding, so `_brpop_read()` raised before the channel was marked closed),
    the second close, from `close()`, restores the unacknowledged messages of the tasks in
    flight (acks_late: under load there are some), builds a Redis client from the detached
    transport's `client`, and raises `AttributeError: 'NoneType' object has no attribute
    'hostname'` (kombu/transport/redis.py `Channel._connparams`). That is not a connection
    error, so nothing catches it: "Unrecoverable error", and the worker stops (or hangs without
    its pool). Same family as celery/kombu#582 (a channel closed after its transport was detached).

    After a collect, every channel of the old transport is unusable: forget the default one, so
    the close that follows has nothing left to close. The unacknowledged messages are not lost
    by this: they are still in Redis's `unacked` hash (if Redis kept them), and the next
    connection restores them after the visibility timeout, as it would after a crash.
    tests/test_celery_broker.py reproduces the bug against a private Redis.
    """
    if getattr(collect, "trustladder_patched", False):
        return collect

    @functools.wraps(collect)
    def patched(self: Connection, *args, **kwargs):
        try:
            return collect(self, *args, **kwargs)
        finally:
            self._default_channel = None

    patched.trustladder_patched = True
    return patched


Connection.collect = _forget_channels_on_collect(Connection.collect)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("trustladder")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Packages whose tasks live below an app: reviews/shadow/tasks.py.
app.autodiscover_tasks(["reviews.shadow"])


@setup_logging.connect
def _use_django_logging(**kwargs) -> None:
    """Workers log exactly like the web processes (structured, with the request id)."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


app.steps["worker"].add(DjangoStructLogInitStep)
