"""The private redis-server that tests/deliveries and tests/faults stop and restart."""

import shutil

import pytest
import redis

from tests.support.servers import REDIS_SERVER, PrivateRedis

pytestmark = pytest.mark.skipif(not shutil.which(REDIS_SERVER), reason="needs redis-server")


def test_private_redis_restarts_on_its_port_empty_and_stops_for_good(tmp_path):
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        redis.Redis.from_url(server.url).set("k", "v")
        server.stop()
        assert not server.alive() and not server.ping()
        server.stop()  # safe to repeat

        server.start()  # same port, no persistence
        assert server.url.endswith(f":{server.port}/0")
        assert redis.Redis.from_url(server.url).get("k") is None
    finally:
        server.stop()
    assert not server.ping()


def test_a_second_server_on_a_taken_port_fails_fast_with_its_log(tmp_path):
    first = PrivateRedis(tmp_path / "a")
    second = PrivateRedis(tmp_path / "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    second.port = first.port
    try:
        first.start()
        with pytest.raises(RuntimeError, match="did not start"):
            second.start()
        assert not second.alive() and first.ping()
    finally:
        second.stop()
        first.stop()
