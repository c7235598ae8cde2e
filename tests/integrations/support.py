"""Real servers for the integration tests: uvicorn on 127.0.0.1 serving an ASGI app, the MCP
SDK's own client over Streamable HTTP, and a local fake of Slack's Web API."""

import contextlib
import dataclasses
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx2
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.support.servers import free_port


@contextlib.contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.asynccontextmanager
async def mcp_session(url: str, key: str | None, *, modern: bool = False) -> AsyncIterator[ClientSession]:
    """A client session: the `initialize` handshake, or with `modern` the newest revision's
    stateless `server/discover` (2026-07-28)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        if modern:
            await session.discover()
        else:
            await session.initialize()
        yield session


@dataclasses.dataclass
class SlackCall:
    method: str
    body: dict
    token: str


@dataclasses.dataclass
class FakeSlack:
    """A local stand-in for Slack's Web API (https://slack.com/api/<method>): records every
    call and answers as Slack does for the methods Trustladder uses."""

    url: str = ""
    calls: list[SlackCall] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    fail_next: int = 0

    def of(self, method: str) -> list[SlackCall]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def answer(self, method: str, body: dict) -> dict:
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                return {"ok": False, "error": "ratelimited"}
            n = len(self.calls)
        if method == "chat.postMessage":
            return {"ok": True, "channel": body.get("channel"), "ts": f"17000000{n:02d}.000100", "message": {}}
        if method == "chat.update":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"17000000{n:02d}.000200"}
        if method == "views.open":
            return {"ok": True, "view": {"id": f"V{n}"}}
        return {"ok": False, "error": "unknown_method"}


@contextlib.contextmanager
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            method = self.path.rsplit("/", 1)[-1]
            if "json" in self.headers.get("content-type", ""):
                body = json.loads(raw or b"{}")
            else:
                body = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
            answer = fake.answer(method, body)
            with fake.lock:
                fake.calls.append(SlackCall(method, body, self.headers.get("authorization", "")))
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def slack_signed(payload: dict, secret: str, *, at: float | None = None) -> tuple[bytes, dict]:
    """A request body and headers signed the way Slack signs them: v0 HMAC-SHA256 of
    "v0:<timestamp>:<body>" with the app's signing secret."""
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(at if at is not None else time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return body, {"HTTP_X_SLACK_REQUEST_TIMESTAMP": timestamp, "HTTP_X_SLACK_SIGNATURE": "v0=" + digest}


@dataclasses.dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    kind: int


@dataclasses.dataclass
class OtlpReceiver:
    """A local OTLP/HTTP trace receiver (POST /v1/traces, protobuf), like a collector's."""

    url: str = ""
    spans: list[ReceivedSpan] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def named(self, prefix: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.name.startswith(prefix)]


@contextlib.contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    receiver = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
            request = ExportTraceServiceRequest()
            request.ParseFromString(self.rfile.read(int(self.headers.get("content-length", "0"))))
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        with receiver.lock:
                            receiver.spans.append(
                                ReceivedSpan(
                                    name=span.name,
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    parent_span_id=span.parent_span_id.hex(),
                                    service=attributes.get("service.name", ""),
                                    kind=span.kind,
                                )
                            )
            data = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def agent_trace(traceparent: str) -> Iterator[None]:
    """Run the block as an agent inside the trace `traceparent` (the current context).

    The MCP SDK's client writes the current context into each request's `_meta.traceparent`:
    without an OpenTelemetry SDK that is `traceparent` itself; with one (another test module
    may have set the process's provider), a client span of the same trace."""
    from opentelemetry import context
    from opentelemetry.propagate import extract

    token = context.attach(extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


def same_trace(traceparent: str, expected: str) -> bool:
    """Both name the same trace (the W3C trace id, the second field)."""
    return bool(traceparent) and traceparent.split("-")[1] == expected.split("-")[1]


def run_async(fn: Callable[..., Any], *args: Any) -> Any:
    """`anyio.run(fn, *args)` in a thread of its own: Playwright's sync API (the browser tests,
    earlier in the same pytest process) leaves an event loop on the main thread, where anyio
    refuses to start another."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = anyio.run(fn, *args)
        except BaseException as exc:  # handed back to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
