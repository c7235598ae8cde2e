"""Request guards that must run before any view parses a body."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class ApiBodyLimitMiddleware:
    """Refuse agent-API bodies over API_MAX_BODY_BYTES with 413 and the API's error shape.

    Bodies without a Content-Length (chunked) are caught later: Django raises
    RequestDataTooBig on read, which the API's exception handler turns into 413 as well.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.API_BODY_LIMITS.get(request.path, settings.API_MAX_BODY_BYTES)
            if length > limit:
                return JsonResponse(
                    {
                        "error": "payload_too_large",
                        "detail": f"request body is {length} bytes; the limit is {limit} bytes",
                    },
                    status=413,
                )
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not send.

    - `Permissions-Policy`: no page needs the camera, microphone, location or payments.
    - `Cache-Control: no-store` on API responses: they carry a deployment's data for one key
      and must not be kept by shared caches (a view that set its own Cache-Control keeps it).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        if request.path.startswith("/api/"):
            response.setdefault("Cache-Control", "no-store")
        return response
