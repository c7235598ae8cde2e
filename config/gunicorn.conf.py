"""Gunicorn settings for production (`gunicorn -c config/gunicorn.conf.py config.wsgi`)."""

import os


def _env(name: str, default: str) -> str:
    # An empty variable counts as unset, as in config/env.py (gunicorn loads this file by path,
    # before Django, so it does not import the project).
    return os.environ.get(name) or default


bind = _env("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(_env("GUNICORN_WORKERS", "2"))
# Threads (gunicorn's gthread worker): a request spends much of its time waiting for
# PostgreSQL (round trips, the commit's disk flush); with threads a worker serves another
# request meanwhile. bench/ingest.py measured +25-40 % agent-API throughput with 4 threads
# over sync workers on 2 cores (docs/performance.md). GUNICORN_THREADS=1: sync workers.
threads = int(_env("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 30
accesslog = None  # django-structlog logs one line per request, with its request id
forwarded_allow_ips = _env("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker) -> None:
    """Drop a dead worker's metric files (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
