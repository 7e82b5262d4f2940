"""FaceXBench (Narayan et al. 2025): its multiple-choice files read as they are published, scored per (sub-)category.

The benchmark is a folder of `benchmark/*.json` files, one per source dataset and
question kind: `category`, `sub-category`, `dataset`, `num_images`, `prepend_text`,
`postpend_text` (and `context` for tool use), and `questions` keyed "1", "2", ...,
each with `image_paths` (relative to the JSON's folder), `question_text`, four
`options` (text or numbers) and `correct_answer_option` (a letter). Each question
becomes one `FaceRecord` whose label for the task "mcq" is the correct letter, so
the evaluator's runner, cache and resume work unchanged; the prompt is
`faceqa.prompts.templates.mcq_prompt`, the answer is read by `parse_choice`.

A file or question that cannot be used (bad JSON, missing image, not four options)
is audited and skipped, never fatal: one broken file does not sink the benchmark.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from faceqa.datasets.readers import FaceRecord, LabelAudit
from faceqa.eval.cache import PredictionCache
from faceqa.eval.metrics import MetricSettings, Scored, latency_percentiles, summary
from faceqa.eval.predictor import Prediction, Predictor
from faceqa.eval.published import published_rows
from faceqa.eval.runner import run_predictions
from faceqa.files import write_atomic

log = logging.getLogger(__name__)

TASK = "mcq"
SOURCE = "facexbench"
REPORT_VERSION = 1
MAX_EXAMPLES = 5


def benchmark_files(root: Path) -> list[Path]:
    """`root/benchmark/*.json`, or `root/*.json` when `root` is the benchmark folder itself."""
    folder = root / "benchmark" if (root / "benchmark").is_dir() else root
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no FaceXBench files: {folder} holds no *.json (expected benchmark/*.json)")
    return files


def _question(path: Path, spec: dict[str, Any], qid: str, question: dict[str, Any]) -> FaceRecord:
    """One question as a record; ValueError says why it cannot be used."""
    from faceqa.prompts.templates import MCQ_LETTERS, mcq_prompt

    options = question.get("options")
    if not isinstance(options, list) or len(options) != len(MCQ_LETTERS):
        raise ValueError(f"needs {len(MCQ_LETTERS)} options, has {options!r}")
    letter = str(question.get("correct_answer_option", "")).strip().upper()
    if letter not in MCQ_LETTERS:
        raise ValueError(f"correct_answer_option {letter!r} is not one of {', '.join(MCQ_LETTERS)}")
    images = [path.parent / str(p) for p in question.get("image_paths") or []]
    if not images:
        raise ValueError("no image_paths")
    missing = [str(i) for i in images if not i.is_file()]
    if missing:
        raise ValueError(f"missing image {missing[0]}")
    context = spec.get("context") or ""
    prompt = mcq_prompt(str(question.get("question_text", "")), options, spec.get("postpend_text"), context)
    return FaceRecord(
        image=images[0], key=f"{SOURCE}/{path.stem}/{qid}", source=SOURCE, split=None, labels={TASK: letter},
        extra={"images": images, "options": options, "prompt": prompt,
               "question": question.get("question_text", ""), "category": str(spec.get("category", "unknown")),
               "sub_category": str(spec.get("sub-category", "unknown")), "dataset": str(spec.get("dataset", path.stem)),
               "num_images": spec.get("num_images")},
    )


def read_facexbench(root: str | Path, audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """Every usable question of every benchmark file under `root`, file by file, in question order."""
    audit = audit if audit is not None else LabelAudit()
    for path in benchmark_files(Path(root)):
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
            questions = spec["questions"]
            if not isinstance(questions, dict):
                raise TypeError("questions is not an object")
        except (OSError, ValueError, KeyError, TypeError) as error:
            audit.skip(SOURCE, f"unreadable benchmark file ({type(error).__name__})", f"{path.name}: {error}")
            continue
        for qid, question in sorted(questions.items(), key=lambda kv: (len(kv[0]), kv[0])):
            try:
                yield _question(path, spec, qid, question if isinstance(question, dict) else {})
            except ValueError as error:
                audit.skip(SOURCE, "unusable question", f"{path.name}#{qid}: {error}")


def answered_choice(item: FaceRecord, text: str, latency: float) -> Prediction:
    """A model's text read as an option letter by the shared parser."""
    from faceqa.prompts.parser import parse_choice

    parsed = parse_choice(text, item.extra["options"])
    return Prediction(parsed.label, latency, text=text, reason="" if parsed.ok else parsed.reason)


