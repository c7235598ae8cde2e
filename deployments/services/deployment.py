"""A deployment's own writes: creating it, and the kill switch (SPEC §1)."""

import base64
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from core.updates import model_update
from deployments.errors import InvalidInput
from deployments.locks import deployment_lock
from deployments.models import Deployment
from deployments.permissions import require_admin
from deployments.policy import Stage
from deployments.services.audit import audit_event_record, reason_required


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: 'whsec_' + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@transaction.atomic
def deployment_create(
    *,
    slug: str,
    name: str = "",
    stage: Stage | str = Stage.SHADOW,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    **thresholds: object,
) -> Deployment:
    """Create a deployment (normally in shadow). Any other starting stage is audited as such."""
    stage = Stage(stage)
    if Deployment.objects.filter(slug=slug).exists():
        raise InvalidInput(f"a deployment with slug {slug!r} already exists")
    deployment = Deployment(
        slug=slug, name=name or slug, stage=stage, webhook_secret=new_webhook_secret(), **thresholds
    )
    deployment.full_clean()
    deployment.save()
    audit_event_record(
        verb="deployments.deployment.created",
        actor=actor,
        actor_label=actor_label,
        obj=deployment,
        data={"stage": stage.value, "started_above_shadow": stage is not Stage.SHADOW},
    )
    return deployment


def _set_paused(*, deployment_id: int, actor: AbstractBaseUser, reason: str, paused: bool) -> Deployment:
    verb = "pause" if paused else "resume"
    require_admin(actor, f"{verb} a deployment")
    reason = reason_required(reason, verb)
    deployment = deployment_lock(deployment_id)
    if deployment.paused != paused:
        model_update(deployment, paused=paused)
        audit_event_record(verb=f"deployments.deployment.{verb}d", actor=actor, obj=deployment, reason=reason)
    return deployment


@transaction.atomic
def deployment_pause(*, deployment_id: int, actor: AbstractBaseUser, reason: str) -> Deployment:
    """Kill switch on: from now on nothing is auto-executed. Admins only, with a reason.
    Safe to repeat: pausing a paused deployment changes nothing."""
    return _set_paused(deployment_id=deployment_id, actor=actor, reason=reason, paused=True)


@transaction.atomic
def deployment_resume(*, deployment_id: int, actor: AbstractBaseUser, reason: str) -> Deployment:
    """Kill switch off. Admins only, with a reason. Safe to repeat."""
    return _set_paused(deployment_id=deployment_id, actor=actor, reason=reason, paused=False)
