"""The periodic tasks, each called twice to prove it is safe to repeat, and the beat schedule."""

from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from deliveries.models import Delivery
from deliveries.services import deliveries_take_for_sweep
from deliveries.tasks import deliver, purge, sweep
from deployments.models import AuditEvent
from reviews.models import IdempotencyRecord, ProposedAction
from reviews.tasks import expire_overdue_actions, purge_idempotency_keys, release_stale_claims
from tests.deliveries.factories import DeliveryFactory
from tests.deliveries.support import eager_celery, http_receiver  # noqa: F401 -- a fixture
from tests.factories import ProposedActionFactory, UserFactory

pytestmark = pytest.mark.django_db
S = ProposedAction.Status


def test_expire_overdue_actions_expires_only_overdue_ones_once(deployment):
    past = timezone.now() - timedelta(minutes=1)
    overdue = ProposedActionFactory.create_batch(3, deployment=deployment, expires_at=past)
    senior_overdue = ProposedActionFactory(deployment=deployment, status=S.PENDING_SENIOR, expires_at=past)
    with_hook = ProposedActionFactory(deployment=deployment, expires_at=past, callback_url="https://a.example/h")
    fresh = ProposedActionFactory(deployment=deployment)
    decided = ProposedActionFactory(deployment=deployment, status=S.APPROVED, expires_at=past)

    assert expire_overdue_actions() == 5
    assert expire_overdue_actions() == 0
    for action in [*overdue, senior_overdue, with_hook]:
        action.refresh_from_db()
        assert action.status == S.EXPIRED and action.decision == "expired"
    assert ProposedAction.objects.get(pk=fresh.pk).status == S.PENDING_REVIEW
    assert ProposedAction.objects.get(pk=decided.pk).status == S.APPROVED
    assert AuditEvent.objects.filter(verb="reviews.action.expired").count() == 5
    assert Delivery.objects.filter(object_id=str(with_hook.pk), event_type="action.expired").count() == 1


def test_expire_works_through_more_than_one_batch(deployment, monkeypatch):
    monkeypatch.setattr("reviews.tasks.EXPIRE_BATCH", 2)
    ProposedActionFactory.create_batch(5, deployment=deployment, expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_overdue_actions() == 5
    assert not ProposedAction.objects.overdue().exists()


def test_release_stale_claims_clears_only_expired_claims(deployment, settings):
    settings.REVIEW_CLAIM_TIMEOUT = timedelta(minutes=10)
    user = UserFactory()
    now = timezone.now()
    stale = ProposedActionFactory(deployment=deployment, claimed_by=user, claimed_at=now - timedelta(minutes=11))
    live = ProposedActionFactory(deployment=deployment, claimed_by=user, claimed_at=now - timedelta(minutes=2))
    assert release_stale_claims() == 1
    assert release_stale_claims() == 0
    stale.refresh_from_db()
    live.refresh_from_db()
    assert (stale.claimed_by, stale.claimed_at) == (None, None)
    assert live.claimed_by == user


def test_purge_idempotency_keys_deletes_only_expired_ones(deployment, settings):
    old = IdempotencyRecord.objects.create(deployment=deployment, key="old", request_sha256="x", in_flight=False)
    IdempotencyRecord.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - settings.IDEMPOTENCY_KEY_TTL - timedelta(minutes=1)
    )
    IdempotencyRecord.objects.create(deployment=deployment, key="new", request_sha256="x", in_flight=False)
    assert purge_idempotency_keys() == 1
    assert purge_idempotency_keys() == 0
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_deliver_twice_sends_once(deployment):
    with http_receiver() as receiver:
        delivery = DeliveryFactory(deployment=deployment, url=receiver.url)
        assert deliver(delivery.pk) == "delivered"
        assert deliver(delivery.pk) == "skipped"
        assert deliver(10**9) == "skipped"
        assert len(receiver.all()) == 1


