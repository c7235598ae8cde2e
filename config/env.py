"""Small, typed readers for environment variables (the only configuration source).

An empty value counts as unset everywhere (`DATABASE_URL=` in a compose file or a `.env`
means "not set", not "the empty URL"), so every reader falls back to its default for it.
"""

import os


def env(name: str, default: str = "") -> str:
    """The variable's value, or `default` when it is unset or empty."""
    return os.environ.get(name) or default


def env_int(name: str, default: int) -> int:
    """The variable as an integer, or `default` when it is unset or empty."""
    value = env(name).strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    """The variable as a float, or `default` when it is unset or empty."""
    value = env(name).strip()
    return float(value) if value else default


def env_bool(name: str, default: bool) -> bool:
    """ "1", "true", "yes" or "on" (any case) is true, anything else false; unset or empty is `default`."""
    value = env(name).strip()
    if not value:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; unset, empty or only commas and spaces is `default`."""
    items = [item.strip() for item in env(name).split(",") if item.strip()]
    return items or default
