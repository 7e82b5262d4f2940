"""The layout Python tooling understands: one package, one name per module, dev tools kept out of production."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "faceqa"
DEV_COMMANDS = PACKAGE / "vlm" / "cli.py"  # hosts `faceqa dev ...`, which imports faceqa.dev inside its commands


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_faceqa_is_the_only_package_at_the_repository_root():
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
    assert packages == ["faceqa"], "a second top-level package would let one file load under two module names"


def test_every_component_folder_is_a_regular_subpackage_of_faceqa():
    for folder in ("faces", "assistant", "prompts", "vlm", "app", "datasets", "finetune", "eval", "dev"):
        assert (PACKAGE / folder / "__init__.py").is_file(), folder


def test_no_production_module_imports_the_developer_tools():
    offenders = [
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if "dev" not in path.relative_to(PACKAGE).parts[:1] and path != DEV_COMMANDS
        and any(name == "faceqa.dev" or name.startswith("faceqa.dev.") for name in _imported_modules(path))
    ]
    assert offenders == []