@pytest.mark.usefixtures("eager_celery")
def test_sweep_twice_sends_each_due_delivery_once(deployment):
    with http_receiver() as receiver:
        # Due for longer than the sweep's grace: their messages were lost.
        long_ago = timezone.now() - timedelta(minutes=5)
        due = DeliveryFactory.create_batch(2, deployment=deployment, url=receiver.url, next_attempt_at=long_ago)
        DeliveryFactory(deployment=deployment, url=receiver.url, next_attempt_at=timezone.now() + timedelta(hours=1))
        DeliveryFactory(deployment=deployment, url=receiver.url, status=Delivery.Status.DELIVERED)
        assert sweep() == 2
        assert sweep() == 0
        assert sorted(r.headers["webhook-id"] for r in receiver.all()) == sorted(d.webhook_id for d in due)


def test_the_sweep_hands_on_a_delivery_once_per_grace_period_while_nobody_claims_it(deployment, settings):
    """A backlog longer than one sweep is not queued again by every sweep: a delivery the
    sweeper took waits a grace period for a worker before it is taken again (its message lost)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.WEBHOOK_SWEEP_GRACE_SECONDS)
    lost = DeliveryFactory(deployment=deployment, next_attempt_at=now - grace - timedelta(seconds=1))
    on_its_way = DeliveryFactory(deployment=deployment, next_attempt_at=now - grace / 2)  # enqueued on commit
    assert deliveries_take_for_sweep(now=now) == [lost.pk]
    assert deliveries_take_for_sweep(now=now + timedelta(seconds=1)) == []
    later = now + grace + timedelta(seconds=1)
    assert sorted(deliveries_take_for_sweep(now=later)) == sorted([lost.pk, on_its_way.pk])
    assert deliveries_take_for_sweep(now=later) == []
    leased = DeliveryFactory(deployment=deployment, next_attempt_at=now - 2 * grace, lease_until=later + 3 * grace)
    assert leased.pk not in deliveries_take_for_sweep(now=later + grace)


def test_purge_deletes_only_old_finished_deliveries(settings):
    old = timezone.now() - settings.WEBHOOK_RETENTION - timedelta(days=1)
    for status in Delivery.Status.values:
        delivery = DeliveryFactory(status=status)
        delivery.attempt_log.create(number=1, started_at=old)
        Delivery.objects.filter(pk=delivery.pk).update(created_at=old)
    recent = DeliveryFactory(status=Delivery.Status.DELIVERED)
    assert purge() == 2
    assert purge() == 0
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending", "delivered"}
    assert Delivery.objects.filter(pk=recent.pk).exists()


def test_every_beat_entry_is_a_registered_task_on_a_consumed_queue(settings):
    current_app.loader.import_default_modules()
    consumed = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "reviews.expire_overdue_actions",
        "reviews.release_stale_claims",
        "deliveries.sweep",
        "reviews.purge_idempotency_keys",
        "deliveries.purge",
    } <= names
    for name in names | {"deliveries.deliver"}:
        assert name in current_app.tasks, name
        task = current_app.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost, name
        route = current_app.amqp.router.route({}, name)
        assert route["queue"].name in consumed, name
    assert current_app.amqp.router.route({}, "deliveries.deliver")["queue"].name == "deliveries"


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        ("deployments.breakers_check_all", "default"),
        ("deployments.breaker_notify", "default"),
        ("deployments.purge_windows", "default"),
        ("deployments.fold_evidence", "default"),
        ("deliveries.deliver", "deliveries"),
        ("reviews.shadow_compare_actions", "default"),
    ],
)
def test_tasks_are_routed_by_name_in_task_routes(name, queue):
    current_app.loader.import_default_modules()
    task = current_app.tasks[name]
    # Celery 5.7 warns about (and 6.0 ignores) a queue= given on the task decorator.
    assert "queue" not in type(task).__dict__, f"{name}: route it in CELERY_TASK_ROUTES, not with queue="
    router = current_app.amqp.router
    assert router.lookup_route(name) == {"queue": queue}
    assert router.route({}, name, task_type=task)["queue"].name == queue


def test_no_task_of_ours_names_its_queue_on_the_decorator():
    current_app.loader.import_default_modules()
    ours = [t for name, t in current_app.tasks.items() if name.startswith(("deployments.", "reviews.", "deliveries."))]
    assert len(ours) >= 10
    assert [t.name for t in ours if "queue" in type(t).__dict__] == []
