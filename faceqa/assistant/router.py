"""Question routing: a question and the face reports of the chat -> one typed Plan.

One question, followed through:

    english?  (normalize.english)   another language gets one sentence saying the rules read English
    normalize (normalize.normalize_question) lower case, slang, typos, number words: the only text read below
    split     (compound.split)      "how many people are there, and who is the oldest?" -> two parts
    policy    (policy.check)        identity, criminality, attractiveness ... declined, saying why
    read      (question.read)       cues, attributes asked, topic, referring words
    intent    (_intent)             what kind of answer, from the cues (never from a failed reading)
    ground    (grounding.ground)    the faces meant, or why none or several
    plan      (_PLANNERS)           one Plan, composed later by compose.Composer

Deterministic rules; a follow-up with no question words of its own ("and the person next to
her?") continues the previous question, pronouns resolve against the faces last talked
about, "which one" and "the older one" choose within them, and after an answer that asked
which face was meant, pronouns and bare answers ("the one on the left", "both") choose among the
faces it asked about; a bare follow-up still asks what was asked ("is she smiling?" -> "both",
"and him?": a Yes or No).
Descriptions the rules cannot ground go to an optional `ReferentResolver` (a VLM); questions the
rules cannot answer at all carry `Plan.vlm` saying why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from faceqa.schema import ImageReport

from . import policy
from .compound import split
from .grounding import Faces, Grounding, describe_filters, ground, labelled
from .normalize import english, is_name, normalize_question
from .plan import ATTRIBUTE_FIELDS, FaceRef, Intent, Plan
from .question import Question, read
from .referents import Referent, parse
from .resolver import ReferentResolver

if TYPE_CHECKING:
    from .conversation import Conversation


@dataclass
class Chat:
    """What routing needs to know about the chat: its faces, the faces last talked about, the last plan."""

    faces: Faces
    n_images: int
    focus: list[FaceRef]
    pending: list[FaceRef]  # the faces the last answer asked the user to choose among
    last_question: str  # the last question (part) answered, normalised
    last_intent: str | None
    last_attributes: tuple[str, ...]
    reports: Sequence[ImageReport]
    images: Sequence[np.ndarray | None] | None
    resolver: ReferentResolver | None
    question: str  # as asked, for the resolver


def route(
    question: str,
    reports: Sequence[ImageReport],
    conversation: Conversation | None = None,
    *,
    resolver: ReferentResolver | None = None,
    images: Sequence[np.ndarray | None] | None = None,
) -> Plan:
    """Plan the answer to `question` about the faces of `reports` (photo 1, 2, ... in order)."""
    faces = {FaceRef(i, f.id): f for i, report in enumerate(reports, start=1) for f in report.faces}
    chat = Chat(
        faces=faces,
        n_images=len(reports),
        focus=[r for r in (conversation.focus if conversation else []) if r in faces],
        pending=[r for r in (conversation.pending if conversation else []) if r in faces],
        last_question=conversation.last_question if conversation else "",
        last_intent=conversation.last_intent if conversation else None,
        last_attributes=tuple(conversation.last_attributes) if conversation else (),
        reports=reports,
        images=images,
        resolver=resolver,
        question=question,
    )
    if not english(question):
        return Plan(intent="other_language", status="unsupported", vlm="open_question", question=question)
    text = normalize_question(question)
    parts = split(text)
    # One declined part declines the whole question: no attribute list beside a refusal.
    refusals = [r for part in parts if (r := policy.check(part))]
    plain = split(normalize_question(question, correct=False))  # names, before typo correction turns them into words
    refusals += [r for part in plain if (r := policy.check_names(part, is_name))]
    if refusals:
        return Plan(intent="refuse", status="unsupported", topic=refusals[0].category, question=text)
    if len(parts) == 1:
        return _route_one(parts[0], chat)
    plans = []
    for part in parts:
        plan = _route_one(part, chat)
        plans.append(plan)
        if plan.status == "ok" and plan.targets:
            chat.focus, chat.pending = list(plan.targets), []
        if plan.intent not in ("help", "refuse", "not_visible"):
            chat.last_intent, chat.last_attributes = plan.intent, plan.attributes
            chat.last_question = plan.asks or plan.question
    # A part the rules cannot read beside parts they can ("... Options: Male, Female") is no question of its
    # own; the same plan twice ("explain, step by step, why she looks sad") is answered once.
    kept = [p for p in plans if p.intent != "help"] or plans[:1]
    kept = [p for i, p in enumerate(kept) if all(_key(p) != _key(q) for q in kept[:i])]
    if len(kept) == 1:
        return kept[0]
    return Plan(intent="compound", parts=tuple(kept), question=text, status=_worst(kept))


def _key(plan: Plan) -> tuple:
    return plan.intent, plan.comparison, plan.attributes, plan.targets, plan.status


def _worst(plans: list[Plan]) -> str:
    return "ok" if any(p.status == "ok" for p in plans) else plans[0].status


def _route_one(text: str, chat: Chat) -> Plan:
    ids = {r.face for r in chat.faces}
    q = read(text, ids)
    fixed = None
    said = q
    if chat.pending:
        picked = _after_question(q, chat)
        if (again := _compared_again(q, picked, chat, ids)) is not None:
            return again
        chat = picked
        q = _still_asked(q, chat, ids)
        if q.referent.both and len(chat.pending) != 2:  # "both", answering "which two of these four?"
            why = f"you said both, but I asked about {len(chat.pending)} faces; say which two"
            fixed = Grounding.fail("ambiguous", list(chat.pending), why)
        elif chat.last_intent == "compare" and _reply(q) and q.referent.everyone and q.referent.among:
            # "both" or "either", answering "is she older than person 3?" -> "which woman?": the comparison is asked
            # again, and still stands for the reply after it
            why = "a comparison needs the faces named one by one; say which (e.g. 'the one on the left' or 'person 2')"
            return Plan(intent="compare", status="ambiguous", candidates=tuple(chat.pending), why=why, question=text,
                        asks=chat.last_question, referent=" ".join(q.referent.words))  # fmt: skip
    elif chat.last_intent in ("attribute", "reasoning"):  # "is he smiling?" -> "and her?": her Yes or No
        q = _still_asked(q, chat, ids)
    intent = _intent(q, chat)
    base = {"referent": " ".join(q.referent.words), "question": text, "named": tuple(q.attributes), "yes_no": q.yes_no,
            "asks": chat.last_question if q is not said else ""}
    if intent in ("not_visible", "help"):
        vlm = "not_visible" if intent == "not_visible" else "open_question" if q.leftover else None
        return Plan(intent=intent, status="unsupported", topic=q.topic, vlm=vlm, candidates=tuple(chat.faces), **base)
    if not chat.faces:
        where = "photos" if chat.n_images > 1 else "photo"
        return Plan(intent=intent, status="no_faces", why=f"there are no faces in the {where}", **base)
    ref = q.referent
    if ref.unresolved and len(chat.faces) > 1:
        grounded = _resolve(ref, chat)
        if grounded.status != "ok":
            return Plan(
                intent=intent,
                attributes=_attributes(q, intent, chat),
                status=grounded.status,
                candidates=tuple(grounded.candidates),
                why=grounded.why,
                unresolved=ref.unresolved,
                vlm="referent",
                **base,
            )
        return _PLANNERS[intent](q, chat, base, grounded)
    return _PLANNERS[intent](q, chat, base, fixed)


def _after_question(q: Question, chat: Chat) -> Chat:
    """The last answer asked which of several faces was meant. A pronoun that fits them still means one of them
    ("what is her emotion?" after "which woman?" asks again, or takes the one it fits); a bare answer by position
    or rank ("the one on the right", "the older one") picks among them; "either" (any of them will do) answers for
    each of them, as "both" does; "the others" are the faces it did not offer. Anything else reads as usual."""
    ref = q.referent
    # "which one is older?": one of them; "either": each of them; "and the others?": everyone it did not ask about
    if ref.among or (ref.others and not (ref.selector or ref.filters)):
        return replace(chat, focus=list(chat.pending))
    if ref.pronoun and not (ref.selector or ref.filters or ref.others or ref.everyone):
        gender = {"he": "Male", "she": "Female"}.get(ref.pronoun)
        if gender is None or any(labelled(chat.faces[r].gender, gender) for r in chat.pending):
            return replace(chat, focus=list(chat.pending))
        return chat
    if _bare(q) and ref.selector and not (ref.indexes or ref.adjacent or ref.filters):  # "the one on the left"
        return replace(chat, faces={r: chat.faces[r] for r in chat.pending})
    return chat


def _bare(q: Question) -> bool:
    """Referring words only ("the one on the left", "and both?"): no question words of its own."""
    return not (q.attributes or q.leftover or q.cues - {"followup"})


def _reply(q: Question) -> bool:
    """A bare reply that names someone, and no age of its own."""
    return _bare(q) and not (q.ages or q.referent.empty)


def _compared_again(q: Question, picked: Chat, chat: Chat, ids: set[int]) -> Plan | None:
    """After "is she older than person 1?" -> "which woman?", a bare reply that picks one of them ("the one on the
    left") asks the comparison again, with that face named by number in place of the words that were ambiguous
    (the first referring phrase whose replacement grounds the question with that face). None otherwise."""
    if not (_reply(q) and chat.last_intent == "compare" and chat.last_question):
        return None
    g = ground(q.referent, picked.faces, picked.n_images, picked.focus)
    if g.status != "ok" or len(g.targets) != 1:
        return None
    face = g.targets[0]
    name = f"person {face.face}" + (f" in photo {face.image}" if chat.n_images > 1 else "")
    fresh = replace(chat, pending=[], last_question="")
    before = _route_one(chat.last_question, fresh)  # the same comparison must come out, not "who is person 2"
    for phrase in read(chat.last_question, ids).referent.words:
        text = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", name, chat.last_question, count=1)
        plan = _route_one(text, fresh)
        if plan.status == "ok" and face in plan.candidates and _key(plan)[:2] == _key(before)[:2]:
            return plan
    return None


def _still_asked(q: Question, chat: Chat, ids: set[int]) -> Question:
    """A bare follow-up ("and her?", "the others?") or reply to "which one do you mean?" ("the one on the right",
    "both") still asks what was asked: after "is she smiling?" it gets a Yes or No, after "why is she happy or sad?"
    which of them, after "is she over 40?" which side (its plan's `asks` keeps that question for the next hop).
    The attributes and the intent carry over as for any follow-up (`_intent`, `_attributes`)."""
    if not (_reply(q) and chat.last_question):
        return q
    asked = read(chat.last_question, ids)
    return replace(q, asked=asked.asked, ages=asked.ages, choice=asked.choice, yes_no=asked.yes_no)


def _intent(q: Question, chat: Chat) -> Intent:
    ref = q.referent
    # "Is there a dog?" asks what faces cannot show; "how many people wear hats?" is still a count.
    unseen = q.topic and not q.attributes and not (ref.superlative or ref.emotion_most or q.has("same"))
    if unseen and not (q.has("count") and ref.picks):
        return "not_visible"
    if q.has("same"):
        return "compare"
    if q.ages and not q.has("count"):  # "is person 2 older than 40?": an attribute of person 2
        return "attribute"
    if q.has("count"):
        return "count"
    if q.has("than") or q.has("same_age") or q.has("average"):
        return "compare"
    if q.has("reasoning") and ("emotion" in q.attributes or not q.attributes):
        return "reasoning"
    if q.has("who") and not q.has("describe"):
        # "who is the oldest / smiling / the woman" finds faces; "who is person 3" describes one.
        finds = ref.superlative or ref.emotion_most or ref.filters or ref.others or "emotion" in q.attributes
        return "compare" if finds or ("gender" in q.attributes and ref.empty) else "attribute"
    if q.has("describe") and not (ref.filters or ref.selector or ref.pronoun or ref.unresolved or ref.others):
        return "describe"
    if q.attributes or q.has("describe"):
        return "attribute"
    if q.leftover:
        return "help"  # words the rules cannot read: never fall back to the previous question's intent
    last = chat.last_intent
    followup = last is not None and (not ref.empty or q.has("followup"))
    if followup and last in ("attribute", "reasoning"):
        return last  # type: ignore[return-value]
    if (ref.superlative or ref.emotion_most) and not ref.indexes:
        return "compare"
    return "attribute" if not ref.empty else "help"


def _one(q: Question, attribute: str) -> str | None:
    """The one label a question names for `attribute` ("is she a woman?"), if it names exactly one."""
    labels = q.asked.get(attribute, ())
    return labels[0] if len(labels) == 1 else None


def _attributes(q: Question, intent: str, chat: Chat) -> tuple[str, ...]:
    if intent == "reasoning":
        return ("emotion",)
    wanted = tuple(a for a in ATTRIBUTE_FIELDS if a in q.attributes)
    if intent in ("attribute", "reasoning") and not wanted:
        carried = intent == chat.last_intent and chat.last_attributes
        return chat.last_attributes if carried else ATTRIBUTE_FIELDS
    return wanted


def _finish(plan: Plan, g: Grounding) -> Plan:
    if g.status == "ok":
        return plan.model_copy(update={"targets": tuple(g.targets), "candidates": tuple(g.candidates),
                                       "how": g.how, "note": g.note, "roles": tuple(g.roles)})  # fmt: skip
    return plan.model_copy(update={"status": g.status, "candidates": tuple(g.candidates), "why": g.why})


def _with_focus(ref: Referent, chat: Chat, singular: bool) -> Grounding:
    """No referring words at all: the faces last talked about, or the only face, or everyone if plural.
    Right after "which one do you mean?", a question about one face that still names nobody ("what is the
    emotion?") is asked again among the same faces."""
    if ref.empty and ref.image is None and singular and len(chat.pending) > 1:
        why = f"you didn't say which of the {len(chat.pending)} faces I asked about"
        return Grounding.fail("ambiguous", list(chat.pending), why)
    if ref.empty and ref.image is None and chat.focus:
        how = "the face we were talking about" if len(chat.focus) == 1 else "the faces we were talking about"
        return Grounding(list(chat.focus), list(chat.focus), how=how)
    return ground(ref, chat.faces, chat.n_images, chat.focus, singular=singular)


# --- one planner per intent ---------------------------------------------------------------------

Planner = Callable[[Question, Chat, dict, "Grounding | None"], Plan]


def _plan_attribute(q: Question, chat: Chat, base: dict, fixed: Grounding | None) -> Plan:
    g = fixed or _several(q, chat) or _with_focus(q.referent, chat, singular=not q.referent.plural)
    if q.has("who_is_position") and not q.attributes:
        g.note = (g.note + "; " if g.note else "") + "I describe how people appear; I don't identify who they are"
    # "is she happy or sad?" asks which of them applies: no Yes/No ("is anyone happy or sad?" is a search, see below)
    base = {**base, "yes_no": q.yes_no and not q.choice}
    attributes = _attributes(q, "attribute", chat)
    plan = Plan(intent="attribute", attributes=attributes, asked=q.asked, choice=q.choice, ages=q.ages, **base)
    return _finish(plan, g)


def _plan_reasoning(q: Question, chat: Chat, base: dict, fixed: Grounding | None) -> Plan:
    g = fixed or _with_focus(q.referent, chat, singular=not q.referent.plural)
    asked = {"emotion": q.asked["emotion"]} if "emotion" in q.asked else {}
    # "why is she happy or sad?" asks which of them (or neither) and why: no Yes/No
    choice = q.choice and "emotion" in asked
    base = {**base, "yes_no": q.yes_no and not choice}
    return _finish(Plan(intent="reasoning", attributes=("emotion",), asked=asked, choice=choice, **base), g)


def _plan_describe(q: Question, chat: Chat, base: dict, fixed: Grounding | None) -> Plan:
    g = ground(q.referent.but(plural=True), chat.faces, chat.n_images, chat.focus, singular=False)
    return _finish(Plan(intent="describe", attributes=ATTRIBUTE_FIELDS, **base), g)


def _plan_count(q: Question, chat: Chat, base: dict, fixed: Grounding | None) -> Plan:
    ref = q.referent
    counted = ref.but(
        emotions=ref.emotions or q.asked.get("emotion", ()),
        gender=ref.gender or _one(q, "gender"),
        plural=True,
        pronoun=None,
    )
    # "how many of them are smiling?" after "how many men?": the men are counted, out of the men.
    scope = ground(Referent(image=ref.image, among=ref.among), chat.faces, chat.n_images, chat.focus, singular=False)
    if not scope.targets:
        return _finish(Plan(intent="count", **base), scope)
    g = fixed or ground(counted, chat.faces, chat.n_images, chat.focus, singular=False)
    if g.status not in ("ok", "not_found"):
        return _finish(Plan(intent="count", **base), g)
    return Plan(
        intent="count",
        emotion=counted.emotions[0] if len(counted.emotions) == 1 else None,
        targets=tuple(g.targets),
        candidates=tuple(scope.targets),
        condition=describe_filters(counted, plural=True),
        **base,
    )


def _plan_compare(q: Question, chat: Chat, base: dict, fixed: Grounding | None) -> Plan:
    ref = q.referent
    if q.has("same"):
        return _same_person(q, chat, base)
    if q.has("average"):
        return _average(q, chat, base)
    if q.has("same_age"):
        named = _two(q, chat) or _with_focus(ref.but(plural=True), chat, singular=False)
        return _finish(Plan(intent="compare", comparison="same_age", attributes=("age",), **base), named)
    if ref.superlative or ref.emotion_most:
        return _extreme(q, chat, base)
    wanted = q.asked.get("emotion", ())
    if wanted and not ref.emotions:  # "who looks surprised or scared?": a face that reads any of them
        scope = _with_focus(ref.but(plural=True), chat, singular=False)
        plan = Plan(intent="compare", comparison="emotion", emotion=wanted[0] if len(wanted) == 1 else None,
                    asked={"emotion": wanted}, attributes=("emotion",), **base)  # fmt: skip
        if scope.status != "ok":
            return _finish(plan, scope)
        matched = [r for r in scope.targets if any(labelled(chat.faces[r].emotion, w) for w in wanted)]
        return plan.model_copy(update={"targets": tuple(matched), "candidates": tuple(scope.targets)})
    find = ref.but(gender=ref.gender or _one(q, "gender"), plural=True)
    g = fixed or ground(find, chat.faces, chat.n_images, chat.focus, singular=False)
    plan = Plan(intent="compare", comparison="find", attributes=ATTRIBUTE_FIELDS,
                condition=describe_filters(find, plural=True), **base)  # fmt: skip
    return _finish(plan, g)


def _average(q: Question, chat: Chat, base: dict) -> Plan:
    """The average apparent age of everyone, of a group ("of the women") or of the faces talked about ("their")."""
    group = q.referent.but(superlative=None, emotion_most=None, plural=True)
    plan = Plan(intent="compare", comparison="average", attributes=("age",),
                condition=describe_filters(group, plural=True), **base)  # fmt: skip
    return _finish(plan, ground(group, chat.faces, chat.n_images, chat.focus, singular=False))


def _extreme(q: Question, chat: Chat, base: dict) -> Plan:
    """Oldest / youngest / happiest, among everyone, the faces named ("is person 1 older than 3?") or a group."""
    ref = q.referent
    comparison = ref.superlative or ("least_emotion" if ref.least else "most_emotion")
    plan = Plan(
        intent="compare",
        comparison=comparison,
        emotion=ref.emotion_most,
        attributes=("age",) if ref.superlative else ("emotion",),
        **base,
    )
    rest = ref.but(superlative=None, emotion_most=None, least=False, plural=True)
    # "is person 1 older than 3?", "who is older, her or person 3?": the two faces named, each grounded on its own
    named = _two(q, chat) if q.has("than") else _two(q, chat, "or") if " or " in q.blanked else None
    focus = chat.focus if rest.pronoun or rest.others or rest.among else []
    pool = named or ground(rest, chat.faces, chat.n_images, focus, singular=False)
    if pool.status != "ok":
        return _finish(plan, pool)
    among = {r: chat.faces[r] for r in pool.targets}
    extreme = Referent(superlative=ref.superlative, emotion_most=ref.emotion_most, least=ref.least)
    g = ground(extreme, among, chat.n_images)
    return _finish(plan, Grounding(g.targets, pool.targets, g.status, how=g.how, why=g.why, note=pool.note))


def _two(q: Question, chat: Chat, joined_by: str = "and|as|with|vs|versus|to|than|or") -> Grounding | None:
    """The two faces a comparison names ("person 1 and 3", "the man on the left ... as the woman"), if it names
    two. Superlatives are what is compared ("is person 1 older than person 3?"), not part of the names."""
    ref = q.referent
    if len(ref.indexes) >= 2:
        g = ground(ref.but(superlative=None, emotion_most=None), chat.faces, chat.n_images, chat.focus, singular=False)
        return _distinct(g)
    named = _named(q, chat, joined_by, keep_ranks=False)
    return _distinct(named) if named is not None and (named.status != "ok" or len(named.targets) == 2) else None


def _several(q: Question, chat: Chat) -> Grounding | None:
    """The faces an attribute question names one by one: "how old are the youngest man and the oldest woman?"
    is two referents, each with its own rank; "person 1 and 3" is one list."""
    if len(q.referent.indexes) >= 2:
        return None
    g = _named(q, chat, "and", keep_ranks=True)
    return _distinct(g) if g is not None and (g.status != "ok" or len(g.targets) >= 2) else None


def _named(q: Question, chat: Chat, joined_by: str, keep_ranks: bool) -> Grounding | None:
    """Ground each half of a question split at its first `joined_by` word; None when a half names nobody."""
    halves = re.split(rf"\b(?:{joined_by})\b", q.blanked, maxsplit=1)
    if len(halves) < 2:
        return None
    picked, roles, notes = [], [], []
    for half in halves:
        part = parse(half)
        if not keep_ranks:
            part = part.but(superlative=None, emotion_most=None)
        if part.empty:
            return None
        g = ground(part, chat.faces, chat.n_images, chat.focus)
        if g.status != "ok":
            return g
        picked.extend(g.targets)
        notes.append(g.note)  # "you said 'her'; the model reads this face as male" is kept
        roles.extend([f"the {' '.join(part.words)}" if part.words and not part.indexes else ""] * len(g.targets))
    how = "the faces you named" if len(picked) > 2 else "the two faces you named"
    note = "; ".join(filter(None, notes))
    return Grounding(picked, picked, how=how, note=note, roles=roles if keep_ranks and any(roles) else [])


def _distinct(g: Grounding) -> Grounding:
    """A comparison needs two different faces; naming one face twice is asked back, not answered."""
    unique = list(dict.fromkeys(g.targets))
    if g.status != "ok" or len(unique) == len(g.targets):
        return g
    if len(unique) >= 2:
        return Grounding(unique, unique, how=g.how, note=g.note)
    return Grounding.fail("ambiguous", unique, f"both point to the same face, person {unique[0].face}; name two faces")


def _same_person(q: Question, chat: Chat, base: dict) -> Plan:
    plan = Plan(intent="compare", comparison="same_person", **base)
    ref = q.referent
    if (named := _two(q, chat)) is not None:
        return _finish(plan, named)
    if len(chat.focus) >= 2 and ref.pronoun == "they":
        return _finish(plan, Grounding(list(chat.focus), list(chat.focus), how="the faces we were talking about"))
    scope = ground(Referent(image=ref.image), chat.faces, chat.n_images, singular=False).targets
    if len(scope) == 2:
        return _finish(plan, Grounding(scope, scope, how="the two faces"))
    if len(scope) > 2 and q.has("any_pair"):
        return _finish(plan, Grounding(scope, scope, how="every pair of faces"))
    if len(scope) < 2:
        return _finish(plan, Grounding.fail("not_found", scope, "there is only one face to compare"))
    return _finish(plan, Grounding.fail("ambiguous", scope, f"there are {len(scope)} faces; say which two"))


_PLANNERS: dict[str, Planner] = {
    "attribute": _plan_attribute,
    "reasoning": _plan_reasoning,
    "describe": _plan_describe,
    "count": _plan_count,
    "compare": _plan_compare,
}


def _resolve(ref: Referent, chat: Chat) -> Grounding:
    """Ground a description the rules cannot read ("the boy holding a ball") with the resolver, if any."""
    rules = ground(ref.but(plural=True), chat.faces, chat.n_images, chat.focus, singular=False)
    pool = rules.targets if rules.status == "ok" else list(chat.faces)
    cannot = Grounding.fail("ambiguous", pool, f"I can't tell from faces alone who is '{ref.unresolved}'")
    if len(pool) == 1 and rules.status == "ok":
        note = (
            f"I took '{ref.unresolved}' to be {rules.how or 'the only face that fits'}; "
            "the rest of that description can't be checked from faces alone"
        )
        cannot = Grounding(pool, pool, how=rules.how, note=note)
    if chat.resolver is None or chat.images is None:
        return cannot
    picked = []
    for index, (report, rgb) in enumerate(zip(chat.reports, chat.images, strict=True), start=1):
        if rgb is None or not any(r.image == index for r in pool):
            continue
        ids = chat.resolver.find_faces(ref.unresolved, chat.question, rgb, report) or []
        picked += [FaceRef(index, i) for i in ids if FaceRef(index, i) in pool]
    if len(picked) == 1:
        return Grounding(picked, picked, how=f"'{ref.unresolved}', as picked by the VLM")
    if len(picked) > 1:
        return Grounding.fail("ambiguous", picked, f"several faces could be '{ref.unresolved}'")
    return cannot
