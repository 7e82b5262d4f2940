"""One evaluation: predictions (cached, resumable) -> scored rows -> report.json, model card, plots.

Metrics are recomputed from the cache on every run, so a finished run re-run with a
new metric or setting makes no calls at all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from faceqa.datasets.readers import FaceRecord, LabelAudit
from faceqa.eval.cache import PredictionCache
from faceqa.eval.metrics import MetricSettings, Scored, latency_percentiles, task_metrics
from faceqa.eval.predictor import Predictor
from faceqa.eval.published import published_rows
from faceqa.eval.runner import RunStats, run_predictions
from faceqa.files import write_atomic
from faceqa.prompts.taxonomy import ATTRIBUTES

REPORT_VERSION = 1
GROUP_ATTRIBUTES = ("race", "gender", "age_group")
MAX_EXAMPLES = 5


@dataclass
class EvalConfig:
    tasks: tuple[str, ...] = ATTRIBUTES
    limit: int | None = None
    concurrency: int = 1
    seed: int = 0
    bootstrap: int = 1000
    min_group_size: int = 30
    plots: bool = True
    progress: bool = True
    retry_failed: bool = False  # ask again the inputs an earlier run recorded as failed


def comparable(items: Sequence[FaceRecord], task: str) -> list[str]:
    """Our labels of `task` that the items' datasets express one-to-one, per their documented mappings.

    A source without a mapping for `task` labelled it in our own terms (free text through
    `normalize`, or years through `age_group`), so every label is comparable there.
    """
    from faceqa.prompts.taxonomy import comparable_labels, labels, sources

    mapped, expressible = set(sources()), set[str]()
    for source in {i.source for i in items}:
        mapping = f"{source}_{task}" in mapped
        expressible.update(comparable_labels(source, task) if mapping else labels(task))
    return [label for label in labels(task) if label in expressible]


def score(items: Sequence[FaceRecord], tasks: Sequence[str], cache: PredictionCache,
          model: str) -> tuple[list[Scored], list[dict[str, str]]]:
    """Join ground truth with cached predictions; inputs the predictor could not use come back apart."""
    rows, unusable = [], []
    for item in items:
        groups = {a: item.labels[a] for a in GROUP_ATTRIBUTES if a in item.labels}
        for task in tasks:
            entry = cache.get(item.key, task, model)
            if entry is None or task not in item.labels:
                continue
            if entry.get("error"):
                unusable.append({"image": item.key, "task": task, "error": entry["error"]})
                continue
            rows.append(Scored(
                image=item.key, task=task, truth=item.labels[task], pred=entry.get("label"), source=item.source,
                groups=groups, years=item.years, pred_years=entry.get("years"), latency=entry.get("latency"),
                text=entry.get("text"), reason=entry.get("reason") or "",
            ))
    return rows, unusable


def build_report(items: Sequence[FaceRecord], rows: Sequence[Scored], unusable: list[dict[str, str]],
                 config: EvalConfig, model: dict[str, Any], dataset: dict[str, Any],
                 stats: RunStats | None = None) -> dict[str, Any]:
    settings = MetricSettings(config.seed, config.bootstrap, config.min_group_size)
    by_task = {task: [r for r in rows if r.task == task] for task in config.tasks}
    return {
        "version": REPORT_VERSION,
        "model": model,
        "dataset": {
            **dataset,
            "items": len(items),
            "sources": dict(Counter(i.source for i in items)),
            "splits": dict(Counter(i.split or "none" for i in items)),
        },
        "settings": {**asdict(settings), "tasks": list(config.tasks), "limit": config.limit},
        "tasks": {task: task_metrics(r, comparable(items, task), settings) for task, r in by_task.items() if r},
        "latency": latency_percentiles([r.latency for r in rows]),
        "unusable_inputs": {"count": len(unusable), "examples": unusable[:MAX_EXAMPLES]},
        "published": published_rows(list(config.tasks)),
        "run": stats.to_dict() if stats is not None else None,
    }


def _unique(items: Iterable[FaceRecord]) -> tuple[list[FaceRecord], int]:
    """Items by key, first wins: a row listed twice is predicted and scored once; and how many repeats."""
    unique: dict[str, FaceRecord] = {}
    repeats = 0
    for item in items:
        repeats += item.key in unique
        unique.setdefault(item.key, item)
    return list(unique.values()), repeats


def evaluate(items: Iterable[FaceRecord], predictor: Predictor, out_dir: str | Path, config: EvalConfig,
             dataset: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
             cache_path: str | Path | None = None, audit: LabelAudit | None = None) -> dict[str, Any]:
    """Run, score and report; the files land in `out_dir`. Interrupt it any time and call it again."""
    from faceqa.eval.card import model_card
    from faceqa.eval.plots import write_plots

    out = Path(out_dir)
    items, repeats = _unique(islice(items, config.limit))
    dataset = {**(dataset or {}), "duplicate_rows": repeats,
               **({"label_audit": audit.summary()} if audit is not None else {})}
    with PredictionCache(cache_path or out / "predictions.jsonl") as cache:
        stats = run_predictions(items, config.tasks, predictor, cache, config.concurrency, config.progress,
                                config.retry_failed)
        rows, unusable = score(items, config.tasks, cache, predictor.name)
    report = build_report(items, rows, unusable, config, {**predictor.describe(), **(model or {})},
                          dataset, stats)
    write_atomic(out / "scored.jsonl", "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows))
    report["plots"] = write_plots(report, out / "plots") if config.plots else []
    write_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(out / "model_card.md", model_card(report))
    return report
