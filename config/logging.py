"""Structured logging: structlog through the standard library, JSON lines or console."""

import structlog


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def build_logging(*, fmt: str, level: str) -> dict:
    """A dictConfig where every record (ours, Django's, Celery's) leaves as one line."""
    renderer = (
        {"()": structlog.stdlib.ProcessorFormatter, "processor": structlog.dev.ConsoleRenderer(colors=False)}
        if fmt == "console"
        else {"()": structlog.stdlib.ProcessorFormatter, "processor": structlog.processors.JSONRenderer()}
    )
    renderer["foreign_pre_chain"] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
    ]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": renderer},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django_structlog": {"level": level},
            # One line per request is enough; django-structlog logs request_started/finished.
            "django.server": {"level": "WARNING"},
        },
    }
