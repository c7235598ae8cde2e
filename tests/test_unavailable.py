"""Database unavailability answers 503 with Retry-After (config/unavailable.py), never a 500."""

import pytest
from django.core.signals import got_request_exception
from django.test import Client

pytestmark = pytest.mark.urls("tests.unavailable_urls")


@pytest.fixture
def client_500() -> Client:
    # Uncaught exceptions become responses, as they do for a real server.
    return Client(raise_request_exception=False)


@pytest.fixture
def uncaught() -> list:
    """Requests whose exception went uncaught (to handler500, error trackers, the error log)."""
    seen: list = []

    def receiver(sender, request=None, **kwargs):
        seen.append(request.path if request is not None else None)

    got_request_exception.connect(receiver, dispatch_uid="test-unavailable")
    yield seen
    got_request_exception.disconnect(dispatch_uid="test-unavailable")


def test_api_answers_503_with_the_json_error_shape(client_500, db, uncaught):
    response = client_500.get("/api/test/down")
    # Handled by the middleware, not left to handler500 as an uncaught exception.
    assert uncaught == []
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "unavailable"
    assert "Idempotency-Key" in body["detail"]


def test_pages_answer_a_plain_503_page(client_500, db, uncaught):
    response = client_500.get("/page-down")
    assert uncaught == []
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    assert b"Temporarily unavailable" in response.content


def test_an_error_raised_from_a_database_error_is_unavailability_too(client_500, db):
    response = client_500.get("/page-wrapped")
    assert response.status_code == 503


@pytest.mark.parametrize("path", ["/api/test/bug", "/page-bug"])
def test_other_errors_stay_500(client_500, db, path):
    response = client_500.get(path)
    assert response.status_code == 500
    assert "Retry-After" not in response


def test_database_errors_raised_after_the_view_are_503_through_handler500(client_500, db, settings, uncaught):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.unavailable_urls.FailingResponseMiddleware"]
    response = client_500.get("/after-view-down")
    assert uncaught == ["/after-view-down"]
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_the_middleware_is_installed_last():
    from django.conf import settings

    assert settings.MIDDLEWARE[-1] == "config.unavailable.DatabaseUnavailableMiddleware"


def test_the_project_uses_the_unavailability_handler500():
    import config.urls

    assert config.urls.handler500 == "config.unavailable.server_error"
