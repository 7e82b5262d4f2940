"""Answer text from a Plan, the face reports and the evidence: apparent attributes with their confidence.

Everything said here is read off the reports (or the identity similarities and expression
reasoning the evidence step computed): no attribute without a model behind it, no face the
plan did not pick. When the plan could not pick a face, the answer says why and lists who
is there instead of guessing. Dispatch is a table: one writer per intent (and one per
comparison), each returning the text and its typed `result`.

Wording rules: a yes/no question is answered with "Yes" or "No" first; the expression answer
is one plain sentence (no AU codes) with the step-by-step detail in `Answer.reasoning`; the
race caveat is said once per conversation and only when race was asked; a declined or
not-visible question never gets an attribute list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from faceqa.prompts.cot import CoT, emfacs
from faceqa.prompts.taxonomy import display
from faceqa.schema import (
    Answer,
    AnswerResult,
    CandidatesResult,
    CompoundResult,
    CountResult,
    DeclinedResult,
    FaceFacts,
    FaceReport,
    FacesResult,
    IdentityPair,
    IdentityResult,
    Ranked,
    RankingResult,
)

from . import policy
from .grounding import age_range, either, label, years
from .plan import ATTRIBUTE_FIELDS, FaceRef, Plan
from .vocabulary import vocabulary

RACE_NEEDS_VLM = (
    "Apparent race is not estimated here: the embedded face engine has no race model, so race needs a VLM "
    "attribute backend (faceqa ask --backend vlm ...)."
)
CAN_DO = (
    "I can answer questions about the people in the photo: how many there are; the apparent age, gender and "
    "emotion of one person or everyone; who looks oldest, youngest or happiest; who is smiling; whether two faces "
    "are the same person; and why someone looks the way they do, step by step."
)
HELP = (
    CAN_DO + " Point people out by position ('the person on the far left', 'the second from the right'), by number "
    "('person 3', numbered left to right) or by description ('the woman', 'the oldest man')."
)
OTHER_LANGUAGE = (
    "I can only read questions in English: the embedded assistant understands English (a VLM or LLM backend may "
    "do better), so please ask again in English."
)
READING_ORDER = ("gender", "age", "emotion", "race")
CLOSE_AGE = 3.0  # apparent years: a smaller gap is called a toss-up
_AGE_GROUP = re.compile(r"(\d+)(?:\s*-\s*(\d+)|\s*\+)")  # "30-39", "70+"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(items: Sequence[str], conjunction: str = "and") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


@dataclass
class Pair:
    """Identity similarity of two faces (cosine of embeddings; `same` by the one match rule, faces.identity)."""

    a: FaceRef
    b: FaceRef
    cosine: float
    threshold: float  # for the wording; the decision is same_person's

    @property
    def same(self) -> bool:
        from faceqa.faces.identity import same_person  # lazily: the assistant loads no face model code on import

        return same_person(self.cosine)


@dataclass
class Evidence:
    """What the assistant computed besides the reports: identity pairs, expression reasoning."""

    pairs: list[Pair] = field(default_factory=list)
    cots: dict[FaceRef, CoT] = field(default_factory=dict)
    missing: str = ""  # why evidence the plan needs could not be computed
    parts: list[Evidence] = field(default_factory=list)  # compound: one per part


def joined(parts: Sequence[Answer]) -> tuple[str, str | None]:
    """A compound answer's text and reasoning: its parts' in order, a blank line between."""
    return "\n\n".join(p.answer for p in parts), "\n\n".join(p.reasoning for p in parts if p.reasoning) or None


def shown(parts: Sequence[Answer]) -> tuple[list[int], list[tuple[int, int, int, int]]]:
    """A compound answer's faces and boxes: its parts' in order, each face once (a face is its id and its box,
    so person 1 of photo 2 is not person 1 of photo 1)."""
    pairs = list(dict.fromkeys(pair for p in parts for pair in zip(p.faces, p.boxes, strict=True)))
    return [face for face, _ in pairs], [box for _, box in pairs]


@dataclass
class Written:
    """What a writer returns: the text, the faces it is about, the typed result, optional detail."""

    text: str
    refs: Sequence[FaceRef]
    result: AnswerResult | None = None
    reasoning: str | None = None
    status: str | None = None  # overrides the plan's status (race asked, no race model)


class Composer:
    def __init__(self, faces: dict[FaceRef, FaceReport], n_images: int, race_note_said: bool = False):
        self.faces = faces
        self.n_images = n_images
        self.race_note_said = race_note_said  # the conversation already carries the race caveat

    # --- words for one face ----------------------------------------------------------------------

    def name(self, ref: FaceRef, where: bool = True) -> str:
        return label(ref, self.faces, self.n_images, where)

    def names(self, refs: Sequence[FaceRef], where: bool = True, conjunction: str = "and") -> str:
        return _join([self.name(r, where) for r in refs], conjunction)

    @staticmethod
    def age(face: FaceReport) -> str | None:
        if face.age is None:
            return None
        group = "70 or older" if face.age.group.endswith("+") else f"{face.age.group} years old"
        # Floored like the age groups, so 29.5 reads "20-29 ... about 29 years", never a contradicting "about 30".
        details = [f"about {int(face.age.years)} years"] if face.age.years is not None else []
        if face.age.score is not None:
            low = face.age.score < 0.4
            details.append(f"{'low ' if low else ''}confidence {face.age.score:.0%}")
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
        writers: dict[str, Callable[[FaceReport], str | None]] = {
            "gender": self.gender, "age": self.age, "emotion": self.emotion, "race": self.race,
        }  # fmt: skip
        return [p for a in READING_ORDER if a in attributes and (p := writers[a](face))]

    def summary(self, ref: FaceRef, attributes: Sequence[str] = ATTRIBUTE_FIELDS) -> str:
        return f"{self.name(ref)}: " + "; ".join(self.phrases(self.faces[ref], attributes) or ["no attributes"])

    def facts(self, ref: FaceRef, attributes: Sequence[str] = ATTRIBUTE_FIELDS, aus: bool = False) -> FaceFacts:
        face = self.faces[ref]
        return FaceFacts(
            image=ref.image,
            id=ref.face,
            box=face.box,
            age=face.age if "age" in attributes else None,
            gender=face.gender if "gender" in attributes else None,
            emotion=face.emotion if "emotion" in attributes else None,
            race=face.race if "race" in attributes else None,
            action_units=dict(face.action_units) if aus and face.action_units else None,
        )

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

    def _subject(self, plan: Plan, ref: FaceRef, repeated: str = "") -> str:
        """ "Person 2 (second from the left; the only face that appears female)"; `how` is left out when the
        answer says the same thing anyway (`repeated`)."""
        how = plan.how if len(plan.targets) == 1 and plan.how and not _says(repeated, plan.how) else ""
        if plan.roles and ref in plan.targets:  # "how old are the youngest man and the oldest woman?"
            how = plan.roles[plan.targets.index(ref)]
        return _cap(_aside(self.name(ref), how))

    def _race_note(self, plan: Plan, refs: Sequence[FaceRef]) -> str:
        if "race" in plan.named and not self.race_note_said and any(self.faces[r].race is None for r in refs):
            self.race_note_said = True
            return "\n\n" + RACE_NEEDS_VLM
        return ""

    @staticmethod
    def _note(plan: Plan) -> str:
        return f"\n\nNote: {plan.note}." if plan.note else ""

    # --- answers ---------------------------------------------------------------------------------

    def answer(self, plan: Plan, evidence: Evidence) -> Answer:
        written = self.write(plan, evidence)
        return Answer(
            answer=written.text,
            task=plan.intent,
            faces=[r.face for r in written.refs],
            boxes=[self.faces[r].box for r in written.refs],
            result=written.result,
            reasoning=written.reasoning,
            status=written.status or plan.status,
        )

    def write(self, plan: Plan, evidence: Evidence) -> Written:
        match plan.intent, plan.status:
            case "compound", _:
                return self._compound(plan, evidence)
            case "refuse", _:
                reply = next(c.reply for c in policy.categories() if c.name == plan.topic)
                return Written(reply, [], DeclinedResult(reason="policy", topic=plan.topic))
            case "other_language", _:
                return Written(OTHER_LANGUAGE, [], DeclinedResult(reason="other_language"))
            case "not_visible", _:
                return self._not_visible(plan)
            case "help", _:
                return self._help(plan)
            case _, "no_faces":
                return self._no_faces(plan)
            case _, "ok":
                if evidence.missing:
                    return Written(evidence.missing, plan.targets, status="unsupported")
                return _WRITERS[plan.intent](self, plan, evidence)
            case _:
                return self._unresolved(plan)

    def _compound(self, plan: Plan, evidence: Evidence) -> Written:
        parts = [
            self.answer(part, evidence.parts[i] if i < len(evidence.parts) else Evidence())
            for i, part in enumerate(plan.parts)
        ]
        refs = list(dict.fromkeys(r for part, p in zip(parts, plan.parts, strict=True) for r in _shown(p, part)))
        text, reasoning = joined(parts)
        return Written(text, refs, CompoundResult(parts=parts), reasoning)

    def _not_visible(self, plan: Plan) -> Written:
        name = vocabulary().not_visible_names.get(plan.topic, "that")
        text = (
            f"The embedded face engine can't see {name}: it reads only faces (apparent age, gender and expression). "
            "I can tell you those, count people, or compare faces; a VLM backend (faceqa ask --backend vlm) can look "
            "at the rest of the photo."
        )
        if plan.topic == "photo" and self.faces:
            text += "\n\nThe faces I see (numbered left to right):\n" + self.lineup(list(self.faces))
        return Written(text, [], DeclinedResult(reason="not_visible", topic=plan.topic))

    def _help(self, plan: Plan) -> Written:
        opening = "I didn't understand the question, so I won't guess. " if plan.vlm == "open_question" else ""
        text = opening + HELP
        if self.faces:
            text += "\n\nWho is there:\n" + self.lineup(list(self.faces))
        return Written(text, plan.candidates, DeclinedResult(reason="unreadable"))

    def _no_faces(self, plan: Plan) -> Written:
        text = f"I don't see any faces in {'these photos' if self.n_images > 1 else 'this photo'}"
        if plan.intent == "count":
            prefix = "No: " if plan.yes_no else ""
            return Written(f"{prefix}{text}, so the count is 0.", [], CountResult(count=0, total=0))
        note = " Faces that are small, turned away or covered may not be detected."
        return Written(text + ", so I can't answer that." + note, [], DeclinedResult(reason="no_faces"))

    def _unresolved(self, plan: Plan) -> Written:
        opening = {
            "ambiguous": "I can't tell which person you mean",
            "not_found": "I couldn't find the person you mean",
            "unsupported": "I can't answer that with this face engine",
        }[plan.status]
        if plan.status == "ambiguous" and plan.comparison == "same_person":
            opening = "I can't tell which two faces to compare"
        everyone = sorted(self.faces)
        text = f"{opening}: {plan.why}."
        if plan.status == "ambiguous" and 1 < len(plan.candidates) < len(everyone):
            text += f" It could be {self.names(plan.candidates, conjunction='or')}."
        text += "\n\nWho is there (numbered left to right):\n" + self.lineup(everyone)
        if plan.status == "ambiguous":
            text += "\n\nAsk again with a position or a number, e.g. 'the second from the right' or 'person 2'."
        result = CandidatesResult(candidates=[self.facts(r, ()) for r in plan.candidates])
        return Written(text, plan.candidates, result)

    def _attribute(self, plan: Plan, evidence: Evidence) -> Written:
        refs, lines = plan.targets, []
        for ref in refs:
            face = self.faces[ref]
            phrases = self.phrases(face, plan.attributes)
            alone = len(refs) == 1 or plan.roles
            subject = self._subject(plan, ref, " ".join(phrases)) if alone else _cap(self.name(ref))
            if not phrases:
                lines.append(f"{subject}: no estimate for {', '.join(plan.attributes)}.")
                continue
            if plan.choice:  # "is she happy or sad?": "... looks happy (87%), not sad" / "..., neither happy nor sad"
                phrases[-1] += "".join(_chosen(face, a, want) for a, want in plan.asked.items())
            verdicts = [] if plan.choice else [v for a, want in plan.asked.items() if (v := _verdict(face, a, want))]
            if plan.ages and (age := years(face)) is not None and (said := self.age(face)) in phrases:
                # "is person 2 over 40?": Yes or No; "older or younger than 40?" (a choice, of n or more): which side
                low, high = plan.ages
                inside = low <= age <= high
                i = phrases.index(said)
                if plan.choice:
                    phrases[i] += f", so {age_range(plan.ages if inside else (0.0, low - 0.01))}"
                else:
                    verdicts.append("Yes:" if inside else "No:")
                    phrases[i] += "" if inside else f", not {age_range(plan.ages)}"
            if verdicts and len(refs) == 1:  # "is he happy and over 40?": one verdict, Yes only if both hold
                verdict = "No:" if "No:" in verdicts else "Yes:"
                subject = f"{verdict} {subject[0].lower()}{subject[1:]}"
                phrases[-1] += "".join(
                    f", not {either(a, want)}"
                    for a, want in plan.asked.items()
                    if (value := getattr(face, a)) is not None and value.label not in want
                )
            lines.append(f"{subject} {'; '.join(phrases)}.")
        if (plan.asked or plan.ages) and len(refs) > 1 and not plan.choice:
            # "is everyone happy?", "are they over 40?": one verdict first ("No: 3 of 4 appear 40 or older."), then each
            fitting = sum(_fits(self.faces[r], plan) for r in refs)
            said = " and ".join(
                [f"{'look' if a == 'emotion' else 'appear'} {either(a, w)}" for a, w in plan.asked.items()]
                + ([f"appear {age_range(plan.ages)}"] if plan.ages else [])
            )
            n = len(refs)
            every = "both" if n == 2 else f"all {n}"
            head = f"Yes: {every} {said}." if fitting == n else f"No: {fitting} of {n} {said}."
            lines.insert(0, head)
        text = "\n".join(lines) + self._race_note(plan, refs) + self._note(plan)
        only_race = plan.attributes == ("race",) and all(self.faces[r].race is None for r in refs)
        result = FacesResult(faces=[self.facts(r, plan.attributes) for r in refs])
        return Written(text.strip(), refs, result, status="unsupported" if only_race else None)

    def _describe(self, plan: Plan, evidence: Evidence) -> Written:
        refs = sorted(plan.targets)
        n = len(refs)
        head = f"I see {n} face{'s' * (n != 1)}, numbered left to right"
        if self.n_images > 1:
            per = [sum(r.image == i for r in refs) for i in range(1, self.n_images + 1)]
            head += " in each photo (" + ", ".join(f"photo {i}: {k}" for i, k in enumerate(per, 1)) + ")"
        text = head + ":\n" + "\n".join(f"- {self.summary(r)}" for r in refs)
        text += self._race_note(plan, refs) + self._note(plan)
        return Written(text, refs, FacesResult(faces=[self.facts(r) for r in refs]))

    def _count(self, plan: Plan, evidence: Evidence) -> Written:
        total, matched = len(plan.candidates), list(plan.targets)
        result = CountResult(count=len(matched), total=total, condition=plan.condition,
                             faces=[self.facts(r, ()) for r in matched])  # fmt: skip
        yes = ("Yes: " if matched else "No: ") if plan.yes_no else ""
        if not plan.condition:  # no description to filter by: everyone counts
            text = f"{yes}I see {total} {'person' if total == 1 else 'people'} ({total} face{'s' * (total != 1)})"
            if self.n_images > 1:
                per = [sum(r.image == i for r in matched) for i in range(1, self.n_images + 1)]
                text += ": " + ", ".join(f"{k} in photo {i}" for i, k in enumerate(per, 1))
            text += ", numbered left to right." if total > 1 else "."
            return Written(text, matched, result)
        text = f"{yes}{len(matched)} of {total} faces {plan.condition}"
        text += f" ({self.names(matched, where=False)})." if matched else "."
        return Written(text, matched, result)

    def _compare(self, plan: Plan, evidence: Evidence) -> Written:
        return _COMPARISONS[plan.comparison or "find"](self, plan, evidence)

    def _extreme_age(self, plan: Plan, evidence: Evidence) -> Written:
        (best,) = plan.targets
        oldest = plan.comparison == "oldest"
        aged = [r for r in plan.candidates if years(self.faces[r]) is not None]
        ranked = sorted(aged, key=lambda r: years(self.faces[r]) or 0.0, reverse=oldest)
        face = self.faces[best]
        about = f"about {years(face):.0f} years"
        if face.age is not None:
            group = "70 or older" if face.age.group.endswith("+") else face.age.group
            about += f" (apparent age group {group})"
        if len(plan.candidates) == 2:  # "is person 1 older than person 3?", "who is older, 2 or 4?"
            other = next(r for r in plan.candidates if r != best)
            word = "older" if oldest else "younger"
            text = f"{_cap(self.name(best))} looks {word} than {self.name(other, False)}: {about}."
            if plan.yes_no:
                text = ("Yes: " if best == plan.candidates[0] else "No: ") + text[0].lower() + text[1:]
        else:
            text = f"{_cap(self.name(best))} looks the {plan.comparison}: {about}."
        if len(ranked) > 1:
            gap = abs((years(self.faces[ranked[0]]) or 0.0) - (years(self.faces[ranked[1]]) or 0.0))
            if gap < 0.5:
                text += f" {_cap(self.name(ranked[1], False))} looks about the same age, so treat this as a toss-up."
            elif gap < CLOSE_AGE:
                n = round(gap)
                text += (
                    f" It is close: {self.name(ranked[1], False)} looks only {n} year{'s' * (n != 1)} "
                    f"{'younger' if oldest else 'older'}, so treat this as a toss-up."
                )
            text += (
                " Apparent ages: "
                + ", ".join(f"{self.name(r, False)} about {years(self.faces[r]):.0f}" for r in sorted(aged))
                + "."
            )
        ranking = [Ranked(**self.facts(r, ("age",)).model_dump(), score=years(self.faces[r])) for r in ranked]
        result = RankingResult(comparison=plan.comparison, ranking=ranking)
        return Written(text + self._note(plan), plan.targets, result)

    def _average_age(self, plan: Plan, evidence: Evidence) -> Written:
        """The mean of the apparent ages, said as an estimate, with each face's age and confidence, and the range
        the mean lies in if every face is within its apparent age group."""
        aged = [r for r in plan.targets if years(self.faces[r]) is not None]
        if not aged:
            return Written("No apparent age is available for these faces, so I can't average them.", plan.targets,
                           status="unsupported")  # fmt: skip
        values = [years(self.faces[r]) or 0.0 for r in aged]
        mean, n = sum(values) / len(values), len(aged)
        who = f"the {n} faces" + (f" that {plan.condition}" if plan.condition else "")
        each = "; ".join(f"{self.name(r, False)} {self.age(self.faces[r])}" for r in aged)
        if n == 1:
            text = f"Only one face to average, so the average is its apparent age, an estimate: {each}."
        else:
            text = (
                f"The average apparent age of {who} is about {mean:.0f} years. This is an estimate: the mean of "
                f"each face's apparent age, and each of those can be off by years. Apparent ages: {each}."
            )
            bounds = [b for r in aged if (age := self.faces[r].age) and (b := _group_bounds(age.group))]
            if len(bounds) == n:
                low = sum(b[0] for b in bounds) / n
                highs = [b[1] for b in bounds]
                if all(h is not None for h in highs):
                    high = sum(h or 0 for h in highs) / n
                    text += f" If every face is within its apparent age group, the average is {low:.0f}-{high:.0f}."
                else:
                    text += f" If every face is within its apparent age group, the average is at least {low:.0f}."
        result = FacesResult(faces=[self.facts(r, ("age",)) for r in aged])
        return Written(text + self._note(plan), aged, result)

    def _same_age(self, plan: Plan, evidence: Evidence) -> Written:
        refs = [r for r in plan.targets if self.faces[r].age is not None]
        if len(refs) < 2:
            return Written("I need two faces with an apparent age to compare.", plan.targets, status="unsupported")
        groups = {self.faces[r].age.group for r in refs}  # type: ignore[union-attr]
        same = len(groups) == 1
        ages = _join([f"{self.name(r, False)} about {years(self.faces[r]):.0f}" for r in refs])
        if same:
            group = next(iter(groups))
            text = f"Yes: they look about the same age (all appear {group}; {ages})."
        else:
            text = f"No: they don't look the same age ({ages})."
        if not plan.yes_no:
            text = text.split(": ", 1)[1]
            text = _cap(text)
        ranking = [Ranked(**self.facts(r, ("age",)).model_dump(), score=years(self.faces[r])) for r in refs]
        return Written(text, plan.targets, RankingResult(comparison="same_age", ranking=ranking))

    def _emotion_match(self, plan: Plan, evidence: Evidence) -> Written:
        word = either("emotion", plan.asked.get("emotion", ()))
        yes = ("Yes: " if plan.targets else "No: ") if plan.yes_no else ""
        if plan.targets:
            verb = "looks" if len(plan.targets) == 1 else "look"
            scores = ", ".join(f"{self.name(r, False)} {self.faces[r].emotion.score:.0%}"  # type: ignore[union-attr]
                               for r in plan.targets)  # fmt: skip
            text = f"{yes}{self.names(plan.targets)} {verb} {word} ({scores})."
        else:
            text = f"{yes}no one here looks {word}."
        text = _cap(text)
        others = [r for r in plan.candidates if r not in plan.targets]
        if others:
            text += (
                " The others: "
                + "; ".join(f"{self.name(r, False)} {self.emotion(self.faces[r])}" for r in others)
                + "."
            )
        ranking = [Ranked(**self.facts(r, ("emotion",)).model_dump()) for r in plan.candidates]
        return Written(text, plan.targets, RankingResult(comparison="emotion", emotion=plan.emotion, ranking=ranking))

    def _most_emotion(self, plan: Plan, evidence: Evidence) -> Written:
        (best,) = plan.targets
        emotion = plan.emotion or ""
        word = display("emotion", emotion)

        def score(r: FaceRef) -> float:
            e = self.faces[r].emotion
            return (e.scores or {}).get(emotion, 0.0) if e else 0.0

        least = plan.comparison == "least_emotion"
        ranked = sorted((r for r in plan.candidates if self.faces[r].emotion), key=score, reverse=not least)
        how = "least" if least else "most"
        text = f"{_cap(self.name(best))} looks the {how} {word}: the classifier gives {word} {score(best):.0%}."
        text += f" Scores for {word}: " + ", ".join(f"{self.name(r, False)} {score(r):.0%}" for r in ranked) + "."
        ranking = [Ranked(**self.facts(r, ("emotion",)).model_dump(), score=score(r)) for r in ranked]
        result = RankingResult(comparison=plan.comparison, emotion=emotion, ranking=ranking)
        return Written(text, plan.targets, result)

    def _find(self, plan: Plan, evidence: Evidence) -> Written:
        refs = plan.targets
        n = len(refs)
        lines = [f"- {self.summary(r, ('gender', 'age', 'emotion'))}" for r in refs]
        head = f"Faces that {plan.condition}: {n}" if plan.condition else "Who is there"
        if plan.yes_no:
            head = ("Yes: " if refs else "No: ") + head[0].lower() + head[1:]
        text = head + ":\n" + "\n".join(lines) + self._note(plan)
        return Written(text, refs, FacesResult(faces=[self.facts(r) for r in refs]))

    def _same_person(self, plan: Plan, evidence: Evidence) -> Written:
        pairs = evidence.pairs
        threshold = pairs[0].threshold
        yes_no = plan.yes_no
        if len(pairs) == 1:
            p = pairs[0]
            verdict = "appear to be the same person" if p.same else "appear to be different people"
            text = (
                f"{self.name(p.a)} and {self.name(p.b)} {verdict} (identity similarity {p.cosine:.2f}; "
                f"the face-recognition model's match threshold is {threshold:.2f})."
            )
            text = (("Yes: " if p.same else "No: ") + text) if yes_no else _cap(text)
        else:
            same = [p for p in pairs if p.same]
            if same:
                text = (
                    ("Yes: " if yes_no else "")
                    + "these faces appear to be the same person: "
                    + "; ".join(
                        f"{self.name(p.a, False)} and {self.name(p.b, False)} (similarity {p.cosine:.2f})" for p in same
                    )
                    + "."
                )
            else:
                top = max(pairs, key=lambda p: p.cosine)
                text = ("No: " if yes_no else "") + (
                    f"no two of these {len(plan.targets)} faces look like the same person (the highest identity "
                    f"similarity is {top.cosine:.2f}, between {self.name(top.a, False)} and {self.name(top.b, False)}; "
                    f"the match threshold is {threshold:.2f})."
                )
            text = _cap(text)
        text += " This is a model's similarity estimate, not proof of identity."
        result = IdentityResult(pairs=[
            IdentityPair(a=(p.a.image, p.a.face), b=(p.b.image, p.b.face), cosine=round(p.cosine, 4),
                         threshold=p.threshold, same=p.same)
            for p in pairs
        ])  # fmt: skip
        return Written(text, plan.targets, result)

    def _reasoning(self, plan: Plan, evidence: Evidence) -> Written:
        sentences, details = [], []
        for ref in plan.targets:
            cot = evidence.cots.get(ref)
            subject = self._subject(plan, ref) if len(plan.targets) == 1 else _cap(self.name(ref))
            if cot is None:
                sentences.append(f"{subject}: no expression estimate is available.")
                continue
            sentences.append(self._plain_expression(plan, subject, self.faces[ref], cot))
            details.append(cot.text if len(plan.targets) == 1 else f"{_cap(self.name(ref))}:\n{cot.text}")
        result = FacesResult(faces=[self.facts(r, ("emotion",), aus=True) for r in plan.targets])
        text = "\n".join(sentences) + self._note(plan)
        return Written(text, plan.targets, result, reasoning="\n\n".join(details) or None)

    @staticmethod
    def _plain_expression(plan: Plan, subject: str, face: FaceReport, cot: CoT) -> str:
        """One sentence a reader can take in: what the face looks like and the cues behind it, in plain words.
        It follows the classifier; when the facial cues point elsewhere it says so, once."""
        e = face.emotion
        assert e is not None
        shown = display("emotion", e.label)
        asked = plan.asked.get("emotion")
        lead = ""
        if asked and plan.choice:  # "why is she happy or sad?": which of them, or neither, then the reasoning
            lead = f"{subject} looks {shown}{_chosen(face, 'emotion', asked)}. "
            subject = "The face"
        elif asked and e.label not in asked:
            lead = f"No: {subject[0].lower()}{subject[1:]} doesn't look {either('emotion', asked)} to the model. "
            subject = "The face"
        elif asked and plan.yes_no:
            subject = f"Yes: {subject[0].lower()}{subject[1:]}"
        match cot.agreement:
            case "agree" if e.label == "Neutral":
                body = f"{subject} looks neutral ({e.score:.0%}): no clear facial movement."
            case "agree":
                body = f"{subject} looks {shown} ({e.score:.0%}): {_cues(cot, e.label)}."
            case "partial":
                body = (
                    f"{subject} looks {shown} ({e.score:.0%}); the facial cues partly agree ({_cues(cot, e.label)}) "
                    f"but point more to {display('emotion', cot.evidence or e.label)}."
                )
            case "disagree":
                other = cot.evidence or e.label
                body = (
                    f"{subject} looks {shown} to the expression classifier ({e.score:.0%}), but the facial cues "
                    f"({_cues(cot, cot.evidence or e.label)}) point more to {display('emotion', other)};"
                    " this answer follows the classifier."
                )
            case _:
                body = f"{subject} looks {shown} ({e.score:.0%}); the facial cues alone show no clear pattern."
        return lead + body


def _cues(cot: CoT, emotion: str) -> str:
    """The observed movements of `emotion`'s prototype (or the strongest ones), in plain words."""
    prototype = emfacs()["prototypes"].get(emotion, {}).get("aus", [])
    seen = [o for o in cot.observations if o.au in prototype] or list(cot.observations[:2])
    plain = [emfacs()["aus"].get(o.au, ["", o.au])[1] for o in seen[:3]]
    return _join(plain) if plain else "no clear facial movement"


