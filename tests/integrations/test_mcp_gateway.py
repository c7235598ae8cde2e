"""The MCP gateway end to end: `manage.py mcp_gateway` as a child process on the test database,
in front of a small upstream MCP server (tests/integrations/upstream_server.py) that records
what it executed, driven over stdio by the MCP SDK's own client."""

import json
import os
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from django.db import connection
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from deployments.models import Member
from reviews.models import ProposedAction
from reviews.services import proposed_action_approve, proposed_action_expire, proposed_action_reject
from tests.deliveries.support import test_database_url as database_url
from tests.factories import DeploymentFactory, MemberFactory
from tests.integrations.support import agent_trace, run_async, same_trace, uvicorn_server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "tests" / "integrations" / "upstream_server.py"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def gateway(tmp_path):
    """`gateway(deployment, tools=None)` → an async context manager yielding (session, upstream log)."""
    log = tmp_path / "upstream.jsonl"
    log.touch()

    @asynccontextmanager
    async def start(deployment, tools: dict | None = None, wait: float = 20, upstream_url: str | None = None):
        args = ["manage.py", "mcp_gateway", deployment.slug, "--wait-seconds", str(wait)]
        if tools is not None:
            (tmp_path / "tools.json").write_text(json.dumps(tools))
            args += ["--tools", str(tmp_path / "tools.json")]
        if upstream_url:
            args += ["--upstream-url", upstream_url]
        else:
            args += ["--upstream-command", sys.executable, str(UPSTREAM)]
        env = {
            **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(),
            "UPSTREAM_LOG": str(log),
            "TRUSTLADDER_MCP_POLL_SECONDS": "0.2",
        }
        params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(ROOT))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session, log

    return start


def in_thread(fn):
    """`fn` for a worker thread: its database connection is closed when it is done."""

    def run():
        try:
            return fn()
        finally:
            connection.close()

    return run


