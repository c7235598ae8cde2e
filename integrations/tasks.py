"""Celery tasks of the integrations: Slack posts. Thin: take ids, call a service.

A Slack outage must not fail a decision: these run after commit, and a failed post is
retried a few times with backoff, then logged; the action itself is unaffected.
"""

from celery import shared_task
from slack_sdk.errors import SlackApiError

from integrations.slack.services import (
    slack_action_sync,
    slack_breaker_post,
    slack_interactions_purge,
    slack_sla_warnings,
)

RETRY = {
    "autoretry_for": (SlackApiError, OSError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
    "acks_late": True,
    "ignore_result": True,
}
# Queues and time limits: config.settings WORKER_TASKS.


@shared_task(name="integrations.slack_action_sync", **RETRY)
def slack_action_sync_task(action_id: int, notice: str = "") -> bool:
    """Post or update the Slack message of an action (it entered a queue, or was decided)."""
    return slack_action_sync(action_id=action_id, notice=notice) is not None


@shared_task(name="integrations.slack_breaker_tripped", **RETRY)
def slack_breaker_tripped(deployment_id: int, event_id: int) -> bool:
    return slack_breaker_post(deployment_id=deployment_id, event_id=event_id) is not None


@shared_task(name="integrations.slack_sla_warnings", ignore_result=True)
def slack_sla_warnings_task() -> int:
    """Periodic: post the pending items near their SLA deadline; forget old interactions."""
    slack_interactions_purge()
    return slack_sla_warnings()
