"""Accuracy metrics, overall and per demographic group, from scored predictions.

An unanswered prediction (unparseable text, no face found) is a wrong answer and is
also counted on its own as the unanswered rate. Macro-F1, precision and recall run
over the labels the evaluation data can express (its documented mapping) and that
occur in the subset scored, so a dataset without a Contempt class, or a group
without children, is not penalised for a column it cannot fill.
Confidence intervals are percentile bootstraps seeded from the seed and the group's
name: the same predictions always give the same report.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from faceqa.prompts.taxonomy import AGE_GROUPS

NO_ANSWER = "(no answer)"
GROUPINGS = ("race", "gender", "age_group", "race×gender")
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Scored:
    """One answered (image, task): ground truth, prediction, and the item's own demographic labels."""

    image: str
    task: str
    truth: str
    pred: str | None
    source: str
    groups: dict[str, str] = field(default_factory=dict)
    years: float | None = None
    pred_years: float | None = None
    latency: float | None = None
    text: str | None = None
    reason: str = ""

    @property
    def correct(self) -> bool:
        return self.pred == self.truth


@dataclass(frozen=True)
class MetricSettings:
    seed: int = 0
    bootstrap: int = 1000
    min_group_size: int = 30
    confidence: float = 0.95


def group_of(labels: dict[str, str], grouping: str) -> str | None:
    """The item's group under `grouping`, or None when its dataset does not label it."""
    parts = grouping.split("×")
    if not all(p in labels for p in parts):
        return None
    return " × ".join(labels[p] for p in parts)


def bootstrap_ci(values: np.ndarray, settings: MetricSettings, name: str) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `values` (0/1 correctness or errors)."""
    n = len(values)
    if n == 0 or settings.bootstrap <= 0:
        return None
    rng = np.random.default_rng([settings.seed, zlib.crc32(name.encode())])
    means = np.concatenate([
        values[rng.integers(0, n, size=(chunk, n))].mean(axis=1)
        for chunk in _chunks(settings.bootstrap, max(1, 2_000_000 // n))
    ])
    tail = (1 - settings.confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def _age_distance(rows: Sequence[Scored]) -> np.ndarray:
    """Group steps between truth and prediction; unanswered counts as infinitely far."""
    index = {g: i for i, g in enumerate(AGE_GROUPS)}
    return np.array([abs(index[r.truth] - index[r.pred]) if r.pred in index else np.inf for r in rows])


def summary(rows: Sequence[Scored], labels: Sequence[str], settings: MetricSettings, name: str) -> dict[str, Any]:
    """The metrics that make sense for any subset of rows: used overall and for every group."""
    correct = np.array([r.correct for r in rows], dtype=float)
    truth = [r.truth for r in rows]
    pred = [r.pred if r.pred is not None else NO_ANSWER for r in rows]
    present = [label for label in labels if label in set(truth)]  # a class with no items has no F1
    result: dict[str, Any] = {
        "n": len(rows),
        "accuracy": float(correct.mean()) if rows else None,
        "accuracy_ci": bootstrap_ci(correct, settings, f"{name}/accuracy"),
        "macro_f1": float(f1_score(truth, pred, labels=present, average="macro", zero_division=0))
        if rows else None,
        "unanswered_rate": float(np.mean([r.pred is None for r in rows])) if rows else None,
    }
    if rows and rows[0].task == "age_group":
        within = (_age_distance(rows) <= 1).astype(float)
        result["within_one_group_accuracy"] = float(within.mean())
        result["within_one_group_accuracy_ci"] = bootstrap_ci(within, settings, f"{name}/within_one")
        errors = np.array([abs(r.years - r.pred_years) for r in rows
                           if r.years is not None and r.pred_years is not None])
        if len(errors):
            result["mae_years"] = float(errors.mean())
            result["mae_years_ci"] = bootstrap_ci(errors, settings, f"{name}/mae")
            result["mae_n"] = len(errors)
    return result


def task_metrics(rows: Sequence[Scored], labels: Sequence[str], settings: MetricSettings) -> dict[str, Any]:
    """Everything about one task: overall summary, per-class scores, confusion matrix, failures, groups."""
    if not rows:
        return {"n": 0}
    task = rows[0].task
    truth = [r.truth for r in rows]
    pred = [r.pred if r.pred is not None else NO_ANSWER for r in rows]
    outside = sorted({p for p in pred if p not in labels and p != NO_ANSWER})
    columns = [*labels, *outside, NO_ANSWER]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=list(labels), zero_division=0
    )
    unanswered = [r for r in rows if r.pred is None]
    result = summary(rows, labels, settings, task)
    result.update({
        "labels": list(labels),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion": {
            "rows": list(labels),
            "columns": columns,
            "matrix": confusion_matrix(truth, pred, labels=columns)[: len(labels)].tolist(),
        },
        "unanswered_examples": [
            {"image": r.image, "text": (r.text or "")[:200], "reason": r.reason} for r in unanswered[:MAX_EXAMPLES]
        ],
        "latency": latency_percentiles([r.latency for r in rows]),
        "groups": disaggregate(rows, labels, settings),
    })
    return result


def disaggregate(rows: Sequence[Scored], labels: Sequence[str], settings: MetricSettings) -> dict[str, Any]:
    """Per race, gender, age group and race × gender: the summary metrics, the best-worst gap, small groups."""
    task = rows[0].task
    result = {}
    for grouping in GROUPINGS:
        members: dict[str, list[Scored]] = defaultdict(list)
        for r in rows:
            if (group := group_of(r.groups, grouping)) is not None:
                members[group].append(r)
        if not members:
            continue
        groups = {g: summary(m, labels, settings, f"{task}/{grouping}/{g}") for g, m in sorted(members.items())}
        small = sorted(g for g, s in groups.items() if s["n"] < settings.min_group_size)
        ranked = sorted((s["accuracy"], g) for g, s in groups.items() if g not in small)
        gap = None
        if len(ranked) >= 2:
            (worst_acc, worst), (best_acc, best) = ranked[0], ranked[-1]
            gap = {"best": best, "best_accuracy": best_acc, "worst": worst, "worst_accuracy": worst_acc,
                   "accuracy_gap": best_acc - worst_acc}
        warnings = [f"{g}: only {groups[g]['n']} items (< {settings.min_group_size}); its numbers are unreliable "
                    "and it is left out of the gap" for g in small]
        result[grouping] = {"groups": groups, "gap": gap, "warnings": warnings}
    return result


def latency_percentiles(latencies: Sequence[float | None]) -> dict[str, float] | None:
    values = np.array([v for v in latencies if v is not None], dtype=float)
    if not len(values):
        return None
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    return {"n": len(values), "mean": float(values.mean()), "p50": float(p50), "p90": float(p90),
            "p95": float(p95), "p99": float(p99), "max": float(values.max())}
