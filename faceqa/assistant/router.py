"""Question routing: a question and the face reports of the chat -> a typed Plan.

Deterministic rules over the normalised question: what is asked (intent, attributes)
comes from a handful of phrase patterns, which faces from `referents.parse/ground`.
A follow-up with no question words of its own ("and the person next to her?") reuses
the previous turn's intent; pronouns resolve against the faces last talked about.
Descriptions the rules cannot ground go to an optional `ReferentResolver` (a VLM);
without one the plan says plainly that it cannot tell which person is meant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceqa.schema import ImageReport

from .plan import ATTRIBUTES, FaceRef, Plan
from .referents import NUMBERS, Grounding, Referent, describe_filters, emotion_words, ground, parse, race_words
from .resolver import ReferentResolver

if TYPE_CHECKING:
    from .conversation import Conversation

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "-": " ", "\u2013": " "})
_NUMBER_WORDS = re.compile(r"\b(" + "|".join(w for w in NUMBERS if w != "one") + r")\b")
_EMO = "|".join(sorted(emotion_words(), key=len, reverse=True))
_RACE = "|".join(sorted(race_words(), key=len, reverse=True))

RX = {
    "same": re.compile(
        r"\bsame (?:person|people|individual|guy|man|woman|lady|face|identity|human)\b|\bthe same(?:\s*$| as\b)"
        r"|\bidentical\b|\bone and the same\b|\bsame\s*$"
    ),
    "count": re.compile(
        r"\bhow many\b(?! years)|\bcount\b|\bnumber of\b|\bis there (?:anyone|anybody|someone|somebody|any|an?)\b"
        r"|\bare there\b|\bany(?:one|body) (?:here|there|at all)\b"
    ),
    "reasoning": re.compile(
        r"\b(?:explain|explanation|reason|reasoning|reasons|step by step|walk me through|chain of thought"
        r"|action units?|aus|facial cues|how (?:can|do|did|would) you (?:tell|know)|what makes|justify|why)\b"
    ),
    "describe": re.compile(
        r"\bdescribe\b|\btell me (?:about|more)\b|\bwhat can you (?:tell|say)\b|\bwho (?:is|are) (?:in|on) (?:the|this)"
        r"|\bwho do you see\b|\bwhat do you see\b|\bwho is there\b|\beverything\b|\battributes\b|\bdetails\b"
        r"|\binfo(?:rmation)?\b|\bsummar(?:y|ize|ise)\b|\bprofile\b|\banaly[sz]e\b"
    ),
    "who": re.compile(
        r"^(?:and |so |ok |okay |then )?(?:who|whom)\b|\b(?:is|does|do|are) any(?:one|body)\b"
        r"|\bwhich (?:one|ones|person|people|persons|face|faces|individual|man|men|woman|women|guy|guys|lady|ladies"
        r"|boy|girl|child|kid|of (?:them|these|those|the \w+))\b"
    ),
    "age": re.compile(
        r"\bhow old\b|\bhow young\b|\bages?\b|\byears? old\b|\bage group\b|\bhow many years\b|\bage range\b"
    ),
    "gender": re.compile(
        r"\bgenders?\b|\bsex\b|\b(?:male or female|female or male)\b"
        r"|\b(?:an? )?(?:man|boy|guy) or (?:an? )?(?:woman|girl|lady)\b"
        r"|\b(?:an? )?(?:woman|girl|lady) or (?:an? )?(?:man|boy|guy)\b"
    ),
    "gender_asked": re.compile(r"\b(?:an?) (man|woman|boy|girl|guy|lady|gentleman|male|female)\b|\b(male|female)\s*$"),
    "race": re.compile(
        r"\b(?:race|races|racial|ethnicity|ethnicities|ethnic(?: group| background| origin)?|skin colou?r|heritage)\b"
    ),
    "race_asked": re.compile(rf"\b({_RACE})\b"),
    "emotion": re.compile(
        r"\b(?:emotions?|emotional|feel|feels|feeling|feelings|moods?|expressions?|look like|vibe"
        r"|how (?:does|do|is|are) (?:\w+ ){1,3}?(?:look|looking|seem|doing))\b"
    ),
    "emotion_asked": re.compile(rf"\b({_EMO})\b"),
    "plural_attribute": re.compile(r"\b(?:ages|genders|emotions|expressions|races|ethnicities|feelings|moods)\b"),
    "than": re.compile(r"\b(?:older|younger|elder) than\b"),
    "followup": re.compile(
        r"^(?:and|what about|how about|and what about|now|also|ok|okay)\b|\bwhat about\b|\bhow about\b"
    ),
    "any_pair": re.compile(r"\bany (?:two|of (?:them|these|those))\b|\banyone\b|\bamong\b"),
    "who_is_position": re.compile(r"^(?:and |so )?who (?:is|was)\b"),
}

ALL = ("age", "gender", "emotion", "race")


def _tokens(text: str) -> frozenset[str]:
    return frozenset(text.split())


# A pattern is only searched when the question has one of its words (see referents.GATES).
GATES = {
    "same": _tokens("same identical"),
    "count": _tokens("many count number there anyone anybody"),
    "reasoning": _tokens(
        "explain explanation reason reasoning reasons step walk chain action au aus facial how what justify why"
    ),
    "describe": _tokens(
        "describe tell what who everything attributes details info information summary summarize "
        "summarise profile analyze analyse"
    ),
    "who": _tokens("who which whom anyone anybody"),
    "age": _tokens("old young age ages year years range"),
    "gender": _tokens("gender genders sex male female man woman boy girl guy lady"),
    "gender_asked": _tokens("a an male female"),
    "race": _tokens("race races racial ethnicity ethnicities ethnic skin heritage"),
    "race_asked": _tokens(" ".join(race_words())),
    "emotion": _tokens(
        "emotion emotions emotional feel feels feeling feelings mood moods expression expressions like vibe how"
    ),
    "emotion_asked": _tokens(" ".join(emotion_words())),
    "than": _tokens("than"),
    "plural_attribute": _tokens("ages genders emotions expressions races ethnicities feelings moods"),
    "followup": _tokens("and what how now also ok okay"),
    "any_pair": _tokens("any anyone among"),
    "who_is_position": _tokens("who"),
}


class Question:
    """A normalised question and which patterns it matches, each searched at most once."""

    def __init__(self, text: str):
        self.text = text
        self.words = frozenset(text.split())
        self._found: dict[str, re.Match | None] = {}

    def find(self, name: str, text: str | None = None) -> re.Match | None:
        if text is not None:
            return RX[name].search(text) if not self.words.isdisjoint(GATES[name]) else None
        if name not in self._found:
            self._found[name] = RX[name].search(self.text) if not self.words.isdisjoint(GATES[name]) else None
        return self._found[name]


_CONTRACTIONS = (
    (re.compile(r"\b(who|what|she|he|it|that|there|where|how|which)'s\b"), r"\1 is"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'s?\b"), ""),  # possessives: "the man's age" -> "the man age"
)
_NOT_WORDS = re.compile(r"[^a-z0-9# ]+")


# Prompts written for a VLM end with an answer format ("... Answer with one of: Male, Female."); the options
# it lists are not what is asked about, so the format is dropped before routing.
_ANSWER_FORMAT = re.compile(
    r"(?:^|(?<=[.?!:]))\s*(?:please\s+)?(?:answer|respond|reply)\s+(?:with|using|in)\b.*$", re.S
)


def normalise(question: str) -> str:
    """Lower case, plain quotes, no punctuation, number words as digits ("person three" -> "person 3")."""
    q = _ANSWER_FORMAT.sub("", question.lower().translate(_QUOTES))
    if "'" in q:
        for rx, replacement in _CONTRACTIONS:
            q = rx.sub(replacement, q)
    q = _NOT_WORDS.sub(" ", q.replace("centre", "center"))
    q = _NUMBER_WORDS.sub(lambda m: str(NUMBERS[m.group(1)]), q)
    return " ".join(q.split())


def _blank(text: str, rx: re.Pattern) -> str:
    return rx.sub(lambda m: " " * len(m.group()), text)


def route(
    question: str,
    reports: Sequence[ImageReport],
    conversation: Conversation | None = None,
    *,
    resolver: ReferentResolver | None = None,
    images: Sequence[np.ndarray | None] | None = None,
) -> Plan:
    """Plan the answer to `question` about the faces of `reports` (photo 1, 2, ... in order)."""
    q = Question(normalise(question))
    faces = {FaceRef(i, f.id): f for i, report in enumerate(reports, start=1) for f in report.faces}
    focus = [r for r in (conversation.focus if conversation else []) if r in faces]
    n_images = len(reports)

    # What is asked. Phrases like "how old" or "a man or a woman" contain words that would
    # otherwise read as a referent ("the old man"), so they are blanked before the referent is read.
    attributes = [a for a in ALL if q.find(a)]
    text = q.text
    for name in ("same", "age", "gender", "race", "count"):
        if q.find(name):
            text = _blank(text, RX[name])
    asked: dict[str, str] = {}
    if m := q.find("gender_asked", text):
        word = m.group(1) or m.group(2)
        asked["gender"] = "Male" if word in ("man", "boy", "guy", "gentleman", "male") else "Female"
        text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    ref = parse(text)
    if q.find("plural_attribute"):
        ref.plural = True
    if m := q.find("emotion_asked", ref.rest):
        asked["emotion"] = emotion_words()[m.group(1)]
    if m := q.find("race_asked", ref.rest):
        asked["race"] = race_words()[m.group(1)]
    for attribute in asked:
        if attribute not in attributes:
            attributes.append(attribute)

    plan = dict(referent=" ".join(ref.words))
    if not faces:
        intent = "count" if q.find("count") else "describe" if q.find("describe") else "attribute"
        where = "photos" if n_images > 1 else "photo"
        return Plan(intent=intent, status="no_faces", reason=f"there are no faces in the {where}", **plan)

    if ref.unresolved and len(faces) > 1:
        grounded = _resolve(ref, question, reports, images, resolver, faces, n_images, focus)
        if grounded.status != "ok":
            return Plan(
                intent=_intent(q, attributes, ref, conversation),
                attributes=_attributes(attributes),
                status=grounded.status,
                candidates=tuple(grounded.candidates),
                reason=grounded.reason,
                unresolved=ref.unresolved,
                **plan,
            )
        return _plan_for(q, attributes, asked, ref, faces, n_images, focus, conversation, plan, fixed=grounded)
    return _plan_for(q, attributes, asked, ref, faces, n_images, focus, conversation, plan)


def _attributes(found: list[str]) -> tuple[str, ...]:
    return tuple(a for a in ATTRIBUTES if a in found)


def _intent(q: Question, attributes: list[str], ref: Referent, conversation: Conversation | None) -> str:
    if q.find("same"):
        return "compare"
    if q.find("count"):
        return "count"
    if q.find("than"):
        return "compare"
    if q.find("reasoning") and ("emotion" in attributes or not attributes):
        return "reasoning"
    if q.find("who") and not q.find("describe"):
        # "who is the oldest / smiling / the woman" finds faces; "who is person 3" describes one.
        finds = ref.superlative or ref.emotion_most or ref.filters or "emotion" in attributes
        return "compare" if finds or ("gender" in attributes and ref.empty) else "attribute"
    if q.find("describe") and (not ref.picks or ref.everyone or ref.all_images):
        return "describe"
    if attributes or q.find("describe"):
        return "attribute"
    last = conversation.last_intent if conversation else None
    followup = last is not None and (not ref.empty or q.find("followup") is not None)
    if followup and last in ("attribute", "reasoning"):
        return last
    if (ref.superlative or ref.emotion_most) and not ref.indexes:
        return "compare"
    return "attribute" if not ref.empty else "help"


def _plan_for(
    q: Question,
    attributes: list[str],
    asked: dict[str, str],
    ref: Referent,
    faces: dict,
    n_images: int,
    focus: list[FaceRef],
    conversation: Conversation | None,
    plan: dict,
    fixed: Grounding | None = None,
) -> Plan:
    intent = _intent(q, attributes, ref, conversation)
    reused = intent == (conversation.last_intent if conversation else None) and not attributes
    wanted = _attributes(attributes)
    if intent in ("attribute", "reasoning") and not wanted:
        wanted = tuple(conversation.last_attributes) if reused and conversation.last_attributes else ATTRIBUTES
    if intent == "reasoning":
        wanted = ("emotion",)

    if intent == "help":
        return Plan(
            intent="help",
            status="unsupported",
            candidates=tuple(faces),
            reason="I did not understand the question",
            **plan,
        )
    if intent == "describe":
        g = ground(ref.but(plural=True), faces, n_images, focus, singular=False)
        return _finish(Plan(intent="describe", attributes=ATTRIBUTES, **plan), g)
    if intent == "count":
        counted = ref.but(
            emotion=ref.emotion or asked.get("emotion"),
            gender=ref.gender or asked.get("gender"),
            plural=True,
            pronoun=None,
        )
        scope = ground(Referent(image=ref.image), faces, n_images, singular=False)
        if not scope.targets:
            return _finish(Plan(intent="count", **plan), scope)
        g = ground(counted, faces, n_images, singular=False)
        if g.status not in ("ok", "not_found"):
            return _finish(Plan(intent="count", **plan), g)
        return Plan(
            intent="count",
            emotion=counted.emotion,
            targets=tuple(g.targets),
            candidates=tuple(scope.targets),
            reason=describe_filters(counted, plural=True),
            **plan,
        )
    if intent == "compare":
        return _compare(q, asked, ref, faces, n_images, focus, plan)

    g = fixed or _ground_with_focus(ref, faces, n_images, focus, singular=not ref.plural)
    if intent == "attribute" and q.find("who_is_position") and not attributes:
        g.note = (g.note + "; " if g.note else "") + "I describe how people appear; I don't identify who they are"
    return _finish(Plan(intent=intent, attributes=wanted, asked=asked if intent == "attribute" else {}, **plan), g)


def _ground_with_focus(ref: Referent, faces: dict, n_images: int, focus: list[FaceRef], singular: bool) -> Grounding:
    """No referring words at all: the faces last talked about, or the only face, or everyone if plural."""
    if ref.empty and ref.image is None and focus:
        return Grounding(
            list(focus),
            list(focus),
            reason="the face we were talking about" if len(focus) == 1 else "the faces we were talking about",
        )
    return ground(ref, faces, n_images, focus, singular=singular)


def _finish(plan: Plan, g: Grounding) -> Plan:
    if g.status == "ok":
        return plan.model_copy(
            update=dict(targets=tuple(g.targets), candidates=tuple(g.candidates), reason=g.reason, note=g.note)
        )
    return plan.model_copy(update=dict(status=g.status, candidates=tuple(g.candidates), reason=g.reason))


def _compare(
    q: Question, asked: dict[str, str], ref: Referent, faces: dict, n_images: int, focus: list[FaceRef], plan: dict
) -> Plan:
    if q.find("same"):
        return _same_person(q, ref, faces, n_images, focus, plan)
    if ref.superlative or ref.emotion_most:
        base = ref.but(superlative=None, emotion_most=None, plural=True)
        named = _two(q, ref, faces, n_images, focus) if q.find("than") else None
        pool = named or _ground_with_focus(base, faces, n_images, [] if base.pronoun is None else focus, singular=False)
        if pool.status != "ok":
            return _finish(Plan(intent="compare", comparison=ref.superlative or "most_emotion", **plan), pool)
        g = ground(ref.but(indexes=[], plural=False), {r: faces[r] for r in pool.targets}, n_images)
        comparison = ref.superlative or "most_emotion"
        return _finish(
            Plan(
                intent="compare",
                comparison=comparison,
                emotion=ref.emotion_most,
                attributes=("age",) if ref.superlative else ("emotion",),
                **plan,
            ),
            Grounding(g.targets, pool.targets, g.status, g.reason),
        )
    wanted = asked.get("emotion")
    if wanted and not ref.emotion:
        scope = _ground_with_focus(ref.but(plural=True), faces, n_images, focus, singular=False)
        if scope.status != "ok":
            return _finish(Plan(intent="compare", comparison="emotion", emotion=wanted, **plan), scope)
        matched = [r for r in scope.targets if faces[r].emotion and faces[r].emotion.label == wanted]
        return Plan(
            intent="compare",
            comparison="emotion",
            emotion=wanted,
            attributes=("emotion",),
            targets=tuple(matched),
            candidates=tuple(scope.targets),
            **plan,
        )
    find = ref.but(gender=ref.gender or asked.get("gender"), plural=True)
    g = ground(find, faces, n_images, focus, singular=False)
    return _finish(Plan(intent="compare", comparison="find", attributes=ATTRIBUTES, **plan), g)


def _two(q: Question, ref: Referent, faces: dict, n_images: int, focus: list[FaceRef]) -> Grounding | None:
    """The two faces a comparison names ("person 1 and 3", "the man on the left ... as the woman"), if it names two."""
    if len(ref.indexes) >= 2:
        g = ground(ref.but(superlative=None, emotion_most=None), faces, n_images, focus, singular=False)
        return _distinct(g)
    halves = re.split(r"\b(?:and|as|with|vs|versus|to|than|or)\b", q.text, maxsplit=1)
    if len(halves) < 2:
        return None
    picked = []
    for half in halves:
        part = parse(_blank(half, RX["same"])).but(superlative=None, emotion_most=None)
        if part.empty:
            return None
        g = ground(part, faces, n_images, focus)
        if g.status != "ok":
            return g
        picked.extend(g.targets)
    if len(picked) == 2:
        return _distinct(Grounding(picked, picked, reason="the two faces you named"))
    return None


def _distinct(g: Grounding) -> Grounding:
    """A comparison needs two different faces; naming one face twice is asked back, not answered."""
    unique = list(dict.fromkeys(g.targets))
    if g.status != "ok" or len(unique) == len(g.targets):
        return g
    if len(unique) >= 2:
        return Grounding(unique, unique, reason=g.reason)
    return Grounding([], unique, "ambiguous", f"both point to the same face, person {unique[0].face}; name two faces")


def _same_person(q: Question, ref: Referent, faces: dict, n_images: int, focus: list[FaceRef], plan: dict) -> Plan:
    base = Plan(intent="compare", comparison="same_person", **plan)
    if (named := _two(q, ref, faces, n_images, focus)) is not None:
        return _finish(base, named)
    if focus and len(focus) >= 2 and ref.pronoun == "they":
        return _finish(base, Grounding(list(focus), list(focus), reason="the faces we were talking about"))
    scope = ground(Referent(image=ref.image), faces, n_images, singular=False)
    if len(scope.targets) == 2:
        return _finish(base, Grounding(scope.targets, scope.targets, reason="the two faces"))
    if len(scope.targets) > 2 and q.find("any_pair"):
        return _finish(base, Grounding(scope.targets, scope.targets, reason="every pair of faces"))
    if len(scope.targets) < 2:
        return _finish(base, Grounding([], scope.targets, "not_found", "there is only one face to compare"))
    return _finish(
        base, Grounding([], scope.targets, "ambiguous", f"there are {len(scope.targets)} faces; say which two")
    )


def _resolve(
    ref: Referent,
    question: str,
    reports: Sequence[ImageReport],
    images: Sequence[np.ndarray | None] | None,
    resolver: ReferentResolver | None,
    faces: dict,
    n_images: int,
    focus: list[FaceRef],
) -> Grounding:
    """Ground a description the rules cannot read ("the boy holding a ball") with the resolver, if any."""
    rules = ground(ref.but(plural=True), faces, n_images, focus, singular=False)
    pool = rules.targets if rules.status == "ok" else list(faces)
    cannot = Grounding([], pool, "ambiguous", f"I can't tell from faces alone who is '{ref.unresolved}'")
    if len(pool) == 1 and rules.status == "ok":
        note = (
            f"I took '{ref.unresolved}' to be {rules.reason or 'the only face that fits'}; "
            "the rest of that description can't be checked from faces alone"
        )
        cannot = Grounding(pool, pool, reason=rules.reason, note=note)
    if resolver is None or images is None:
        return cannot
    picked = []
    for index, (report, rgb) in enumerate(zip(reports, images, strict=True), start=1):
        if rgb is None or not any(r.image == index for r in pool):
            continue
        ids = resolver.resolve(ref.unresolved, question, rgb, report) or []
        picked += [FaceRef(index, i) for i in ids if FaceRef(index, i) in pool]
    if len(picked) == 1:
        return Grounding(picked, picked, reason=f"'{ref.unresolved}', as picked by the VLM")
    if len(picked) > 1:
        return Grounding([], picked, "ambiguous", f"several faces could be '{ref.unresolved}'")
    return cannot
