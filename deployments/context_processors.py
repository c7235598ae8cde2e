from django.http import HttpRequest

from deployments.models import Member


def membership(request: HttpRequest) -> dict:
    """`member` (role and deployments) for navigation; None for anonymous users."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"member": None}
    return {"member": Member.objects.filter(user=user).first()}
