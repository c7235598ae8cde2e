"""A private, production-like Trustladder stack on loopback, owned by whoever starts it.

PostgreSQL (its own data directory and port), Redis (its own port, no persistence), gunicorn
with the production settings, Celery workers and beat: each a child process that the owner
stops, restarts and kills at will, without touching any shared service. Used by the fault
tests (tests/faults/) and by the soak (bench/soak.py).

Every wait here is bounded; `Stack.close()` kills every process it started (process groups)
and removes the temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from tests.support.servers import REDIS_SERVER, PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("TRUSTLADDER_PG_BIN", "/usr/lib/postgresql/15/bin"))
SECRET_KEY = "fault-tests-only-" + "x" * 50


class StackError(RuntimeError):
    pass


def missing_binaries() -> list[str]:
    """What the stack needs and this machine lacks."""
    missing = [str(PG_BIN / b) for b in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / b).exists()]
    if not shutil.which(REDIS_SERVER):
        missing.append("redis-server")
    return missing


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `predicate` until true; StackError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: S110 — not ready yet is any failure
            pass
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def _as_postgres() -> dict:
    """Run PostgreSQL's programs as the postgres user when we are root (initdb refuses root)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict, log: Path, cwd: Path = ROOT) -> None:
        self.name, self.argv, self.env, self.log, self.cwd = name, argv, env, log, cwd
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603
                self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL it after `timeout`, and reap."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.signal_group(signal.SIGKILL)  # leftovers of the group (pool children)

    def kill(self) -> None:
        """SIGKILL the whole group at once (no clean shutdown) and reap."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def children(self) -> list[int]:
        """Direct children's pids (Linux /proc)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class PrivatePostgres:
    """A throwaway PostgreSQL cluster: initdb into a temporary directory, its own port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "pgdata"
        self.log = base / "postgres.log"
        self.port = free_port()
        self.database = "trustladder"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, argv: list[str], timeout: float = 120) -> None:
        result = subprocess.run(  # noqa: S603
            argv, cwd=self.base, capture_output=True, text=True, timeout=timeout, **_as_postgres()
        )
        if result.returncode != 0:
            raise StackError(f"{' '.join(argv)} failed: {result.stdout}\n{result.stderr}\n{self.tail()}")

    def init(self) -> None:
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        self.start()
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=60"
        )
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        """mode: fast (clients disconnected, clean shutdown) or immediate (a crash: WAL recovery on start)."""
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    """PostgreSQL + Redis + gunicorn (+ Celery workers and beat on demand), all private."""

    def __init__(self, *, web_workers: int = 2, extra_env: dict | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tl-stack-"))
        os.chmod(self.base, 0o755)  # noqa: S103 — PostgreSQL (another user) puts its socket here
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.logs = self.base / "logs"
        self.logs.mkdir()
        os.chmod(self.logs, 0o777)  # noqa: S103
        self.pg = PrivatePostgres(self.base)
        self.web_port = free_port()
        self.web_workers = web_workers
        self.extra_env = extra_env or {}
        self.processes: list[Process] = []
        self.redis = PrivateRedis(self.logs)
        self.web: Process | None = None

    # -- environment ------------------------------------------------------------------
    def _base_env(self) -> dict:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "TRUSTLADDER_", "PROMETHEUS_", "GUNICORN_", "CELERY_"))
            and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env["PYTHONUNBUFFERED"] = "1"
        return env

    @property
    def env(self) -> dict:
        env = self._base_env()
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.production",
                "DJANGO_SECRET_KEY": SECRET_KEY,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "DJANGO_SECURE_SSL_REDIRECT": "false",
                "DJANGO_LOG_LEVEL": "WARNING",
                "TRUSTLADDER_LOG_FORMAT": "console",
                "DATABASE_URL": self.pg.url,
                "REDIS_URL": self.redis.url,
                # A request killed mid-flight leaves its Idempotency-Key claimed; take it over soon.
                "TRUSTLADDER_IDEMPOTENCY_IN_FLIGHT_SECONDS": "3",
                # The load here is the test's own; the per-key rate limit is tested in tests/security.
                "TRUSTLADDER_API_RATE_LIMIT_PER_MINUTE": "0",
                # Webhook outbox: short timeouts, leases, backoff and sweeps, so recovery is quick.
                "TRUSTLADDER_WEBHOOK_TIMEOUT_SECONDS": "3",
                "TRUSTLADDER_WEBHOOK_LEASE_MARGIN_SECONDS": "2",
                "TRUSTLADDER_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
                "TRUSTLADDER_WEBHOOK_RETRY_MAX_SECONDS": "2",
                "TRUSTLADDER_WEBHOOK_SWEEP_SECONDS": "1",
                "TRUSTLADDER_WEBHOOK_SWEEP_GRACE_SECONDS": "2",
                # The receivers listen on 127.0.0.1, which production settings refuse by default.
                "TRUSTLADDER_WEBHOOK_ALLOW_PRIVATE": "true",
            }
        )
        env.update(self.extra_env)
        return env

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    # -- lifecycle --------------------------------------------------------------------
    def start(self, *, web: bool = True) -> Stack:
        try:
            self.pg.init()
            self.redis.start()
            self.manage("migrate", "--noinput", timeout=300)
            if web:
                self.start_web()
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, name: str, argv: list[str], *, env: dict | None = None) -> Process:
        process = Process(name, argv, env={**self.env, **(env or {})}, log=self.logs / f"{name}.log").start()
        self.processes.append(process)
        return process

    def start_web(self) -> Process:
        env_bind = {"GUNICORN_BIND": f"127.0.0.1:{self.web_port}", "GUNICORN_WORKERS": str(self.web_workers)}
        self.extra_env.update(env_bind)
        self.web = self._spawn(
            "gunicorn", [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"]
        )
        wait_for(self.web_ready, timeout=60, what=f"gunicorn on {self.base_url}\n{self.web.tail()}")
        return self.web

    def web_ready(self) -> bool:
        assert self.web is not None
        if not self.web.alive():
            raise StackError(f"gunicorn exited:\n{self.web.tail()}")
        ready = httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200
        return ready and len(self.web.children()) == self.web_workers

    def start_worker(
        self, name: str = "worker", *, concurrency: int = 2, queues: str = "default,deliveries"
    ) -> Process:
        return self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config.celery_app",
                "worker",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "-n",
                f"{name}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
            ],
        )

    def start_beat(self) -> Process:
        return self._spawn(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config.celery_app",
                "beat",
                "-s",
                str(self.logs / "beat-schedule"),
                "-l",
                "WARNING",
            ],
        )

    def start_script(self, name: str, code: str, *, env: dict | None = None) -> Process:
        """Run `code` in a long-lived `manage.py shell -c` against this stack (a reviewer who keeps
        deciding, say), with `env` on top of the stack's; its output goes to logs/<name>.log, and
        close() kills it if still running."""
        return self._spawn(name, [sys.executable, "manage.py", "shell", "-c", code], env=env)

    def close(self) -> None:
        """Kill everything this stack started, stop PostgreSQL, remove the directory."""
        for process in reversed(self.processes):
            process.stop(timeout=5)
        self.redis.stop()
        if self.pg.running():
            with contextlib.suppress(StackError):
                self.pg.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Django in a subprocess against this stack ----------------------------------------
    def manage(self, *args: str, timeout: float = 120) -> str:
        # JSON logs: the console format renders each logged traceback (a "could not enqueue" with
        # the broker down, say) with its locals, which takes seconds on a busy machine.
        result = subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, "TRUSTLADDER_LOG_FORMAT": "json"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def seed(self, *, slug: str, stage: str = "supervised", reviewers: int = 1, review_sla_seconds: int = 0) -> dict:
        """A deployment with an API key and reviewers (password "pw-<username>"); returns ids and the key."""
        code = f"""
