"""Authentication backends."""

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check for sign-ins over HTTP.

    Every sign-in an attacker can reach (the login page, the admin's login) passes the request,
    and is throttled. `authenticate()` without a request comes from our own code (management
    commands, the test client's `login()`): there is no client address to throttle, so it is
    left to the next backend instead of raising as axes does.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def axes_username(request: HttpRequest, credentials: dict | None = None) -> str:
    """The username django-axes counts failures for, cut to what a username can be (150
    characters): axes stores it in a 255-character column, so a longer one sent to the sign-in
    form would fail in the database instead of being counted."""
    source = credentials if credentials else request.POST
    return str(source.get("username") or "")[:150]
