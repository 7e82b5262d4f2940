#!/usr/bin/env bash
# The wheel as users (and the Docker image) install it: build it from the working tree, install it with its
# base dependencies into a fresh venv (no editable install, no repository on the path; pip's cache keeps this
# to about a minute), then analyse and ask about a photo from a folder outside the repository.
# Catches package data the wheel forgets (faces/data, prompts/data, examples, configs). Run by `make test`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
BUILD_PYTHON=${BUILD_PYTHON:-$repo/.venv/bin/python}
work=$(mktemp -d -t faceqa-wheel-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/dist" "$work/elsewhere"
# A copy, so that no stale build/ folder of the working tree can add files the sources no longer have.
cp -r "$repo/faceqa" "$repo/pyproject.toml" "$repo/README.md" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$BUILD_PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/src"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work"/dist/faceqa-*.whl
cp "$repo/faceqa/examples/group.jpg" "$work/elsewhere/photo.jpg"
cd "$work/elsewhere"
unset PYTHONPATH
"$work/venv/bin/python" - <<'PY'
import pathlib
import sys

import faceqa

where = pathlib.Path(faceqa.__file__).resolve()
assert where.is_relative_to(pathlib.Path(sys.prefix).resolve()), f"faceqa imported from {where}, not the venv"
report = faceqa.analyze("photo.jpg")
assert len(report.faces) == 4, report
reasoning = faceqa.ask("photo.jpg", "Explain the expression of person 3 step by step")
assert reasoning.task == "reasoning" and "AU15" in (reasoning.reasoning or ""), reasoning  # EMFACS + CoT wording data
print(f"wheel-check: {where.parent} analysed photo.jpg: {len(report.faces)} faces; Exp-CoT answer ok")
PY
"$work/venv/bin/faceqa" analyze --json photo.jpg > analysis.json
"$work/venv/bin/faceqa" ask photo.jpg "Who is the oldest?"
