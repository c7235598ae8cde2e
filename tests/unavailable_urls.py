"""URLs for tests/test_unavailable.py: views that fail the way an unreachable database does."""

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.urls import path
from ninja import NinjaAPI

from config.urls import urlpatterns as project_urlpatterns

handler500 = "config.unavailable.server_error"

api = NinjaAPI(urls_namespace="unavailable-test-api")


@api.get("/down")
def api_down(request: HttpRequest) -> dict:
    raise OperationalError("connection failed: server closed the connection unexpectedly")


@api.get("/bug")
def api_bug(request: HttpRequest) -> dict:
    raise RuntimeError("a genuine bug")


def page_down(request: HttpRequest) -> HttpResponse:
    raise InterfaceError("connection already closed")


def page_wrapped(request: HttpRequest) -> HttpResponse:
    try:
        raise OperationalError("the database system is shutting down")
    except OperationalError as exc:
        raise RuntimeError("while saving") from exc


def page_bug(request: HttpRequest) -> HttpResponse:
    raise ValueError("a genuine bug")


class FailingResponseMiddleware:
    """Fails after the view, as a session save would while the database is down."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path == "/after-view-down":
            raise OperationalError("terminating connection due to administrator command")
        return response


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("api/test/", api.urls),
    path("page-down", page_down),
    path("page-wrapped", page_wrapped),
    path("page-bug", page_bug),
    path("after-view-down", ok),
    *project_urlpatterns,
]
