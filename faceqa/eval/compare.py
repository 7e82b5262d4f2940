"""Two runs on the same items: accuracy differences per task with their significance.

Only items scored in both runs are compared (paired). The p-value is McNemar's exact
test on the discordant pairs; the interval is a paired percentile bootstrap of the
accuracy difference (B minus A), seeded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from faceqa.eval.metrics import MetricSettings, bootstrap_ci


def load_scored(run: str | Path) -> dict[tuple[str, str], bool]:
    path = Path(run) / "scored.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a finished `faceqa eval run` folder (no scored.jsonl)")
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {(r["image"], r["task"]): r["pred"] == r["truth"] for r in rows}


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value: under no difference, each discordant pair is a fair coin."""
    discordant = a_only + b_only
    return 1.0 if discordant == 0 else float(binomtest(a_only, discordant, 0.5).pvalue)


def compare_runs(run_a: str | Path, run_b: str | Path, seed: int = 0, bootstrap: int = 2000) -> dict[str, Any]:
    a, b = load_scored(run_a), load_scored(run_b)
    shared = sorted(set(a) & set(b))
    result: dict[str, Any] = {"run_a": str(run_a), "run_b": str(run_b), "only_in_a": len(set(a) - set(b)),
                              "only_in_b": len(set(b) - set(a)), "tasks": {}}
    for task in sorted({t for _, t in shared}):
        keys = [k for k in shared if k[1] == task]
        ca = np.array([a[k] for k in keys], dtype=float)
        cb = np.array([b[k] for k in keys], dtype=float)
        a_only, b_only = int(((ca == 1) & (cb == 0)).sum()), int(((ca == 0) & (cb == 1)).sum())
        interval = bootstrap_ci(cb - ca, MetricSettings(seed, bootstrap), f"compare/{task}")  # None: bootstrap off
        result["tasks"][task] = {
            "n": len(keys), "accuracy_a": float(ca.mean()), "accuracy_b": float(cb.mean()),
            "difference": float(cb.mean() - ca.mean()), "difference_ci": list(interval) if interval else None,
            "a_right_b_wrong": a_only, "b_right_a_wrong": b_only, "mcnemar_p": mcnemar_p(a_only, b_only),
        }
    return result
