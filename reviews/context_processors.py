from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from reviews.claims import claims_live
from reviews.models import ProposedAction


def my_claim(request: HttpRequest) -> dict:
    """`my_claim`: the one item the signed-in person holds a live claim on, or None (the top
    bar shows it with Release). Read only when a template uses it (htmx partials don't)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"my_claim": None}

    def read() -> ProposedAction | None:
        mine = ProposedAction.objects.filter(claimed_by=user).only("id", "action_type", "claimed_at")
        return claims_live(mine, timezone.now()).order_by("-claimed_at").first()

    return {"my_claim": SimpleLazyObject(read)}
