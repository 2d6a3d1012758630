"""Fail-fast validation of user-set values, with messages that name the key and what is allowed."""
import math


def finite(x) -> bool:
    """A real number (not a bool, string or None) that is neither NaN nor infinite."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def integer(x, low: int | None = None) -> bool:
    """An int (not a bool), at least `low` when given."""
    return isinstance(x, int) and not isinstance(x, bool) and (low is None or x >= low)


def require(checks: list[tuple[str, bool, str]], values: dict, prefix: str = "") -> None:
    """Raise ValueError for the first `(key, ok, allowed)` with `ok` false: `<prefix><key>=<value> is invalid`."""
    for key, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{prefix}{key}={values[key]!r} is invalid; allowed: {allowed}")
