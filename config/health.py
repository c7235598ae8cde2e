"""GET /healthz: the state of the database and the broker."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception as exc:  # any failure to reach the database is "down"
        return f"down: {type(exc).__name__}"


def _broker() -> str:
    if not settings.REDIS_URL:
        return "in-process (no REDIS_URL)"
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
        return "ok"
    except Exception as exc:  # any failure to reach the broker is "down"
        return f"down: {type(exc).__name__}"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers (the broker's state is reported, not required), else 503."""
    database, broker = _database(), _broker()
    status = 200 if database == "ok" else 503
    return JsonResponse(
        {"status": "ok" if status == 200 else "unavailable", "database": database, "broker": broker},
        status=status,
    )
