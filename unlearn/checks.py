"""Fail-fast validation of user-set values, with messages that name the key and what is allowed."""


def require(checks: list[tuple[str, bool, str]], values: dict, prefix: str = "") -> None:
    """Raise ValueError for the first `(key, ok, allowed)` with `ok` false: `<prefix><key>=<value> is invalid`."""
    for key, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{prefix}{key}={values[key]!r} is invalid; allowed: {allowed}")
