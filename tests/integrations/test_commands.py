"""The integrations' management commands and their place in the compose file."""

from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command, get_commands

from integrations.mcp.gateway import ToolPolicy, tool_policies_load

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_the_mcp_server_from_the_same_image():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mcp = compose["services"]["mcp"]
    assert mcp["image"] == compose["services"]["web"]["image"]
    assert mcp["command"][:3] == ["python", "manage.py", "mcp_server"] and "mcp_server" in get_commands()
    assert "healthcheck" in mcp
    assert mcp["environment"]["DATABASE_URL"] == compose["services"]["web"]["environment"]["DATABASE_URL"]
    assert mcp["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_tool_settings_file(tmp_path):
    path = tmp_path / "tools.json"
    path.write_text('{"default": {"risk_score": 0.5}, "tools": {"read": {"risk_score": 0.1, "confidence": 0.99}}}')
    tools, default = tool_policies_load(path)
    assert tools == {"read": ToolPolicy(risk_score=0.1, confidence=0.99)}
    assert default == ToolPolicy(risk_score=0.5, confidence=0.0)
    assert tool_policies_load(None) == ({}, ToolPolicy(risk_score=1.0, confidence=0.0))
    for bad in (
        '{"tools": {"x": {"risk_score": 2}}}',
        '{"tools": {"x": {"risk_score": "0.1"}}}',
        '{"tools": {"x": {"risk_score": true}}}',
        '{"tools": {"x": {"approve": true}}}',
        '{"tools": []}',
        '{"other": 1}',
    ):
        path.write_text(bad)
        with pytest.raises(ValueError):
            tool_policies_load(path)


@pytest.mark.django_db
def test_gateway_command_refuses_bad_arguments(tmp_path):
    with pytest.raises(CommandError, match="exactly one"):
        call_command("mcp_gateway", "nope")
    with pytest.raises(CommandError, match="no deployment"):
        call_command("mcp_gateway", "nope", "--upstream-command", "true")