def _aside(name: str, words: str) -> str:
    """A name with words in its parentheses: "person 2 (second from the left; the oldest woman)"."""
    if not words:
        return name
    return name[:-1] + f"; {words})" if name.endswith(")") else f"{name} ({words})"


def _group_bounds(group: str) -> tuple[int, int | None] | None:
    """An age group's years: "30-39" -> (30, 39), "70+" -> (70, None); None for a group that is not a range."""
    if not (m := _AGE_GROUP.fullmatch(group.strip())):
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def _says(text: str, how: str) -> bool:
    """Whether the answer already says what `how` says ("the only face that appears female" / "appears female")."""
    return bool(text) and how.startswith("the only face that ") and how.removeprefix("the only face that ") in text


def _verdict(face: FaceReport, attribute: str, wanted: Sequence[str]) -> str:
    value = getattr(face, attribute)
    if value is None:
        return ""
    return "Yes:" if value.label in wanted else "No:"


def _fits(face: FaceReport, plan: Plan) -> bool:
    """Whether a face is what a yes/no question asks of it: every label asked, and the age range asked, if any."""
    if not all(_verdict(face, a, w) == "Yes:" for a, w in plan.asked.items()):
        return False
    age = years(face)
    return plan.ages is None or (age is not None and plan.ages[0] <= age <= plan.ages[1])


