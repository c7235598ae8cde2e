"""Role checks for browser views. Every view declares which roles may use it."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from deployments.models import Member

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
