"""The database is unreachable: answer 503 with Retry-After, never a 500.

While PostgreSQL restarts or fails over, every query raises `OperationalError` (cannot
connect, connection terminated by the server) or `InterfaceError` (the connection is already
closed). Those are not bugs in the request, and nothing was committed by a request that saw
one: the client should retry (agents with the same `Idempotency-Key`). So:

- on `/api/` the answer is the API's JSON error shape, `{"error": "unavailable", "detail": ...}`;
- elsewhere it is a plain 503 page;
- both carry `Retry-After`.

`DatabaseUnavailableMiddleware.process_exception` handles errors raised by views (including
the NinjaAPI, which re-raises what it does not handle). `server_error` is the project's
`handler500`: it catches the same errors when they escape a middleware instead of a view (a
session saved after the view, for instance), and renders Django's usual 500 page otherwise.
"""

import logging
import sys
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import server_error as default_server_error

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
API_PREFIX = "/api/"

PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Temporarily unavailable</title></head>"
    "<body><h1>Temporarily unavailable</h1><p>Trustladder cannot reach its database right now. "
    "Nothing you sent was saved by this request. Please try again in a few seconds.</p></body></html>"
)


def is_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` (or an exception it was raised from) means the database is unreachable."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, UNAVAILABLE_ERRORS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 for `request`: JSON on the API, a plain page elsewhere; Retry-After on both."""
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse(
            {
                "error": "unavailable",
                "detail": "the database is unavailable; nothing was saved. Retry with the same Idempotency-Key.",
            },
            status=503,
        )
    else:
        response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Turn database unavailability raised by a view into 503 + Retry-After.

    Listed last in MIDDLEWARE so that its `process_exception` runs first.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_unavailable(exception):
            return None
        logger.warning(
            "database unavailable; answered 503: %s: %s", type(exception).__name__, str(exception).strip()[:200]
        )
        return unavailable_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: 503 when the uncaught exception is database unavailability, else Django's 500."""
    if is_unavailable(sys.exc_info()[1]):
        return unavailable_response(request)
    return default_server_error(request)