def _chosen(face: FaceReport, attribute: str, offered: Sequence[str]) -> str:
    """What a choice between labels adds to the estimate: the labels it is not, or that it is none of them."""
    value = getattr(face, attribute)
    if value is None:
        return ""
    if value.label in offered:
        return f", not {either(attribute, [o for o in offered if o != value.label])}"
    words = [display(attribute, o) for o in offered]
    return f", neither {', '.join(words[:-1])} nor {words[-1]}"


def _shown(plan: Plan, answer: Answer) -> list[FaceRef]:
    shown = plan.targets if plan.status == "ok" else plan.candidates
    return [r for r in shown if r.face in answer.faces]


Writer = Callable[[Composer, Plan, Evidence], Written]
_WRITERS: dict[str, Writer] = {
    "attribute": Composer._attribute,
    "describe": Composer._describe,
    "count": Composer._count,
    "compare": Composer._compare,
    "reasoning": Composer._reasoning,
}
_COMPARISONS: dict[str, Writer] = {
    "oldest": Composer._extreme_age,
    "youngest": Composer._extreme_age,
    "same_age": Composer._same_age,
    "emotion": Composer._emotion_match,
    "most_emotion": Composer._most_emotion,
    "least_emotion": Composer._most_emotion,
    "find": Composer._find,
    "average": Composer._average_age,
    "same_person": Composer._same_person,
}
