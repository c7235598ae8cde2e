"""Every write to deployments, keys, members, evidence counters and the audit log."""

import random
import secrets
from datetime import date

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from deployments.errors import InvalidInput
from deployments.models import ApiKey, AuditEvent, Deployment, EvidenceCount, Member, hash_api_key
from deployments.policy import Stage

SYSTEM = "system"


def audit_event_record(
    *,
    verb: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    deployment: Deployment | int | None = None,
    obj: object | None = None,
    reason: str = "",
    data: dict | None = None,
) -> AuditEvent:
    """Append one audit event. Call inside the transaction of the change it records."""
    deployment_id = deployment.pk if isinstance(deployment, Deployment) else deployment
    return AuditEvent.objects.create(
        verb=verb,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label or (actor.get_username() if actor is not None else SYSTEM),
        deployment_id=deployment_id,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        reason=reason,
        data=data or {},
    )


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: 'whsec_' + base64 of 24 random bytes."""
    import base64

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
        deployment=deployment,
        obj=deployment,
        data={"stage": stage.value, "started_above_shadow": stage is not Stage.SHADOW},
    )
    return deployment


@transaction.atomic
def api_key_create(
    *, deployment: Deployment, name: str = "", actor: AbstractBaseUser | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never stored or shown again."""
    raw = ApiKey.generate_raw()
    key = ApiKey.objects.create(
        deployment=deployment,
        name=name,
        prefix=raw[:10],
        hashed_key=hash_api_key(raw),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit_event_record(
        verb="deployments.api_key.created",
        actor=actor,
        deployment=deployment,
        obj=key,
        data={"prefix": key.prefix, "name": name},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, key_id: int, actor: AbstractBaseUser | None = None) -> ApiKey:
    """Revoke a key. Safe to repeat: revoking a revoked key changes nothing."""
    key = ApiKey.objects.select_for_update().get(pk=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_event_record(verb="deployments.api_key.revoked", actor=actor, deployment=key.deployment_id, obj=key)
    return key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key matching `raw`, with its deployment, or None."""
    if not raw or not raw.startswith(ApiKey.PREFIX) or len(raw) > 200:
        return None
    try:
        # hashed_key is unique: .get() spares the ORDER BY that .first() would add.
        return ApiKey.objects.select_related("deployment").get(hashed_key=hash_api_key(raw), revoked_at__isnull=True)
    except ApiKey.DoesNotExist:
        return None


@transaction.atomic
def member_create(
    *,
    username: str,
    role: Member.Role | str,
    password: str | None = None,
    deployments: list[Deployment] | None = None,
    email: str = "",
    actor: AbstractBaseUser | None = None,
) -> Member:
    """Create (or update) a person with a role and their assigned deployments."""
    role = Member.Role(role)
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    if password:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.is_staff = role == Member.Role.ADMIN
    user.save()
    member, _ = Member.objects.update_or_create(user=user, defaults={"role": role})
    if deployments:
        member.deployments.add(*deployments)
    audit_event_record(
        verb="deployments.member.created" if created else "deployments.member.updated",
        actor=actor,
        obj=member,
        data={"username": username, "role": role.value, "deployments": [d.slug for d in deployments or []]},
    )
    return member


def evidence_add(
    *,
    deployment_id: int,
    action_type: str,
    metric: str,
    n: int = 1,
    total: float = 0.0,
    day: date | None = None,
) -> None:
    """Add `n` (and `total`) to one evidence counter, in the caller's transaction.

    One upsert statement; the row is picked from `EvidenceCount.SHARDS` shards at random so
    concurrent writers rarely wait on the same row.
    """
    day = day or timezone.now().date()
    table = EvidenceCount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (deployment_id, day, action_type, metric, shard, n, total)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (deployment_id, day, action_type, metric, shard)
            DO UPDATE SET n = {table}.n + excluded.n, total = {table}.total + excluded.total
            """,  # noqa: S608 -- the table name is ours, every value is a parameter
            [deployment_id, day, action_type, metric, random.randrange(EvidenceCount.SHARDS), n, total],
        )
