"""Interval statistics for the evidence: pure Python, no ORM."""

import math

Z95 = 1.959963984540054  # two-sided 95%


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for a binomial proportion; (None, None) when n == 0.

    lower/upper = (p + z²/2n ∓ z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    """
    if n <= 0:
        return None, None
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - margin) / denominator), min(1.0, (centre + margin) / denominator)


def cohen_kappa(table: list[list[int]], z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """Cohen's kappa of two raters from their contingency table (`table[i][j]`: items rater A
    put in category i and rater B in category j), with an approximate 95% interval:
    (kappa, lower, upper), all None when there are no items or chance agreement is total.

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed agreement (the diagonal's share)
    and p_e the agreement expected by chance from the raters' margins. The interval is
    kappa ± z·SE with Cohen's (1960) large-sample SE = sqrt(p_o(1 - p_o) / (n (1 - p_e)²)),
    clipped to [-1, 1].
    """
    k = len(table)
    if any(len(row) != k for row in table) or any(c < 0 for row in table for c in row):
        raise ValueError("table must be square with counts >= 0")
    n = sum(sum(row) for row in table)
    if n == 0:
        return None, None, None
    p_o = sum(table[i][i] for i in range(k)) / n
    rows = [sum(table[i]) / n for i in range(k)]
    cols = [sum(table[i][j] for i in range(k)) / n for j in range(k)]
    p_e = sum(r * c for r, c in zip(rows, cols, strict=True))
    if p_e >= 1:
        return None, None, None  # both raters used one category only: kappa is undefined
    kappa = (p_o - p_e) / (1 - p_e)
    se = math.sqrt(p_o * (1 - p_o) / (n * (1 - p_e) ** 2))
    return kappa, max(-1.0, kappa - z * se), min(1.0, kappa + z * se)
