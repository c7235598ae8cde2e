"""Laptop and demo settings: DEBUG on unless DJANGO_DEBUG says otherwise."""

from config.env import env, env_bool
from config.logging import build_logging

from .base import *  # noqa: F403

DEBUG = env_bool("DJANGO_DEBUG", True)
# The demo's agents and receivers are on this machine.
TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE = env_bool("TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE", True)

# Serve static files straight from the source folders (no collectstatic needed).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Readable logs on a terminal unless asked otherwise.
LOG_FORMAT = env("TRUSTLADDER_LOG_FORMAT", "console")
LOGGING = build_logging(fmt=LOG_FORMAT, level=env("DJANGO_LOG_LEVEL", "INFO"))
