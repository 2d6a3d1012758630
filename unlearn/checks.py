"""Fail-fast validation of user-set values, with messages that name the key and what is allowed.

A rule that two places need (a top-level sweep axis that a method also takes as an argument) is written once here
as a `Rule` and used by both; a rule only one place needs stays next to the value it guards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable


class ConfigError(ValueError):
    """A user-set value is invalid; the message names the key and what is allowed."""


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


@dataclass(frozen=True)
class Rule:
    """One value's rule: `ok(value)` and the words that say what is allowed."""

    key: str
    ok: Callable[[Any], bool]
    allowed: str

    def row(self, value) -> tuple[str, bool, str]:
        """The `(key, ok, allowed)` row of `require` for `value`."""
        return self.key, self.ok(value), self.allowed

    def check(self, value, prefix: str = "") -> None:
        require([self.row(value)], {self.key: value}, prefix)


# The sweep axes of Eq. 10: top-level keys (validate.check_config) that the mixed-loss methods take as arguments.
SMOOTH_RATE = Rule("smooth_rate", lambda v: finite(v) and v <= 1,
                   "a finite number <= 1 (alpha < 0: NLS, 0: CE, (0, 1]: PLS)")
P = Rule("p", lambda v: finite(v) and 0 <= v <= 1, "a number in [0, 1] (weight of the gradient-descent term)")
