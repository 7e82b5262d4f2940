"""Grounding: a Referent + the faces of the chat -> the faces meant, or why none or several.

The chat-level parts live here: which photo, "person 3", pronouns and "the others" against
the faces last talked about, "next to her". Choosing among the faces of one photo (filters,
position, size, superlatives) is `referring.select`, the definition shared with the dataset
builder and the evaluator. Grounding never guesses: a phrase that fits several faces, or
none, comes back as "ambiguous" or "not_found" with the faces it could have meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from faceqa.prompts.taxonomy import display
from faceqa.prompts.templates import ordinal
from faceqa.schema import FaceReport, LabelScore

from .plan import FaceRef, Status
from .referents import Referent
from .referring import Person, Problem, fits, select

Faces = dict[FaceRef, FaceReport]


@dataclass
class Grounding:
    targets: list[FaceRef]
    candidates: list[FaceRef]
    status: Status = "ok"
    how: str = ""  # how the phrase was read, when that is worth saying
    why: str = ""  # why nothing (or not one face) was picked
    note: str = ""  # a caveat: the model reads the face differently from the words
    roles: list[str] = field(default_factory=list)  # faces named one by one: the words that named each target

    @classmethod
    def fail(cls, status: Status, candidates: Sequence[FaceRef], why: str) -> Grounding:
        return cls([], list(candidates), status, why=why)


def years(face: FaceReport) -> float | None:
    """Apparent age in years, or the middle of the apparent age group when only a group is known."""
    if face.age is None:
        return None
    if face.age.years is not None:
        return face.age.years
    low, _, high = face.age.group.replace("+", "-").partition("-")
    return (int(low) + int(high or int(low) + 10)) / 2


def labelled(value: LabelScore | None, wanted: str) -> bool:
    """Whether a categorical attribute is known and reads `wanted`."""
    return value is not None and value.label == wanted


def person(face: FaceReport) -> Person:
    """A face as the referring rules see it."""
    return Person(
        box=face.box,
        gender=face.gender.label if face.gender else None,
        age=years(face),
        emotion=face.emotion.label if face.emotion else None,
        race=face.race.label if face.race else None,
        emotion_scores=(face.emotion.scores or {}) if face.emotion else {},
    )


def describe_filters(ref: Referent, plural: bool = False) -> str:
    """The filters as a predicate: "appears female and looks happy" (plural: "appear ... look")."""
    s = "" if plural else "s"
    parts = []
    if ref.gender:
        parts.append(f"appear{s} {display('gender', ref.gender)}")
    if ref.ages:
        parts.append(f"appear{s} to be {age_range(ref.ages)}")
    if ref.race:
        parts.append(f"appear{s} {display('race', ref.race)}")
    if ref.emotions:
        verb = ("do" if plural else "does") + " not look" if ref.not_emotion else f"look{s}"
        parts.append(f"{verb} {either('emotion', ref.emotions)}")
    return " and ".join(parts)


def either(attribute: str, labels: Sequence[str]) -> str:
    """Labels as words, any of them meant: "surprised or afraid", "sad, neutral or angry"."""
    words = [display(attribute, label) for label in labels]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def age_range(ages: tuple[float, float]) -> str:
    low, high = ages
    if low == 0:
        return f"under {high + 0.01:.0f}"
    return f"{low:.0f} or older" if high >= 120 else f"{low:.0f}-{int(high)}"


def ground(
    ref: Referent, faces: Faces, n_images: int, focus: Sequence[FaceRef] = (), singular: bool = True
) -> Grounding:
    """The faces `ref` picks among `faces` (every face of the chat), or why it picks none or several."""
    if not faces:
        return Grounding.fail("no_faces", [], "there are no faces in the " + ("photos" if n_images > 1 else "photo"))
    scope = _scope(ref, faces, n_images)
    if isinstance(scope, Grounding):
        return scope
    if ref.indexes:
        return _by_index(ref, scope, list(faces), n_images)
    if ref.race and not any(faces[r].race for r in scope):
        return Grounding.fail("unsupported", scope, "apparent race is not estimated by the embedded face engine")
    pool, how = scope, []
    if ref.adjacent:
        beside = _beside(ref, faces, n_images, focus)
        if isinstance(beside, Grounding):
            return beside
        pool, said = beside
        how.append(said)
    elif ref.among and len(focus) > 1:
        pool = [r for r in scope if r in focus]
        how.append("of the faces we were talking about")
    elif ref.others:
        pool = [r for r in scope if r not in focus] if focus else []
        if not pool:
            return Grounding.fail("not_found", scope, "I don't know who 'the others' are: no one was talked about yet")
        how.append("everyone we have not talked about yet")
    elif ref.pronoun and focus and not (ref.selector or ref.filters or ref.everyone):
        return _pronoun(ref, faces, focus)
    elif ref.pronoun in ("he", "she") and not (ref.selector or ref.filters):
        ref = ref.but(gender="Male" if ref.pronoun == "he" else "Female")
    return _choose(ref, faces, scope, pool, how, singular)


def _scope(ref: Referent, faces: Faces, n_images: int) -> list[FaceRef] | Grounding:
    every = list(faces)
    if ref.image is None:
        return every
    image = n_images if ref.image == -1 else ref.image
    if not 1 <= image <= n_images:
        return Grounding.fail("not_found", every, f"there is no photo {ref.image}; you gave {n_images}")
    scope = [r for r in every if r.image == image]
    return scope or Grounding.fail("not_found", every, f"there are no faces in photo {image}")


def _choose(
    ref: Referent, faces: Faces, scope: list[FaceRef], pool: list[FaceRef], how: list[str], singular: bool
) -> Grounding:
    """Filters, position, size and superlatives over `pool` (referring.select), worded."""
    if (ref.side or ref.middle or ref.vertical) and len({r.image for r in pool}) > 1:
        return Grounding.fail(
            "ambiguous", pool, "there is more than one photo; say which one (e.g. 'in the first photo')"
        )
    people = [person(faces[r]) for r in pool]
    picked = select(ref, people)
    if picked.problem is not None:
        among = [pool[i] for i in picked.among]
        if picked.problem == "no_match" and len(pool) == 1 and len(scope) == 1 and not ref.selector:
            return Grounding(pool, pool, note=_mismatch_note(ref))
        return Grounding.fail(_STATUS[picked.problem], among or pool, _why(picked.problem, ref, among))
    chosen = [pool[i] for i in picked.indices]
    if ref.filters:
        matched = sum(1 for p in people if fits(p, ref))
        if matched == 1 and len(chosen) == 1 and not ref.selector:
            how.append(f"the only face that {describe_filters(ref)}")
    if ref.side and ref.filters and len(chosen) == 1:
        row = sorted((r for r in faces if r.image == chosen[0].image), key=lambda r: faces[r].center[0])
        plain = (
            row[ref.nth - 1]
            if ref.side == "left" and ref.nth <= len(row)
            else row[-ref.nth]
            if ref.nth <= len(row)
            else None
        )
        if plain != chosen[0]:
            nth = f"{ordinal(ref.nth)} " if ref.nth > 1 else ""
            how.append(f"the {nth}{'leftmost' if ref.side == 'left' else 'rightmost'} of those")
    if ref.size:
        how.append(f"the {ref.size} face" + (" (a stand-in for closest)" if ref.size == "largest" else ""))
    if ref.superlative:
        how.append(f"the {ref.superlative} in appearance")
    if ref.emotion_most:
        how.append(f"the one that looks {'least' if ref.least else 'most'} {display('emotion', ref.emotion_most)}")
    said = "; ".join(h for h in how if h)
    if len(chosen) == 1 or not singular or ref.plural:
        return Grounding(chosen, chosen, how=said)
    if ref.filters:
        return Grounding.fail("ambiguous", chosen, f"{len(chosen)} faces {describe_filters(ref, plural=True)}")
    if ref.adjacent:
        return Grounding.fail("ambiguous", chosen, f"{len(chosen)} faces are {how[0]}; say which side")
    return Grounding.fail("ambiguous", chosen, f"there are {len(chosen)} faces")


_STATUS: dict[Problem, Status] = {
    "no_match": "not_found",
    "two_middle": "ambiguous",
    "too_few": "not_found",
    "size_tie": "ambiguous",
    "no_ages": "unsupported",
    "no_scores": "unsupported",
}


def _why(problem: Problem, ref: Referent, among: list[FaceRef]) -> str:
    match problem:
        case "no_match":
            return f"no face here {describe_filters(ref)}"
        case "two_middle":
            return "there is an even number of faces, so two are in the middle"
        case "too_few":
            return f"there are only {len(among)} such faces, no {ordinal(ref.nth)} from the {ref.side}"
        case "size_tie":
            return f"the two {ref.size} faces are within 5% of each other in size"
        case "no_ages":
            return "no apparent age is available for these faces"
        case "no_scores":
            return "no emotion scores are available for these faces"


def _beside(
    ref: Referent, faces: Faces, n_images: int, focus: Sequence[FaceRef]
) -> tuple[list[FaceRef], str] | Grounding:
    anchor = ground(ref.anchor or Referent(), faces, n_images, focus, singular=True)
    if anchor.status != "ok":
        return Grounding.fail(
            anchor.status, anchor.candidates, f"I can't tell who you mean them to be next to: {anchor.why}"
        )
    a = anchor.targets[0]
    row = sorted((r for r in faces if r.image == a.image), key=lambda r: faces[r].center[0])
    i = row.index(a)
    left, right = row[i - 1 : i] if i else [], row[i + 1 : i + 2]
    pool = {"left": left, "right": right, "next": left + right}[ref.adjacent or "next"]
    side = "beside" if ref.adjacent == "next" else f"to the {ref.adjacent} of"
    if not pool:
        return Grounding.fail("not_found", row, f"nobody is {side} {label(a, faces, n_images)}")
    said = f"{side} {label(a, faces, n_images, where=False)}" + (" in the image" if ref.adjacent != "next" else "")
    return pool, said


def _pronoun(ref: Referent, faces: Faces, focus: Sequence[FaceRef]) -> Grounding:
    """ "he", "she", "they", "this one": the faces last talked about, narrowed by the pronoun's gender."""
    if ref.pronoun == "they" or len(focus) == 1 and ref.pronoun == "this":
        return Grounding(list(focus), list(focus), how=_talked_about(focus))
    gender = {"he": "Male", "she": "Female"}.get(ref.pronoun or "")
    if len(focus) == 1:
        face = faces[focus[0]]
        if ref.contrast and gender and face.gender and face.gender.label != gender:
            # "and her?" after a man: the other face of that gender, if there is exactly one.
            others = [r for r in faces if r.image == focus[0].image and r != focus[0]]
            fitting = [r for r in others if labelled(faces[r].gender, gender)]
            if len(fitting) == 1:
                return Grounding(
                    fitting, fitting, how=f"the only other face that {describe_filters(Referent(gender=gender))}"
                )
            if len(fitting) > 1:
                return Grounding.fail("ambiguous", fitting, f"'{ref.pronoun}' could be any of {len(fitting)} faces")
        return Grounding(list(focus), list(focus), how=_talked_about(focus), note=_pronoun_note(ref, face))
    narrowed = [r for r in focus if gender and labelled(faces[r].gender, gender)]
    if len(narrowed) == 1:
        return Grounding(
            narrowed,
            narrowed,
            how="of the faces we were talking about, the only one that " + describe_filters(Referent(gender=gender)),
        )
    return Grounding.fail(
        "ambiguous",
        narrowed or list(focus),
        f"'{ref.pronoun}' could be any of {len(narrowed or focus)} faces we were talking about",
    )


