"""API rate limit per key: 429 with Retry-After, shared by every worker (Redis or database)."""

import threading
import uuid

import pytest
from django.db import connection
from django.test import override_settings

from deployments.ratelimit import rate_limit_hit
from deployments.services import api_key_create
from tests.conftest import ApiClient, proposal


def _bucket() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.mark.django_db
def test_the_key_is_refused_with_429_and_retry_after_past_its_deployments_limit(deployment, api):
    deployment.api_rate_limit = 3
    deployment.save(update_fields=["api_rate_limit"])
    for _ in range(3):
        assert api.get("/api/v1/deployment").status_code == 200
    refused = api.post("/api/v1/actions", proposal())
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited" and refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Another key of the same deployment has its own budget.
    _, other = api_key_create(deployment=deployment)
    assert ApiClient(other).get("/api/v1/deployment").status_code == 200


@pytest.mark.django_db
def test_the_site_default_applies_and_zero_means_no_limit(deployment, api):
    with override_settings(API_RATE_LIMIT_PER_MINUTE=2):
        assert [api.get("/api/v1/deployment").status_code for _ in range(3)] == [200, 200, 429]
    deployment.api_rate_limit = 0
    deployment.save(update_fields=["api_rate_limit"])
    assert {api.get("/api/v1/deployment").status_code for _ in range(5)} == {200}


@pytest.mark.django_db
def test_unauthenticated_requests_are_refused_before_counting(deployment, api):
    deployment.api_rate_limit = 1
    deployment.save(update_fields=["api_rate_limit"])
    assert {ApiClient("tl_not-a-key").get("/api/v1/deployment").status_code for _ in range(3)} == {401}
    assert api.get("/api/v1/deployment").status_code == 200


@pytest.mark.django_db
@override_settings(REDIS_URL="")
def test_database_counter_windows():
    bucket = _bucket()
    assert [rate_limit_hit(bucket=bucket, limit=2, period=60, now=120.0) for _ in range(2)] == [None, None]
    assert rate_limit_hit(bucket=bucket, limit=2, period=60, now=150.0) == pytest.approx(30.0)
    # The next window starts the count afresh.
    assert rate_limit_hit(bucket=bucket, limit=2, period=60, now=180.0) is None


@pytest.mark.redis
def test_redis_counter_windows():
    bucket = _bucket()
    assert [rate_limit_hit(bucket=bucket, limit=2, period=60, now=120.0) for _ in range(2)] == [None, None]
    assert rate_limit_hit(bucket=bucket, limit=2, period=60, now=179.5) == pytest.approx(0.5)
    assert rate_limit_hit(bucket=bucket, limit=2, period=60, now=180.0) is None
    # Each window's key expires after the window (set on its first hit, kept by later ones).
    from deployments.ratelimit import _redis

    for window in (2, 3):
        ttl = _redis().ttl(f"trustladder:ratelimit:{bucket}:{window}")
        assert 0 < ttl <= 61, (window, ttl)


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_an_unreachable_redis_lets_requests_through():
    from deployments import ratelimit

    ratelimit._redis.cache_clear()
    try:
        assert rate_limit_hit(bucket=_bucket(), limit=1, period=60) is None
        assert rate_limit_hit(bucket=_bucket(), limit=1, period=60) is None
    finally:
        ratelimit._redis.cache_clear()


def _hammer(limit: int, threads: int, bucket: str, hits: int = 1) -> list:
    """`threads` threads, started together, each counting `hits` hits in `bucket`."""
    results: list = []
    barrier = threading.Barrier(threads)

    def hit():
        try:
            barrier.wait()
            for _ in range(hits):
                results.append(rate_limit_hit(bucket=bucket, limit=limit, period=3600))
        finally:
            connection.close()

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(REDIS_URL="")
def test_concurrent_hits_on_postgres_are_never_lost():
    """The upsert is atomic: with 16 concurrent hits and a limit of 10, exactly 10 pass."""
    results = _hammer(limit=10, threads=16, bucket=_bucket())
    assert len(results) == 16
    assert sum(r is None for r in results) == 10


@pytest.mark.redis
def test_concurrent_hits_on_redis_are_never_lost():
    results = _hammer(limit=10, threads=16, bucket=_bucket())
    assert sum(r is None for r in results) == 10


def _as_processes(count: int, hits: int, *, bucket: str, limit: int, period: int = 3600) -> tuple[int, int]:
    """`hits` spread in turn over `count` worker processes, each with its own leases (this
    module's state, swapped); returns (hits let through, round trips to the shared counter)."""
    from deployments import ratelimit

    leases = [{} for _ in range(count)]
    trips = 0
    counters = {"redis": ratelimit._hit_redis, "db": ratelimit._hit_database}

    def counted(name):
        def call(*args):
            nonlocal trips
            trips += 1
            return counters[name](*args)

        return call

    saved = ratelimit._leases
    allowed = 0
    try:
        ratelimit._hit_redis, ratelimit._hit_database = counted("redis"), counted("db")
        for i in range(hits):
            ratelimit._leases = leases[i % count]
            allowed += rate_limit_hit(bucket=bucket, limit=limit, period=period, now=7200.0) is None
    finally:
        ratelimit._leases = saved
        ratelimit._hit_redis, ratelimit._hit_database = counters["redis"], counters["db"]
    return allowed, trips


@pytest.mark.parametrize(
    "backend",
    [pytest.param("redis", marks=pytest.mark.redis), pytest.param("db", marks=pytest.mark.postgres)],
)
@pytest.mark.django_db
def test_a_high_limit_is_leased_and_never_exceeded(backend, settings):
    """limit 500 a window: leases of 10. Over three workers, at most 500 pass, and at most
    (10 - 1) x 2 fewer (leased by one worker, unspent); about one round trip per 10 hits."""
    if backend == "db":
        settings.REDIS_URL = ""
    allowed, trips = _as_processes(3, 700, bucket=_bucket(), limit=500)
    assert 500 - 9 * 2 <= allowed <= 500
    assert trips <= 500 / 10 + 3 + 200  # a lease per 10 passed, one per worker at the end, one per refusal

    # One worker: exactly the limit.
    allowed, trips = _as_processes(1, 700, bucket=_bucket(), limit=500)
    assert allowed == 500
    assert trips == 50 + 200


@pytest.mark.redis
def test_concurrent_threads_of_one_worker_share_its_leases():
    """Threads that lease at once keep both leases: one worker gets exactly its limit."""
    results = _hammer(limit=200, threads=8, hits=40, bucket=_bucket())
    assert sum(r is None for r in results) == 200
