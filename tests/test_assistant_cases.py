"""The assistant's table of cases (tests/data/assistant_cases.toml) over real photos.

Each case is routed (Plan checked) and answered (Answer checked), one test per case or chat;
the checks are in tests/assistant_table.py, shared with the question table.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from assistant_table import analysed, run_chat

from faceqa.assistant import Assistant
from faceqa.schema import ImageReport

CASES_FILE = Path(__file__).parent / "data" / "assistant_cases.toml"


def _cases() -> list[tuple[str, list[dict]]]:
    """(id, turns): a single case is a one-turn chat."""
    data = tomllib.loads(CASES_FILE.read_text())
    out = [(f"{i:03d}-{'+'.join(c.get('photos', ['group']))}-{c['q']}", [c]) for i, c in enumerate(data["case"])]
    for i, chat in enumerate(data["conversation"]):
        turns = [{**t, "photos": chat["photos"], "resend": chat.get("resend", False)} for t in chat["turns"]]
        out.append((f"chat{i}-{'+'.join(chat['photos'])}-{turns[0]['q']}", turns))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def photos(engine) -> dict[str, ImageReport]:
    return analysed(engine)


@pytest.fixture(scope="module")
def assistant(engine) -> Assistant:
    return Assistant(engine)


@pytest.mark.parametrize("turns", [turns for _, turns in CASES], ids=[name for name, _ in CASES])
def test_case(turns: list[dict], photos, assistant):
    failures = run_chat(turns, photos, assistant)
    assert not failures, "\n".join(failures)
