"""The house rules of docs/architecture.md, measured: the floors of aecli/ and which way imports go,
import circles, private names imported across modules, long functions and classes, large files.

    python -m tools.architecture            # the table (largest files, longest functions, the rules)
    python -m tools.architecture --root DIR # the same for another checkout (e.g. an older commit)

tests/test_architecture.py checks the rules on every run of the suite.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

MAX_FUNCTION, MAX_CLASS = 80, 250

#: The floors, bottom (0) to top (4): a module imports from its own floor or below, never above.
#: The first matching prefix decides (longest first).
FLOORS = {
    # 0: foundations, shared by everything: errors, files and images, models on disk, the .lat format
    "aecli.errors": 0, "aecli.paths": 0, "aecli.atomic": 0, "aecli.progress": 0, "aecli.metrics": 0,
    "aecli.format": 0, "aecli.images": 0, "aecli.registry": 0, "aecli.cache": 0, "aecli.batch": 0,
    "aecli.devices": 0, "aecli.tiling": 0, "aecli.helptext": 0,
    # 1: the training engine, handed a task by a family
    "aecli.train": 1,
    # 2: the model families, each with its models, loading, per-file work and training task
    "aecli.codec": 2, "aecli.denoise": 2, "aecli.family": 2,
    # 3: what uses the families: evaluation, `aecli train`'s choice of task, `aecli info`
    "aecli.eval": 3, "aecli.train.run": 3, "aecli.inspection": 3,
    # 4: the command line
    "aecli.cli": 4, "aecli.__main__": 4, "aecli": 4,
}


def _where(path: Path) -> str:
    """aecli/... of a module's file."""
    parts = path.parts
    start = len(parts) - 1 - parts[::-1].index("aecli", 1)
    return "/".join(parts[start:])


def floor(module: str) -> int:
    for prefix in sorted(FLOORS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return FLOORS[prefix]
    raise KeyError(f"{module} is on no floor (tools/architecture.py, FLOORS)")


def modules(root: Path) -> dict[str, Path]:
    """aecli's modules under `root` (a checkout): dotted name -> file."""
    out = {}
    for p in sorted((root / "aecli").rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(name: str, path: Path, known: dict) -> list[tuple[str, str, int]]:
    """(module, name imported from it or '', line) of every aecli import of a module, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                module = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append((sub, "", node.lineno) if sub in known else (module, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names]
    return [(m, n, line) for m, n, line in found if m == "aecli" or m.startswith("aecli.")]


def long_definitions(mods: dict) -> list[tuple[int, str]]:
    """(lines, where) of every function over MAX_FUNCTION lines and class over MAX_CLASS."""
    out = []
    for path in mods.values():
        for node in ast.walk(ast.parse(path.read_text())):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > MAX_FUNCTION:
                out.append((size, f"{_where(path)}:{node.lineno} {node.name}()"))
            elif isinstance(node, ast.ClassDef) and size > MAX_CLASS:
                out.append((size, f"{_where(path)}:{node.lineno} class {node.name}"))
    return sorted(out, reverse=True)


def longest_functions(mods: dict, count: int = 5) -> list[tuple[int, str]]:
    out = []
    for path in mods.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{_where(path)}:{node.lineno} {node.name}()"))
    return sorted(out, reverse=True)[:count]


def private_imports(mods: dict) -> list[str]:
    return [f"{_where(path)}:{line} {module}.{name}" for mod, path in mods.items()
            for module, name, line in imports(mod, path, mods)
            if name.startswith("_") and not name.startswith("__") and module != mod]


def upward_imports(mods: dict) -> list[str]:
    return [f"{_where(path)}:{line} {mod} (floor {floor(mod)}) imports {module} (floor {floor(module)})"
            for mod, path in mods.items() for module, _, line in imports(mod, path, mods)
            if module in mods and floor(module) > floor(mod)]


def circles(mods: dict) -> list[str]:
    """Import circles between modules (a package's __init__ importing its own submodules excepted)."""
    graph = {m: {t for t, _, _ in imports(m, p, mods) if t in mods and t != m
                 and not (p.name == "__init__.py" and t.startswith(m + "."))} for m, p in mods.items()}
    state: dict[str, int] = {}
    found: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    return found


def report(root: Path) -> str:
    mods = modules(root)
    sizes = sorted(((len(p.read_text().splitlines()), p.relative_to(root).as_posix()) for p in mods.values()), reverse=True)
    lines = [f"aecli/: {len(mods)} modules, {sum(n for n, _ in sizes)} lines", "largest files:"]
    lines += [f"  {n:5}  {p}" for n, p in sizes[:5]]
    lines += ["longest functions:"] + [f"  {n:5}  {w}" for n, w in longest_functions(mods)]
    checks = [("functions over 80 lines, classes over 250", [f"{n} {w}" for n, w in long_definitions(mods)]),
              ("import circles", circles(mods)), ("upward imports", upward_imports(mods)),
              ("private names imported across modules", private_imports(mods))]
    for title, found in checks:
        lines.append(f"{title}: {len(found)}")
        lines += [f"  {f}" for f in found]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.architecture", description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="a checkout (default: this one)")
    print(report(ap.parse_args(argv).root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
