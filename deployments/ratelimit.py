"""Per-key rate limit of the agent API: a fixed-window counter shared by every web worker.

With REDIS_URL the counter is a Redis key (`INCRBY`, and `EXPIRE` on a window's first hit, in
one Lua script); without it, one row per bucket in the database, bumped by a single upsert.
Both are atomic, so concurrent workers never lose a hit. A fixed window lets a client send up
to twice the limit across a window boundary; that is the accepted price of a cheap counter.

Leases: under a high limit a worker process does not ask the shared counter for every
request. It takes a lease of several hits at once (LEASE_PER_LIMIT of the limit, at most
LEASE_MAX) and spends it locally, so a busy key costs one round trip per lease instead of one
per request. The shared counter still hands out at most `limit` hits per window in all (a
lease is cut to what is left), so no key ever gets past its limit; the price is that hits
leased by one worker and not yet spent are not available to another, so a key spread over
several workers may be refused up to (lease - 1) x (workers - 1) requests early. Limits
under 1/LEASE_PER_LIMIT per window lease one hit at a time: exact, as without leases.

If Redis cannot be reached the request is let through (and logged): the limiter guards
against floods, and must not turn a Redis outage into an API outage.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import connection

from deployments.models import RateLimitBucket

log = logging.getLogger(__name__)
_last_warning = -math.inf


@cache
def _redis():
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


# INCRBY, and on the window's first hit EXPIRE: one atomic round trip (EVALSHA).
_INCR_WITH_EXPIRY = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# A lease is this share of the limit, and never more than LEASE_MAX hits.
LEASE_PER_LIMIT = 1 / 50
LEASE_MAX = 32


@cache
def _incr_script(client):
    return client.register_script(_INCR_WITH_EXPIRY)


def _hit_redis(bucket: str, window: int, period: int, n: int) -> int | None:
    key = f"trustladder:ratelimit:{bucket}:{window}"
    try:
        count = _incr_script(_redis())(keys=[key], args=[period + 1, n])
    except redis.RedisError as exc:
        global _last_warning
        if time.monotonic() - _last_warning > 60:  # one line a minute per process, not one per request
            _last_warning = time.monotonic()
            log.warning("rate limiter: Redis unavailable (%s); letting requests through", type(exc).__name__)
        return None
    return int(count)


def _hit_database(bucket: str, window: int, n: int) -> int:
    table = RateLimitBucket._meta.db_table
    with connection.cursor() as cursor:
        # One statement: a new window restarts the count, the same window adds n.
        cursor.execute(
            f"""
            INSERT INTO {table} (bucket, window_no, count) VALUES (%s, %s, %s)
            ON CONFLICT (bucket) DO UPDATE SET
                count = CASE WHEN {table}.window_no = excluded.window_no
                    THEN {table}.count + excluded.count ELSE excluded.count END,
                window_no = excluded.window_no
            RETURNING count
            """,  # noqa: S608 -- the table name is ours, every value is a parameter
            [bucket, window, n],
        )
        return int(cursor.fetchone()[0])


@dataclass
class _Lease:
    window: int
    left: int  # hits still to spend


# bucket -> this process's lease. The lock makes spending a hit atomic between the threads
# of a gthread worker; it is never held across a round trip.
_leases: dict[str, _Lease] = {}
_leases_lock = threading.Lock()


def _spend_leased(bucket: str, window: int) -> bool:
    with _leases_lock:
        lease = _leases.get(bucket)
        if lease is None or lease.window != window or lease.left <= 0:
            return False
        lease.left -= 1
        return True


def _keep_lease(bucket: str, window: int, left: int) -> None:
    with _leases_lock:
        lease = _leases.get(bucket)
        if lease is not None and lease.window == window:
            lease.left += left  # another thread leased meanwhile: keep both, strand nothing
            return
        if len(_leases) > 10_000:  # buckets of past windows and idle keys: start afresh
            _leases.clear()
        _leases[bucket] = _Lease(window, left)


def rate_limit_hit(*, bucket: str, limit: int, period: int = 60, now: float | None = None) -> float | None:
    """Count one request in `bucket`; None when it is within `limit` per `period` seconds,
    else the seconds until the window ends (the Retry-After). A limit of 0 means no limit."""
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    window = math.floor(now / period)
    if _spend_leased(bucket, window):
        return None
    n = max(1, min(LEASE_MAX, int(limit * LEASE_PER_LIMIT)))
    count = _hit_redis(bucket, window, period, n) if settings.REDIS_URL else _hit_database(bucket, window, n)
    if count is None:
        return None
    granted = min(n, limit - (count - n))  # what was left of the limit, up to n
    if granted <= 0:
        return max((window + 1) * period - now, 0.001)
    if granted > 1:
        _keep_lease(bucket, window, granted - 1)  # this request spends one
    return None
