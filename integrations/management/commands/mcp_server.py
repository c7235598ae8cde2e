"""`manage.py mcp_server [--host H] [--port P]`: the MCP server (Streamable HTTP) at /mcp/."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve Trustladder's MCP tools over Streamable HTTP at /mcp/ (authenticated by API key)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)

    def handle(self, *args, host: str, port: int, **options) -> None:
        import uvicorn

        from integrations.mcp.server import PATH, mcp_asgi_app

        self.stdout.write(f"MCP server on http://{host}:{port}{PATH}")
        uvicorn.run(mcp_asgi_app(), host=host, port=port, log_level="info", proxy_headers=True)
