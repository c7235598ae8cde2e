"""A small upstream MCP server for the gateway tests (stdio): each tool appends what it
executed, as one JSON line, to the file named by UPSTREAM_LOG, and returns it."""

import json
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("upstream")


def _record(tool: str, arguments: dict, ctx: Context | None = None) -> str:
    entry = {"tool": tool, "arguments": arguments}
    meta = ctx.request_context.meta if ctx is not None else None
    if meta and meta.get("traceparent"):
        entry["traceparent"] = meta["traceparent"]  # the trace context the gateway passed on
    line = json.dumps(entry, sort_keys=True)
    with open(os.environ["UPSTREAM_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")
    return line


@server.tool()
def send_email(to: str, body: str, ctx: Context) -> str:
    """Send an email (records it)."""
    return "sent " + _record("send_email", {"to": to, "body": body}, ctx)


@server.tool()
def read_file(path: str) -> str:
    """Read a file (records it)."""
    return "read " + _record("read_file", {"path": path})


@server.tool()
def flaky(n: int) -> str:
    """Records the call, then fails."""
    _record("flaky", {"n": n})
    raise ToolError("disk full")


@server.tool()
def crash(n: int) -> str:
    """Records the call, then the server dies mid-call (the caller cannot tell what happened)."""
    _record("crash", {"n": n})
    os._exit(3)


if __name__ == "__main__":
    print("upstream starting", file=sys.stderr)
    import anyio

    anyio.run(server.run_stdio_async)
