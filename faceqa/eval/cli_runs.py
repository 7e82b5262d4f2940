"""The benchmark and trained-skills runs of `faceqa eval run` (-f facexbench; -f built --tasks reasoning,...)."""

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
    from faceqa.eval.facexbench import TASK, answered_choice
    from faceqa.eval.item_endpoint import ItemEndpoint

    return ItemEndpoint(endpoint, model, (TASK,), lambda item, _: item.extra["prompt"],  # type: ignore[arg-type]
                        lambda item, _, text, latency: answered_choice(item, text, latency),
                        api_key=api_key, max_tokens=max_tokens)


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


def skills_requested(tasks: tuple[str, ...], format: str) -> bool:
    """Whether the tasks are the trained skills (reasoning, person, count, marks) of a built dataset."""
    from faceqa.eval.skills import SKILLS

    chosen = set(tasks) & set(SKILLS)
    if not chosen:
        return False
    if chosen != set(tasks) or format != "built":
        raise typer.BadParameter(f"the tasks {', '.join(SKILLS)} run alone, on a built dataset (-f built)")
    return True


def run_skills(root: Path, out: Path, config: EvalConfig, endpoint: str | None, model: str | None, api_key: str,
               style: str, max_tokens: int, split: str | None, cache: Path | None) -> None:
    """The skills evaluation of an endpoint, printed as a table (`faceqa eval run -f built --tasks reasoning,...`)."""
    from rich.console import Console

    from faceqa.eval.skills import evaluate_skills, skills_predictor

    if not endpoint or not model:
        raise typer.BadParameter("the trained skills are asked of an endpoint: --endpoint URL --model NAME")
    predictor = skills_predictor(endpoint, model, config.tasks, style, api_key,
                                 max(max_tokens, 400) if "reasoning" in config.tasks else max_tokens)
    try:
        report = evaluate_skills(root, predictor, out, config.tasks, split=split or "validation", limit=config.limit,
                                 concurrency=config.concurrency, progress=config.progress, cache_path=cache)
    finally:
        predictor.close()
    result = Table(title=f"{report['model']['name']}: trained skills on {report['dataset']['items']} held-out rows")
    for column in ("skill", "n", "accuracy", "parse rate", "cited AUs consistent"):
        result.add_column(column)
    for skill, m in report["skills"].items():
        consistency = m.get("au_consistency")
        result.add_row(skill, str(m["n"]), f"{m['accuracy']:.1%}", f"{m['parse_rate']:.1%}",
                       "–" if consistency is None else f"{consistency:.1%}")
    Console().print(result)
