"""MkDocs hooks: pages made from the files the tools wrote, so the site never holds a copied number.

- `tables/<table>-<scale>.md`: one page per `results/tables/<table>_<scale>.md` (the runner's own printout);
- `img/<figure>.png`: the figures of `results/figures/`;
- each hand-written method page (`docs/methods/<name>.md`) gets its YAML and its Python source appended;
- the navigation lists the method and table pages found on disk.
"""
from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "results" / "tables"
FIGURES = ROOT / "results" / "figures"
METHOD_CONF = ROOT / "conf" / "method"
METHOD_SRC = ROOT / "unlearn" / "methods"


def _table_key(path: Path) -> tuple:
    """table2_cpu before table10_cpu."""
    m = re.match(r"table(\d+)_(\w+)$", path.stem)
    return (int(m.group(1)), m.group(2)) if m else (10**6, path.stem)


def table_files() -> list[Path]:
    return sorted(TABLES.glob("table*_*.md"), key=_table_key)


def table_page(path: Path) -> str:
    """The runner's Markdown with its first heading as the page title."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines and lines[0].startswith("#"):
        lines[0] = "# " + lines[0].lstrip("#").strip()
    else:
        lines.insert(0, f"# {path.stem}")
    source = f"`results/tables/{path.name}` (also `.csv` and `.tex`), written by `python -m unlearn.tables`"
    return "\n".join([lines[0], "", f"Printed by the table runner: {source}.", ""] + lines[1:]) + "\n"


def method_pages(docs: Path) -> list[str]:
    return sorted(p.name for p in (docs / "methods").glob("*.md") if p.name != "index.md")


def on_config(config):
    docs = Path(config["docs_dir"])
    methods = [{"Overview": "methods/index.md"}] + [f"methods/{n}" for n in method_pages(docs)]
    tables = [{"Overview": "tables/index.md"}] + [
        {path.stem.replace("_", " "): f"tables/{path.stem.replace('_', '-')}.md"} for path in table_files()]
    nav = []
    for item in config["nav"]:
        (title, target), = item.items()
        nav.append({title: methods if target == "methods/" else tables if target == "tables/" else target})
    config["nav"] = nav
    return config


def on_files(files, config):
    for path in table_files():
        files.append(File.generated(config, f"tables/{path.stem.replace('_', '-')}.md", content=table_page(path)))
    for png in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"img/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    if not (src.startswith("methods/") and src != "methods/index.md"):
        return markdown
    name = Path(src).stem
    yaml, py = METHOD_CONF / f"{name}.yaml", METHOD_SRC / f"{name}.py"
    if not yaml.exists():
        raise FileNotFoundError(f"docs/methods/{name}.md has no conf/method/{name}.yaml")
    parts = [markdown.rstrip(), "", f"## Configuration: `conf/method/{name}.yaml`", "",
             "```yaml", yaml.read_text(encoding="utf-8").rstrip(), "```"]
    if py.exists():
        parts += ["", f"## Source: `unlearn/methods/{name}.py`", "", '??? note "Show the source"', "",
                  "    ```python"] + ["    " + line if line else "" for line in py.read_text(encoding="utf-8").splitlines()]
        parts += ["    ```"]
    return "\n".join(parts) + "\n"
