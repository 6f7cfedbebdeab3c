"""The repository's layout: what is product (aecli/, shipped) and what is measurement (benchmarks/,
scripts/, tools/, docs/results/), and the rules that keep the two apart."""

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL_DIRS = ("benchmarks", "scripts", "tools", "tests")


def _python_files(*dirs):
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


def test_only_aecli_is_shipped():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert all(p == "aecli" or p.startswith("aecli.") for p in packages), packages


def test_no_import_path_tricks():
    """Benchmarks, scripts and tools run as modules from the repository root (python -m ...), and the
    tests import them as packages: nobody edits sys.path or loads a file by its path."""
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _python_files(*TOOL_DIRS)
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"sys\.path\.(insert|append)|spec_from_file_location", line) and p.name != "test_layout.py"]
    assert found == []


def _imported_benchmarks(tree: ast.AST) -> list[str]:
    """The modules of the benchmarks package that a module imports (relative or by name)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "benchmarks"):
            mod = (node.module or "").removeprefix("benchmarks").strip(".")
            out += [mod.split(".")[0]] if mod else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")]
    return out


def test_benchmarks_import_only_the_shared_helper():
    allowed = {"common"}
    bad = [f"{p.name} imports {m}" for p in _python_files("benchmarks")
           for m in _imported_benchmarks(ast.parse(p.read_text())) if m not in allowed]
    assert bad == []


def test_docs_hold_prose_and_an_index_of_it():
    """docs/ holds Markdown only (the measurements are in docs/results/), docs/README.md links every
    document, and every relative link in the docs resolves."""
    assert sorted(p.name for p in (ROOT / "docs").iterdir() if p.is_file() and p.suffix != ".md") == []
    index = (ROOT / "docs" / "README.md").read_text()
    assert [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "README.md" and f"]({p.name})" not in index] == []
    broken = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if not target.startswith(("http://", "https://", "#")) and not (md.parent / target.split("#")[0]).exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert broken == []
