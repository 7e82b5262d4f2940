"""Mutation check of one module: does any test notice when the module's logic is changed?

    python scripts/mutation_check.py faceqa/prompts/parser.py tests/test_prompts_parser.py tests/test_fuzz.py \
        -k "not photos and not random_bytes"

Each mutant changes one thing in the module's syntax tree (a comparison flipped, `and`/`or`
swapped, a `not` dropped, an `if` negated, an integer +1, a boolean constant flipped,
`break`/`continue` swapped, a returned value replaced by None). The module and the tests are
copied to a scratch folder; for every mutant the module is rewritten there, faceqa and the tests
are imported afresh, and pytest runs in this process (no interpreter start per mutant). A
mutant the tests still pass on "survives" and is listed with its line: either a missing test or
an equivalent change. The unmutated module must pass twice first, so a broken run cannot pass
for a thorough one. FACEQA_FUZZ_EXAMPLES defaults to 60 here to keep each run short.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SWAP: dict[type, type] = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
                          ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
                          ast.IsNot: ast.Is}
Site = tuple[str, ast.AST, int]


def sites(tree: ast.AST) -> list[Site]:
    """Every place one mutation can be made, in a stable order."""
    found: list[Site] = []
    for node in ast.walk(tree):
        match node:
            case ast.Compare(ops=ops):
                found += [("flip comparison", node, i) for i, op in enumerate(ops) if type(op) in SWAP]
            case ast.BoolOp():
                found.append(("swap and/or", node, 0))
            case ast.UnaryOp(op=ast.Not()):
                found.append(("drop not", node, 0))
            case ast.If() | ast.IfExp():
                found.append(("negate if", node, 0))
            case ast.Constant(value=bool()):
                found.append(("flip boolean", node, 0))
            case ast.Constant(value=int()):
                found.append(("integer + 1", node, 0))
            case ast.Break() | ast.Continue():
                found.append(("swap break/continue", node, 0))
            case ast.Return(value=value) if value is not None:
                found.append(("return None", node, 0))
    return found


class _Mutate(ast.NodeTransformer):
    def __init__(self, site: Site) -> None:
        self.site = site

    def visit(self, node: ast.AST) -> ast.AST:
        node = self.generic_visit(node)
        kind, target, index = self.site
        if node is not target:
            return node
        match kind, node:
            case "flip comparison", ast.Compare():
                node.ops[index] = SWAP[type(node.ops[index])]()
            case "swap and/or", ast.BoolOp():
                node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            case "drop not", ast.UnaryOp():
                return node.operand
            case "negate if", ast.If() | ast.IfExp():
                node.test = ast.UnaryOp(ast.Not(), node.test)
            case "flip boolean", ast.Constant():
                node.value = not node.value
            case "integer + 1", ast.Constant(value=int(number)):
                node.value = number + 1
            case "swap break/continue", ast.Break():
                return ast.Continue()
            case "swap break/continue", ast.Continue():
                return ast.Break()
            case "return None", ast.Return():
                node.value = ast.Constant(None)
        return node


def mutant(source: str, index: int) -> tuple[str, Site]:
    tree = ast.parse(source)
    site = sites(tree)[index]
    return ast.unparse(ast.fix_missing_locations(_Mutate(site).visit(tree))), site


def _passes(pytest_args: list[str]) -> bool:
    import pytest

    for name in list(sys.modules):
        if name.split(".")[0] in ("faceqa", "conftest") or name.startswith(("test_", "tests")):
            del sys.modules[name]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return pytest.main(["-q", "-x", "-p", "no:cacheprovider", *pytest_args]) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", help="the module to mutate, e.g. faceqa/prompts/parser.py")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="tests (and pytest options) to run")
    parser.add_argument("--only", default="", help="comma-separated mutant numbers (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("FACEQA_FUZZ_EXAMPLES", "60")
    source = (REPO / args.module).read_text()
    with tempfile.TemporaryDirectory(prefix="faceqa-mutants-") as tmp:
        scratch = Path(tmp)
        for part in ("faceqa", "tests", "pyproject.toml"):
            copy_ = shutil.copytree if (REPO / part).is_dir() else shutil.copy
            copy_(REPO / part, scratch / part)
        target = scratch / args.module
        os.chdir(scratch)
        sys.path.insert(0, str(scratch))
        for _ in range(2):
            if not _passes(args.pytest_args):
                sys.exit("the tests fail on the unmutated module: fix that first")
        count = len(sites(ast.parse(source)))
        chosen = [int(n) for n in args.only.split(",") if n] or range(count)
        survivors = []
        for number in chosen:
            code, (kind, node, _) = mutant(source, number)
            target.write_text(code)
            alive = _passes(args.pytest_args)
            line = getattr(node, "lineno", "?")
            print(f"{number:4d}  line {line:>4}  {kind:20s} {'SURVIVED' if alive else 'killed'}", flush=True)
            if alive:
                survivors.append(f"{number} (line {line}, {kind})")
        target.write_text(source)
    print(f"{len(chosen)} mutants, {len(chosen) - len(survivors)} killed, {len(survivors)} survived"
          + (": " + "; ".join(survivors) if survivors else ""))


if __name__ == "__main__":
    main()
