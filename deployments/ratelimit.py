"""Per-key rate limit of the agent API: a fixed-window counter shared by every web worker.

With REDIS_URL the counter is a Redis key (`INCR`, and `EXPIRE` on a window's first hit, in
one Lua script); without it, one row per bucket in the database, bumped by a single upsert.
Both are atomic, so concurrent workers never lose a hit. A fixed window lets a client send up
to twice the limit across a window boundary; that is the accepted price of one round trip
per request.

If Redis cannot be reached the request is let through (and logged): the limiter guards
against floods, and must not turn a Redis outage into an API outage.
"""

import logging
import math
import time
from functools import cache

from django.conf import settings
from django.db import connection

from deployments.models import RateLimitBucket

log = logging.getLogger(__name__)
_last_warning = -math.inf


@cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


# INCR, and on the window's first hit EXPIRE: one atomic round trip (EVALSHA).
_INCR_WITH_EXPIRY = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


@cache
def _incr_script(client):
    return client.register_script(_INCR_WITH_EXPIRY)


def _hit_redis(bucket: str, window: int, period: int) -> int | None:
    import redis

    key = f"trustladder:ratelimit:{bucket}:{window}"
    try:
        count = _incr_script(_redis())(keys=[key], args=[period + 1])
    except redis.RedisError as exc:
        global _last_warning
        if time.monotonic() - _last_warning > 60:  # one line a minute per process, not one per request
            _last_warning = time.monotonic()
            log.warning("rate limiter: Redis unavailable (%s); letting requests through", type(exc).__name__)
        return None
    return int(count)


def _hit_database(bucket: str, window: int) -> int:
    table = RateLimitBucket._meta.db_table
    with connection.cursor() as cursor:
        # One statement: a new window restarts the count, the same window adds one.
        cursor.execute(
            f"""
            INSERT INTO {table} (bucket, window_no, count) VALUES (%s, %s, 1)
            ON CONFLICT (bucket) DO UPDATE SET
                count = CASE WHEN {table}.window_no = excluded.window_no THEN {table}.count + 1 ELSE 1 END,
                window_no = excluded.window_no
            RETURNING count
            """,  # noqa: S608 -- the table name is ours, every value is a parameter
            [bucket, window],
        )
        return int(cursor.fetchone()[0])


def rate_limit_hit(*, bucket: str, limit: int, period: int = 60, now: float | None = None) -> float | None:
    """Count one request in `bucket`; None when it is within `limit` per `period` seconds,
    else the seconds until the window ends (the Retry-After). A limit of 0 means no limit."""
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    window = math.floor(now / period)
    count = _hit_redis(bucket, window, period) if settings.REDIS_URL else _hit_database(bucket, window)
    if count is None or count <= limit:
        return None
    return max((window + 1) * period - now, 0.001)