def _talked_about(focus: Sequence[FaceRef]) -> str:
    return "the face we were talking about" if len(focus) == 1 else "the faces we were talking about"


def _by_index(ref: Referent, scope: list[FaceRef], every: list[FaceRef], n_images: int) -> Grounding:
    targets = []
    for face, image in ref.indexes:
        if image is not None:
            image = n_images if image == -1 else image
            pool = [r for r in every if r.image == image]
        else:
            pool = scope
        hits = [r for r in pool if r.face == face]
        if not hits:
            where = f" in photo {image}" if image is not None else ""
            n = len(pool)
            return Grounding.fail(
                "not_found", pool, f"there is no person {face}{where}: I see {n} face{'s' * (n != 1)}"
            )
        if len(hits) > 1:
            return Grounding.fail("ambiguous", hits, f"each photo has a person {face}; say which photo")
        targets.append(hits[0])
    return Grounding(targets, targets)


def _pronoun_note(ref: Referent, face: FaceReport) -> str:
    said = {"he": "Male", "she": "Female"}.get(ref.pronoun or "")
    if said and face.gender and face.gender.label != said:
        return (
            f"you said '{ref.pronoun}'; the model reads this face as {display('gender', face.gender.label)} "
            f"({face.gender.score:.0%}), and apparent gender can be wrong"
        )
    return ""


def _mismatch_note(ref: Referent) -> str:
    return (
        f"there is only one face, and to the model it does not {describe_filters(ref, plural=True)}; "
        "apparent attributes can be wrong"
    )


# --- naming faces in answers ------------------------------------------------------------------


def position(ref: FaceRef, faces: Faces) -> str:
    """Where a face sits among the faces of its image, in words."""
    ids = sorted(r.face for r in faces if r.image == ref.image)
    n, i = len(ids), ids.index(ref.face)
    if n == 1:
        return "the only face"
    if n == 2:
        return "left" if i == 0 else "right"
    if n % 2 and i == n // 2:
        return "middle"
    if i == 0 or i == n - 1:
        return "far " + ("left" if i == 0 else "right")
    k, side = (i + 1, "left") if i < n / 2 else (n - i, "right")
    return f"{ordinal(k)} from the {side}"


def label(ref: FaceRef, faces: Faces, n_images: int, where: bool = True) -> str:
    """ "person 2 (second from the left)", "person 1 in photo 2"."""
    text = f"person {ref.face}"
    if n_images > 1:
        text += f" in photo {ref.image}"
    if where and sum(r.image == ref.image for r in faces) > 1:
        text += f" ({position(ref, faces)})"
    return text
