"""`faceqa eval run DIR -f facexbench`: the multiple-choice benchmark from the evaluator's command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from faceqa.eval.evaluate import EvalConfig
from faceqa.eval.metrics import MetricSettings
from faceqa.eval.predictor import Predictor


def mcq_predictor(engine: bool, endpoint: str | None, model: str | None, api_key: str, max_tokens: int) -> Predictor:
    if engine == bool(endpoint):
        raise typer.BadParameter("FaceXBench runs with --engine or with --endpoint URL --model NAME")
    if engine:
        from faceqa.eval.mcq_engine import EngineMCQ

        return EngineMCQ()
    if not model:
        raise typer.BadParameter("--endpoint needs --model (the served model's name, e.g. from /v1/models)")
    from faceqa.eval.mcq_endpoint import EndpointMCQ

    return EndpointMCQ(endpoint, model, api_key=api_key, max_tokens=max_tokens)  # type: ignore[arg-type]


def table(report: dict) -> Table:
    result = Table(title=f"{report['model']['name']} on FaceXBench ({report['dataset']['questions']} questions)")
    for column in ("category / sub-category", "n", "accuracy", "unanswered"):
        result.add_column(column)

    def row(name: str, s: dict) -> None:
        result.add_row(name, str(s["n"]), f"{s['accuracy']:.1%}", f"{s['unanswered_rate']:.1%}")

    row("all", report["overall"])
    for category, c in report["categories"].items():
        row(category, c)
        for sub, s in c["sub_categories"].items():
            row(f"  {sub}", s)
    for r in report["published"]:
        result.add_row(f"{r['model']} ({r['note']})", "5000", f"{r['accuracy']:.1%}", "–")
    return result


def evaluate_facexbench(root: Path, predictor: Predictor, out: Path, config: EvalConfig, name: str | None,
                        card: dict[str, Any], cache: Path | None) -> dict[str, Any]:
    """The benchmark run with the command's settings; a run that scores nothing is an error."""
    from faceqa.eval.facexbench import evaluate_facexbench as evaluate

    report = evaluate(root, predictor, out, limit=config.limit, concurrency=config.concurrency,
                      settings=MetricSettings(config.seed, config.bootstrap, config.min_group_size),
                      progress=config.progress, cache_path=cache, dataset_name=name, model=card)
    if report["overall"]["n"] == 0:
        raise ValueError("no question was answered or scored")
    return report
