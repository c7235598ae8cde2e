"""Security headers and CSP on pages and on API responses; cookie flags; no inline scripts."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_common_headers(response) -> None:
    csp = csp_directives(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


def test_a_page_carries_the_security_headers():
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    assert_common_headers(response)


def test_an_api_response_carries_the_security_headers_and_is_not_cached(api):
    response = api.get("/api/v1/deployment")
    assert response.status_code == 200
    assert_common_headers(response)
    assert response["Cache-Control"] == "no-store"


def test_an_api_error_carries_them_too():
    response = Client().get("/api/v1/deployment")
    assert response.status_code == 401
    assert_common_headers(response)
    assert response["Cache-Control"] == "no-store"


def test_the_session_cookie_is_httponly_and_samesite():
    user = UserFactory(username="cookie")
    user.set_password("a-long-password-1")
    user.save()
    client = Client()
    response = client.post("/accounts/login/", {"username": "cookie", "password": "a-long-password-1"})
    assert response.status_code == 302
    morsel = response.cookies["sessionid"]
    assert morsel["httponly"] and morsel["samesite"] == "Lax"
    csrf = client.get("/accounts/login/").cookies.get("csrftoken") or client.cookies["csrftoken"]
    assert csrf["httponly"] and csrf["samesite"] == "Lax"


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from django.test import Client, override_settings
# The manifest storage needs collectstatic; the headers and cookies do not depend on it.
static = "django.contrib.staticfiles.storage.StaticFilesStorage"
override_settings(STORAGES={"staticfiles": {"BACKEND": static}}).enable()
User.objects.create_user("probe", password="a-long-password-1")
c = Client()
r = c.post("/accounts/login/", {"username": "probe", "password": "a-long-password-1"}, secure=True)
page = c.get("/accounts/login/", secure=True)
cookies = {}
for resp in (r, page):
    for name, m in resp.cookies.items():
        cookies[name] = {k: m[k] for k in ("secure", "httponly", "samesite", "path", "domain")}
print(json.dumps({"status": r.status_code, "cookies": cookies,
                  "hsts": page.get("Strict-Transport-Security"), "csp": page.get("Content-Security-Policy")}))
"""


def test_production_settings_set_secure_host_only_cookies_and_hsts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE", "REDIS_URL")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "p9" * 30 + "-production-like-secret",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["status"] == 302
    session = probe["cookies"]["__Host-trustladder_session"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert session["path"] == "/" and not session["domain"]
    csrf = probe["cookies"]["__Host-csrftoken"]
    assert csrf["secure"] and csrf["httponly"]
    assert probe["hsts"].startswith("max-age=31536000")
    assert "script-src 'self'" in probe["csp"]


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\s on[a-z]+\s*=", re.IGNORECASE | re.VERBOSE)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def test_no_template_has_inline_script_an_event_handler_or_a_javascript_url():
    """The CSP allows scripts only from our origin: an inline script would silently not run."""
    offenders = []
    for template in sorted((ROOT / "core" / "templates").rglob("*.html")):
        text = template.read_text()
        for pattern in (INLINE_SCRIPT, EVENT_HANDLER, JS_URL):
            offenders += [f"{template.relative_to(ROOT)}: {m.group(0).strip()}" for m in pattern.finditer(text)]
    assert offenders == []
