"""Answer text from a Plan and the face reports: apparent attributes with their confidence.

Everything said here is read off the reports (or the identity similarities the
assistant computed): no attribute without a model behind it, no face that the plan
did not pick. When the plan could not pick a face, the answer says why and lists
who is there instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from faceqa.prompts.cot import CoT
from faceqa.prompts.taxonomy import display
from faceqa.schema import Answer, FaceReport

from .plan import ATTRIBUTES, FaceRef, Plan
from .referents import label, years

RACE_NEEDS_VLM = (
    "Apparent race is not estimated here: the embedded face engine has no race model, so race needs a VLM "
    "attribute backend (faceqa ask --backend vlm ...)."
)
HELP = (
    "I can answer questions about the people in the photo: how many there are; the apparent age, gender and "
    "emotion of one person or everyone; who looks oldest, youngest or happiest; who is smiling; whether two faces "
    "are the same person; and why someone looks the way they do, step by step. Point people out by position "
    "('the person on the far left', 'the second from the right'), by number ('person 3', numbered left to right) "
    "or by description ('the woman', 'the oldest man')."
)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


READING_ORDER = ("gender", "age", "emotion", "race")


@dataclass
class Pair:
    """Identity similarity of two faces (cosine of embeddings; `same` at or above the model's threshold)."""

    a: FaceRef
    b: FaceRef
    cosine: float
    threshold: float

    @property
    def same(self) -> bool:
        return self.cosine >= self.threshold


@dataclass
class Evidence:
    """What the assistant computed besides the reports: identity pairs, expression reasoning."""

    pairs: list[Pair] = field(default_factory=list)
    cots: dict[FaceRef, CoT] = field(default_factory=dict)
    missing: str = ""  # why evidence the plan needs could not be computed


class Composer:
    def __init__(self, faces: dict[FaceRef, FaceReport], n_images: int):
        self.faces = faces
        self.n_images = n_images

    # --- words for one face --------------------------------------------------------------------

    def name(self, ref: FaceRef, where: bool = True) -> str:
        return label(ref, self.faces, self.n_images, where)

    def names(self, refs: Sequence[FaceRef], where: bool = True, conjunction: str = "and") -> str:
        parts = [self.name(r, where) for r in refs]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {conjunction} " + parts[-1]

    @staticmethod
    def age(face: FaceReport) -> str | None:
        if face.age is None:
            return None
        group = "70 or older" if face.age.group.endswith("+") else f"{face.age.group} years old"
        details = [f"about {face.age.years:.0f} years"] if face.age.years is not None else []
        if face.age.score is not None:
            details.append(f"confidence {face.age.score:.0%}")
        return f"appears {group}" + (f" ({', '.join(details)})" if details else "")

    @staticmethod
    def gender(face: FaceReport) -> str | None:
        if face.gender is None:
            return None
        return f"appears {display('gender', face.gender.label)} (confidence {face.gender.score:.0%})"

    @staticmethod
    def race(face: FaceReport) -> str | None:
        if face.race is None:
            return None
        return f"appears {display('race', face.race.label)} (confidence {face.race.score:.0%})"

    @staticmethod
    def emotion(face: FaceReport) -> str | None:
        e = face.emotion
        if e is None:
            return None
        text = f"looks {display('emotion', e.label)} (confidence {e.score:.0%})"
        if e.score < 0.6 and e.scores:
            second = sorted(((p, lab) for lab, p in e.scores.items() if lab != e.label), reverse=True)[0]
            text += f"; next most likely {display('emotion', second[1])} ({second[0]:.0%})"
        return text

    def phrases(self, face: FaceReport, attributes: Sequence[str]) -> list[str]:
        return [p for a in READING_ORDER if a in attributes and (p := getattr(self, a)(face))]

    def summary(self, ref: FaceRef, attributes: Sequence[str] = ATTRIBUTES) -> str:
        return f"{self.name(ref)}: " + "; ".join(self.phrases(self.faces[ref], attributes) or ["no attributes"])

    def record(self, ref: FaceRef, attributes: Sequence[str] = ATTRIBUTES) -> dict:
        face = self.faces[ref]
        out: dict = {"image": ref.image, "id": ref.face, "box": list(face.box)}
        for a in ATTRIBUTES:
            if a in attributes:
                value = getattr(face, a)
                out[a] = value.model_dump(exclude_none=True) if value is not None else None
        return out

    def lineup(self, refs: Sequence[FaceRef]) -> str:
        """Who is there, one short line each, numbered as the engine numbers them."""
        lines = []
        for ref in sorted(refs):
            face = self.faces[ref]
            parts = [
                display("gender", face.gender.label) if face.gender else None,
                f"{face.age.group} years old" if face.age else None,
                display("emotion", face.emotion.label) if face.emotion else None,
            ]
            lines.append(f"- {self.name(ref)}: appears " + ", ".join(p for p in parts if p))
        return "\n".join(lines)

    # --- answers -------------------------------------------------------------------------------

    def answer(self, plan: Plan, evidence: Evidence) -> Answer:
        if plan.status == "no_faces":
            text = f"I don't see any faces in {'these photos' if self.n_images > 1 else 'this photo'}"
            if plan.intent == "count":
                return self._wrap(plan, text + ", so the count is 0.", [], {"count": 0, "total": 0, "faces": []})
            note = " Faces that are small, turned away or covered may not be detected."
            return self._wrap(plan, text + ", so I can't answer that." + note, [])
        if plan.intent == "help":
            return self._wrap(plan, HELP + "\n\nWho is there:\n" + self.lineup(list(self.faces)), plan.candidates)
        if plan.status != "ok":
            return self._unresolved(plan)
        if evidence.missing:
            return self._wrap(plan.model_copy(update={"status": "unsupported"}), evidence.missing, plan.targets)
        return getattr(self, f"_{plan.intent}")(plan, evidence)

    def _wrap(
        self,
        plan: Plan,
        text: str,
        refs: Sequence[FaceRef],
        attributes: dict | None = None,
        reasoning: str | None = None,
        status: str | None = None,
    ) -> Answer:
        return Answer(
            answer=text,
            task=plan.intent,
            faces=[r.face for r in refs],
            boxes=[self.faces[r].box for r in refs],
            attributes=attributes or {},
            reasoning=reasoning,
            status=status or plan.status,
        )

    def _unresolved(self, plan: Plan) -> Answer:
        opening = {
            "ambiguous": "I can't tell which person you mean",
            "not_found": "I couldn't find the person you mean",
            "unsupported": "I can't answer that with this face engine",
        }[plan.status]
        if plan.status == "ambiguous" and plan.comparison == "same_person":
            opening = "I can't tell which two faces to compare"
        everyone = sorted(self.faces)
        text = f"{opening}: {plan.reason}."
        if plan.status == "ambiguous" and 1 < len(plan.candidates) < len(everyone):
            text += f" It could be {self.names(plan.candidates, conjunction='or')}."
        text += "\n\nWho is there (numbered left to right):\n" + self.lineup(everyone)
        if plan.status == "ambiguous":
            text += "\n\nAsk again with a position or a number, e.g. 'the second from the right' or 'person 2'."
        faces = {"candidates": [self.record(r, ()) for r in plan.candidates]}
        return self._wrap(plan, text, plan.candidates, faces)

    def _subject(self, plan: Plan, ref: FaceRef) -> str:
        name = self.name(ref)
        if plan.reason and len(plan.targets) == 1:
            name = name[:-1] + f"; {plan.reason})" if name.endswith(")") else f"{name} ({plan.reason})"
        return name[0].upper() + name[1:]

    def _notes(self, plan: Plan) -> str:
        return f"\n\nNote: {plan.note}." if plan.note else ""

    def _race_note(self, plan: Plan, refs: Sequence[FaceRef]) -> str:
        if "race" in plan.attributes and any(self.faces[r].race is None for r in refs):
            return "\n\n" + RACE_NEEDS_VLM
        return ""

    def _attribute(self, plan: Plan, evidence: Evidence) -> Answer:
        refs = plan.targets
        lines = []
        for ref in refs:
            face = self.faces[ref]
            verdicts = [self._verdict(face, a, want) for a, want in plan.asked.items()]
            verdicts = [v for v in verdicts if v]
            phrases = self.phrases(face, plan.attributes)
            if not phrases:
                subject = self._subject(plan, ref) if len(refs) == 1 else self.name(ref)
                lines.append(f"{subject}: no estimate for {', '.join(plan.attributes)}.")
                continue
            subject = self._subject(plan, ref) if len(refs) == 1 else _cap(self.name(ref))
            if verdicts:
                subject = f"{' '.join(verdicts)} {subject[0].lower()}{subject[1:]}"
                phrases[-1] += "".join(
                    f", not {display(a, want)}"
                    for a, want in plan.asked.items()
                    if getattr(face, a) is not None and getattr(face, a).label != want
                )
            lines.append(f"{subject} {'; '.join(phrases)}.")
        text = "\n".join(lines) + self._race_note(plan, refs) + self._notes(plan)
        only_race = plan.attributes == ("race",) and all(self.faces[r].race is None for r in refs)
        attributes = {"faces": [self.record(r, plan.attributes) for r in refs]}
        return self._wrap(plan, text.strip(), refs, attributes, status="unsupported" if only_race else None)

    @staticmethod
    def _verdict(face: FaceReport, attribute: str, wanted: str) -> str:
        value = getattr(face, attribute)
        if value is None:
            return ""
        return "Yes:" if value.label == wanted else "No:"

    def _describe(self, plan: Plan, evidence: Evidence) -> Answer:
        refs = sorted(plan.targets)
        n = len(refs)
        head = f"I see {n} face{'s' * (n != 1)}, numbered left to right"
        if self.n_images > 1:
            per = [sum(r.image == i for r in refs) for i in range(1, self.n_images + 1)]
            head += " in each photo (" + ", ".join(f"photo {i}: {k}" for i, k in enumerate(per, 1)) + ")"
        text = head + ":\n" + "\n".join(f"- {self.summary(r)}" for r in refs)
        text += self._race_note(plan, refs) + self._notes(plan)
        return self._wrap(plan, text, refs, {"faces": [self.record(r) for r in refs]})

    def _count(self, plan: Plan, evidence: Evidence) -> Answer:
        total, matched = len(plan.candidates), list(plan.targets)
        attributes = {"count": len(matched), "total": total, "faces": [self.record(r, ()) for r in matched]}
        if not plan.reason:  # no description to filter by: everyone counts
            text = f"I see {total} {'person' if total == 1 else 'people'} ({total} face{'s' * (total != 1)})"
            if self.n_images > 1:
                per = [sum(r.image == i for r in matched) for i in range(1, self.n_images + 1)]
                text += ": " + ", ".join(f"{k} in photo {i}" for i, k in enumerate(per, 1))
            text += ", numbered left to right." if total > 1 else "."
            return self._wrap(plan, text, matched, attributes)
        text = f"Number of faces that {plan.reason}: {len(matched)} of {total}"
        text += f" ({self.names(matched, where=False)})." if matched else "."
        return self._wrap(plan, text, matched, attributes)

    def _compare(self, plan: Plan, evidence: Evidence) -> Answer:
        return getattr(self, f"_compare_{plan.comparison}")(plan, evidence)

    def _compare_oldest(self, plan: Plan, evidence: Evidence) -> Answer:
        (best,) = plan.targets
        ranked = sorted(plan.candidates, key=lambda r: years(self.faces[r]), reverse=plan.comparison == "oldest")
        how = f"the {plan.comparison}"
        if len(ranked) == 2:  # "is person 1 older than person 3?"
            how = f"{'older' if plan.comparison == 'oldest' else 'younger'} than {self.name(ranked[1])}"
        text = f"{_cap(self.name(best))} looks {how}: {self.age(self.faces[best])}."
        if len(ranked) > 1:
            gap = abs(years(self.faces[ranked[0]]) - years(self.faces[ranked[1]]))
            if gap < 3:
                other = self.name(ranked[1], False)
                text += (
                    f" It is close: {other} is only {gap:.0f} years apart in apparent age, so treat this as a toss-up."
                )
            text += (
                " Apparent ages: "
                + ", ".join(f"{self.name(r, False)} about {years(self.faces[r]):.0f}" for r in sorted(plan.candidates))
                + "."
            )
        attributes = {"comparison": plan.comparison, "ranking": [self.record(r, ("age",)) for r in ranked]}
        return self._wrap(plan, text + self._notes(plan), plan.targets, attributes)

    _compare_youngest = _compare_oldest

    def _compare_emotion(self, plan: Plan, evidence: Evidence) -> Answer:
        word = display("emotion", plan.emotion)
        if plan.targets:
            verb = "looks" if len(plan.targets) == 1 else "look"
            first = self.names(plan.targets)
            text = (
                f"{first[0].upper()}{first[1:]} {verb} {word} ("
                + ", ".join(f"{self.name(r, False)} {self.faces[r].emotion.score:.0%}" for r in plan.targets)
                + ")."
            )
        else:
            text = f"No one here looks {word}."
        others = [r for r in plan.candidates if r not in plan.targets]
        if others:
            text += (
                " The others: "
                + "; ".join(f"{self.name(r, False)} {self.emotion(self.faces[r])}" for r in others)
                + "."
            )
        attributes = {
            "comparison": "emotion",
            "emotion": plan.emotion,
            "faces": [self.record(r, ("emotion",)) for r in plan.candidates],
        }
        return self._wrap(plan, text, plan.targets, attributes)

    def _compare_most_emotion(self, plan: Plan, evidence: Evidence) -> Answer:
        (best,) = plan.targets
        word = display("emotion", plan.emotion)

        def score(r: FaceRef) -> float:  # noqa: E306
            return self.faces[r].emotion.scores.get(plan.emotion, 0.0)

        ranked = sorted((r for r in plan.candidates if self.faces[r].emotion), key=score, reverse=True)
        text = f"{_cap(self.name(best))} looks the most {word}: the classifier gives {word} {score(best):.0%}."
        text += f" Scores for {word}: " + ", ".join(f"{self.name(r, False)} {score(r):.0%}" for r in ranked) + "."
        attributes = {
            "comparison": "most_emotion",
            "emotion": plan.emotion,
            "ranking": [{**self.record(r, ()), "score": score(r)} for r in ranked],
        }
        return self._wrap(plan, text, plan.targets, attributes)

    def _compare_find(self, plan: Plan, evidence: Evidence) -> Answer:
        refs = plan.targets
        lines = [f"- {self.summary(r, ('gender', 'age', 'emotion'))}" for r in refs]
        head = (
            f"{len(refs)} face{'s' * (len(refs) != 1)} fit{'s' * (len(refs) == 1)} '{plan.referent}'"
            if plan.referent
            else "Who is there"
        )
        text = head + ":\n" + "\n".join(lines) + self._notes(plan)
        return self._wrap(plan, text, refs, {"faces": [self.record(r) for r in refs]})

    def _compare_same_person(self, plan: Plan, evidence: Evidence) -> Answer:
        pairs = evidence.pairs
        records = [
            {"a": list(p.a), "b": list(p.b), "cosine": round(p.cosine, 4), "threshold": p.threshold, "same": p.same}
            for p in pairs
        ]
        threshold = pairs[0].threshold
        if len(pairs) == 1:
            p = pairs[0]
            who = f"{self.name(p.a)} and {self.name(p.b)}"
            verdict = "appear to be the same person" if p.same else "appear to be different people"
            text = (
                f"{who[0].upper()}{who[1:]} {verdict} (identity similarity {p.cosine:.2f}; "
                f"the face-recognition model's match threshold is {threshold:.2f})."
            )
        else:
            same = [p for p in pairs if p.same]
            if same:
                text = (
                    "These faces appear to be the same person: "
                    + "; ".join(
                        f"{self.name(p.a, False)} and {self.name(p.b, False)} (similarity {p.cosine:.2f})" for p in same
                    )
                    + "."
                )
            else:
                top = max(pairs, key=lambda p: p.cosine)
                text = (
                    f"No two of these {len(plan.targets)} faces look like the same person (the highest identity "
                    f"similarity is {top.cosine:.2f}, between {self.name(top.a, False)} and {self.name(top.b, False)}; "
                    f"the match threshold is {threshold:.2f})."
                )
        text += " This is a model's similarity estimate, not proof of identity."
        return self._wrap(plan, text, plan.targets, {"comparison": "same_person", "pairs": records})

    def _reasoning(self, plan: Plan, evidence: Evidence) -> Answer:
        blocks, texts = [], []
        for ref in plan.targets:
            cot = evidence.cots.get(ref)
            subject = self._subject(plan, ref) if len(plan.targets) == 1 else _cap(self.name(ref))
            if cot is None:
                blocks.append(f"{subject}: no expression estimate is available.")
                continue
            head = f"{subject} {self.emotion(self.faces[ref])}. Step by step:"
            blocks.append(f"{head}\n\n{cot.text}")
            texts.append(cot.text if len(plan.targets) == 1 else f"{self.name(ref)}:\n{cot.text}")
        attributes = {
            "faces": [self.record(r, ("emotion",)) | {"action_units": self.faces[r].action_units} for r in plan.targets]
        }
        text = "\n\n".join(blocks) + self._notes(plan)
        return self._wrap(plan, text, plan.targets, attributes, reasoning="\n\n".join(texts) or None)
