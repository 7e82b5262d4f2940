"""Where every benchmark leaves its figures: printed, and kept as bench/results/NAME.json (gitignored)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, results: dict) -> Path:
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
