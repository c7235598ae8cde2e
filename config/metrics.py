"""GET /metrics in the Prometheus text format.

Protected by TRUSTLADDER_METRICS_TOKEN (Bearer) when set; otherwise answered only to
loopback and private-network addresses (a scraper beside the app, e.g. in docker compose).
"""

import ipaddress
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from reviews.metrics import TrustladderCollector


def _allowed(request: HttpRequest) -> bool:
    token = settings.TRUSTLADDER_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return constant_time_compare(given, token)
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("metrics are not available to this client\n", status=403, content_type="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several web processes: add up what each one wrote (prometheus_client multiprocess mode).
        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry)
    else:
        process_registry = REGISTRY
    shared = CollectorRegistry()
    shared.register(TrustladderCollector())
    body = generate_latest(process_registry) + generate_latest(shared)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
