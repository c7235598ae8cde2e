"""The MCP gateway: an existing MCP server's tools, served to an agent, every call gated.

`manage.py mcp_gateway SLUG --upstream-command CMD [ARGS…]` (or `--upstream-url URL` for a
Streamable HTTP server) starts the upstream server, lists its tools unchanged, and turns
each `tools/call` into a proposed action of the deployment: `action_type` is the tool's name,
`payload` its arguments, risk and confidence from the per-tool settings file (`--tools`), the
deployment's routing, caps and payload rules deciding as for any proposal. The call reaches
the upstream server only when Trustladder says `execute`, with the final (maybe edited)
arguments, once (its execution claimed first: reviews.execution grants one per approval); the
result is reported (`executed`, `failed` with the upstream's error, or `unknown` when the
upstream call broke off).
A rejected, expired or shadow call returns a tool error saying so and never reaches it.

The gateway runs on the installation's database (a management command, like a worker), so
it calls the services directly, as the API does; it speaks MCP over stdio to the agent.
"""

import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
from django.conf import settings
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from core.jsonlimits import JsonProblem, body_check
from core.tracing import span_under, traceparent_clean
from deployments.errors import DomainError
from deployments.models import Deployment
from integrations.mcp.server import in_thread
from reviews.canonical import payload_sha256
from reviews.execution import (
    proposed_action_execution_claim,
    proposed_action_expire_if_due,
    proposed_action_report_result,
)
from reviews.models import ProposedAction
from reviews.services import Proposal, proposed_action_create

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolPolicy:
    """What the gateway claims about a call of one tool. Unlisted tools get the file's
    `default`, else this class's: the most cautious claim (a person decides, senior queue)."""

    risk_score: float = 1.0
    confidence: float = 0.0
    needs_human: bool = False


def tool_policies_load(path: str | Path | None) -> tuple[dict[str, ToolPolicy], ToolPolicy]:
    """Read the per-tool settings file: `{"default": {...}, "tools": {"name": {"risk_score",
    "confidence", "needs_human"}}}`. Raises ValueError naming what is wrong."""
    if not path:
        return {}, ToolPolicy()
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or set(raw) - {"default", "tools"}:
        raise ValueError('the tools file holds {"default": {...}, "tools": {name: {...}}}')

    def policy(name: str, value: Any) -> ToolPolicy:
        if not isinstance(value, dict) or set(value) - {"risk_score", "confidence", "needs_human"}:
            raise ValueError(f"{name}: only risk_score, confidence and needs_human may be set")
        for field in ("risk_score", "confidence"):
            number = value.get(field, getattr(ToolPolicy, field))
            if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 1:
                raise ValueError(f"{name}.{field} must be a number from 0 to 1")
        if not isinstance(value.get("needs_human", False), bool):
            raise ValueError(f"{name}.needs_human must be true or false")
        return ToolPolicy(**value)

    default = policy("default", raw.get("default", {}))
    tools = raw.get("tools", {})
    if not isinstance(tools, dict):
        raise ValueError('"tools" maps tool names to their settings')
    return {name: policy(name, value) for name, value in tools.items()}, default


def _tool_error(text: str, **meta: Any) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], is_error=True, _meta={"trustladder": meta}
    )


