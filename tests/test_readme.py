"""The README's numbers come from the files the tools wrote, and its links lead somewhere."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_table_excerpt_is_the_committed_table():
    """Every table row and block line the README shows is in the results file it names, character for character."""
    cited = set(re.findall(r"copied from `(results/tables/[\w.]+\.md)`", README))
    assert cited, "the README names the table file its excerpt comes from"
    committed = "\n".join((ROOT / path).read_text(encoding="utf-8") for path in cited).splitlines()
    shown = [line for line in README.splitlines() if line.startswith("| ") and "±" in line
             or line.startswith("**") and "original model:" in line]
    assert shown, "the README shows a table excerpt"
    missing = [line[:80] for line in shown if line not in committed]
    assert not missing, f"README rows not in {sorted(cited)} (reprint the excerpt): {missing}"


def test_readme_links_exist():
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", README) if not re.match(r"https?:", t)]
    assert targets
    assert [t for t in targets if not (ROOT / t).exists()] == []


def test_readme_is_short():
    """The README is what a newcomer needs first; the rest lives in docs/."""
    assert len(README.splitlines()) <= 250


def test_own_data_page_quotes_the_logs_it_names():
    """Every result row the own-data page shows is a line of the logs in results/own_data/."""
    page = (ROOT / "docs" / "own-data.md").read_text(encoding="utf-8")
    logs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "results" / "own_data").glob("*.log")).splitlines()
    rows = [line for line in page.splitlines() if re.match(r"(original|retrain|unlearned) +\d", line)]
    assert len(rows) >= 6
    assert [r for r in rows if r not in logs] == []
