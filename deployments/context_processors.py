from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from deployments.models import Member
from deployments.permissions import member_reach


def membership(request: HttpRequest) -> dict:
    """`member` (role and deployments) for navigation; None for anonymous users. The view's
    `request.member` when it has one (no second read). `works_senior`: whether the member works
    the senior and audit queues (a senior, or a delegate covering for one), read only when a
    template asks and the role does not already say so."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"member": None, "works_senior": False}
    member = getattr(request, "member", None)
    if member is None or member.user_id != user.pk:
        member = Member.objects.filter(user=user).first()
    if member is None:
        return {"member": None, "works_senior": False}
    return {"member": member, "works_senior": SimpleLazyObject(lambda: member_reach(member).works("senior"))}
