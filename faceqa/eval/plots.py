"""PNG plots of a report: a confusion matrix per task and per-group accuracy with 95% intervals.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from faceqa.files import write_atomic


def _save(figure: Figure, path: Path) -> str:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())
    return path.name


def confusion_plot(task: str, confusion: dict[str, Any], path: Path) -> str:
    matrix = np.array(confusion["matrix"], dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    rows, columns = confusion["rows"], confusion["columns"]
    figure = Figure(figsize=(1.0 + 0.75 * len(columns), 1.0 + 0.6 * len(rows)))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(matrix):
        axes.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=8,
                  color="white" if shares[i, j] > 0.5 else "black")
    axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), rows, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    axes.set_title(f"{task}: confusion (colour = share of the row)")
    figure.colorbar(image, ax=axes, fraction=0.04)
    return _save(figure, path)


def group_plot(task: str, grouping: str, groups: dict[str, dict[str, Any]], path: Path,
               min_group_size: int) -> str:
    names = list(groups)
    accuracy = np.array([groups[g]["accuracy"] for g in names])
    low = np.array([(groups[g]["accuracy_ci"] or (a, a))[0] for g, a in zip(names, accuracy, strict=True)])
    high = np.array([(groups[g]["accuracy_ci"] or (a, a))[1] for g, a in zip(names, accuracy, strict=True)])
    small = [groups[g]["n"] < min_group_size for g in names]
    figure = Figure(figsize=(7, 1.0 + 0.35 * len(names)))
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    axes.barh(positions, accuracy, color=["#bbbbbb" if s else "#4878a8" for s in small])
    axes.errorbar(accuracy, positions, xerr=[accuracy - low, high - accuracy], fmt="none", ecolor="black",
                  capsize=3)
    axes.set_yticks(positions, [f"{g} (n={groups[g]['n']})" for g in names], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("accuracy (bars: 95% bootstrap interval; grey: fewer than "
                    f"{min_group_size} items)")
    axes.set_title(f"{task} accuracy by {grouping.replace('×', ' × ')}")
    return _save(figure, path)


def write_plots(report: dict[str, Any], folder: Path) -> list[str]:
    """Every plot of the report into `folder`; returns the file names written."""
    written = []
    for task, metrics in report["tasks"].items():
        if "confusion" in metrics:
            written.append(confusion_plot(task, metrics["confusion"], folder / f"confusion_{task}.png"))
        for grouping, result in metrics.get("groups", {}).items():
            slug = grouping.replace("×", "_x_")
            written.append(group_plot(task, grouping, result["groups"], folder / f"groups_{task}_{slug}.png",
                                      report["settings"]["min_group_size"]))
    return [f"plots/{name}" for name in written]
