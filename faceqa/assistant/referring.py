"""What a referring phrase means: "the second man from the left" + the faces -> the indices of the faces meant.

This is the one definition of a referring phrase in faceqa. The assistant grounds questions
with it, the dataset builder checks the phrases it writes for collages with it, and the
evaluator scores VLM answers with it, so training, serving and evaluation agree on what
"the woman on the right" is. It is pure (no models, no I/O) and needs only the faces' boxes
and apparent attributes.

Rules, in order:
  1. filters keep the faces that fit every description word (apparent gender, an age range,
     emotion, race): a gendered ordinal filters by gender first, then counts, so "the second
     man from the left" is the second of the men;
  2. position: n-th from the left/right by box centre, the middle one (an even row has two),
     top/bottom by box centre height;
  3. size: largest/closest/front, smallest/back (two faces within 5% in area are a tie);
  4. superlatives: oldest/youngest by apparent years, happiest / least happy by emotion score.
A step that cannot pick says why (`Problem`), with the faces it was choosing among.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .referents import Referent, parse

Problem = Literal["no_match", "two_middle", "too_few", "size_tie", "no_ages", "no_scores"]
SIZE_TIE = 0.05  # two faces whose areas differ by at most this share are the same size


@dataclass(frozen=True)
class Person:
    """One face as the referring rules see it."""

    box: tuple[float, float, float, float]  # x, y, width, height in pixels
    gender: str | None = None  # "Male" / "Female" (apparent)
    age: float | None = None  # apparent years
    emotion: str | None = None
    race: str | None = None
    emotion_scores: Mapping[str, float] = field(default_factory=dict)

    @property
    def x(self) -> float:
        return self.box[0] + self.box[2] / 2

    @property
    def y(self) -> float:
        return self.box[1] + self.box[3] / 2

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


@dataclass(frozen=True)
class Selection:
    """The faces picked (indices into the list given), or the `problem` and the faces it was choosing among."""

    indices: tuple[int, ...]
    problem: Problem | None = None
    among: tuple[int, ...] = ()


def fits(person: Person, ref: Referent) -> bool:
    """Whether a face fits every description word of `ref` (an unknown attribute never fits)."""
    if ref.gender and person.gender != ref.gender:
        return False
    if ref.emotions and (person.emotion is None or (person.emotion in ref.emotions) == ref.not_emotion):
        return False
    if ref.race and person.race != ref.race:
        return False
    if ref.ages:
        low, high = ref.ages
        if person.age is None or not low <= person.age <= high:
            return False
    return True


def select(ref: Referent, people: Sequence[Person], pool: Sequence[int] | None = None) -> Selection:
    """Apply the rules above to `people` (or only to the indices in `pool`)."""
    chosen = list(range(len(people))) if pool is None else list(pool)
    if ref.filters:
        matched = [i for i in chosen if fits(people[i], ref)]
        if not matched:
            return Selection((), "no_match", tuple(chosen))
        chosen = matched
    if ref.side or ref.middle:
        row = sorted(chosen, key=lambda i: people[i].x)
        if ref.middle:
            if len(row) % 2 == 0:
                return Selection((), "two_middle", tuple(row[len(row) // 2 - 1 : len(row) // 2 + 1]))
            chosen = [row[len(row) // 2]]
        elif ref.nth > len(row):
            return Selection((), "too_few", tuple(row))
        else:
            chosen = [row[ref.nth - 1] if ref.side == "left" else row[-ref.nth]]
    if ref.vertical:
        chosen = [min(chosen, key=lambda i: people[i].y * (1 if ref.vertical == "top" else -1))]
    if ref.size:
        ranked = sorted(chosen, key=lambda i: people[i].area, reverse=ref.size == "largest")
        first = people[ranked[0]].area
        if len(ranked) > 1 and abs(first - people[ranked[1]].area) <= SIZE_TIE * first:
            return Selection((), "size_tie", tuple(ranked[:2]))
        chosen = ranked[:1]
    if ref.superlative:
        aged = [i for i in chosen if people[i].age is not None]
        if not aged:
            return Selection((), "no_ages", tuple(chosen))
        sign = 1.0 if ref.superlative == "oldest" else -1.0
        chosen = [max(aged, key=lambda i: sign * (people[i].age or 0.0))]
    if ref.emotion_most:
        emotion = ref.emotion_most
        scored = [i for i in chosen if people[i].emotion_scores]
        if not scored:
            return Selection((), "no_scores", tuple(chosen))
        sign = -1.0 if ref.least else 1.0
        chosen = [max(scored, key=lambda i: sign * people[i].emotion_scores.get(emotion, 0.0))]
    return Selection(tuple(chosen))


def refer(phrase: str | Referent, people: Sequence[Person]) -> list[int]:
    """Indices (into `people`) of the faces `phrase` means: one face, several (a plural or an
    ambiguous phrase), or none. "person 3" is the third face from the left.

    >>> row = [Person((0, 0, 10, 10), "Male"), Person((20, 0, 10, 10), "Female"), Person((40, 0, 10, 10), "Male")]
    >>> refer("the second man from the left", row)
    [2]
    """
    ref = parse(_normalised(phrase)) if isinstance(phrase, str) else phrase
    if ref.indexes:
        row = sorted(range(len(people)), key=lambda i: people[i].x)
        return [row[n - 1] for n, _ in ref.indexes if 1 <= n <= len(row)]
    picked = select(ref, people)
    if picked.problem is None:
        return list(picked.indices)
    return [] if picked.problem == "no_match" else list(picked.among)


def _normalised(phrase: str) -> str:
    from .normalize import normalize_question

    return normalize_question(phrase)
