"""Settings shared by every environment.

Everything that differs between a laptop and production comes from the environment; with no
variables at all the project runs on a SQLite file with Celery tasks executed in-process.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from kombu import Queue

from config.env import env, env_bool, env_float, env_int, env_list
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
    "ninja",  # serves the API docs' Swagger UI from local static files (no CDN; works under CSP)
    "axes",
    "csp",
    "deployments",
    "reviews",
    "deliveries",
    "integrations",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.ApiBodyLimitMiddleware",
    "config.middleware.NulInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.SecurityHeadersMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    # After the auth middleware, as django-axes asks: it turns a flagged failed login into the
    # lockout page. Only the metrics middleware, which observes everything, comes later.
    "axes.middleware.AxesMiddleware",
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
        # Package data of `core`, so an installed wheel finds them as a checkout does.
        "DIRS": [BASE_DIR / "core" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deployments.context_processors.membership",
                "reviews.context_processors.my_claim",
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
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60),
        # Off: a health check is one more round trip on every request. After a database
        # restart each worker's first query fails instead, answered 503 with Retry-After
        # (config.unavailable), and the next request reconnects.
        conn_health_checks=env_bool("DJANGO_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The agent API's hot path (deployments.sql.prepared_cursor) prepares its few fixed
    # statements once per connection; Django's own queries are never prepared. Set
    # TRUSTLADDER_DB_PREPARED_STATEMENTS=0 behind a pooler that cannot keep them
    # (PgBouncer in transaction mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        1 if env_bool("TRUSTLADDER_DB_PREPARED_STATEMENTS", True) else None
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the demo server and an in-process worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# ---------------------------------------------------------------------------------------
# Auth — https://docs.djangoproject.com/en/5.2/topics/auth/
# ---------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # Refuses sign-ins of a locked-out (username, IP) before the password is checked.
    "config.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
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
STATICFILES_DIRS = [BASE_DIR / "core" / "static"]
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")

# ---------------------------------------------------------------------------------------
# Security — https://docs.djangoproject.com/en/5.2/topics/security/
# ---------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Pages render the CSRF token into `hx-headers`; no script needs to read the cookie.
CSRF_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp 4) — https://django-csp.readthedocs.io/
# Scripts only from our own origin: no inline scripts, no eval (htmx is vendored; htmx
# features that eval, such as hx-on or js: values, are not used). Inline *styles* are allowed:
# htmx injects its indicator <style> and pages use style attributes for bars and charts; a
# style cannot run code. The API docs (/api/v1/docs) use django-ninja's local Swagger assets.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Sent by config.middleware.SecurityHeadersMiddleware on every response.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

# Login throttling (django-axes) — https://django-axes.readthedocs.io/en/latest/4_configuration.html
# After AXES_FAILURE_LIMIT failed sign-ins of one username from one address, that pair is
# locked out for AXES_COOLOFF_TIME (the lock page answers 429). Counted in the database, so it
# holds across web workers. The address is REMOTE_ADDR: behind a proxy, make the proxy pass
# the client address (a forwarded header is not trusted, as it can be forged).
AXES_FAILURE_LIMIT = env_int("TRUSTLADDER_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TRUSTLADDER_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
AXES_USERNAME_CALLABLE = "config.auth.axes_username"

# ---------------------------------------------------------------------------------------
# Agent API
# ---------------------------------------------------------------------------------------
# Bodies above this size are refused with 413 before they are parsed.
API_MAX_BODY_BYTES = 256 * 1024
# Batch endpoints carry up to 1000 items: a larger limit for these paths only.
API_BODY_LIMITS = {"/api/v1/outcomes": 4 * 1024 * 1024}
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, *API_BODY_LIMITS.values())
# An Idempotency-Key is remembered at least this long (IETF httpapi draft: >= 24 h).
IDEMPOTENCY_KEY_TTL = timedelta(hours=env_int("TRUSTLADDER_IDEMPOTENCY_TTL_HOURS", 48))
# A request that claimed a key but never finished (crashed worker) is taken over after this.
IDEMPOTENCY_IN_FLIGHT_TIMEOUT = timedelta(seconds=env_int("TRUSTLADDER_IDEMPOTENCY_IN_FLIGHT_SECONDS", 60))
# Requests per minute per API key (429 with Retry-After past it); a deployment may set its
# own (Deployment.api_rate_limit). Counted in Redis when REDIS_URL is set, else in the database,
# so the limit holds across web workers. 0 turns the limit off.
API_RATE_LIMIT_PER_MINUTE = env_int("TRUSTLADDER_API_RATE_LIMIT_PER_MINUTE", 600)

# bench/ingest.py's floor: a trivial view at /bench/noop. Never set it in a real deployment.
BENCH_NOOP = env_bool("TRUSTLADDER_BENCH_NOOP", False)

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
# Above the longest task (WORKER_TASKS' time limits below), so a slow task is not redelivered
# while it still runs.
BROKER_VISIBILITY_TIMEOUT = 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict = {
    # Circuit breakers (SPEC §3): every minute, each stage-3/4 deployment's sliding window.
    "deployments.breakers_check_all": {
        "task": "deployments.breakers_check_all",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 55},
    },
    # Old breaker minute buckets and blast-radius budget rows.
    "deployments.purge_windows": {"task": "deployments.purge_windows", "schedule": timedelta(hours=1)},
    # Past days' evidence counter shards folded into one row each.
    "deployments.fold_evidence": {"task": "deployments.fold_evidence", "schedule": timedelta(hours=1)},
    # The audit log's hash chain (deployments.auditchain): sealed every minute, checked daily.
    "deployments.audit_chain_seal": {"task": "deployments.audit_chain_seal", "schedule": timedelta(minutes=1)},
    "deployments.audit_chain_verify": {"task": "deployments.audit_chain_verify", "schedule": timedelta(days=1)},
    # Re-certification (SPEC §8): the gate into each deployment's stage, checked again daily
    # (hourly beats; each deployment is checked once a day, deployments.recertify).
    "deployments.recertify_all": {
        "task": "deployments.recertify_all",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
}

# ---------------------------------------------------------------------------------------
# Webhook deliveries (deliveries app) — Standard Webhooks, https://www.standardwebhooks.com/
# ---------------------------------------------------------------------------------------
# A receiver must answer within this many seconds.
WEBHOOK_TIMEOUT_SECONDS = env_float("TRUSTLADDER_WEBHOOK_TIMEOUT_SECONDS", 10)
# Retries: exponential from BASE, each wait capped at MAX, with jitter; given up after RETRY_FOR.
WEBHOOK_RETRY_BASE_SECONDS = env_float("TRUSTLADDER_WEBHOOK_RETRY_BASE_SECONDS", 10)
WEBHOOK_RETRY_MAX_SECONDS = env_float("TRUSTLADDER_WEBHOOK_RETRY_MAX_SECONDS", 3600)
WEBHOOK_RETRY_FOR = timedelta(hours=env_float("TRUSTLADDER_WEBHOOK_RETRY_HOURS", 24))
# A worker's claim on a delivery; must exceed the timeout, so a slow live attempt is never doubled.
WEBHOOK_LEASE_SECONDS = WEBHOOK_TIMEOUT_SECONDS + env_float("TRUSTLADDER_WEBHOOK_LEASE_MARGIN_SECONDS", 50)
# The sweeper hands on a due delivery only once it has been due this long without a worker
# claiming it (its message was lost: a broker restart, a crash between commit and send), and
# then not again for as long: a backlog longer than one sweep is never queued twice per sweep.
WEBHOOK_SWEEP_GRACE_SECONDS = env_float("TRUSTLADDER_WEBHOOK_SWEEP_GRACE_SECONDS", 60)
# Waits up to this long are scheduled as a Celery countdown; longer ones are left to the sweeper
# (kept well below the broker's visibility timeout).
WEBHOOK_COUNTDOWN_MAX_SECONDS = 300.0
# After a rotation the previous secret signs too (a second signature) for this long.
WEBHOOK_SECRET_ROTATION_GRACE = timedelta(hours=24)
# The deliveries page shows successes this recent (failures whatever their age).
WEBHOOK_PAGE_WINDOW = timedelta(days=7)
# Delivered and given-up deliveries (with their attempts) are deleted after this long.
WEBHOOK_RETENTION = timedelta(days=env_int("TRUSTLADDER_WEBHOOK_RETENTION_DAYS", 30))
# Off: deliveries connect only to public addresses (checked as they connect, after DNS), and the
# API refuses a callback_url whose host is a non-public IP literal or localhost (SSRF: loopback,
# the private network, cloud metadata at 169.254.169.254). On in local and test settings.
TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = env_bool("TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE", False)


def _every(seconds: float) -> dict:
    # A periodic message nobody picked up before the next one is due is dropped, not piled up.
    return {"schedule": seconds, "options": {"expires": seconds}}


# Queues: a worker started without -Q consumes every queue listed here; `-Q deliveries` gives
# webhook deliveries (slow receivers) workers of their own.
CELERY_TASK_QUEUES = [Queue("default"), Queue("deliveries")]
# Every task, one row each: its queue and its hard time limit in seconds. Tasks are routed by
# name from this one table (Celery 5.7 deprecates the `queue=` task attribute). Each limit is
# below the broker's visibility timeout, so a message is never handed to a second worker while
# the first still runs it; the soft limit (90 %) raises SoftTimeLimitExceeded in the task first,
# and every task is safe to repeat. tests/test_celery_config.py fails for a task without a row.
WORKER_TASKS: dict[str, tuple[str, float]] = {
    "deployments.breakers_check_all": ("default", 300),
    "deployments.breaker_notify": ("default", 120),
    "deployments.purge_windows": ("default", 900),
    "deployments.fold_evidence": ("default", 900),
    # The audit log's hash chain: sealing runs every minute; a full check walks every event.
    "deployments.audit_chain_seal": ("default", 300),
    "deployments.audit_chain_verify": ("default", 3000),
    # One check per deployment, a handful of grouped counter reads each (deployments.recertify).
    "deployments.recertify_all": ("default", 900),
    "deployments.recertification_notify": ("default", 120),
    "reviews.expire_overdue_actions": ("default", 900),
    "reviews.release_stale_claims": ("default", 300),
    "reviews.escalate_due_actions": ("default", 900),
    "reviews.escalation_notify": ("default", 120),
    "reviews.purge_idempotency_keys": ("default", 900),
    "reviews.shadow_compare_actions": ("default", 600),
    "reviews.shadow_compare_sweep": ("default", 1800),
    # Commits its progress batch by batch; on the soft limit it records the recompute as failed.
    "reviews.shadow_recompute": ("default", 3000),
    # A backstop only: each attempt is bounded by WEBHOOK_TIMEOUT_SECONDS.
    "deliveries.deliver": ("deliveries", 300),
    "deliveries.sweep": ("deliveries", 300),
    "deliveries.purge": ("deliveries", 900),
    # Slack approvals (integrations.slack): a few Web API calls each, 10 s timeout per call.
    "integrations.slack_action_sync": ("default", 90),
    "integrations.slack_breaker_tripped": ("default", 90),
    "integrations.slack_sla_warnings": ("default", 280),
}
CELERY_TASK_ROUTES = {name: {"queue": queue} for name, (queue, _limit) in WORKER_TASKS.items()}
CELERY_TASK_ANNOTATIONS = {
    name: {"time_limit": limit, "soft_time_limit": limit * 0.9} for name, (_queue, limit) in WORKER_TASKS.items()
}
# Periodic work of reviews and the outbox, run by `celery -A config.celery_app beat`. Each task is
# safe to repeat.
CELERY_BEAT_SCHEDULE["expire-overdue-actions"] = {"task": "reviews.expire_overdue_actions", **_every(60.0)}
CELERY_BEAT_SCHEDULE["escalate-due-actions"] = {"task": "reviews.escalate_due_actions", **_every(60.0)}
CELERY_BEAT_SCHEDULE["release-stale-claims"] = {"task": "reviews.release_stale_claims", **_every(60.0)}
CELERY_BEAT_SCHEDULE["purge-idempotency-keys"] = {"task": "reviews.purge_idempotency_keys", **_every(3600.0)}
CELERY_BEAT_SCHEDULE["sweep-webhook-outbox"] = {
    "task": "deliveries.sweep",
    **_every(env_float("TRUSTLADDER_WEBHOOK_SWEEP_SECONDS", 30)),
}
CELERY_BEAT_SCHEDULE["purge-old-deliveries"] = {"task": "deliveries.purge", **_every(3600.0)}
# Shadow mode: compare pairs whose on-commit enqueue was lost (a crash between commit and send).
CELERY_BEAT_SCHEDULE["shadow-compare-sweep"] = {"task": "reviews.shadow_compare_sweep", "schedule": 600.0}

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
# Circuit breaker notifications — admins (Members with role admin and an email) get an email;
# with TRUSTLADDER_SLACK_WEBHOOK_URL set, a Slack-compatible incoming webhook gets {"text": ...}.
# https://docs.djangoproject.com/en/5.2/topics/email/
# ---------------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "trustladder@localhost")
TRUSTLADDER_SLACK_WEBHOOK_URL = env("TRUSTLADDER_SLACK_WEBHOOK_URL", "")
# Keep breaker minute buckets this long (the trailing volume baseline reads back 25 h).
TRUSTLADDER_BREAKER_RETENTION = timedelta(days=3)

# ---------------------------------------------------------------------------------------
# Review queues
# ---------------------------------------------------------------------------------------
# A claimed item is offered to nobody else for this long.
REVIEW_CLAIM_TIMEOUT = timedelta(minutes=env_int("TRUSTLADDER_CLAIM_TIMEOUT_MINUTES", 10))

# ---------------------------------------------------------------------------------------
# Integrations (SPEC §9): the MCP server, Slack approvals. OpenTelemetry is configured from
# the standard OTEL_* variables (integrations/otel.py); README "Reach".
# ---------------------------------------------------------------------------------------
# Links in Slack messages point here (no trailing slash), e.g. https://trustladder.example.com
TRUSTLADDER_BASE_URL = env("TRUSTLADDER_BASE_URL", "http://localhost:8000").rstrip("/")
# Slack app: the bot token (xoxb-…, scope chat:write) and the signing secret of interactions.
TRUSTLADDER_SLACK_BOT_TOKEN = env("TRUSTLADDER_SLACK_BOT_TOKEN", "")
TRUSTLADDER_SLACK_SIGNING_SECRET = env("TRUSTLADDER_SLACK_SIGNING_SECRET", "")
# The Web API's base URL (tests point it at a local fake).
TRUSTLADDER_SLACK_API_URL = env("TRUSTLADDER_SLACK_API_URL", "https://slack.com/api/")
# Only this workspace's clicks count, when set (the team id, T…).
TRUSTLADDER_SLACK_TEAM_ID = env("TRUSTLADDER_SLACK_TEAM_ID", "")
# A pending item is posted as "near its SLA" once this share of its SLA is left.
TRUSTLADDER_SLACK_SLA_WARN_FRACTION = env_float("TRUSTLADDER_SLACK_SLA_WARN_FRACTION", 0.2)
CELERY_BEAT_SCHEDULE["slack-sla-warnings"] = {"task": "integrations.slack_sla_warnings", **_every(300.0)}
# MCP: wait_for_decision answers with the current state after at most this many seconds.
TRUSTLADDER_MCP_MAX_WAIT_SECONDS = env_float("TRUSTLADDER_MCP_MAX_WAIT_SECONDS", 60)
# How often a waiting MCP tool (and the gateway) reads the action again.
TRUSTLADDER_MCP_POLL_SECONDS = env_float("TRUSTLADDER_MCP_POLL_SECONDS", 1)
