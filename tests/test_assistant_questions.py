"""The question table (tests/data/assistant_questions.toml): questions as users write them, by category.

Every question is routed and answered with the checks of tests/assistant_table.py. The table
passes when at least 95% of its questions do, every refusal does, and no question fails that is
not marked `known_failure = "why"` in the table (none is today): a change that breaks a handful
of questions is caught, not absorbed by the 95%. The per-category pass rates are printed (the
README's assistant section quotes them).
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from pathlib import Path

import pytest
from assistant_table import analysed, run_chat

from faceqa.assistant import Assistant

TABLE = Path(__file__).parent / "data" / "assistant_questions.toml"


def chats() -> list[tuple[str, list[dict]]]:
    """(category, turns): each case of a group is a one-turn chat, each chain a chat."""
    data = tomllib.loads(TABLE.read_text())
    out = []
    for group in data["group"]:
        for case in group["cases"]:
            turn = {**group.get("defaults", {}), "photos": group.get("photos", ["group"]), **case}
            out.append((group["category"], [turn]))
    for chain in data["chain"]:
        out.append((chain["category"], [{**t, "photos": chain["photos"]} for t in chain["turns"]]))
    return out


def test_the_table_is_large_and_covers_every_category():
    counts: dict[str, int] = defaultdict(int)
    for category, turns in chats():
        counts[category] += len(turns)
    assert sum(counts.values()) >= 400
    wanted = {"paraphrase", "typos", "followup", "refusal", "not_visible", "compound", "vocabulary",
              "other_language", "wording"}  # fmt: skip
    assert set(counts) == wanted and min(counts.values()) >= 15


@pytest.fixture(scope="module")
def photos(engine):
    return analysed(engine)


def test_questions_pass_95_percent_and_every_refusal(engine, photos):
    assistant = Assistant(engine)
    passed: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    failures, unexpected = [], []
    for category, turns in chats():
        failed = run_chat(turns, photos, assistant)
        if failed and not any("known_failure" in t for t in turns):
            unexpected += failed
        # A chat stops at its first failing turn: the turns after it count as failed too.
        done = len(turns) - (len(turns) - int(failed[0].split()[1]) + 1 if failed else 0)
        passed[category] += done
        total[category] += len(turns)
        failures += [f"[{category}] {f}" for f in failed]
    rows = [f"| {c} | {total[c]} | {passed[c] / total[c]:.0%} |" for c in sorted(total)]
    everything = sum(passed.values()) / sum(total.values())
    print("\n| category | questions | pass |\n|---|---|---|\n" + "\n".join(rows))
    print(f"| all | {sum(total.values())} | {everything:.1%} |")
    print("\n".join(failures))
    assert passed["refusal"] == total["refusal"], "every refusal must pass:\n" + "\n".join(failures)
    assert everything >= 0.95, f"{everything:.1%} of the table passes:\n" + "\n".join(failures)
    assert not unexpected, "questions that passed before fail now:\n" + "\n".join(unexpected)
