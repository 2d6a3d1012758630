"""Print the tested pins: the installed version of every package `unlearn[dev]` needs (its dependency closure in
this environment), for constraints.txt. pyproject.toml keeps ranges; `make install` applies these pins.

    .venv/bin/python scripts/constraints.py > constraints.txt      (make constraints)
"""
from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """{name: version} of the installed distributions `root[extras]` requires, transitively (itself excluded)."""
    pins, todo, seen = {}, [(root, frozenset(extras))], set()
    while todo:
        name, want = todo.pop()
        if (canonicalize_name(name), want) in seen:
            continue
        seen.add((canonicalize_name(name), want))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            sys.exit(f"{name} is required but not installed here: install unlearn[dev] first (make install)")
        if canonicalize_name(name) != canonicalize_name(root):
            pins[canonicalize_name(dist.metadata["Name"])] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *want}):
                todo.append((req.name, frozenset(req.extras)))
    return pins


def main() -> None:
    pins = closure("unlearn", {"dev"})
    print("# The versions the test suite ran with (scripts/constraints.py on the dev environment; regenerate with")
    print("# `make constraints` after changing dependencies); `make install` = pip install -c constraints.txt -e .[dev]")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    main()
