"""`manage.py mcp_gateway SLUG [--tools FILE] --upstream-command CMD [ARGS…]` (or
`--upstream-url URL`): an MCP server on stdio whose every tool call is a proposed action of
the deployment SLUG, run on the upstream MCP server only once Trustladder says execute."""

import argparse

import anyio
from django.core.management.base import BaseCommand, CommandError

from deployments.models import Deployment


class Command(BaseCommand):
    help = "Gate an existing MCP server: every tools/call becomes a proposed action (stdio to the agent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="The deployment whose actions the calls become.")
        parser.add_argument("--tools", help="JSON file of per-tool risk_score, confidence, needs_human.")
        parser.add_argument(
            "--wait-seconds",
            type=float,
            default=120.0,
            help="How long one call waits for a person before answering 'still waiting' (default 120).",
        )
        parser.add_argument("--upstream-url", help="A Streamable HTTP MCP server instead of a command.")
        parser.add_argument(
            "--upstream-command",
            nargs=argparse.REMAINDER,
            help="The upstream MCP server's command and its arguments (last: everything after it is its own).",
        )

    def handle(
        self,
        *args,
        slug: str,
        tools: str | None,
        wait_seconds: float,
        upstream_url: str | None,
        upstream_command: list[str] | None,
        **options,
    ) -> None:
        from integrations.mcp.gateway import gateway_serve_stdio, tool_policies_load

        if bool(upstream_command) == bool(upstream_url):
            raise CommandError("give exactly one of --upstream-command CMD [ARGS…] and --upstream-url URL")
        deployment = Deployment.objects.filter(slug=slug).first()
        if deployment is None:
            raise CommandError(f"no deployment {slug!r}")
        try:
            policies, default = tool_policies_load(tools)
        except (OSError, ValueError) as exc:
            raise CommandError(f"--tools {tools}: {exc}") from None
        # stdout is the MCP channel to the agent: nothing else may be written to it.
        anyio.run(
            lambda: gateway_serve_stdio(
                deployment=deployment,
                command=upstream_command,
                url=upstream_url,
                policies=policies,
                default_policy=default,
                wait_seconds=wait_seconds,
            )
        )
