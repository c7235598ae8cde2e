"""Test helpers over the evidence counters."""

from deployments.counters import counters_sum


def evidence_totals(*, deployment_id: int) -> dict[tuple[str, str], int]:
    """{(action_type, metric): n} of every counter of the deployment, summed over days and shards."""
    return {
        (action_type, metric): n
        for action_type, counts in counters_sum(by="action_type", deployment_id=deployment_id).items()
        for metric, n in counts.items()
    }
