"""Celery configuration: every task has a route and a time limit below the broker's visibility
timeout (config/settings/base.py, WORKER_TASKS), and every periodic task exists."""

import pytest
from celery import current_app
from django.conf import settings


@pytest.fixture(scope="module")
def tasks() -> dict:
    current_app.loader.import_default_modules()
    ours = {name: task for name, task in current_app.tasks.items() if not name.startswith("celery.")}
    assert len(ours) >= 13  # the import found the tasks modules (deployments, reviews, shadow, deliveries)
    return ours


def test_every_registered_task_has_one_row_in_the_tasks_table_and_nothing_else_does(tasks):
    assert set(tasks) == set(settings.WORKER_TASKS)
    assert set(settings.CELERY_TASK_ROUTES) == set(settings.WORKER_TASKS)  # by exact name, no patterns


def test_every_task_is_routed_to_a_queue_the_workers_consume(tasks):
    consumed = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    router = current_app.amqp.router
    for name, task in tasks.items():
        queue = router.route({}, name, task_type=task)["queue"].name
        assert queue == settings.WORKER_TASKS[name][0] and queue in consumed, name


def test_every_task_has_time_limits_below_the_visibility_timeout(tasks):
    visibility = current_app.conf.broker_transport_options["visibility_timeout"]
    assert visibility == settings.BROKER_VISIBILITY_TIMEOUT == 3600
    for name, task in tasks.items():
        # What the worker applies: the task's own limits, else the app's defaults (unset here).
        hard = task.time_limit or current_app.conf.task_time_limit
        soft = task.soft_time_limit or current_app.conf.task_soft_time_limit
        assert hard and soft, f"{name} has no time limit"
        assert 0 < soft < hard < visibility, name


def test_a_webhook_attempt_cannot_outlive_its_task_limit():
    # The receiver's timeout bounds each attempt; the task limit is only a backstop above it.
    hard = current_app.tasks["deliveries.deliver"].time_limit
    assert hard > settings.WEBHOOK_TIMEOUT_SECONDS


def test_every_periodic_task_is_registered(tasks):
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in tasks, entry
