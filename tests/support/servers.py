"""Private servers for tests: a free loopback port, and a redis-server of one test (or of one
fault stack), so stopping or restarting it touches nobody else's broker. Used by
tests/deliveries and tests/faults/stack.py (and through it bench/soak.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = os.environ.get("TRUSTLADDER_REDIS_SERVER", shutil.which("redis-server") or "redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """redis-server on its own port, without persistence (a restart loses everything).

    A child process in its own session, logging to `workdir/redis.log`. `start()` and `stop()`
    may alternate any number of times on the same port; `stop()` is safe to repeat. Every wait
    is bounded: RuntimeError after `timeout` seconds.
    """

    def __init__(self, workdir: Path, *, timeout: float = 20.0) -> None:
        self.workdir = Path(workdir)
        self.timeout = timeout
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def _serving(self) -> bool:
        """Our process answers on the port (not another server that took it meanwhile)."""
        import redis

        try:
            info = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5).info("server")
        except redis.RedisError:
            return False
        return self.process is not None and info.get("process_id") == self.process.pid

    def start(self) -> None:
        binary = shutil.which(REDIS_SERVER)
        if not binary:
            raise RuntimeError(f"{REDIS_SERVER} is not installed")
        if self.alive():
            raise RuntimeError(f"private redis-server on port {self.port} is already running")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--daemonize", "no", "--dir", str(self.workdir)]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                argv, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.timeout
        while not self._serving():
            if not self.alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"private redis-server did not start on port {self.port}:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM (no save: persistence is off), SIGKILL after `timeout`, and reap."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=self.timeout)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