import json
from datetime import timedelta
from deployments.models import Member
from deployments.services import api_key_create, deployment_create, member_create
sla = {{"review_sla": timedelta(seconds={review_sla_seconds})}} if {review_sla_seconds} else {{}}
d = deployment_create(slug={slug!r}, name={slug!r}, stage={stage!r}, actor_label="fault-tests", **sla)
_, raw = api_key_create(deployment=d)
names = []
for i in range({reviewers}):
    name = f"{slug}-reviewer-{{i}}"
    member_create(username=name, role=Member.Role.SENIOR, password="pw-" + name, deployments=[d])
    names.append(name)
print(json.dumps({{"deployment_id": d.pk, "slug": d.slug, "key": raw, "reviewers": names,
                  "webhook_secret": d.webhook_secret}}))
"""
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def decide_pending(self, *, deployment_id: int, username: str, limit: int = 1000) -> dict[int, str]:
        """As `username`, decide the deployment's pending actions through reviews.services (the
        service the browser's decide view calls): every third rejected, the rest approved.
        Returns {action id: "approve" or "reject"}."""
        code = f"""
import json
from django.contrib.auth import get_user_model
from reviews.models import ProposedAction
from reviews.services import proposed_action_approve, proposed_action_reject
user = get_user_model().objects.get(username={username!r})
pending = ProposedAction.objects.filter(deployment_id={deployment_id}, status__in=ProposedAction.PENDING_STATUSES)
decided = {{}}
for i, pk in enumerate(pending.order_by("id").values_list("pk", flat=True)[:{limit}]):
    if i % 3 == 2:
        proposed_action_reject(action_id=pk, actor=user, reason="fault tests")
        decided[pk] = "reject"
    else:
        proposed_action_approve(action_id=pk, actor=user)
        decided[pk] = "approve"
print(json.dumps(decided))
"""
        return {int(k): v for k, v in json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1]).items()}

    def propose_pending(self, *, deployment_id: int, n: int, callback_url: str = "") -> list[int]:
        """Create `n` actions for the reviewer queue through reviews.services; returns their ids."""
        code = f"""
import json
from deployments.models import Deployment
from reviews.services import Proposal, proposed_action_create
d = Deployment.objects.get(pk={deployment_id})
ids = [
    proposed_action_create(deployment=d, proposal=Proposal(action_type="refund.issue", payload={{"n": i}},
                           risk_score=0.5, confidence=0.5, callback_url={callback_url!r})).pk
    for i in range({n})
]
print(json.dumps(ids))
"""
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def celery_call(self, task: str, *, queue: str = "default") -> None:
        """Send one message for `task` to the broker (as beat would)."""
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "celery", "-A", "config.celery_app", "call", task, "--queue", queue],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise StackError(f"celery call {task} failed:\n{result.stdout}\n{result.stderr}")

    # -- the web workers ------------------------------------------------------------------
    def web_worker_pids(self) -> list[int]:
        assert self.web is not None
        return self.web.children()
