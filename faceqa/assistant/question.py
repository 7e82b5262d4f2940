"""Reading one (part of a) question: what is asked, about whom, on what condition.

`read` takes the normalised text of one question and returns a `Question`: the cues it
has (a count, a comparison, "why", "describe", a yes/no label ...), the attributes it asks
about, the topic it asks about that faces cannot show (clothing, hair, the scene ...), and
the referring words (`referents.parse`). Phrases that are part of what is asked ("how old",
"a man or a woman") are blanked before the referring words are read, so "how old" never
reads as "the old one". The router turns a Question into a Plan.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from .plan import ATTRIBUTE_FIELDS
from .referents import ANY_EMOTION, Referent, emotion_labels, parse
from .vocabulary import Gated, Reading, alternatives, tokens, vocabulary

V = vocabulary()

CUES = {
    "same": Gated(
        r"\bsame (?:person|people|individual|guy|man|woman|lady|face|identity|human)\b|\bthe same(?=\s*$| as\b)"
        r"|\bidentical\b|\bone and the same\b|\bsame\s*$|\blook (?:most )?alike\b|\bresembl(?:e|es|ing)\b"
        r"|\blook like each other\b",
        tokens("same identical alike resemble resembles resembling each"),
    ),
    "same_age": Gated(
        r"\b(?:the )?same age\b|\bas old as\b|\bequally old\b|\bsimilar (?:in )?age\b",
        tokens("same as equally similar"),
    ),
    "count": Gated(
        r"\bhow many\b(?! years)|\bcount\b|\bnumber of\b|\bis there (?:anyone|anybody|someone|somebody|any|an?)\b"
        r"|\bare there\b|\bany(?:one|body) (?:here|there|at all)\b",
        tokens("many count number there anyone anybody"),
    ),
    "reasoning": Gated(
        r"\b(?:explain|explanation|reason|reasoning|reasons|step by step|walk me through|chain of thought"
        r"|action units?|aus|facial cues|how (?:can|do|did|would) you (?:tell|know)|what makes|justify|why)\b",
        tokens(
            "explain explanation reason reasoning reasons step walk chain action au aus facial how what justify why"
        ),
    ),
    "describe": Gated(
        r"\bdescribe\b|\btell me (?:about|more)\b|\bwhat can you (?:tell|say)\b"
        r"|\bwho (?:is|are) (?:in|on) (?:the|this)\b"
        r"|\bwho do you see\b|\bwhat do you see\b|\bwho is there\b|\beverything\b|\battributes\b|\bdetails\b"
        r"|\binfo(?:rmation)?\b|\bsummar(?:y|ize|ise)\b|\bprofile\b|\banaly[sz]e\b",
        tokens(
            "describe tell what who everything attributes details info information summary summarize summarise "
            "profile analyze analyse"
        ),
    ),
    "who": Gated(
        r"^(?:and |so |ok |okay |then )?(?:who|whom)\b|\b(?:is|does|do|are) any(?:one|body)\b"
        r"|\bwhich (?:one|ones|person|people|persons|face|faces|individual|man|men|woman|women|guy|guys|lady|ladies"
        r"|boy|girl|child|kid|of)\b"
        r"|^(?:and |so )?which (?:is|was|looks?|seems?|appears?)\b(?= (?:the )?(?:older|younger|elder|oldest|youngest"
        r"|eldest|happier|happiest|sadder|saddest|more|most|less|least)\b)",  # "which is older, ...?"
        tokens("who which whom anyone anybody"),
    ),
    "than": Gated(r"\b(?:older|younger|elder) than\b", tokens("than")),
    "followup": Gated(
        r"^(?:and|what about|how about|and what about|now|also|ok|okay|then)\b|\bwhat about\b|\bhow about\b",
        tokens("and what how now also ok okay then"),
    ),
    "any_pair": Gated(
        r"\bany (?:two|2|of (?:them|these|those))\b|\banyone\b|\bamong\b|\bwhich (?:two|2)\b",
        tokens("any anyone among which"),
    ),
    "who_is_position": Gated(r"^(?:and |so )?who (?:is|was)\b", tokens("who")),
    # "what is the average age?": one value over the faces meant (kept only when age is asked, see `read`).
    "average": Gated(rf"\b(?:{alternatives(V.aggregate['average'])})\b", tokens(*V.aggregate["average"])),
}
ASKS = {
    "age": Gated(
        r"\bhow old\b|\bhow young\b|\bages?\b|\byears? old\b|\bage group\b|\bhow many years\b|\bage range\b",
        tokens("old young age ages year years range"),
    ),
    "gender": Gated(
        r"\bgenders?\b|\bsex\b|\b(?:male or female|female or male)\b"
        r"|\b(?:an? )?(?:man|boy|guy) or (?:an? )?(?:woman|girl|lady)\b"
        r"|\b(?:an? )?(?:woman|girl|lady) or (?:an? )?(?:man|boy|guy)\b",
        tokens("gender genders sex male female man woman boy girl guy lady"),
    ),
    "race": Gated(
        r"\b(?:race|races|racial|ethnicity|ethnicities|ethnic(?: group| background| origin)?|skin colou?r|heritage)\b",
        tokens("race races racial ethnicity ethnicities ethnic skin heritage"),
    ),
    "emotion": Gated(
        r"\b(?:emotions?|emotional|feel|feels|feeling|feelings|moods?|expressions?|look like|vibe"
        r"|how (?:does|do|is|are) (?:\w+ ){1,3}?(?:look|looking|seem|doing))\b",
        tokens(
            "emotion emotions emotional feel feels feeling feelings mood moods expression expressions like vibe how"
        ),
    ),
}
_GENDER_ASKED = Gated(
    r"\b(?:an?) (man|woman|boy|girl|guy|lady|gentleman|male|female)\b|\b(male|female)\s*$"
    r"|\ball (men|women|males|females|guys|ladies|boys|girls)\s*$",  # "are they all men?"
    tokens("a an male female all"),
)
_EMOTION_ASKED = Gated(rf"\b({ANY_EMOTION})\b", tokens(*V.emotions))  # "surprised or scared", "sad, scared or angry"
_RACE_ASKED = Gated(rf"\b({alternatives(V.races)})\b", tokens(*V.races))
_SIDE = r"(?:older|younger|over|under|above|below)"
# "does he look older or younger than 40?": which side of an age he appears, not a filter
_AGE_CHOICE = Gated(rf"\b{_SIDE} or {_SIDE}(?: than)? (\d+)(?: years?(?: old)?)?\b", tokens("or"))
_SIDES_OFFERED = re.compile(rf"\b{_SIDE} or {_SIDE}\b")
_PLURAL_ATTRIBUTE = Gated(
    r"\b(?:ages|genders|emotions|expressions|races|ethnicities|feelings|moods)\b",
    tokens("ages genders emotions expressions races ethnicities feelings moods"),
)
_TOPICS = {topic: Gated(rf"\b(?:{alternatives(words)})\b", tokens(*words)) for topic, words in V.not_visible.items()}
_BLANKED = ("same", "same_age", "count")
# "i mean the one on the left": the opening of an answer to "which one do you mean?", read as no words at all.
_ANSWERING = Gated(rf"^(?:no |sorry |oh )?(?:{alternatives(V.answering)})\b", tokens("i"))
_YES_NO = re.compile(r"^(?:and |so |ok |then )?(?:is|are|does|do|did|can|could|was|were|has|have|will|would|am)\b")
# "is person 1 older than 3?", "is 1 older than 3?": see `people_compared`.
_NUMBERED_THAN = re.compile(
    r"(?:(?P<named>\b(?:person|face|number)\s*+#?\s*+|#\s*+)|^(?:(?:and |so |ok |then )?(?:is|are|does|do|was|were) ))"
    r"(?P<subject>\d+)(?P<comparison> (?:(?:is|does) )?(?:(?:look|looks|appear|appears|seem|seems)(?: to be)? )?"
    r"(?:(?:a bit|much|slightly|a lot) )?(?:older|younger|elder)(?: or (?:older|younger))? than )"
    r"(?P<other>\d+)\b(?! ?(?:years?|yrs?|y)\b|-year)"
)
# Words that carry no question of their own: a follow-up made only of these and referring words
# ("and the one on the right?") continues the previous question.
FILLER = tokens(
    "and what about how so ok okay then now also the a an of in on at to is are was one ones for please too "
    "as well same question again person people face faces photo picture image there here this that it"
)


@dataclass
class Question:
    text: str  # normalised
    blanked: str  # the text with what is asked blanked ("how old", "the same person"): referring words only
    cues: frozenset[str]  # names of CUES found
    attributes: list[str]  # attributes asked about, in ATTRIBUTE_FIELDS order
    asked: dict[str, tuple[str, ...]]  # attribute -> the labels named, any of them a yes ("surprised or scared")
    referent: Referent
    topic: str  # what faces cannot show, if the question names it ("clothing", "hair" ...)
    leftover: frozenset[str]  # words read neither as a cue, an attribute nor a referring word
    yes_no: bool  # "is she smiling?", "are they the same person?"
    choice: bool  # labels offered with "or" ("is she happy or sad?"): which one applies, when asked of given faces
    ages: tuple[float, float] | None  # an apparent-age range asked about the faces named ("is person 2 over 40?")

    def has(self, cue: str) -> bool:
        return cue in self.cues


def people_compared(text: str, face_ids: Collection[int]) -> str:
    """ "is person 1 older than 3?" -> "is person 1 older than person 3?", when 3 names a face.

    The rule: the number right after "older/younger/elder than" names a person, not years, when the subject of
    the comparison is a face named by number ("person 1", "#1", or a bare number right after the opening verb,
    "is 1 older than 3?", itself a face id) and the number is the id of a face in the chat's photos. So "older
    than 30" with four faces, "older than 3 years" and "is the man older than 3?" stay years (an age asked about);
    a bare subject that is a face id is that person either way ("is 1 older than 30?" asks person 1's age).
    """
    m = _NUMBERED_THAN.search(text) if "than" in text else None  # routing is hot: most questions compare nothing
    if m is None or not (m["named"] or int(m["subject"]) in face_ids):
        return text
    subject = m["subject"] if m["named"] else f"person {m['subject']}"
    other = f"person {m['other']}" if int(m["other"]) in face_ids else m["other"]
    return f"{text[: m.start('subject')]}{subject}{m['comparison']}{other}{text[m.end() :]}"


def read(text: str, face_ids: Collection[int] = ()) -> Question:
    """Read one normalised question; `face_ids`: the ids of the chat's faces (see `people_compared`)."""
    text = people_compared(text, face_ids)
    t = Reading(text)
    t.take(_ANSWERING)
    split_at = t.first(_AGE_CHOICE)
    cues = frozenset(name for name, rx in CUES.items() if t.find(rx))
    attributes = [a for a in ATTRIBUTE_FIELDS if t.find(ASKS[a])]
    if "average" in cues and "age" not in attributes:  # "what do you mean?" asks for no average
        cues -= {"average"}
    for name in _BLANKED:
        if name in cues:
            t.take(CUES[name], every=True)
    for attribute in ("age", "gender", "race"):
        if attribute in attributes:
            t.take(ASKS[attribute], every=True)
    asked: dict[str, tuple[str, ...]] = {}
    if m := t.first(_GENDER_ASKED):
        asked["gender"] = (V.gender[next(g for g in m.groups() if g)],)
    blanked = t.text
    referent = parse(blanked)
    if t.find(_PLURAL_ATTRIBUTE):
        referent.plural = True
    if "followup" in cues and referent.pronoun and not (referent.selector or referent.filters):
        referent.contrast = True
    rest = Reading(_without(t.text, referent))
    choice, ages = bool(split_at), ((float(split_at.group(1)), 200.0) if split_at else None)
    # "is person 1 older or younger than person 3?" offers both sides: which one, not Yes or No
    yes_no = bool(_YES_NO.match(text)) and not _SIDES_OFFERED.search(text)
    # "is person 2 / the woman on the left over 40?" asks her age; "is person 1 older than 3?" compares two faces
    named = (referent.selector or referent.pronoun) and not (referent.superlative and "than" in cues)
    # "is everyone / are the women over 40?": an age said last of a group asks the group's age, as does one joined
    # to another condition ("are the men over 40 and happy?"); "are people over 40 happy?", "are there women over
    # 40?" and "is anyone over 40?" still find the faces over 40
    group = referent.everyone or referent.plural or referent.gender
    after = text.partition(referent.age_words)[2].strip(" ?.!") if referent.age_words else ""
    last = referent.age_words not in V.ages and (not after or (after.startswith("and ") and parse(after).empty))
    named = named or (group and last and not cues & {"count", "who"})
    if yes_no and referent.ages and named:  # asked about person 2, not a filter: no referring words either
        blanked = blanked.replace(referent.age_words, " " * len(referent.age_words), 1)  # "happy and over 40"
        ages, referent.ages, referent.age_words = referent.ages, None, ""
    if ages and "age" not in attributes:
        attributes.append("age")
    if m := rest.find(_EMOTION_ASKED):
        asked["emotion"] = emotion_labels(m.group(1))
        choice = choice or (len(asked["emotion"]) > 1 and " or " in m.group(1))
    if m := rest.find(_RACE_ASKED):
        asked["race"] = (V.races[m.group(1)],)
    for attribute in asked:
        if attribute not in attributes:
            attributes.append(attribute)
    attributes = [a for a in ATTRIBUTE_FIELDS if a in attributes]
    topic = next((name for name, rx in _TOPICS.items() if t.find(rx)), "")
    read_words = {w for phrase in referent.words for w in phrase.split()} | set(referent.unresolved.split())
    leftover = frozenset(w for w in t.text.split() if w not in read_words and w not in FILLER and not w.isdigit())
    if cues or attributes:
        leftover = frozenset()
    return Question(text, blanked, cues, attributes, asked, referent, topic, leftover, yes_no, choice, ages)


def _without(text: str, ref: Referent) -> str:
    """`text` with the referring phrases blanked: an emotion word inside "the smiling woman" is no yes/no label."""
    for phrase in ref.words:
        text = text.replace(phrase, " " * len(phrase), 1)
    return text
