"""Shadow-mode worker tasks. Thin: take ids, call a service. All safe to repeat.

Registered by `app.autodiscover_tasks(["reviews.shadow"])` in config/celery_app.py; routed
to the default queue (CELERY_TASK_ROUTES), which every worker consumes.
"""

from celery import shared_task

from deployments.policy import Route
from reviews.models import ProposedAction
from reviews.shadow import services


@shared_task(name="reviews.shadow_compare_actions", acks_late=True)
def shadow_compare_actions_task(action_ids: list[int]) -> dict[str, int]:
    """Compare these shadow actions with their outcomes (one set-based transaction)."""
    return services.shadow_compare_actions(action_ids=[int(pk) for pk in action_ids])


@shared_task(name="reviews.shadow_compare_sweep", acks_late=True)
def shadow_compare_sweep_task(deployment_id: int | None = None) -> int:
    """Catch up on pairs whose compare task was lost (one deployment, or every deployment
    with logged shadow actions). Periodic, from beat."""
    if deployment_id is not None:
        return services.shadow_compare_sweep(deployment_id=deployment_id)
    ids = (
        ProposedAction.objects.filter(route=Route.SHADOW, status=ProposedAction.Status.LOGGED)
        .values_list("deployment_id", flat=True)
        .distinct()
    )
    return sum(services.shadow_compare_sweep(deployment_id=pk) for pk in sorted(set(ids)))


@shared_task(name="reviews.shadow_recompute", acks_late=True)
def shadow_recompute_task(recompute_id: int) -> None:
    """Run a recompute to the end, batch by batch; each batch commits its progress."""
    try:
        while services.shadow_recompute_step(recompute_id=recompute_id):
            pass
    except Exception as exc:
        services.shadow_recompute_fail(recompute_id=recompute_id, error=f"{type(exc).__name__}: {exc}")
        raise
