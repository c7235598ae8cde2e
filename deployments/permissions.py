"""Who may do what: the role checks of browser views, and the one rule of which deployments
a member works on, and in which queues.

The rule: admins work on every deployment; reviewers and seniors on the deployments they are
assigned to (`Member.deployments`), seniors also in the senior and audit queues. A delegation
in effect (deployments.delegations, out of office) adds the delegator's assigned deployments
to the delegate's reach, the senior and audit queues only when the delegator is a senior:
never more than the delegator had, never an admin's powers (an admin delegator hands over the
deployments they are assigned to, not "all"), and not transitively. What the delegate does
there only through the delegation is done *for* the delegator (`acting_for`), and audited so.

Pages, queues, services and the audit log all ask it here (`member_reach`,
`deployments_visible_to`, `visible_deployment_ids`, `limit_to_visible`, `require_assigned`,
`acting_for`), so it is written once. The reach is read in one query, once per Member
instance (a request's member).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from deployments.errors import NotAllowed
from deployments.models import Delegation, Deployment, Member

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


SENIOR_QUEUES = ("senior", "audit")


def queue_required(queue: str) -> Callable:
    """`role_required(REVIEWER)`, and the member works `queue` somewhere: their role, or a
    delegation in effect from a senior for the senior and audit queues (`Reach.works`); else
    403, before any other check. Sets `request.member`."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            member = request.member
            if not member.is_senior and not member_reach(member).works(queue):
                raise PermissionDenied(
                    f"only senior reviewers, or someone covering for one, may work the {queue} queue"
                )
            return view(request, *args, **kwargs)

        return role_required(Member.Role.REVIEWER)(checked)

    return decorator


@dataclass(frozen=True)
class Delegator:
    """Whom a delegate acts for: the delegator's user id and name (audited as "X for Y")."""

    user_id: int
    username: str


@dataclass
class Reach:
    """Where a member works: `None` ids mean every deployment (admins). `own` and `own_senior`
    are the member's own assignment; `delegated` maps a deployment to the delegators (in effect
    now) who hand it over, each with whether they hand its senior queues too."""

    admin: bool
    own: frozenset[int]
    own_senior: bool
    delegated: dict[int, list[tuple[Delegator, bool]]] = field(default_factory=dict)
    names: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (slug, name), for pickers

    def ids(self, queue: str = "review") -> list[int] | None:
        """The deployments whose `queue` ("review", "senior", "audit"; "any": visible at all)
        the member works; None: all of them."""
        if self.admin:
            return None
        senior = queue in SENIOR_QUEUES
        mine = set(self.own) if (self.own_senior or not senior) else set()
        for deployment_id, grants in self.delegated.items():
            if not senior or any(s for _, s in grants):
                mine.add(deployment_id)
        return sorted(mine)

    def works(self, queue: str) -> bool:
        """Whether the member works `queue` anywhere (their role, or a delegation)."""
        if queue not in SENIOR_QUEUES:
            return True
        return self.admin or self.own_senior or any(s for grants in self.delegated.values() for _, s in grants)

    def acting_for(self, deployment_id: int, queue: str = "review") -> Delegator | None:
        """Whom the member acts for in `queue` of the deployment: None on their own rights (which
        come first), else the delegator whose delegation grants it; NotAllowed when nothing does."""
        senior = queue in SENIOR_QUEUES
        if self.admin or (deployment_id in self.own and (self.own_senior or not senior)):
            return None
        for delegator, hands_senior in self.delegated.get(deployment_id, ()):
            if hands_senior or not senior:
                return delegator
        if deployment_id in self.own:
            raise NotAllowed(f"only senior reviewers may work the {queue} queue")
        if grants := self.delegated.get(deployment_id):
            names = ", ".join(d.username for d, _ in grants)
            raise NotAllowed(f"you cover for {names} here, who may not work the {queue} queue")
        raise NotAllowed("you are not assigned to this deployment")


def member_reach(member: Member) -> Reach:
    """The member's reach now, read once per Member instance (one query: their assignments and
    those of the delegators whose delegation to them is in effect)."""
    reach = getattr(member, "_reach", None)
    if reach is not None:
        return reach
    if member.is_admin:
        reach = Reach(admin=True, own=frozenset(), own_senior=True)
    else:
        rows = _reach_rows(member).values_list(
            "deployment_id",
            "member_id",
            "member__role",
            "member__user_id",
            "member__user__username",
            "deployment__slug",
            "deployment__name",
        )
        own, delegated, names = set(), {}, {}
        for deployment_id, member_id, role, user_id, username, slug, name in rows:
            names[deployment_id] = (slug, name)
            if member_id == member.pk:
                own.add(deployment_id)
                continue
            grant = (Delegator(user_id=user_id, username=username), role in (Member.Role.SENIOR, Member.Role.ADMIN))
            if grant not in delegated.setdefault(deployment_id, []):
                delegated[deployment_id].append(grant)
        reach = Reach(admin=False, own=frozenset(own), own_senior=member.is_senior, delegated=delegated, names=names)
    member._reach = reach
    return reach


