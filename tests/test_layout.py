"""The package boundaries written in adapters/__init__.py, checked by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = "adapters.synthetic"
# what the generators may not reach: SEAM itself and the batch machinery around it
NOT_FOR_GENERATORS = tuple(f"harness.{m}" for m in ("methods", "pipeline", "scheduler", "records", "cli"))


def imports(path: Path) -> list[tuple[str, str | None]]:
    """(imported module, enclosing top-level function or None) for every import in the file."""
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inside = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inside = child.name
            if isinstance(child, ast.Import):
                found.extend((alias.name, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, inside))
                found.extend((f"{child.module}.{alias.name}", inside) for alias in child.names)
            visit(child, inside)

    visit(ast.parse(path.read_text()), None)
    return found


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_readers_never_import_the_generators():
    readers = list((ROOT / "adapters").glob("*.py"))
    assert {p.stem for p in readers} >= {"common", "image", "sentiment", "ner", "model_factories"}
    offending = [(p.name, m) for p in readers for m, _ in imports(p) if is_under(m, GENERATORS)]
    assert offending == []


def test_the_harness_imports_the_generators_only_for_make_round():
    offending = []
    for path in (ROOT / "harness").glob("*.py"):
        for module, function in imports(path):
            if not is_under(module, GENERATORS):
                continue
            settings = is_under(module, f"{GENERATORS}.specs")  # the make-round command's flag types
            if path.name == "cli.py" and (function == "make_round_command" or settings):
                continue
            offending.append((path.name, module, function))
    assert offending == []


def test_the_generators_live_in_one_package_and_stay_off_seam():
    generators = sorted((ROOT / "adapters" / "synthetic").glob("*.py"))
    assert {p.stem for p in generators} >= {"image_rounds", "sentiment_rounds", "ner_rounds", "specs"}
    assert not [p for p in (ROOT / "adapters").glob("*.py") if "make_round" in p.name or "synth" in p.name]
    offending = [
        (p.name, module)
        for p in generators
        for module, _ in imports(p)
        if any(is_under(module, x) for x in NOT_FOR_GENERATORS)
    ]
    assert offending == []
