"""The Trustladder MCP server: the agent API's operations as MCP tools (SPEC §9).

Streamable HTTP (the SDK's current protocol revision), stateless: every HTTP request carries
the deployment's API key (`Authorization: Bearer tl_…`) and is authenticated afresh, with the
same service as the HTTP API (`deployments.services.api_key_authenticate`) and the same rate
limit bucket. Every tool calls the service function its `/api/v1/` twin calls; no tool can
approve, reject or escalate: a person's decision is never something the agent gives itself.

Errors are MCP tool errors (`isError: true`) whose structured content is the API's error
shape, `{"error": code, "detail": …}`, with the same codes (`not_found`, `conflict`,
`invalid_transition`, `validation_error`, `rate_limited`, `unauthorized`, …).

It runs as its own process (`manage.py mcp_server`, uvicorn) serving `/mcp/`: a long
`wait_for_decision` then holds an event-loop task, not one of gunicorn's threads.
"""

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import anyio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import Http404
from django.utils import timezone
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core.fastjson import json_bytes
from core.jsonlimits import JsonProblem, body_check
from core.tracing import traceparent_clean
from deployments.api import deployment_representation
from deployments.errors import DomainError
from deployments.models import ApiKey
from deployments.ratelimit import rate_limit_hit
from deployments.scopes import Scope as KeyScope
from deployments.services import api_key_authenticate, api_key_mark_used
from reviews.api import ActionIn
from reviews.execution import (
    proposed_action_cancel,
    proposed_action_execution_claim,
    proposed_action_expire_if_due,
    proposed_action_report_result,
)
from reviews.execution_api import CancelIn, ClaimIn, ResultIn
from reviews.representation import action_representation
from reviews.selectors import action_get_for_deployment
from reviews.services import proposed_action_create

PATH = "/mcp/"
UNAUTHORIZED = "send 'Authorization: Bearer <key>' with an active API key of your deployment"

INSTRUCTIONS = """\
Trustladder decides whether an AI agent may take an action. Before doing anything with side
effects, call propose_action with what you want to do. Its `decision` says what to do now:
- "execute": call claim_execution first; only once it is granted, execute with
  `final_payload` exactly (a person may have edited it), then call report_result with its
  `payload_sha256` and the claim's `claim_key` (a refused claim means: do not execute);
- "wait": a person decides; call wait_for_decision until the decision is no longer "wait";
- "shadow": do not execute (the deployment is only observing);
- "reject", "expired" or "cancelled": do not execute; `reason` says why;
- "claimed", "reconcile" or "done": its execution was already claimed; do not execute again.
cancel_action withdraws an action you no longer want. You can never approve an action yourself.
"""


class ToolFailure(Exception):
    """A tool's refusal with the API's error code."""

    def __init__(self, code: str, detail: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


def _result(data: dict[str, Any]) -> CallToolResult:
    text = json_bytes(data).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _error(code: str, detail: Any) -> CallToolResult:
    body = {"error": code, "detail": detail}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(body, ensure_ascii=False))],
        structured_content=body,
        is_error=True,
    )


def _bearer(headers: Any) -> str:
    value = (headers or {}).get("authorization", "") if headers is not None else ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _authenticated(raw: str, *, count: bool = True) -> ApiKey:
    """The active key (read afresh, with its deployment), counted against its rate limit
    (`count`: a wait's later polls are part of the one call that was counted)."""
    key = api_key_authenticate(raw)
    if key is None:
        raise ToolFailure("unauthorized", UNAUTHORIZED)
    if not key.has_scope(KeyScope.PROPOSE):  # every tool is the agent's side (SPEC §7 key scopes)
        raise ToolFailure("forbidden", f"this API key lacks the 'propose' scope (it has: {', '.join(key.scopes)})")
    api_key_mark_used(key, now=timezone.now())
    if not count:
        return key
    limit = key.deployment.api_rate_limit
    if limit is None:
        limit = settings.API_RATE_LIMIT_PER_MINUTE
    wait = rate_limit_hit(bucket=f"api-key:{key.pk}:{key.prefix}", limit=limit, period=60)
    if wait is not None:
        raise ToolFailure("rate_limited", f"this API key is over its rate limit; retry in {math.ceil(wait)} s")
    return key