def delegations_in_effect(*, senior: bool = False) -> QuerySet[Delegation]:
    """The delegations in effect now (started, not over, not cancelled); with `senior`, only
    those from a senior (or admin), which hand over the senior and audit queues too."""
    now = timezone.now()
    delegations = Delegation.objects.filter(cancelled_at__isnull=True, starts_at__lte=now, ends_at__gt=now)
    if senior:
        delegations = delegations.filter(delegator__role__in=(Member.Role.SENIOR, Member.Role.ADMIN))
    return delegations


def _reach_rows(member: Member, *, senior: bool = False) -> QuerySet:
    """The assignments that make up a (non-admin) member's reach: their own and those of the
    delegators whose delegation to them is in effect now; with `senior`, only those that carry
    a senior's rights (the member's own if they are a senior, a senior delegator's)."""
    delegations = delegations_in_effect(senior=senior).filter(delegate_id=member.pk)
    rows = Q(member_id__in=delegations.values("delegator_id"))
    if not senior or member.is_senior:
        rows |= Q(member_id=member.pk)
    return Member.deployments.through.objects.filter(rows)


def _visible_ids(member: Member, queue: str = "any"):
    """The ids of the deployments whose `queue` ("any": at all) a (non-admin) member works:
    the reach's when it was read in this request, else a subquery (no round trip of its own)."""
    reach = getattr(member, "_reach", None)
    if reach is not None:
        return reach.ids(queue)
    return _reach_rows(member, senior=queue in SENIOR_QUEUES).values("deployment_id")


def deployments_visible_to(member: Member, queue: str = "any") -> QuerySet[Deployment]:
    """The deployments `member` works on: all of them for admins, else those assigned and
    those handed to them by a delegation in effect. `queue="senior"` for the seniors' pages
    (the audit log, reviewer quality): only where the member has a senior's rights, so a
    senior covering for a reviewer never sees more there than the reviewer could."""
    if member.is_admin:
        return Deployment.objects.all()
    return Deployment.objects.filter(pk__in=_visible_ids(member, queue))


def deployment_visible_or_404(request: HttpRequest, slug: str, queue: str = "any") -> Deployment:
    """The deployment `slug` for a page of the signed-in member; 404 when it is not among theirs
    (`deployments_visible_to`), so a page never tells whether another team's slug exists."""
    deployment = deployments_visible_to(request.member, queue).filter(slug=slug).first()
    if deployment is None:
        raise Http404("no such deployment among yours")
    return deployment


def require_in_deployment(rows: QuerySet, pk: int, what: str) -> None:
    """404 unless row `pk` is among `rows` (a visible deployment's related rows, such as
    `deployment.actions`): another deployment's ids are not told apart from missing ones."""
    if not rows.filter(pk=pk).exists():
        raise Http404(f"no such {what} in this deployment")


def visible_deployment_ids(member: Member, queue: str = "any") -> list[int] | None:
    """Ids of the deployments whose `queue` the member works; None means all of them (admins)."""
    return member_reach(member).ids(queue)


def limit_to_visible(qs: QuerySet, member: Member, *, deployment: str = "deployment", queue: str = "any") -> QuerySet:
    """`qs` limited to the rows whose `deployment` (a lookup path) the member works on (in
    `queue`, as `deployments_visible_to`); an admin's is left whole (with the rows of no
    deployment)."""
    if member.is_admin:
        return qs
    return qs.filter(**{f"{deployment}__in": _visible_ids(member, queue)})


def may_act_on(member: Member, deployment_id: int) -> bool:
    """Whether `member` works on the deployment (in its reviewer queue at least)."""
    try:
        member_reach(member).acting_for(deployment_id)
    except NotAllowed:
        return False
    return True


def require_assigned(member: Member | None, deployment_id: int, *, who: str = "only members may do this") -> Member:
    """`member` if they work on the deployment; else NotAllowed (`who` when there is no member)."""
    if member is None:
        raise NotAllowed(who)
    if not may_act_on(member, deployment_id):
        raise NotAllowed("you are not assigned to this deployment")
    return member


def acting_for(member: Member | None, deployment_id: int, queue: str = "review") -> Delegator | None:
    """Whom `member` acts for in `queue` of the deployment (None: on their own rights);
    NotAllowed when neither their role nor a delegation in effect lets them work it."""
    if member is None:
        raise NotAllowed("only members may do this")
    return member_reach(member).acting_for(deployment_id, queue)


def on_behalf_data(delegator: Delegator | None) -> dict[str, str]:
    """What an audit event's data adds for a decision taken under a delegation."""
    return {"on_behalf_of": delegator.username} if delegator is not None else {}


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
