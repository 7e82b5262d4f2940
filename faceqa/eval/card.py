"""A Markdown model card ("Model Cards for Model Reporting", Mitchell et al. 2019) from a report.

Everything measured comes from report.json; the fixed text says what the numbers
cannot: the attributes are apparent, the labels are annotators' judgements, and the
model must not be used to identify people or decide things about them.
"""

from __future__ import annotations

from typing import Any

INTENDED_USE = """\
- Answering questions about the *apparent* attributes of people in photos that the user supplies
  (apparent age group, gender presentation, perceived race, facial expression), with a confidence.
- Research and education on face-attribute models, including measuring their errors and their
  differences between groups, as this card does.
"""

OUT_OF_SCOPE = """\
- Identifying people, or linking a face to a name, an account or another photo.
- Consequential decisions about people: hiring, lending, housing, insurance, education, policing,
  border control, medical or legal judgements, access to services.
- Inferring self-identified gender, race or ethnicity, sexual orientation, health, or emotional
  state as a fact: the model sees only appearance and expression.
- Surveillance, tracking, or any processing of faces of people who have not agreed to it.
"""

CAVEATS = """\
- **Apparent, not self-identified.** Ground-truth labels are annotators' perceptions (FairFace's race
  and gender were labelled by crowd workers from the photo); predictions are a model's perception.
  Agreement with such labels is not correctness about a person's identity.
- **Categories are reductive.** Two genders and seven race groups cannot describe everyone; people
  outside them are misrepresented by construction.
- **Posed vs. spontaneous expressions.** A smile is not happiness; expression labels describe faces,
  not feelings.
- **Dataset shift.** Accuracy on these images says little about other cameras, lighting, ages or
  populations. Groups with few items have wide intervals (see the warnings).
- **Cross-dataset labels** are compared only through the documented mappings in
  `faceqa.prompts.taxonomy`; classes a dataset cannot express are left out of its macro-F1.
- **Unanswered is wrong.** An answer the parser cannot read, or an image where no face was found,
  counts as a wrong prediction and is also reported as the unanswered rate.
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _ci(interval: list[float] | tuple[float, float] | None, n: int | None = None, min_n: int = 0) -> str:
    """The bootstrap interval, or "too few" where `n` items cannot give one (a group of 2 gives [0, 0] or [0, 100])."""
    if n is not None and n < min_n:
        return " (too few)"
    return "" if not interval else f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


# Which reference rows a run may be compared with: the published datasets of each reader's source.
PUBLISHED_DATASETS = {"fairface": ("FairFace",), "affectnet": ("AffectNet", "AffectNet-8"), "rafdb": ("RAF-DB",),
                      "facexbench": ("FaceXBench",)}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _model_section(model: dict[str, Any]) -> str:
    lines = [f"- **Name:** {model.get('name', 'unknown')}"]
    for key, title in (("kind", "Kind"), ("model", "Model"), ("endpoint", "Endpoint"), ("base_model", "Base model"),
                       ("adapter", "Adapter"), ("prompt_style", "Prompt style"),
                       ("prefix_attention", "PaliGemma prefix attention"), ("face_crop", "Images shown"),
                       ("decoding", "Decoding"),
                       ("description", "Description"), ("licence", "Licence")):
        if model.get(key):
            lines.append(f"- **{title}:** {model[key]}")
    text = "\n".join(lines) + "\n"
    if model.get("components"):
        text += "\nComponents and their licences:\n\n" + _table(
            ["task", "origin", "licence"],
            [[c["task"], f"`{c['origin']}`", c["licence"] + (f" — **{c['note']}**" if c.get("note") else "")]
             for c in model["components"]],
        )
    if not model.get("licence") and not model.get("components"):
        text += "- **Licence:** not stated; give it with `--model-licence` before publishing this card.\n"
    return text


def _metrics_section(tasks: dict[str, Any], min_n: int) -> str:
    rows = []
    for task, m in tasks.items():
        extra = []
        if "within_one_group_accuracy" in m:
            extra.append(f"±1 group {_pct(m['within_one_group_accuracy'])}")
        if "mae_years" in m:
            extra.append(f"MAE {m['mae_years']:.1f} years (n={m['mae_n']})")
        rows.append([task, m["n"], _pct(m["accuracy"]) + _ci(m["accuracy_ci"], m["n"], min_n), _pct(m["macro_f1"]),
                     _pct(m["unanswered_rate"]), "; ".join(extra) or "–"])
    text = _table(["task", "n", "accuracy [95% CI]", "macro-F1", "unanswered", "age groups: ±1 accuracy, MAE"], rows)
    for task, m in tasks.items():
        predicted = _predicted(m)
        text += f"\n**{task}: per class**\n\n" + _table(
            ["class", "support", "precision", "recall", "F1"],
            [[c, s["support"], _pct(s["precision"] if predicted.get(c, 1) else None),
              _pct(s["recall"] if s["support"] else None), _pct(s["f1"] if s["support"] else None)]
             for c, s in m["per_class"].items()],
        )
        if m["unanswered_examples"]:
            text += "\nUnanswered examples:\n\n" + "".join(
                f"- `{e['image']}`: {e['reason'] or 'unparsed'} — “{e['text']}”\n" for e in m["unanswered_examples"]
            )
    return text


def _predicted(metrics: dict[str, Any]) -> dict[str, int]:
    """How often each class was predicted (confusion-matrix column sums); precision is undefined at 0."""
    confusion = metrics.get("confusion")
    if not confusion:
        return {}
    return {c: sum(row[j] for row in confusion["matrix"]) for j, c in enumerate(confusion["columns"])}


def _groups_section(tasks: dict[str, Any], min_n: int) -> str:
    text = ""
    for task, m in tasks.items():
        for grouping, result in m["groups"].items():
            text += f"\n### {task} by {grouping.replace('×', ' × ')}\n\n" + _table(
                ["group", "n", "accuracy [95% CI]", "macro-F1", "unanswered"],
                [[g, s["n"], _pct(s["accuracy"]) + _ci(s["accuracy_ci"], s["n"], min_n), _pct(s["macro_f1"]),
                  _pct(s["unanswered_rate"])] for g, s in result["groups"].items()],
            )
            gap = result["gap"]
            if gap:
                text += (f"\nGap between best and worst group: **{100 * gap['accuracy_gap']:.1f} points** "
                         f"({gap['best']} {_pct(gap['best_accuracy'])} vs {gap['worst']} "
                         f"{_pct(gap['worst_accuracy'])}).\n")
            for warning in result["warnings"]:
                text += f"\n> ⚠ {warning}\n"
    return text


def model_card(report: dict[str, Any]) -> str:
    model, dataset, tasks = report["model"], report["dataset"], report["tasks"]
    latency = report.get("latency")
    audit = dataset.get("label_audit") or {}
    parts = [
        f"# Model card: {model.get('name', 'unknown')}\n\n",
        "Generated by `faceqa eval` from `report.json`; every number below was measured on the evaluation "
        "data described here, except the rows marked *published, not measured*.\n\n",
        "## Model details\n\n", _model_section(model), "\n",
        "## Intended use\n\n", INTENDED_USE, "\n",
        "## Out-of-scope uses\n\n", OUT_OF_SCOPE, "\n",
        "## Training data\n\n", (model.get("training_data") or "Not known to the evaluator; state it with "
                               "`--training-data`.") + "\n\n",
        "## Evaluation data\n\n",
        f"- **Dataset:** {dataset.get('name', 'unnamed')} ({dataset.get('format', 'unknown format')})\n"
        f"- **Items:** {dataset['items']}; sources {dataset['sources']}; splits {dataset['splits']}\n",
    ]
    for kind in ("unmapped_labels", "skipped_rows"):
        for key, value in (audit.get(kind) or {}).items():
            parts.append(f"- {kind.replace('_', ' ')}: `{key}` × {value['count']}\n")
    if report["unusable_inputs"]["count"]:
        parts.append(f"- Inputs the model could not use (left out): {report['unusable_inputs']['count']}\n")
    min_n = report.get("settings", {}).get("min_group_size", 0)
    parts += ["\n## Metrics\n\n", _metrics_section(tasks, min_n)]
    if latency:
        parts.append(f"\nLatency per call: p50 {latency['p50'] * 1000:.0f} ms, p90 {latency['p90'] * 1000:.0f} ms, "
                     f"p99 {latency['p99'] * 1000:.0f} ms (n={latency['n']}).\n")
    evaluated = {d for source in dataset.get("sources", {}) for d in PUBLISHED_DATASETS.get(source, ())}
    published = [r for r in report["published"] if r["dataset"] in evaluated]
    if published:
        parts += ["\n### Reference rows (published, not measured)\n\n", _table(
            ["model", "dataset", "task", "accuracy", "status"],
            [[r["model"], r["dataset"], r["task"], _pct(r["accuracy"]), r["note"]] for r in published],
        )]
    parts += ["\n## Disaggregated results\n", _groups_section(tasks, min_n) or "No group labels in this dataset.\n"]
    if report.get("plots"):
        parts += ["\n## Plots\n\n", "".join(f"![{p}]({p})\n" for p in report["plots"])]
    parts += ["\n## Caveats and recommendations\n\n", CAVEATS]
    return "".join(parts)


def mcq_card(report: dict[str, Any]) -> str:
    """The model card of a FaceXBench run: accuracy per category and sub-category, published rows beside it."""
    model, dataset, overall = report["model"], report["dataset"], report["overall"]
    rows = [["**all**", "", overall["n"], _pct(overall["accuracy"]) + _ci(overall["accuracy_ci"]),
             _pct(overall["unanswered_rate"])]]
    for category, c in report["categories"].items():
        rows.append([f"**{category}**", "", c["n"], _pct(c["accuracy"]) + _ci(c["accuracy_ci"]),
                     _pct(c["unanswered_rate"])])
        rows += [[category, sub, s["n"], _pct(s["accuracy"]) + _ci(s["accuracy_ci"]), _pct(s["unanswered_rate"])]
                 for sub, s in c["sub_categories"].items()]
    parts = [
        f"# Model card: {model.get('name', 'unknown')} on FaceXBench\n\n",
        "Generated by `faceqa eval run -f facexbench` from `report.json`. Every question has four options and one "
        "correct letter; an answer the parser cannot read as one letter counts as wrong (the unanswered column). "
        "Rows marked *published, not measured* are the benchmark paper's figures on its full 5,000 questions.\n\n",
        "## Model details\n\n", _model_section(model), "\n",
        "## Intended use\n\n", INTENDED_USE, "\n",
        "## Out-of-scope uses\n\n", OUT_OF_SCOPE, "\n",
        "## Evaluation data\n\n",
        f"- **Benchmark:** {dataset.get('name')} at `{dataset.get('path')}`: {dataset['questions']} questions from "
        f"{len(dataset['files'])} files ({', '.join(dataset['files'])})\n",
    ]
    for key, value in ((dataset.get("label_audit") or {}).get("skipped_rows") or {}).items():
        parts.append(f"- skipped: `{key}` × {value['count']}\n")
    parts += ["\n## Accuracy by category and sub-category\n\n",
              _table(["category", "sub-category", "n", "accuracy [95% CI]", "unanswered"], rows)]
    if report["unanswered_examples"]:
        parts.append("\nUnanswered examples:\n\n" + "".join(
            f"- `{e['question']}`: {e['reason']} — “{e['text']}”\n" for e in report["unanswered_examples"]))
    if report["published"]:
        parts += ["\n### Reference rows (published, not measured)\n\n", _table(
            ["model", "benchmark", "accuracy", "status"],
            [[r["model"], r["dataset"], _pct(r["accuracy"]), r["note"]] for r in report["published"]])]
    parts += ["\n## Caveats and recommendations\n\n", CAVEATS]
    return "".join(parts)


def skills_card(report: dict[str, Any]) -> str:
    """The card of a skills run: reasoning format and consistency, multi-person answers by position."""
    model, skills = report["model"], report["skills"]
    rows = [[s, m["n"], _pct(m["accuracy"]), _pct(m["parse_rate"]),
             _pct(m.get("au_consistency")) + (f" ({m['aus_checked']} AUs)" if "aus_checked" in m else "")]
            for s, m in skills.items()]
    parts = [f"# Model card: {model.get('name', 'unknown')}, trained skills\n\n",
             "Generated by `faceqa eval run -f built --tasks ...` from `report.json`: each held-out row of a built "
             "dataset asked exactly as it was trained. An answer the parsers cannot read counts as wrong.\n\n",
             "## Model details\n\n", _model_section(model), "\n",
             "## Out-of-scope uses\n\n", OUT_OF_SCOPE, "\n",
             f"## Results ({report['dataset']['items']} rows of `{report['dataset']['path']}`, "
             f"split {report['dataset']['split']})\n\n",
             _table(["skill", "n", "accuracy", "parse rate", "cited AUs consistent"], rows)]
    for skill, m in skills.items():
        if m.get("by_position"):
            parts += [f"\n**{skill}: by position**\n\n", _table(
                ["position", "n", "accuracy"],
                [[p, v["n"], _pct(v["accuracy"])] for p, v in m["by_position"].items()])]
    parts += ["\n## Caveats and recommendations\n\n", CAVEATS]
    return "".join(parts)