def in_thread(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run Django (ORM) code off the event loop, on a worker thread with its own connection."""

    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


async def _call(ctx: Context, work: Callable[[ApiKey], Any], *, count: bool = True) -> CallToolResult:
    """Authenticate the request of this call, run `work(key)` in a thread; map domain errors."""

    def run() -> Any:
        key = _authenticated(_bearer(ctx.headers), count=count)
        return work(key)

    try:
        return _result(await in_thread(run)())
    except ToolFailure as exc:
        return _error(exc.code, exc.detail)
    except DomainError as exc:
        return _error(exc.code, exc.detail)
    except Http404 as exc:
        return _error("not_found", str(exc) or "not found")
    except JsonProblem as exc:
        return _error("validation_error", str(exc))
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return _error("validation_error", detail)


def _meta_traceparent(ctx: Context) -> str:
    """The client's trace context: `_meta.traceparent` (MCP's convention), else the HTTP header."""
    meta = ctx.request_context.meta or {}
    found = traceparent_clean(meta.get("traceparent")) if isinstance(meta, dict) else ""
    if not found and ctx.headers is not None:
        found = traceparent_clean(ctx.headers.get("traceparent"))
    return found


def _action(key: ApiKey, action_id: int) -> dict[str, Any]:

    action = action_get_for_deployment(deployment=key.deployment, action_id=action_id)
    # Fail closed on every read, as GET /api/v1/actions/{id}: past its SLA or deadline it expires now.
    return action_representation(proposed_action_expire_if_due(action=action), deployment_slug=key.deployment.slug)


ActionIdArg = Annotated[int, Field(ge=1, le=2**63 - 1, description="The action's id, as propose_action returned it.")]
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)


def build_server() -> MCPServer:
    """The MCP server with its tools (no transport yet)."""
    server = MCPServer(
        "trustladder",
        title="Trustladder",
        instructions=INSTRUCTIONS,
        version="1.0.0",
        website_url=settings.TRUSTLADDER_BASE_URL,
    )

    @server.tool(
        annotations=ToolAnnotations(destructiveHint=False, idempotentHint=False, openWorldHint=False),
    )
    async def propose_action(
        ctx: Context,
        action_type: Annotated[
            str, Field(description="What you want to do, e.g. 'refund.issue' (letters, digits, . _ : - /).")
        ],
        payload: Annotated[dict[str, Any], Field(description="The action's arguments, as a JSON object.")],
        # strict: a string or a boolean where a number is due is refused (SPEC §7), not coerced.
        risk_score: Annotated[
            float, Field(ge=0, le=1, strict=True, description="Your estimate of the harm if wrong, 0 to 1.")
        ],
        confidence: Annotated[
            float, Field(ge=0, le=1, strict=True, description="How sure you are this is right, 0 to 1.")
        ],
        external_id: Annotated[str, Field(description="Your own id for the case (optional).")] = "",
        model_version: Annotated[str, Field(description="The model that proposed it (optional).")] = "",
        rationale: Annotated[str, Field(description="Why; shown to the person who decides.")] = "",
        needs_human: Annotated[
            bool, Field(strict=True, description="true to ask for a person whatever the stage.")
        ] = False,
        run_id: Annotated[str, Field(description="Groups the proposals of one agent run (optional).")] = "",
        run_hold: Annotated[
            bool, Field(strict=True, description="true: no action of the run executes while one waits for a person.")
        ] = False,
        parent_id: Annotated[
            int | None, Field(strict=True, ge=1, description="An action this one depends on (optional).")
        ] = None,
        expires_in: Annotated[
            int | None,
            Field(strict=True, ge=1, description="Seconds until the action expires if not executed (at most the SLA)."),
        ] = None,
    ) -> CallToolResult:
        """Propose an action before taking it. Returns the action; its `decision` says what to do
        now: "execute" (go ahead with `final_payload`, then report_result), "wait" (a person
        decides: call wait_for_decision), "shadow" (do not execute). Never execute on "wait",
        "shadow", "reject" or "expired"."""

        arguments = {
            "action_type": action_type,
            "payload": payload,
            "risk_score": risk_score,
            "confidence": confidence,
            "external_id": external_id,
            "model_version": model_version,
            "rationale": rationale,
            "needs_human": needs_human,
            "run_id": run_id,
            "run_hold": run_hold,
            "parent_id": parent_id,
            "expires_in": expires_in,
        }
        traceparent = _meta_traceparent(ctx)

        def work(key: ApiKey) -> dict[str, Any]:

            body_check(arguments)  # the API body's limits (core.jsonlimits), then its own model
            data = ActionIn.model_validate(arguments)
            action = proposed_action_create(
                deployment=key.deployment,
                proposal=data.proposal(),
                actor_label=f"api-key:{key.prefix}",
                traceparent=traceparent,
                **data.linked_fields(),
            )
            return action_representation(action, deployment_slug=key.deployment.slug)

        return await _call(ctx, work)

    @server.tool(annotations=READ_ONLY)
    async def get_action(ctx: Context, action_id: ActionIdArg) -> CallToolResult:
        """Read one of your deployment's actions: its `status`, `decision`, `final_payload`,
        `payload_sha256` and the reviewer's `reason`."""
        return await _call(ctx, lambda key: _action(key, action_id))

    @server.tool(annotations=READ_ONLY)
    async def wait_for_decision(
        ctx: Context,
        action_id: ActionIdArg,
        timeout_seconds: Annotated[
            float,
            Field(ge=0, le=3600, description="Wait at most this long (capped by the server, 60 s by default)."),
        ] = 30,
    ) -> CallToolResult:
        """Wait until a person has decided the action (its `decision` is no longer "wait"), or
        until `timeout_seconds` have passed, and return the action as it is then. If it still
        says "wait", call this again; do not execute until it says "execute"."""
        bound = min(timeout_seconds, settings.TRUSTLADDER_MCP_MAX_WAIT_SECONDS)
        deadline = time.monotonic() + bound
        polls = 0
        while True:
            # The key is checked on every poll (a revoked key stops the wait); counted once.
            result = await _call(ctx, lambda key: _action(key, action_id), count=polls == 0)
            polls += 1
            data = result.structured_content or {}
            left = deadline - time.monotonic()
            if result.is_error or data.get("decision") != "wait" or left <= 0:
                return result
            await anyio.sleep(min(settings.TRUSTLADDER_MCP_POLL_SECONDS, left))

    @server.tool(annotations=ToolAnnotations(destructiveHint=False, idempotentHint=True, openWorldHint=False))
    async def claim_execution(
        ctx: Context,
        action_id: ActionIdArg,
        claim_key: Annotated[
            str, Field(max_length=255, description="Your token for this claim (optional; one is made up if empty).")
        ] = "",
        payload_sha256: Annotated[
            str, Field(pattern=r"^([0-9a-f]{64})?$", description="The `payload_sha256` you are about to execute.")
        ] = "",
    ) -> CallToolResult:
        """Claim the one execution of an approved action (decision "execute"). Execute only
        after this succeeds: it is granted once per approval, so a retry, a replay or a second
        process is refused. Keep the returned `claim_key` for report_result."""

        def work(key: ApiKey) -> dict[str, Any]:
            data = ClaimIn.model_validate({"claim_key": claim_key, "payload_sha256": payload_sha256})
            action = proposed_action_expire_if_due(
                action=action_get_for_deployment(deployment=key.deployment, action_id=action_id)
            )
            action, _ = proposed_action_execution_claim(
                action_id=action.pk,
                claim_key=data.claim_key,
                payload_hash=data.payload_sha256,
                actor_label=f"api-key:{key.prefix}",
            )
            body = action_representation(action, deployment_slug=key.deployment.slug)
            return {**body, "claim_key": action.execution_claim_key}

        return await _call(ctx, work)

    @server.tool(annotations=ToolAnnotations(destructiveHint=False, idempotentHint=True, openWorldHint=False))
    async def report_result(
        ctx: Context,
        action_id: ActionIdArg,
        status: Annotated[
            Literal["executed", "failed", "unknown"],
            Field(description="What happened when you executed it; `unknown` if you cannot tell."),
        ],
        payload_sha256: Annotated[
            str, Field(pattern=r"^[0-9a-f]{64}$", description="The action's `payload_sha256` (of `final_payload`).")
        ],
        claim_key: Annotated[str, Field(max_length=255, description="The `claim_key` claim_execution gave.")] = "",
        error: Annotated[str, Field(max_length=20_000, description="What went wrong, if it failed.")] = "",
    ) -> CallToolResult:
        """Report how executing a claimed action went, with the `payload_sha256` of the final
        payload you executed (refused if it does not match) and the claim's `claim_key`."""

        def work(key: ApiKey) -> dict[str, Any]:
            data = ResultIn.model_validate(
                {"status": status, "payload_sha256": payload_sha256, "error": error, "claim_key": claim_key}
            )
            action = action_get_for_deployment(deployment=key.deployment, action_id=action_id)
            action = proposed_action_report_result(
                action_id=action.pk,
                status=data.status,
                payload_hash=data.payload_sha256,
                error=data.error,
                claim_key=data.claim_key,
                actor_label=f"api-key:{key.prefix}",
            )
            return action_representation(action, deployment_slug=key.deployment.slug)

        return await _call(ctx, work)

    @server.tool(annotations=ToolAnnotations(destructiveHint=False, idempotentHint=True, openWorldHint=False))
    async def cancel_action(
        ctx: Context,
        action_id: ActionIdArg,
        reason: Annotated[str, Field(max_length=2000, description="Why you withdraw it (optional).")] = "",
    ) -> CallToolResult:
        """Withdraw an action you no longer want: while it waits for a person, or approved but
        not yet claimed. It leaves the queues at once; nothing executes it afterwards."""

        def work(key: ApiKey) -> dict[str, Any]:
            data = CancelIn.model_validate({"reason": reason})
            action = action_get_for_deployment(deployment=key.deployment, action_id=action_id)
            action = proposed_action_cancel(
                action_id=action.pk, reason=data.reason, actor_label=f"api-key:{key.prefix}"
            )
            return action_representation(action, deployment_slug=key.deployment.slug)

        return await _call(ctx, work)

    @server.tool(annotations=READ_ONLY)
    async def get_deployment(ctx: Context) -> CallToolResult:
        """Your deployment: its stage, thresholds and SLAs, and whether it is paused or its
        circuit breaker tripped (then every action waits for a person)."""

        def work(key: ApiKey) -> dict[str, Any]:
            data = deployment_representation(key.deployment)
            return json.loads(json.dumps(data, default=str))

        return await _call(ctx, work)

    return server


class BearerRequired:
    """ASGI middleware: a request without an active API key gets 401 before any MCP exchange
    (each tool call checks its request's key again, so a revoked key stops at once)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = _bearer(Request(scope).headers)
        key = await in_thread(api_key_authenticate)(raw) if raw else None
        if key is None:
            response = JSONResponse(
                {"error": "unauthorized", "detail": UNAUTHORIZED},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="trustladder"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _transport_security() -> TransportSecuritySettings | None:
    """DNS rebinding protection: only the Host names Django accepts."""
    hosts = [h for h in settings.ALLOWED_HOSTS if h]
    if not hosts or "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    allowed = []
    for host in hosts:
        name = host.lstrip(".")
        allowed += [name, f"{name}:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=allowed, allowed_origins=[])


def mcp_asgi_app() -> ASGIApp:
    """The ASGI application serving the MCP endpoint at PATH (uvicorn runs it)."""
    server = build_server()
    app = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        transport_security=_transport_security(),
        host="0.0.0.0",  # noqa: S104 -- only to keep the SDK from its localhost-only default; see _transport_security
    )
    app.add_middleware(BearerRequired)
    return app
