"""The embedded engine on FaceXBench: its estimates mapped onto a question's four options.

It answers the kinds of question it has a model for — gender, age, expression, head
pose, counting faces, and same-person questions over several images — and abstains
(unanswered, so wrong) on everything else (race, spoofing, deepfakes, parsing, tools,
celebrities) with the reason. Mapping, not guessing: an option is chosen when it is
the one the estimate names (an option reading "None of the above" when none does);
for numbers and angle bins, the bin holding the estimate, else the nearest. The
question's wording picks the sub-question ("how many", "which images", "oldest"...);
wording it does not know is an abstention too.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.facexbench import TASK
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput
from faceqa.images import BadImage
from faceqa.schema import FaceReport, ImageReport

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_RANGE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:-|to|–)\s*(-?\d+(?:\.\d+)?)")
_ABOVE = re.compile(r"(?:more than|over|above)\s*(\d+)|(\d+)\s*\+")


@dataclass(frozen=True)
class Choice:
    index: int | None
    why: str


@dataclass(frozen=True)
class Question:
    text: str  # lower case
    options: Sequence[Any]
    reports: list[ImageReport]

    @property
    def faces(self) -> list[FaceReport | None]:
        """The largest face of each image (benchmark images show one subject each)."""
        return [max(r.faces, key=lambda f: f.area) if r.faces else None for r in self.reports]


def _none_of_the_above(options: Sequence[Any]) -> int | None:
    return next((i for i, o in enumerate(options) if "none of the above" in str(o).lower()), None)


def _only(matches: list[bool], options: Sequence[Any], what: str) -> Choice:
    hits = [i for i, m in enumerate(matches) if m]
    if len(hits) == 1:
        return Choice(hits[0], what)
    if not hits and (none := _none_of_the_above(options)) is not None:
        return Choice(none, f"{what}; no option names it")
    return Choice(None, f"{what}; {'several' if hits else 'no'} options match")


def _span(option: Any) -> tuple[float, float] | None:
    """A number or a numeric bin ("20-29", "-10 to 0", "more than 70") as (low, high)."""
    text = str(option).lower()
    if (m := _RANGE.search(text)) is not None:
        return float(m.group(1)), float(m.group(2))
    if (m := _ABOVE.search(text)) is not None:
        return float(m.group(1) or m.group(2)), float("inf")
    if (m := _NUMBER.fullmatch(text.strip())) is not None:
        return float(m.group()), float(m.group())
    return None


def _nearest(value: float, options: Sequence[Any], what: str) -> Choice:
    spans = [_span(o) for o in options]
    inside = [i for i, s in enumerate(spans) if s is not None and s[0] <= value <= s[1]]
    if len(inside) == 1:
        return Choice(inside[0], what)
    if inside:
        return Choice(min(inside, key=lambda i: spans[i][1] - spans[i][0]), what)  # type: ignore[index]
    if (none := _none_of_the_above(options)) is not None and any(s and s[0] != s[1] for s in spans):
        return Choice(none, f"{what}; outside every option's range")
    measured = [(min(abs(value - s[0]), abs(value - s[1])), i) for i, s in enumerate(spans) if s is not None]
    return Choice(min(measured)[1], f"{what}; nearest option") if measured else Choice(None, f"{what}; no numbers")


def _images(option: Any, count: int) -> frozenset[int] | None:
    """ "Image 1 and Image 3", "Images 2 and 5", "Image 2, Image 3", "Both Images" -> 1-based image numbers."""
    text = str(option).lower()
    if "image" not in text:
        return None
    if "both" in text or text.startswith("all"):
        return frozenset(range(1, count + 1))
    return frozenset(int(n) for n in re.findall(r"\d+", text))


def _image_set(wanted: set[int], q: Question, what: str) -> Choice:
    return _only([_images(o, len(q.reports)) == wanted for o in q.options], q.options, what)


def _count(n: int, q: Question, what: str) -> Choice:
    return _only([_span(o) == (n, n) for o in q.options], q.options, what)


def _label_question(attribute: str, q: Question, wanted: Callable[[FaceReport], bool] | None) -> Choice:
    """Single image: the option naming the face's label. Several: which/how many images match `wanted`."""
    from faceqa.prompts.taxonomy import normalize

    faces = q.faces
    if len(faces) == 1:
        face = faces[0]
        if face is None:
            return Choice(None, "no face detected")
        value = getattr(face, attribute)
        label = value.group if attribute == "age" else value.label
        named = [normalize("age_group" if attribute == "age" else attribute, str(o)) for o in q.options]
        if attribute == "age" and label not in named and face.age is not None and face.age.years is not None:
            return _nearest(face.age.years, q.options, f"apparent age about {face.age.years:.0f}")
        return _only([n == label for n in named], q.options, f"apparent {attribute} {label}")
    if wanted is None:
        return Choice(None, f"the engine does not read this {attribute} question over several images")
    if any(f is None for f in faces):
        return Choice(None, "no face detected in one of the images")
    matching = {i for i, f in enumerate(faces, 1) if f is not None and wanted(f)}
    if "how many" in q.text:
        return _count(len(matching), q, f"{len(matching)} matching images")
    return _image_set(matching, q, f"images {sorted(matching) or 'none'} match")


def gender(q: Question) -> Choice:
    label = "Female" if re.search(r"\bfemale|\bwom[ae]n", q.text) else "Male" if re.search(r"\bmale|\bm[ae]n\b",
                                                                                       q.text) else None
    return _label_question("gender", q, None if label is None else lambda f: bool(f.gender and f.gender.label == label))


