"""Gunicorn settings for production (`gunicorn -c config/gunicorn.conf.py config.wsgi`)."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Threads (gunicorn's gthread worker): a request spends much of its time waiting for
# PostgreSQL (round trips, the commit's disk flush); with threads a worker serves another
# request meanwhile. bench/ingest.py measured +25-40 % agent-API throughput with 4 threads
# over sync workers on 2 cores (docs/performance.md). GUNICORN_THREADS=1: sync workers.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 30
accesslog = None  # django-structlog logs one line per request, with its request id
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker) -> None:
    """Drop a dead worker's metric files (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
