"""How long the training sequences are, and what that costs in memory.

Attribute answers are one label, but expression reasoning targets are paragraphs
(about 900 characters), so they dominate the loss and, past the model's positions,
are silently truncated. The builder reports target lengths in characters per task
(the tokenizer is not known yet); training measures tokens with the real processor
and collator on a sample of each task, refuses sequences longer than the model can
hold, warns when `max_length` truncates targets, and logs the memory the logits of
one batch take (batch x sequence x vocabulary x 4 bytes in fp32: with Gemma's 257k
vocabulary that, not the weights, is what fills a GPU).
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

GIB = 1024**3


def describe(values: Iterable[int]) -> dict[str, Any]:
    """n, mean, median, 95th percentile and maximum of `values` (nearest-rank percentiles)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    def rank(q: float) -> int:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"n": len(ordered), "mean": round(sum(ordered) / len(ordered), 1), "p50": rank(0.5), "p95": rank(0.95),
            "max": ordered[-1]}


def target_chars(lengths: Mapping[str, int]) -> dict[str, dict[str, dict[str, float]]]:
    """Per split and task: the answers' (PaliGemma suffixes') lengths in characters, from "split|task|chars" -> rows."""
    counts: dict[str, dict[str, Counter[int]]] = defaultdict(lambda: defaultdict(Counter))
    for key, rows in lengths.items():
        split, task, chars = key.rsplit("|", 2)
        counts[split][task][int(chars)] += rows
    return {split: {task: describe(c.elements()) for task, c in sorted(tasks.items())}
            for split, tasks in sorted(counts.items())}


def sample_by_task(tasks: list[str], per_task: int, seed: int = 0) -> list[int]:
    """Indices of up to `per_task` rows of every task (rare long tasks must not be missed by a uniform sample)."""
    by_task: dict[str, list[int]] = defaultdict(list)
    for index, task in enumerate(tasks):
        by_task[task].append(index)
    rng = random.Random(seed)
    return sorted(i for rows in by_task.values() for i in rng.sample(rows, min(per_task, len(rows))))


def token_lengths(rows: Iterable[Mapping[str, Any]], collate: Callable[[list[dict]], Mapping[str, Any]]
                  ) -> dict[str, dict[str, dict[str, float]]]:
    """Per task: sequence tokens (image, prompt, answer) and target tokens (those with a loss), as collated."""
    sequences: dict[str, list[int]] = defaultdict(list)
    targets: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        batch = collate([dict(row)])
        sequences[row["task"]].append(int(batch["attention_mask"][0].sum()))
        targets[row["task"]].append(int((batch["labels"][0] != -100).sum()))
    return {task: {"sequence": describe(sequences[task]), "target": describe(targets[task])} for task in sequences}


def logits_bytes(batch_size: int, sequence: int, vocabulary: int, bytes_per_value: int = 4) -> int:
    """Memory of one batch's output logits (fp32 by default: the loss upcasts them)."""
    return batch_size * sequence * vocabulary * bytes_per_value


def memory_note(batch_size: int, sequence: int, vocabulary: int, parameters: int, weight_bytes: int) -> str:
    """One line: weights and the logits of one batch at the longest sequence."""
    logits = logits_bytes(batch_size, sequence, vocabulary) / GIB
    return (f"memory: weights {parameters * weight_bytes / GIB:.1f} GiB ({parameters / 1e9:.2f} B parameters x "
            f"{weight_bytes} bytes); fp32 logits of one batch {logits:.1f} GiB "
            f"({batch_size} x {sequence} tokens x {vocabulary} vocabulary x 4 bytes)")


class TooLong(ValueError):
    """Training sequences longer than the model's positions: they would be cut without anyone noticing."""


def check_lengths(stats: Mapping[str, Mapping[str, Mapping[str, float]]], model_positions: int,
                  max_length: int | None) -> list[str]:
    """Refuse sequences over the model's positions; warnings for the tasks `max_length` truncates."""
    longest = {task: int(s["sequence"]["max"]) for task, s in stats.items() if s["sequence"]["n"]}
    over_model = {t: n for t, n in longest.items() if n > model_positions}
    if over_model and (max_length is None or max_length > model_positions):
        raise TooLong(f"sequences longer than the model's {model_positions} positions: "
                      + ", ".join(f"{t} up to {n} tokens" for t, n in sorted(over_model.items()))
                      + "; drop those tasks (tasks: [...]) or set max_length to truncate them knowingly")
    if max_length is None:
        return []
    return [f"max_length {max_length} truncates {t} (sequences up to {n} tokens): its targets lose their end"
            for t, n in sorted(longest.items()) if n > max_length]