def _scored(items: list[FaceRecord], cache: PredictionCache, model: str) -> tuple[list[Scored], list[dict]]:
    rows, unusable = [], []
    for item in items:
        entry = cache.get(item.key, TASK, model)
        if entry is None:
            continue
        if entry.get("error"):
            unusable.append({"image": item.key, "error": entry["error"]})
            continue
        groups = {"category": item.extra["category"], "sub_category": item.extra["sub_category"]}
        rows.append(Scored(image=item.key, task=TASK, truth=item.labels[TASK], pred=entry.get("label"),
                           source=item.extra["dataset"], groups=groups, latency=entry.get("latency"),
                           text=entry.get("text"), reason=entry.get("reason") or ""))
    return rows, unusable


def _summary(rows: list[Scored], settings: MetricSettings, name: str) -> dict[str, Any]:
    from faceqa.prompts.templates import MCQ_LETTERS

    s = summary(rows, MCQ_LETTERS, settings, name)
    return {"n": s["n"], "correct": sum(r.correct for r in rows), "accuracy": s["accuracy"],
            "accuracy_ci": s["accuracy_ci"], "unanswered_rate": s["unanswered_rate"]}


def build_report(items: list[FaceRecord], rows: list[Scored], unusable: list[dict], settings: MetricSettings,
                 model: dict[str, Any], dataset: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
    """Accuracy overall, per category and per category/sub-category; unanswered counts as wrong."""
    categories: dict[str, Any] = {}
    for category in sorted({r.groups["category"] for r in rows}):
        in_category = [r for r in rows if r.groups["category"] == category]
        subs = {sub: _summary([r for r in in_category if r.groups["sub_category"] == sub], settings,
                              f"{category}/{sub}")
                for sub in sorted({r.groups["sub_category"] for r in in_category})}
        categories[category] = {**_summary(in_category, settings, category), "sub_categories": subs}
    unanswered = [{"question": r.image, "reason": r.reason, "text": (r.text or "")[:200]}
                  for r in rows if r.pred is None][:MAX_EXAMPLES]
    return {
        "version": REPORT_VERSION,
        "benchmark": "FaceXBench",
        "model": model,
        "dataset": {**dataset, "questions": len(items),
                    "files": sorted({i.key.split("/")[1] for i in items})},
        "settings": asdict(settings),
        "overall": _summary(rows, settings, "overall"),
        "categories": categories,
        "unanswered_examples": unanswered,
        "unusable_inputs": {"count": len(unusable), "examples": unusable[:MAX_EXAMPLES]},
        "latency": latency_percentiles([r.latency for r in rows]),
        "published": published_rows([SOURCE]),
        "run": run,
    }


def evaluate_facexbench(root: str | Path, predictor: Predictor, out_dir: str | Path, *, limit: int | None = None,
                        concurrency: int = 1, settings: MetricSettings | None = None, progress: bool = True,
                        cache_path: str | Path | None = None, dataset_name: str | None = None,
                        model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask every question, score, and write report.json, scored.jsonl and model_card.md to `out_dir`. Resumable."""
    from faceqa.eval.card import mcq_card

    out, audit = Path(out_dir), LabelAudit()
    items = list(read_facexbench(root, audit))[:limit]
    settings = settings or MetricSettings()
    with PredictionCache(cache_path or out / "predictions.jsonl") as cache:
        stats = run_predictions(items, (TASK,), predictor, cache, concurrency, progress)
        rows, unusable = _scored(items, cache, predictor.name)
    dataset = {"name": dataset_name or "FaceXBench", "format": SOURCE, "path": str(root),
               "label_audit": audit.summary()}
    report = build_report(items, rows, unusable, settings, {**predictor.describe(), **(model or {})}, dataset,
                          stats.to_dict())
    write_atomic(out / "scored.jsonl", "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows))
    write_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(out / "model_card.md", mcq_card(report))
    return report
