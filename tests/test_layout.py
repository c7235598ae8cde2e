"""The layout rules of docs/architecture.md that the code can check about itself."""

import ast
import re
from pathlib import Path

import pytest

from deployments.counters import Metric

ROOT = Path(__file__).resolve().parent.parent
APP_CODE = [p for app in ("core", "deployments", "deliveries", "reviews") for p in (ROOT / app).rglob("*.py")]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether at the module's top level) of every import in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append((node.module or "", id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
    return found


def test_models_import_no_gate_or_breaker_logic():
    for app in ("deployments", "deliveries"):
        modules = {module for module, _ in _imports(ROOT / app / "models.py")}
        assert not modules & {"deployments.gate", "deployments.breakers", "deployments.services"}, app


@pytest.mark.parametrize("app", ["deployments", "deliveries", "reviews"])
def test_no_function_local_imports(app):
    """Every import at the top of its module: none of these breaks a cycle any more."""
    local = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
        for module, at_top in _imports(path)
        if not at_top
    ]
    assert local == []


def test_no_services_module_imports_a_tasks_module():
    """Services enqueue tasks by name (core.tasks.enqueue_on_commit), never importing them."""
    services = [p for p in APP_CODE if p.name == "services.py" or "services" in p.parent.name]
    assert services
    for path in services:
        assert not [m for m, _ in _imports(path) if m.endswith("tasks") and m != "core.tasks"], path


def test_metric_names_are_written_only_in_deployments_counters():
    """Everyone else names a metric by its Metric member, so a typo fails at import."""
    names = re.compile("|".join(re.escape(f'"{m.value}"') for m in Metric))
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in APP_CODE
        if path != ROOT / "deployments" / "counters.py" and "migrations" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if names.search(line)
    ]
    assert offenders == []
