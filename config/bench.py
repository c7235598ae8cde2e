"""A trivial view for bench/ingest.py's floor: the same server and middleware, no work.

Mounted at /bench/noop only when TRUSTLADDER_BENCH_NOOP=1 (never in a normal deployment)."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def noop(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b'{"ok": true}', content_type="application/json")