def age(q: Question) -> Choice:
    faces = q.faces
    extreme = "oldest" if "oldest" in q.text else "youngest" if "youngest" in q.text else None
    if len(faces) > 1 and extreme:
        if any(f is None or f.age is None or f.age.years is None for f in faces):
            return Choice(None, "no age estimate for one of the images")
        years = [f.age.years for f in faces]  # type: ignore[union-attr]
        pick = years.index(max(years) if extreme == "oldest" else min(years)) + 1  # type: ignore[type-var]
        return _image_set({pick}, q, f"image {pick} looks the {extreme}")
    return _label_question("age", q, None)


def expression(q: Question) -> Choice:
    from faceqa.prompts.taxonomy import normalize

    faces = q.faces
    if len(faces) == 1:
        face = faces[0]
        if face is None or face.emotion is None:
            return Choice(None, "no face detected")
        scores = face.emotion.scores or {face.emotion.label: face.emotion.score}
        named = [normalize("emotion", str(o)) for o in q.options]
        scored = [(scores.get(n, -1.0) if n else -1.0, i) for i, n in enumerate(named)]
        best, index = max(scored)
        if best < 0:
            return Choice(None, "no option names an emotion the classifier scores")
        return Choice(index, f"classifier scores {named[index]} {best:.2f}, highest among the options")
    label = normalize("emotion", q.text)
    return _label_question("emotion", q, None if label is None else
                           lambda f: bool(f.emotion and f.emotion.label == label))


def head_pose(q: Question) -> Choice:
    axis = next((a for a in ("yaw", "pitch", "roll") if a in q.text), None)
    face = q.faces[0] if len(q.faces) == 1 else None
    if axis is None or face is None or face.pose is None:
        return Choice(None, "not a single-face yaw/pitch/roll question, or no face detected")
    value = getattr(face.pose, axis)
    return _nearest(value, q.options, f"estimated {axis} {value:.0f}°")


def counting(q: Question) -> Choice:
    if len(q.reports) != 1:
        return Choice(None, "counting over several images is not read")
    n = len(q.reports[0].faces)
    return _nearest(n, q.options, f"{n} faces detected (the engine counts faces, not bodies)")


def identity(q: Question) -> Choice:
    from faceqa.faces.identity import cosine, same_person

    faces = q.faces
    if len(faces) < 2 or any(f is None or f.embedding is None for f in faces):
        return Choice(None, "same-person questions need a face in each of several images")
    sim = {(i, j): cosine(faces[i - 1].embedding, faces[j - 1].embedding)  # type: ignore[union-attr, arg-type]
           for i, j in combinations(range(1, len(faces) + 1), 2)}
    same = {pair for pair, s in sim.items() if same_person(s)}
    best = max(sim, key=lambda pair: sim[pair])
    if "how many pairs" in q.text:
        return _count(len(same), q, f"{len(same)} pairs above the match threshold")
    if "unique identit" in q.text:
        groups = {i: {i} for i in range(1, len(faces) + 1)}
        for i, j in same:
            merged = groups[i] | groups[j]
            for k in merged:
                groups[k] = merged
        n = len({frozenset(g) for g in groups.values()})
        return _count(n, q, f"{n} identities")
    if "different from" in q.text:
        others = set(range(1, len(faces) + 1)) - set(best)
        return _image_set(others, q, f"images {best[0]} and {best[1]} match best")
    if "first image" in q.text:
        matching = {j for (i, j) in same if i == 1}
        if "how many" in q.text:
            return _count(len(matching), q, f"{len(matching)} images match image 1")
        choice = _image_set(matching, q, f"images {sorted(matching) or 'none'} match image 1")
        if choice.index is not None:
            return choice
        j = max(range(2, len(faces) + 1), key=lambda k: sim[(1, k)])
        return _image_set({j}, q, f"image {j} is the closest to image 1")
    if "same person" in q.text:
        return _image_set(set(best), q, f"images {best[0]} and {best[1]} match best ({sim[best]:.2f})")
    return Choice(None, "the engine does not read this same-person question")


HANDLERS: dict[str, Callable[[Question], Choice]] = {
    "gender": gender, "age": age, "expression": expression, "headpose": head_pose, "crowd_counting": counting,
    "hr_fr": identity, "lr_fr": identity,
}


class EngineMCQ(Predictor):
    tasks = (TASK,)

    def __init__(self, engine: Any = None, name: str = "faceqa-embedded"):
        if engine is None:
            from faceqa.faces.engine import FaceEngine

            engine = FaceEngine().load()
        self.engine, self.name = engine, name
        self._lock = threading.Lock()  # the engine's models are not shared across threads

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "faceqa embedded face engine (offline, CPU), estimates mapped onto "
                "the options", "answers": sorted(HANDLERS)}

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        handler = HANDLERS.get(item.extra["sub_category"])
        if handler is None:
            return Prediction(None, 0.0, reason=f"the embedded engine has no model for {item.extra['sub_category']}")
        started = time.perf_counter()
        reports = []
        with self._lock:
            for path in item.extra["images"]:
                try:
                    reports.append(self.engine.analyze(path, embeddings=handler is identity))
                except (BadImage, OSError) as error:
                    raise UnusableInput(f"{item.key}: {error}") from None
        choice = handler(Question(item.extra["question"].lower(), item.extra["options"], reports))
        latency = time.perf_counter() - started
        from faceqa.prompts.templates import MCQ_LETTERS

        if choice.index is None:
            return Prediction(None, latency, reason=choice.why)
        letter = MCQ_LETTERS[choice.index]
        return Prediction(letter, latency, text=f"{letter} ({choice.why})")
