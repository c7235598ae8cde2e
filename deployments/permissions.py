"""Who may do what: the role checks of browser views, and the one rule of which deployments
a member works on.

The rule: admins work on every deployment; reviewers and seniors on the deployments they are
assigned to (`Member.deployments`). Pages, queues, services and the audit log all ask it
here (`deployments_visible_to`, `visible_deployment_ids`, `limit_to_visible`,
`require_assigned`), so it is written once.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from deployments.errors import NotAllowed
from deployments.models import Deployment, Member

ROLE_RANK = {Member.Role.REVIEWER: 0, Member.Role.SENIOR: 1, Member.Role.ADMIN: 2}


def role_required(minimum: Member.Role) -> Callable:
    """Signed in, a Member, and at least `minimum` (reviewer < senior < admin); else 403.

    Sets `request.member`.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            member = Member.objects.filter(user=request.user).first()
            if member is None or ROLE_RANK[Member.Role(member.role)] < ROLE_RANK[minimum]:
                raise PermissionDenied("your role does not allow this page")
            request.member = member
            return view(request, *args, **kwargs)

        wrapped.required_role = minimum
        return wrapped

    return decorator


def deployments_visible_to(member: Member) -> QuerySet[Deployment]:
    """The deployments `member` works on: all of them for admins, else those assigned."""
    if member.is_admin:
        return Deployment.objects.all()
    return member.deployments.all()


def visible_deployment_ids(member: Member) -> list[int] | None:
    """Ids of the deployments the member works on; None means all of them (admins)."""
    if member.is_admin:
        return None
    return list(deployments_visible_to(member).values_list("id", flat=True))


def limit_to_visible(qs: QuerySet, member: Member, *, deployment: str = "deployment") -> QuerySet:
    """`qs` limited to the rows whose `deployment` (a lookup path) the member works on; an
    admin's is left whole (with the rows of no deployment)."""
    if member.is_admin:
        return qs
    return qs.filter(**{f"{deployment}__in": deployments_visible_to(member)})


def may_act_on(member: Member, deployment_id: int) -> bool:
    """Whether `member` works on the deployment (admins without a query)."""
    return member.is_admin or deployments_visible_to(member).filter(pk=deployment_id).exists()


def require_assigned(member: Member | None, deployment_id: int, *, who: str = "only members may do this") -> Member:
    """`member` if they work on the deployment; else NotAllowed (`who` when there is no member)."""
    if member is None:
        raise NotAllowed(who)
    if not may_act_on(member, deployment_id):
        raise NotAllowed("you are not assigned to this deployment")
    return member


def member_of(user: AbstractBaseUser | None) -> Member | None:
    """The signed-in user's Member row, or None."""
    if user is None or not user.is_authenticated:
        return None
    return Member.objects.filter(user=user).first()


def require_admin(actor: AbstractBaseUser | None, what: str) -> Member:
    """The actor's Member row if they are an admin; else NotAllowed("only admins may <what>")."""
    member = member_of(actor)
    if member is None or not member.is_admin:
        raise NotAllowed(f"only admins may {what}")
    return member
