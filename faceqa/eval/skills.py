"""The skills a fine-tuned VLM is trained on and served for, measured on a built dataset's held-out rows.

`faceqa build-dataset` writes, besides attribute questions, Exp-CoT targets, questions
about one person of a multi-person collage, counts, and set-of-marks questions; the
validation split holds them with their known answers. Each row becomes one item asked
exactly as it was trained (the row's PaliGemma prefix or chat question, its image), so
training, serving and evaluation share the prompt. Tasks:

- `reasoning`: parse rate (all three sections and one emotion in the conclusion),
  conclusion accuracy against the label, and the share of cited AUs consistent with
  the cues the target was written from (`faceqa.vlm.cot_check`; an AU the target does
  not cite cannot be checked and is not counted).
- `person`: the attribute of the person a referring phrase picks, by position.
- `count`: how many faces; `marks`: which box number the phrase picks (numbers not on
  the photo are rejected, so wrong).

Positions come from the phrase (`referent_position`): "left" is 1 of n, "the second
person from the right" n-1, "person 3" 3; phrases by emotion have no position.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.predictor import Prediction

SKILLS = ("reasoning", "person", "count", "marks")


def skill_of(task: str) -> str | None:
    """The skill a built row's task belongs to: person_age_group -> person."""
    if task.startswith("person_"):
        return "person"
    return task if task in SKILLS else None


def referent_position(question: str, count: int) -> int | None:
    """1-based position of the person the builder's referring phrase in `question` picks, or None."""
    from faceqa.prompts.templates import ordinal

    text = question.lower()
    if match := re.search(r"\bperson (\d+)\b", text):
        return int(match.group(1))
    ordinals = {ordinal(n): n for n in range(1, count + 1)}
    if match := re.search(r"\b(\w+) (?:person|man|woman) from the (left|right)\b", text):
        n = ordinals.get(match.group(1))
        if n is not None:
            return n if match.group(2) == "left" else count - n + 1
    if re.search(r"\b(?:on the|far) left\b", text):
        return 1
    if re.search(r"\b(?:on the|far) right\b", text):
        return count
    if re.search(r"\bin the (?:middle|centre)\b", text) and count % 2:
        return (count + 1) // 2
    return None


def read_skill_rows(root: str | Path, split: str = "validation",
                    skills: tuple[str, ...] = SKILLS) -> Iterator[FaceRecord]:
    """Every row of a built split whose task is one of `skills`, as an item labelled with the row's answer."""
    from faceqa.datasets.readers import built_rows

    columns = ["id", "image", "task", "messages", "prefix", "suffix", "faces"]
    for shard, rows in built_rows(root, split, columns):
        for row in rows:
            skill = skill_of(row["task"])
            if skill not in skills:
                continue
            user, assistant = row["messages"]
            chat = next(p["text"] for p in user["content"] if p["type"] == "text")
            count = len(row["faces"])
            truth = row["faces"][0]["emotion"] if skill == "reasoning" else row["suffix"]
            yield FaceRecord(shard, f"built-row:{row['id']}", row["faces"][0]["source"], split, {skill: truth},
                             data=row["image"]["bytes"], extra={
                                 "task": row["task"], "prefix": row["prefix"], "chat": chat, "count": count,
                                 "target": assistant["content"][0]["text"],
                                 "position": referent_position(row["prefix"], count) if count > 1 else None})


