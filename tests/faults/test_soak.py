"""The soak (bench/soak.py) in short: agents and reviewers against a private stack; zero
errors and zero lost. Latencies are printed by the soak, never asserted."""

import json
import subprocess
import sys

import pytest

from tests.faults.stack import ROOT

pytestmark = pytest.mark.faults


def test_short_soak_has_zero_errors_and_zero_lost(stack, tmp_path):
    # `stack` only for its skip/fail rule about the binaries: the soak starts its own stack.
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, "bench/soak.py", "--seconds", "30", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(result.stdout[-3000:], result.stderr[-3000:])
    figures = json.loads(out.read_text())
    assert figures["accepted"] > 0 and figures["decisions"] > 0, figures
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["lost"] == 0, figures["lost_samples"]
    assert result.returncode == 0
