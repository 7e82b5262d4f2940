"""Question/answer samples about one face or a collage of faces, from ground-truth labels only.

Every question and answer is worded by `faceqa.prompts.templates` (the same words the
VLM backends and the evaluator use), in both styles at once: chat sentences and
PaliGemma's `answer en ...` prefixes with bare-label answers. The paraphrase is picked
from a seed derived from the row key, so a rebuild, a resume or another worker
process writes exactly the same text.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from faceqa.prompts import templates
from faceqa.prompts.taxonomy import ATTRIBUTES

# What a row of the built dataset teaches (`--tasks` of build-dataset): one attribute, all of them, the Exp-CoT
# reasoning, a collage of several people, numbered marks. A row's `task` column is the template it used, finer.
SAMPLE_KINDS = ("attribute", "attributes", "reasoning", "composite", "marks")
_AU_COLUMN = re.compile(r"^(AU)0*(\d+)(?:_([rc]))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    task: str  # the templates' task name: "age_group", "attributes", "reasoning", "person_emotion", ...
    chat_question: str
    chat_answer: str
    paligemma_question: str
    paligemma_answer: str
    referent: str | None = None  # collages: the phrase the question points with ("the second man from the left")
    subject: int | None = None  # collages: the face (0-based, left to right) the phrase means

    def messages(self) -> list[dict]:
        """LLaVA / Idefics3 / Qwen-VL style: the image part first, then the question; one assistant turn."""
        return [
            {"role": "user", "content": [{"type": "image", "text": None},
                                         {"type": "text", "text": self.chat_question}]},
            {"role": "assistant", "content": [{"type": "text", "text": self.chat_answer}]},
        ]


def seed_of(*parts: str) -> int:
    """A stable 32-bit seed from text (Python's hash() differs per process)."""
    return int.from_bytes(hashlib.blake2b("|".join(parts).encode("utf-8"), digest_size=4).digest(), "big")


def _both(task: str, seed: int, question_fields: Mapping, answer_fields: Mapping, subject: int | None = None
          ) -> Sample:
    return Sample(
        task,
        templates.question(task, "chat", seed, **question_fields),
        templates.answer(task, "chat", seed, **answer_fields),
        templates.question(task, "paligemma", seed, **question_fields),
        templates.answer(task, "paligemma", seed, **answer_fields),
        question_fields.get("referent"),
        subject,
    )


def dataset_action_units(extra: Mapping) -> dict[str, float] | None:
    """AU intensities a dataset row carries, as AUn -> [0, 1] (FACS 0-5 intensities are divided by 5)."""
    raw = extra.get("action_units")
    if not raw:
        return None
    intensities: dict[str, float] = {}
    presence: dict[str, float] = {}
    for column, value in raw.items():
        match = _AU_COLUMN.match(str(column).strip())
        if match is None or value is None:
            continue
        au, kind = f"AU{int(match[2])}", (match[3] or "").lower()
        target = presence if kind == "c" else intensities
        target[au] = float(value)
    scale = 5.0 if any(v > 1.0 for v in intensities.values()) else 1.0
    units = {au: min(max(v / scale, 0.0), 1.0) for au, v in intensities.items()}
    for au, value in presence.items():  # presence-only columns count as full intensity when on
        units.setdefault(au, 1.0 if value >= 0.5 else 0.0)
    return units or None


def face_samples(key: str, labels: Mapping[str, str], tasks: tuple[str, ...], seed: int,
                 action_units: Mapping[str, float] | None = None, geometric: bool = False) -> list[Sample]:
    """The samples of one face: a question per labelled attribute, the JSON of all four, the CoT."""
    samples = []
    if "attribute" in tasks:
        for attribute in ATTRIBUTES:
            if attribute in labels:
                s = seed_of(str(seed), key, attribute)
                samples.append(_both(attribute, s, {}, {"label": labels[attribute]}))
    if "attributes" in tasks and all(a in labels for a in ATTRIBUTES):
        s = seed_of(str(seed), key, "attributes")
        fields = {a: labels[a] for a in ATTRIBUTES}
        samples.append(_both("attributes", s, {}, fields))
    if "reasoning" in tasks and "emotion" in labels and action_units is not None:
        from faceqa.prompts.cot import compose_cot

        s = seed_of(str(seed), key, "reasoning")
        text = compose_cot(action_units, labels["emotion"], geometric=geometric).brief
        samples.append(Sample("reasoning", templates.question("reasoning", "chat", s), text,
                              templates.question("reasoning", "paligemma", s), text))
    return samples


# --- multi-person collages -------------------------------------------------------------------


def means(phrase: str, labels: Sequence[Mapping[str, str]]) -> list[int]:
    """The faces of a collage (equal tiles in one row, left to right) a referring phrase points at.

    The assistant's own definition of a referring phrase decides (`faceqa.assistant.referring`),
    so a collage question means in training what the same words mean when a user asks them.
    """
    from faceqa.assistant.referring import Person, refer

    people = [Person((10.0 * i, 0.0, 8.0, 8.0), gender=p.get("gender"), emotion=p.get("emotion"), race=p.get("race"))
              for i, p in enumerate(labels)]
    return refer(phrase, people)


def _place(index: int, row: list[int]) -> tuple[str, dict]:
    """How face `index` sits in `row` (the faces being counted, left to right): a side, the middle, an ordinal."""
    position, count = row.index(index), len(row)
    if position == 0:
        return "side", {"side": "left"}
    if position == count - 1:
        return "side", {"side": "right"}
    if count == 3:
        return "middle", {}
    if position < count / 2:
        return "ordinal", {"ordinal": position + 1, "side": "left"}
    return "ordinal", {"ordinal": count - position, "side": "right"}


def position_referent(index: int, people: Sequence[Mapping[str, str]], rng: random.Random,
                      gender: str | None = None) -> str | None:
    """How to point at face `index` (0-based, left to right) of `people`, or None if no phrase means only it.

    A gendered phrase counts among that gender ("the second man from the left" is the
    second of the men, as the assistant reads it), so the place is computed both
    among the faces of that gender and among all, and the phrase the referring rules
    resolve to exactly this face is kept.
    """
    fields = {"gender": gender} if gender else {}
    seed = rng.randrange(2**31)
    if rng.random() < 0.2:
        places = [("id", {"id": index + 1})]
    else:
        everyone = list(range(len(people)))
        same = [i for i in everyone if people[i].get("gender") == gender] if gender else everyone
        places = [_place(index, same), _place(index, everyone)]
    for kind, place in places:
        phrase = templates.referent(kind, seed, **place, **fields)
        if means(phrase, people) == [index]:
            return phrase
    return None


def _unique(people: list[Mapping[str, str]], attribute: str, label: str) -> int | None:
    holders = [i for i, p in enumerate(people) if p.get(attribute) == label]
    return holders[0] if len(holders) == 1 else None


def composite_samples(key: str, people: list[Mapping[str, str]], seed: int, count: int = 2) -> list[Sample]:
    """Up to `count` questions about a collage of `people` (their labels, left to right).

    Questions point at one person by position ("the second person from the left") or
    by attribute ("the person who looks happy", "who is the oldest?"); they are only
    asked when the ground truth gives exactly one answer.
    """
    rng = random.Random(seed_of(str(seed), key))
    makers = [_by_position, _by_emotion_referent, _extreme_age, _who_emotion, _count]
    candidates = [s for make in makers if (s := make(people, rng)) is not None]
    rng.shuffle(candidates)
    position_first = sorted(candidates, key=lambda s: not s.task.startswith("person_"))
    return position_first[:count]


def marks_samples(key: str, people: list[Mapping[str, str]], seed: int) -> list[Sample]:
    """Set-of-marks: on the collage with numbered boxes drawn (`faceqa.vlm.marks`), which number is the referent.

    The referent is a position, or an emotion when exactly one person shows it; the
    answer is the box number, the engine's numbering (left to right from 1).
    """
    rng = random.Random(seed_of(str(seed), key, "marks"))
    index = rng.randrange(len(people))
    person = people[index]
    gender = person.get("gender")
    referent: str | None
    if "emotion" in person and _unique(people, "emotion", person["emotion"]) == index and rng.random() < 0.3:
        fields = {"emotion": person["emotion"], **({"gender": gender} if gender else {})}
        referent = templates.referent("emotion", rng.randrange(2**31), **fields)
    else:
        referent = position_referent(index, people, rng, gender)
    if referent is None or means(referent, people) != [index]:
        return []
    return [_both("marks", rng.randrange(2**31), {"referent": referent}, {"id": index + 1}, index)]


def _by_position(people, rng) -> Sample | None:
    index = rng.randrange(len(people))
    attributes = [a for a in ATTRIBUTES if a in people[index]]
    if not attributes:
        return None
    attribute = rng.choice(attributes)
    # Never name the gender in the referent of a gender question ("is the man on the left male?").
    gender = people[index].get("gender") if attribute != "gender" else None
    referent = position_referent(index, people, rng, gender)
    if referent is None:
        return None
    s = rng.randrange(2**31)
    return _both(f"person_{attribute}", s, {"referent": referent},
                 {"referent": referent, "label": people[index][attribute]}, index)


def _by_emotion_referent(people, rng) -> Sample | None:
    pairs = [(i, b) for i, p in enumerate(people) if "emotion" in p and _unique(people, "emotion", p["emotion"]) == i
             for b in ("race", "gender", "age_group") if b in p]
    if not pairs:
        return None
    index, attribute = rng.choice(pairs)
    person = people[index]
    fields = {"emotion": person["emotion"]}
    if attribute != "gender" and "gender" in person:
        fields["gender"] = person["gender"]
    referent = templates.referent("emotion", rng.randrange(2**31), **fields)
    if means(referent, people) != [index]:
        return None
    s = rng.randrange(2**31)
    return _both(f"person_{attribute}", s, {"referent": referent}, {"referent": referent, "label": person[attribute]},
                 index)


def _extreme_age(people, rng) -> Sample | None:
    from faceqa.prompts.taxonomy import AGE_GROUPS

    if not all("age_group" in p for p in people):
        return None
    ranks = [AGE_GROUPS.index(p["age_group"]) for p in people]
    task = rng.choice(["oldest", "youngest"])
    best = max(ranks) if task == "oldest" else min(ranks)
    if ranks.count(best) != 1:
        return None
    index = ranks.index(best)
    referent = position_referent(index, people, rng)
    if referent is None:
        return None
    s = rng.randrange(2**31)
    return _both(task, s, {}, {"id": index + 1, "referent": referent, "age_group": people[index]["age_group"]},
                 index)


def _who_emotion(people, rng) -> Sample | None:
    if not all("emotion" in p for p in people):
        return None
    emotion = rng.choice([p["emotion"] for p in people])
    ids = [i + 1 for i, p in enumerate(people) if p["emotion"] == emotion]
    s = rng.randrange(2**31)
    return _both("who_emotion", s, {"emotion": emotion}, {"emotion": emotion, "ids": ids})


def _count(people, rng) -> Sample | None:
    if rng.random() > 0.25:  # counting is easy: ask it now and then, not for every collage
        return None
    s = rng.randrange(2**31)
    return _both("count", s, {}, {"count": len(people)})