def read_skill_answer(item: FaceRecord, skill: str, text: str, latency: float) -> Prediction:
    """A model's text read as the row's kind of answer, by the shared parsers."""
    from faceqa.prompts.parser import parse_answer, parse_reasoning
    from faceqa.vlm.marks import read_mark

    if skill == "reasoning":
        parsed = parse_reasoning(text)
        ok = parsed.complete and parsed.emotion.ok
        reason = parsed.emotion.reason if not parsed.emotion.ok else "" if ok else "a section is missing"
        return Prediction(parsed.emotion.label if ok else None, latency, text=text, reason=reason)
    if skill == "person":
        attribute = item.extra["task"][len("person_"):]
        result = parse_answer(attribute, text)
        return Prediction(result.label, latency, text=text, reason="" if result.ok else result.reason)
    if skill == "count":
        numbers = re.findall(r"\b\d+\b", text)
        if len(set(numbers)) != 1:
            return Prediction(None, latency, text=text, reason="not one number")
        return Prediction(str(int(numbers[0])), latency, text=text)
    mark = read_mark(text, set(range(1, item.extra["count"] + 1)))
    return Prediction(None if mark.id is None else str(mark.id), latency, text=text,
                      reason="" if mark.id is not None else mark.reason)


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def _accuracy(rows: list[tuple[FaceRecord, dict[str, Any]]], skill: str) -> dict[str, Any]:
    correct = sum(entry.get("label") == item.labels[skill] for item, entry in rows)
    answered = sum(entry.get("label") is not None for _, entry in rows)
    return {"n": len(rows), "correct": correct, "accuracy": _rate(correct, len(rows)),
            "parse_rate": _rate(answered, len(rows))}


def skill_metrics(rows: list[tuple[FaceRecord, dict[str, Any]]], skill: str) -> dict[str, Any]:
    """Accuracy and parse rate; by position for multi-person skills; AU consistency for reasoning."""
    result = _accuracy(rows, skill)
    if skill in ("person", "marks"):
        by_position: dict[str, list] = defaultdict(list)
        for item, entry in rows:
            p = item.extra["position"]
            by_position["by attribute" if p is None else f"{p} of {item.extra['count']}"].append((item, entry))
        result["by_position"] = {k: _accuracy(v, skill) for k, v in sorted(by_position.items())}
    if skill == "reasoning":
        from faceqa.vlm.cot_check import check_cot, cited_aus

        agreeing = checkable = 0
        for item, entry in rows:
            reference = {c.au: c.value for c in cited_aus(item.extra["target"]) if c.value is not None}
            checked = check_cot(entry.get("text") or "", reference, None)
            agreeing, checkable = agreeing + len(checked.agreeing), checkable + checked.checkable
        result.update({"conclusion_accuracy": result["accuracy"], "au_consistency": _rate(agreeing, checkable),
                       "aus_checked": checkable})
    return result


def skills_predictor(endpoint: str, model: str, skills: tuple[str, ...], style: str, api_key: str,
                     max_tokens: int) -> Any:
    """The endpoint asked each row's own question: its PaliGemma prefix, or its chat question."""
    from faceqa.eval.item_endpoint import ItemEndpoint

    field = "prefix" if style == "paligemma" else "chat"
    return ItemEndpoint(endpoint, model, skills, lambda item, _: item.extra[field], read_skill_answer,
                        api_key=api_key, max_tokens=max_tokens,
                        name=model if style == "chat" else f"{model}[{style}]")


def evaluate_skills(root: str | Path, predictor: Any, out_dir: str | Path, skills: tuple[str, ...], *,
                    split: str = "validation", limit: int | None = None, concurrency: int = 1,
                    progress: bool = True, cache_path: str | Path | None = None,
                    dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask every held-out row of the skills, score, write report.json and model_card.md. Resumable."""
    import json

    from faceqa.eval.cache import PredictionCache
    from faceqa.eval.card import skills_card
    from faceqa.eval.runner import run_predictions
    from faceqa.files import write_atomic

    out = Path(out_dir)
    items = list(read_skill_rows(root, split, skills))[:limit]
    with PredictionCache(cache_path or out / "predictions.jsonl") as cache:
        stats = run_predictions(items, skills, predictor, cache, concurrency, progress)
        answered = {s: [(i, e) for i in items if s in i.labels and (e := cache.get(i.key, s, predictor.name))
                        and not e.get("error")] for s in skills}
    report = {
        "version": 1, "model": predictor.describe(),
        "dataset": {**(dataset or {}), "path": str(root), "split": split, "items": len(items)},
        "skills": {s: skill_metrics(rows, s) for s, rows in answered.items() if rows},
        "run": stats.to_dict(),
    }
    write_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(out / "model_card.md", skills_card(report))
    return report
