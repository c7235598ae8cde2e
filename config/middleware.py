"""Request guards that must run before any view parses a body."""

import io
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.html import format_html

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# The longest form field or query parameter taken: the largest proposal body.
MAX_FIELD_CHARS = 256 * 1024


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


class NulInputMiddleware:
    """Refuse a query parameter or form field holding NUL (U+0000), or longer than
    MAX_FIELD_CHARS, for every view at once.

    PostgreSQL's text cannot hold NUL, so a filter or a reason with one would fail in the
    database (a 500); no person types one, nor a field longer than the largest API body.
    Answered 422 with the API's error shape on the API, 400 with a message naming the field on
    pages; nothing reaches a view. (Lone surrogates cannot arrive this way: Django decodes forms
    and query strings with replacement; JSON bodies and edited payloads are held to
    core.jsonlimits.)
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        detail = None
        if request.META.get("QUERY_STRING"):
            detail = _refused_field(request.GET, "query parameter")
        if detail is None and request.method == "POST" and request.content_type in FORM_TYPES:
            detail = _refused_field(request.POST, "form field")
        if detail is None:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse({"error": "validation_error", "detail": detail}, status=422)
        return HttpResponseBadRequest(
            format_html("<!doctype html><title>Bad request</title><h1>Nothing was changed</h1><p>{}.</p>", detail)
        )


def _refused_field(data, kind: str) -> str | None:
    for key, values in data.lists():
        name = key.replace("\x00", "?")[:100]
        if "\x00" in key or any("\x00" in value for value in values):
            return f"the {kind} {name!r} contains a NUL character (U+0000), which cannot be stored"
        if any(len(value) > MAX_FIELD_CHARS for value in values):
            return f"the {kind} {name!r} is longer than {MAX_FIELD_CHARS} characters"
    return None


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


class ChunkedBodyWSGI:
    """WSGI middleware: a body sent with `Transfer-Encoding: chunked` (no Content-Length) is
    read, up to its limit, instead of being taken as empty.

    Django reads exactly CONTENT_LENGTH bytes of `wsgi.input`, 0 when the header is missing. A
    server that de-chunks the body and marks its end (`wsgi.input_terminated`, as gunicorn
    does) lets us read it to the end: at most the path's limit + 1 bytes, so a body over the
    limit is not read whole and the usual checks answer 413 (API) or 400 (pages, Django's
    RequestDataTooBig), exactly as for a body that declared its length.
    """

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("wsgi.input_terminated")
            and not environ.get("CONTENT_LENGTH")
            and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            path = environ.get("PATH_INFO", "")
            if path.startswith("/api/"):
                limit = settings.API_BODY_LIMITS.get(path, settings.API_MAX_BODY_BYTES)
            else:
                limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            body = _read_up_to(environ["wsgi.input"], limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)


def _read_up_to(stream, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