class Gateway:
    """One agent session in front of one upstream session (both live as long as the process)."""

    def __init__(
        self,
        *,
        deployment: Deployment,
        upstream: ClientSession,
        policies: dict[str, ToolPolicy],
        default_policy: ToolPolicy,
        wait_seconds: float,
    ) -> None:
        self.deployment_id = deployment.pk
        self.slug = deployment.slug
        self.upstream = upstream
        self.policies = policies
        self.default_policy = default_policy
        self.wait_seconds = wait_seconds
        # The agent's MCP session (stdio: the process) is the run its calls belong to.
        self.run_id = f"mcp-{uuid.uuid4().hex[:16]}"
        # (tool, SHA-256 of its arguments) -> the action still waiting for a person, so a call
        # repeated after "still waiting" resumes that action instead of proposing it again.
        self.waiting: dict[tuple[str, str], int] = {}
        # This gateway's execution claims (reviews.execution grants one per approval).
        self.claim_key = f"gateway-{uuid.uuid4().hex}"

    def server(self) -> Server:
        return Server(
            "trustladder-gateway",
            instructions=f"Every tool call is a proposed action of the Trustladder deployment {self.slug!r}; "
            "it runs only once Trustladder says execute (a person may decide first).",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )

    async def list_tools(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await self.upstream.list_tools(params=params)

    async def call_tool(self, ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        meta = params.meta or {}
        traceparent = traceparent_clean(meta.get("traceparent")) if isinstance(meta, dict) else ""
        with span_under(f"gateway tools/call {params.name}", traceparent) as onward:
            return await self._call(params.name, params.arguments or {}, onward or traceparent)

    async def _call(self, name: str, arguments: dict[str, Any], traceparent: str) -> types.CallToolResult:
        try:
            body_check(arguments)  # what the API would refuse to store (core.jsonlimits)
        except JsonProblem as problem:
            return _tool_error(f"Trustladder refused the call (validation_error): {problem}")
        key = (name, payload_sha256(arguments))
        try:
            action_id = self.waiting.get(key)
            if action_id is None:
                action_id = await in_thread(self._propose)(name, arguments, traceparent)
            action = await self._wait(action_id)
        except DomainError as exc:
            return _tool_error(f"Trustladder refused the call ({exc.code}): {exc.detail}")
        decision = action.decision
        if decision == "wait":
            self.waiting[key] = action.pk
            return _tool_error(
                f"Waiting for a person to decide (Trustladder action #{action.pk}); the tool has not run. "
                "Call it again with the same arguments to keep waiting.",
                action_id=action.pk,
                decision=decision,
            )
        self.waiting.pop(key, None)
        if decision == "shadow":
            return _tool_error(
                f"Not executed: the deployment is in shadow mode (action #{action.pk} was logged only).",
                action_id=action.pk,
                decision=decision,
            )
        if decision in ("reject", "expired", "cancelled"):
            why = f": {action.reason}" if action.reason else ""
            verb = {"reject": "rejected", "expired": "expired without a decision", "cancelled": "cancelled"}[decision]
            return _tool_error(
                f"Not executed: Trustladder action #{action.pk} was {verb}{why}",
                action_id=action.pk,
                decision=decision,
            )
        return await self._execute(action, name, traceparent)

    def _propose(self, name: str, arguments: dict[str, Any], traceparent: str) -> int:
        policy = self.policies.get(name, self.default_policy)
        deployment = Deployment.objects.get(pk=self.deployment_id)  # read afresh: stage, pause, breaker
        action = proposed_action_create(
            deployment=deployment,
            proposal=Proposal(
                action_type=name,
                payload=arguments,
                risk_score=policy.risk_score,
                confidence=policy.confidence,
                needs_human=policy.needs_human,
                rationale=f"MCP tool call through the gateway (session {self.run_id})",
            ),
            actor_label="mcp-gateway",
            traceparent=traceparent,
            run_id=self.run_id,
        )
        return action.pk

    async def _wait(self, action_id: int) -> ProposedAction:
        """The action once decided, or as it is when the gateway's wait is over (expired now if
        its SLA has passed: fail closed, as every read of the API)."""
        deadline = time.monotonic() + self.wait_seconds
        read = in_thread(lambda: proposed_action_expire_if_due(action=ProposedAction.objects.get(pk=action_id)))
        while True:
            action = await read()
            left = deadline - time.monotonic()
            if action.decision != "wait" or left <= 0:
                return action
            await anyio.sleep(min(settings.TRUSTLADDER_MCP_POLL_SECONDS, left))

    async def _execute(self, action: ProposedAction, name: str, traceparent: str) -> types.CallToolResult:
        """Claim the execution (granted once per approval, by the database), run the call
        upstream with the final arguments, and report the result with the claim's key."""
        if action.decision != "execute":
            return _tool_error(
                f"Not executed again: Trustladder action #{action.pk} is {action.status}.",
                action_id=action.pk,
                decision=action.decision,
            )
        try:
            claimed, _ = await in_thread(proposed_action_execution_claim)(
                action_id=action.pk,
                claim_key=self.claim_key,
                payload_hash=action.payload_sha256,
                actor_label="mcp-gateway",
            )
        except DomainError as exc:
            return _tool_error(f"Not executed: Trustladder refused the execution claim ({exc.code}): {exc.detail}")
        meta = {"traceparent": traceparent} if traceparent else None
        try:
            result = await self.upstream.call_tool(name, claimed.final_payload, meta=meta)
        except Exception as exc:
            # The upstream may or may not have acted: `unknown`, for the agent or an admin to reconcile.
            await self._report(claimed, "unknown", f"the upstream call did not complete: {exc!r}")
            return _tool_error(f"The upstream tool call did not complete: {exc}", action_id=action.pk)
        if result.is_error:
            text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
            await self._report(claimed, "failed", text or "the upstream tool returned an error")
        else:
            await self._report(claimed, "executed", "")
        result.meta = {**(result.meta or {}), "trustladder": {"action_id": action.pk, "decision": "execute"}}
        return result

    async def _report(self, action: ProposedAction, status: str, error: str) -> None:
        try:
            await in_thread(proposed_action_report_result)(
                action_id=action.pk,
                status=status,
                payload_hash=action.payload_sha256,
                error=error[:20_000],
                claim_key=self.claim_key,
                actor_label="mcp-gateway",
            )
        except DomainError:
            logger.exception("could not report the result of action %s", action.pk)


# Trustladder's own secrets stay in the gateway: the upstream server is someone else's code.
_WITHHELD_PREFIXES = ("DJANGO_", "TRUSTLADDER_", "DATABASE_", "REDIS_", "CELERY_", "POSTGRES")


def upstream_environment() -> dict[str, str]:
    """The gateway's environment (the upstream's own tokens, PATH, …) without Trustladder's."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(_WITHHELD_PREFIXES)}


@asynccontextmanager
async def upstream_session(
    *, command: list[str] | None = None, url: str | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """A client session with the upstream MCP server: a stdio child process, or Streamable HTTP."""
    async with AsyncExitStack() as stack:
        if command:
            params = StdioServerParameters(command=command[0], args=command[1:], env=upstream_environment())
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers or {}))
            read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


async def gateway_serve_stdio(
    *,
    deployment: Deployment,
    command: list[str] | None,
    url: str | None,
    policies: dict[str, ToolPolicy],
    default_policy: ToolPolicy,
    wait_seconds: float,
) -> None:
    """Serve the gated tools to the agent on this process's stdin/stdout until it hangs up."""
    async with upstream_session(command=command, url=url) as upstream:
        gateway = Gateway(
            deployment=deployment,
            upstream=upstream,
            policies=policies,
            default_policy=default_policy,
            wait_seconds=wait_seconds,
        )
        server = gateway.server()
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
