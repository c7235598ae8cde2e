import pytest

from deployments.stats import wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "lower", "upper"),
    [
        # The roots of (k/n - p)² n = z² p (1 - p), solved as a quadratic, z = 1.959964.
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (5, 10, 0.236593, 0.763407),
        (1, 1, 0.206549, 1.0),
        (190, 200, 0.910422, 0.972617),
        (9900, 10000, 0.987853, 0.991771),
    ],
)
def test_wilson_bounds(k, n, lower, upper):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(lower, abs=1e-5)
    assert hi == pytest.approx(upper, abs=1e-5)


def test_wilson_empty_and_invalid():
    assert wilson_interval(0, 0) == (None, None)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
