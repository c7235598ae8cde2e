"""Production settings: secure by default; `manage.py check --deploy` is clean with these.

Required: DJANGO_SECRET_KEY (50+ random characters), DJANGO_ALLOWED_HOSTS, DATABASE_URL.
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env, env_bool, env_int

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to at least 50 random characters.")

# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_AGE = 8 * 3600
# "__Host-" cookies are Secure, host-only and Path=/: a sibling subdomain cannot set them.
SESSION_COOKIE_NAME = "__Host-trustladder_session"
CSRF_COOKIE_NAME = "__Host-csrftoken"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
# Webhooks only to public addresses unless the operator says otherwise (base.py).
TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = env_bool("TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE", False)
