"""Settings shared by every environment.

Everything that differs between a laptop and production comes from the environment; with no
variables at all the project runs on a SQLite file with Celery tasks executed in-process.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url

from config.env import env, env_bool, env_list
from config.logging import build_logging, configure_structlog

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# ---------------------------------------------------------------------------------------
# Core — https://docs.djangoproject.com/en/5.2/ref/settings/#core-settings
# ---------------------------------------------------------------------------------------
SECRET_KEY = env("DJANGO_SECRET_KEY", "insecure-local-only-key-change-me-in-production-0123456789")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_prometheus",
    "django_structlog",
    "deployments",
    "reviews",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.ApiBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, so its process_exception runs first: database unavailability becomes 503, not 500.
    "config.unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deployments.context_processors.membership",
            ],
        },
    },
]

# ---------------------------------------------------------------------------------------
# Database — https://docs.djangoproject.com/en/5.2/ref/settings/#databases
# DATABASE_URL=postgres://user@host:5432/name selects PostgreSQL through psycopg 3.
# ---------------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(env("DJANGO_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the demo server and an in-process worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# ---------------------------------------------------------------------------------------
# Auth — https://docs.djangoproject.com/en/5.2/topics/auth/
# ---------------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ---------------------------------------------------------------------------------------
# I18N and time — https://docs.djangoproject.com/en/5.2/topics/i18n/
# ---------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------------------
# Static files — https://whitenoise.readthedocs.io/
# ---------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# ---------------------------------------------------------------------------------------
# Security — https://docs.djangoproject.com/en/5.2/topics/security/
# ---------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# ---------------------------------------------------------------------------------------
# Agent API
# ---------------------------------------------------------------------------------------
# Bodies above this size are refused with 413 before they are parsed.
API_MAX_BODY_BYTES = 256 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# An Idempotency-Key is remembered at least this long (IETF httpapi draft: >= 24 h).
IDEMPOTENCY_KEY_TTL = timedelta(hours=int(env("TRUSTLADDER_IDEMPOTENCY_TTL_HOURS", "48")))
# A request that claimed a key but never finished (crashed worker) is taken over after this.
IDEMPOTENCY_IN_FLIGHT_TIMEOUT = timedelta(seconds=int(env("TRUSTLADDER_IDEMPOTENCY_IN_FLIGHT_SECONDS", "60")))

# ---------------------------------------------------------------------------------------
# Celery — https://docs.celeryq.dev/en/stable/userguide/configuration.html
# REDIS_URL set: real broker and workers. Unset: tasks run in-process (eager).
# ---------------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Above the longest task, so a slow task is not redelivered while it still runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict = {}

# ---------------------------------------------------------------------------------------
# Logging — structured (JSON) with a request id that follows an action from the API into
# the worker (django-structlog). TRUSTLADDER_LOG_FORMAT=json|console.
# https://django-structlog.readthedocs.io/
# ---------------------------------------------------------------------------------------
LOG_FORMAT = env("TRUSTLADDER_LOG_FORMAT", "json")
LOGGING = build_logging(fmt=LOG_FORMAT, level=env("DJANGO_LOG_LEVEL", "INFO"))
configure_structlog()
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# Keep the caller's X-Request-ID (an agent's or a proxy's) so one id follows a request end to end.
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True

# ---------------------------------------------------------------------------------------
# Metrics — GET /metrics (Prometheus). With a token set, scrapers send it as a Bearer token;
# without one, only loopback and private-network clients are answered.
# ---------------------------------------------------------------------------------------
TRUSTLADDER_METRICS_TOKEN = env("TRUSTLADDER_METRICS_TOKEN", "")

# ---------------------------------------------------------------------------------------
# Review queues
# ---------------------------------------------------------------------------------------
# A claimed item is offered to nobody else for this long.
REVIEW_CLAIM_TIMEOUT = timedelta(minutes=int(env("TRUSTLADDER_CLAIM_TIMEOUT_MINUTES", "10")))
