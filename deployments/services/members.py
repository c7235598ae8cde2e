"""People: their Member row, role and assigned deployments."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from deployments.models import Deployment, Member
from deployments.services.audit import audit_event_record


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