def executed(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def text(result) -> str:
    return " ".join(c.text for c in result.content)


def when_proposed(deployment, count: int = 1, timeout: float = 30) -> ProposedAction:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        actions = list(ProposedAction.objects.filter(deployment=deployment).order_by("pk"))
        if len(actions) >= count:
            return actions[count - 1]
        time.sleep(0.1)
    raise AssertionError("the gateway proposed nothing")


@pytest.fixture
def approval():
    deployment = DeploymentFactory(stage="approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    return deployment, reviewer.user


def test_lists_the_upstream_tools(approval, gateway):
    deployment, _ = approval

    async def go():
        async with gateway(deployment) as (session, _):
            return [t.name for t in (await session.list_tools()).tools]

    assert set(run_async(go)) == {"send_email", "read_file", "flaky", "crash"}


def test_an_approved_call_runs_once_upstream_with_the_edited_arguments(approval, gateway):
    deployment, reviewer = approval
    edited = {"to": "ops@example.com", "body": "refund sent (edited)"}

    async def go():
        tools = {"tools": {"send_email": {"risk_score": 0.4, "confidence": 0.8}}}
        async with gateway(deployment, tools=tools, wait=8) as (
            session,
            log,
        ):

            def decide():
                action = when_proposed(deployment)
                assert executed(log) == []  # waiting: nothing ran upstream
                proposed_action_approve(action_id=action.pk, actor=reviewer, payload=edited)

            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, in_thread(decide))
                with agent_trace(TRACEPARENT):
                    result = await session.call_tool("send_email", {"to": "ops@example.com", "body": "refund sent"})
            again = await session.call_tool("send_email", {"to": "ops@example.com", "body": "refund sent"})
            return result, again, log

    result, again, log = run_async(go)
    assert not result.is_error, text(result)
    # Once, with the edited arguments, and the agent's trace context passed on.
    [ran] = executed(log)
    assert ran["arguments"] == edited and same_trace(ran["traceparent"], TRACEPARENT)
    action = ProposedAction.objects.get(
        deployment=deployment, action_type="send_email", pk=result.meta["trustladder"]["action_id"]
    )
    assert action.status == "executed"
    assert (action.risk_score, action.confidence) == (0.4, 0.8)
    assert same_trace(action.traceparent, TRACEPARENT)
    # The same call again is a new proposal: it waits for a person and never runs by itself.
    assert again.is_error and "Waiting for a person" in text(again)


@pytest.mark.parametrize("outcome", ["reject", "expire"])
def test_rejected_or_expired_calls_never_reach_the_upstream(approval, gateway, outcome):
    deployment, reviewer = approval

    async def go():
        async with gateway(deployment, tools={"default": {"risk_score": 0.4, "confidence": 0.5}}) as (session, log):

            def decide():
                action = when_proposed(deployment)
                if outcome == "reject":
                    proposed_action_reject(action_id=action.pk, actor=reviewer, reason="not this customer")
                else:
                    ProposedAction.objects.filter(pk=action.pk).update(expires_at=action.created_at)
                    proposed_action_expire(action_id=action.pk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, in_thread(decide))
                result = await session.call_tool("read_file", {"path": "/etc/passwd"})
            return result, log

    result, log = run_async(go)
    assert result.is_error
    assert ("rejected: not this customer" if outcome == "reject" else "expired") in text(result)
    assert executed(log) == []


def test_shadow_calls_are_logged_and_never_executed(gateway):
    deployment = DeploymentFactory(stage="shadow")

    async def go():
        async with gateway(deployment, tools={"default": {"risk_score": 0.0, "confidence": 1.0}}) as (session, log):
            return await session.call_tool("send_email", {"to": "a@example.com", "body": "hi"}), log

    result, log = run_async(go)
    assert result.is_error and "shadow" in text(result)
    assert executed(log) == []
    assert ProposedAction.objects.get(deployment=deployment).status == "logged"


def test_auto_route_executes_at_once_and_an_upstream_failure_is_reported(gateway):
    deployment = DeploymentFactory(stage="autonomous")
    tools = {"default": {"risk_score": 0.05, "confidence": 0.99}}

    async def go():
        async with gateway(deployment, tools=tools) as (session, log):
            ok = await session.call_tool("read_file", {"path": "README.md"})
            failing = await session.call_tool("flaky", {"n": 3})
            return ok, failing, log

    ok, failing, log = run_async(go)
    assert not ok.is_error and "read" in text(ok)
    assert failing.is_error and "disk full" in text(failing)
    assert [e["tool"] for e in executed(log)] == ["read_file", "flaky"]
    statuses = dict(ProposedAction.objects.filter(deployment=deployment).values_list("action_type", "status"))
    assert statuses == {"read_file": "executed", "flaky": "failed"}
    assert "disk full" in ProposedAction.objects.get(action_type="flaky").result_error


def test_an_upstream_that_dies_mid_call_leaves_the_result_unknown(gateway):
    """Claimed, maybe executed, no answer: `unknown`, for the agent or an admin to reconcile;
    never run again by itself."""
    deployment = DeploymentFactory(stage="autonomous")

    async def go():
        async with gateway(deployment, tools={"default": {"risk_score": 0.05, "confidence": 0.99}}) as (session, log):
            return await session.call_tool("crash", {"n": 1}), log

    result, log = run_async(go)
    assert result.is_error
    assert executed(log) == [{"tool": "crash", "arguments": {"n": 1}}]
    action = ProposedAction.objects.get(deployment=deployment)
    assert action.status == "unknown" and action.decision == "reconcile"


def test_a_call_still_waiting_resumes_the_same_action_when_repeated(approval, gateway):
    """Also: a tool the settings file does not list goes to the senior queue (fail closed)."""
    deployment, _ = approval
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[deployment]).user

    async def go():
        async with gateway(deployment, wait=0.5) as (session, log):
            first = await session.call_tool("send_email", {"to": "x@example.com", "body": "b"})
            action = await anyio.to_thread.run_sync(when_proposed, deployment)
            assert action.route == "senior"
            await anyio.to_thread.run_sync(
                in_thread(lambda: proposed_action_approve(action_id=action.pk, actor=senior))
            )
            second = await session.call_tool("send_email", {"to": "x@example.com", "body": "b"})
            return first, second, log

    first, second, log = run_async(go)
    assert first.is_error and "Waiting for a person" in text(first)
    assert not second.is_error
    assert ProposedAction.objects.filter(deployment=deployment).count() == 1  # resumed, not proposed again
    assert len(executed(log)) == 1


def test_an_http_upstream_is_gated_the_same_way(gateway, tmp_path, monkeypatch):
    """`--upstream-url`: the upstream server over Streamable HTTP (uvicorn on loopback)."""
    from tests.integrations import upstream_server

    deployment = DeploymentFactory(stage="autonomous")
    log = tmp_path / "http-upstream.jsonl"
    log.touch()
    monkeypatch.setenv("UPSTREAM_LOG", str(log))  # the upstream runs in this process
    with uvicorn_server(upstream_server.server.streamable_http_app()) as base:

        async def go():
            tools = {"default": {"risk_score": 0.05, "confidence": 0.99}}
            async with gateway(deployment, tools=tools, upstream_url=base + "/mcp") as (session, _):
                listed = {t.name for t in (await session.list_tools()).tools}
                return listed, await session.call_tool("read_file", {"path": "notes.txt"})

        listed, result = run_async(go)
    assert listed == {"send_email", "read_file", "flaky", "crash"}
    assert not result.is_error
    assert executed(log) == [{"tool": "read_file", "arguments": {"path": "notes.txt"}}]
    assert ProposedAction.objects.get(deployment=deployment).status == "executed"
