"""Referring expressions: read the words that pick out faces, then ground them on the face reports.

`parse` turns "the second man from the right in the first photo" into a `Referent`
(filters, a selector, the image); `ground` applies it to the faces of the chat. Both
are plain regular expressions and list operations, deterministic and fast. Grounding
never guesses: a phrase that fits several faces, or none, comes back as "ambiguous"
or "not_found" with the faces it could have meant, so the answer can say so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from faceqa.prompts.taxonomy import display, normalize
from faceqa.schema import FaceReport

from .plan import FaceRef, Status

ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "last": -1,
}  # fmt: skip
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "eleven": 11, "twelve": 12}  # fmt: skip

# Words that pick out faces by apparent attributes, mapped to labels through the taxonomy so the router and
# the rest of faceqa cannot disagree on what "smiling" or "latino" means.
_EMOTION_WORDS = (
    "happy", "happiness", "smiling", "smile", "smiles", "laughing", "joyful", "cheerful", "glad", "sad", "sadness",
    "crying", "gloomy", "angry", "anger", "mad", "furious", "annoyed", "irritated", "surprised", "surprise",
    "shocked", "astonished", "amazed", "startled", "afraid", "scared", "fearful", "frightened", "terrified", "fear",
    "disgusted", "disgust", "neutral", "calm", "expressionless", "contemptuous", "contempt", "disdainful",
)  # fmt: skip
_RACE_WORDS = (
    "white", "black", "caucasian", "african american", "african", "east asian", "southeast asian",
    "south east asian", "indian", "south asian", "latino", "latina", "hispanic", "middle eastern",
)  # fmt: skip
# Age words -> (lowest, highest) apparent years they cover.
AGE_WORDS = {
    "baby": (0, 2.99), "babies": (0, 2.99), "infant": (0, 2.99), "toddler": (0, 3.99), "child": (0, 12.99),
    "children": (0, 12.99), "kid": (0, 12.99), "kids": (0, 12.99), "teen": (13, 19.99), "teens": (13, 19.99),
    "teenager": (13, 19.99), "teenagers": (13, 19.99), "adolescent": (13, 19.99), "young": (0, 29.99),
    "adult": (18, 200), "adults": (18, 200), "middle aged": (40, 59.99), "old": (60, 200), "elderly": (60, 200),
    "senior": (60, 200), "aged": (60, 200),
}  # fmt: skip
PRONOUNS = {
    "he": "he", "him": "he", "his": "he", "himself": "he", "she": "she", "her": "she", "hers": "she",
    "herself": "she", "they": "they", "them": "they", "their": "they", "theirs": "they", "themselves": "they",
    "this person": "this", "that person": "this", "this one": "this", "that one": "this", "this face": "this",
    "that face": "this", "the same one": "this",
}  # fmt: skip
GENDER_WORDS = {
    "man": "Male", "men": "Male", "guy": "Male", "guys": "Male", "gentleman": "Male", "gentlemen": "Male",
    "boy": "Male", "boys": "Male", "male": "Male", "males": "Male", "he": "Male", "him": "Male", "his": "Male",
    "woman": "Female", "women": "Female", "lady": "Female", "ladies": "Female", "girl": "Female",
    "girls": "Female", "female": "Female", "females": "Female", "she": "Female", "her": "Female", "hers": "Female",
}  # fmt: skip


_PLURAL_GENDER_WORDS = frozenset(("men", "gentlemen", "guys", "boys", "males", "women", "ladies", "girls", "females"))


@cache
def emotion_words() -> dict[str, str]:
    return {w: label for w in _EMOTION_WORDS if (label := normalize("emotion", w))}


@cache
def race_words() -> dict[str, str]:
    return {w: label for w in _RACE_WORDS if (label := normalize("race", w))}


def _alt(words: Sequence[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_ORD = rf"(?:{_alt(list(ORDINALS))}|\d+(?:st|nd|rd|th))"
_NUM = r"(?:\d+|one)"
_IMAGE = r"(?:photo|photograph|image|picture|pic|shot)s?"
PERSON = (
    r"(?:person|persons|people|face|faces|individual|individuals|one|ones|man|men|woman|women|guy|guys|lady|ladies"
    r"|boy|boys|girl|girls|gentleman|gentlemen|child|children|kid|kids|baby|teen|teenager|adult|figure)"
)
_EMO = _alt(emotion_words())
_VERB = r"(?:is|are|looks?|seems?|appears?|feels?)(?: to be)?(?: (?:very|so|quite|rather|a bit|most|more|really))?"
_ANCHOR = (
    rf"(?:her|him|them|it|this person|that person|this one|that one|(?:person|face)\s*#?\s*{_NUM}|#\s*\d+"
    rf"|the (?:[a-z]+ ){{0,2}}?{PERSON}(?: (?:on|at) the (?:far )?(?:left|right)| in the (?:middle|center))?)"
)

RX = {
    "image": re.compile(rf"\b(?:in|from|of|on|for) (?:the )?({_ORD}) {_IMAGE}\b"),
    "image_n": re.compile(rf"\b(?:in|from|of|on|for) {_IMAGE} (?:#|number |no )?({_NUM})\b"),
    "all_images": re.compile(rf"\b(?:in|across|from|of) (?:both|all|each|every)(?: of)?(?: the| these)? {_IMAGE}\b"),
    # Possessive quantifiers (*+): blanked phrases leave long runs of spaces, which plain \s* pairs would
    # backtrack over quadratically.
    "index": re.compile(rf"(?:\b(?:person|persons|face|faces|individual|number|subject)\s*+#?\s*+|#\s*+)({_NUM})\b"),
    "index_more": re.compile(
        rf"^\s*+(?:(?:,|and|&|or|vs|versus|with)\s*+)?(?:(?:person|face|number)\s*+)?#?\s*+({_NUM})\b"
    ),
    "possessive_side": re.compile(r"\b(?:to|on|at) (her|his|their) (left|right)(?: side)?\b"),
    "adjacent": re.compile(
        rf"\b(?:(?:right |directly |just |sitting |standing )?(?:next to|beside|besides|by|alongside|near)"
        rf"|(?:to|on) the (left|right) of|(?:on )?(?:the )?(left|right) of)\s+({_ANCHOR})"
    ),
    "to_last": re.compile(rf"\b({_ORD})[ -]to[ -]last\b(?: {PERSON})?"),
    "nth_side": re.compile(rf"\b({_ORD})(?: {PERSON})? (?:from|on) (?:the )?(left|right)\b"),
    "far": re.compile(
        r"\b(?:(?:far|very|extreme|outer)[ -](left|right)|(left|right)[ -]?most"
        r"|(left|right)(?:[ -]hand)? (?:end|edge))\b"
    ),
    "side": re.compile(
        rf"\b(?:(?:on|at|in|to) the (left|right)(?:[ -]hand)?(?: side)?(?! of\b)|the (left|right) {PERSON}"
        rf"|on (left|right)\b)"
    ),
    "middle": re.compile(rf"\b(?:in the |at the )?(middle|center|central|centermost)\b(?! aged)(?: {PERSON})?"),
    "nth": re.compile(rf"\b({_ORD}) {PERSON}\b"),
    "last": re.compile(rf"\bthe last(?: {PERSON})?\b"),
    "size": re.compile(
        r"\b(largest|biggest|closest|nearest|smallest|tiniest|farthest|furthest)\b(?: (?:face|one|to the camera))?"
        r"|\b(?:in|at) the (front|foreground|back|background)\b"
    ),
    "super": re.compile(r"\b(oldest|eldest|youngest|older|elder|younger|most senior|most junior)\b"),
    "emotion_most": re.compile(rf"\b(happiest|saddest|angriest|most ({_EMO}))\b"),
    "emotion_rel": re.compile(rf"\b{PERSON} (?:who|that|which) {_VERB} ({_EMO})\b"),
    "emotion_adj": re.compile(rf"\bthe ({_EMO})(?: looking)? {PERSON}\b"),
    "emotion_participle": re.compile(rf"\b{PERSON} (?:looking|with an?) ({_EMO})(?: expression| face| look)?\b"),
    "race": re.compile(rf"\b({_alt(race_words())})(?= {PERSON}\b)"),
    "age": re.compile(rf"\b({_alt(AGE_WORDS)})\b"),
    "gender": re.compile(
        rf"\b({_alt([w for w in GENDER_WORDS if w not in ('he', 'him', 'his', 'she', 'her', 'hers')])})\b"
    ),
    "pronoun": re.compile(rf"\b({_alt(PRONOUNS)})\b"),
    "everyone": re.compile(
        r"\b(everyone|everybody|every (?:person|face|one)|each (?:person|face|one|individual)|each of them"
        r"|all (?:of )?(?:them|these|those|the (?:people|persons|faces|men|women|individuals)|people|faces|persons)"
        r"|all \d+|both(?: of them)?|the two)\b"
    ),
    "plural": re.compile(
        r"\b(people|persons|faces|men|women|guys|ladies|children|kids|individuals|ones|these|those)\b"
    ),
    "unresolved": re.compile(
        r"\b(?:the |a |an )?(?:[a-z]+ ){0,2}?(?:holding|wearing|carrying|dressed in|in uniform|with glasses"
        r"|with sunglasses|with (?:a|an) \w+|with the (?!same\b|largest\b|biggest\b|smallest\b)\w+|in (?:a|an) \w+ \w+"
        r"|in (?:red|blue|green|black|white|yellow|grey|gray|pink|purple|orange|brown)\b|who (?:has|wears|holds)"
        r"|sitting|standing|smoking|eating|drinking)[a-z ]*"
    ),
}


@dataclass
class Referent:
    """What the words say about the faces meant; `ground` applies it to the faces of the chat."""

    image: int | None = None  # 1-based; -1 is the last image
    all_images: bool = False
    indexes: list[tuple[int, int | None]] = field(default_factory=list)  # (face id, image or None)
    side: str | None = None  # "left" or "right": n-th face from that side
    nth: int = 1
    middle: bool = False
    size: str | None = None  # "largest" or "smallest"
    superlative: str | None = None  # "oldest" or "youngest"
    emotion_most: str | None = None  # emotion label whose score picks the face ("the happiest")
    gender: str | None = None
    age: str | None = None  # an AGE_WORDS key
    emotion: str | None = None
    race: str | None = None
    pronoun: str | None = None  # "he", "she", "they" or "this"
    everyone: bool = False
    plural: bool = False
    adjacent: str | None = None  # "next", "left", "right" (of the anchor, in the image)
    anchor: Referent | None = None
    unresolved: str = ""
    words: list[str] = field(default_factory=list)  # the phrases read, in order
    rest: str = ""  # the question with every phrase read here blanked out

    def but(self, **changes) -> Referent:
        """A copy with some fields changed (dataclasses.replace is ten times slower, and this is hot)."""
        other = object.__new__(Referent)
        other.__dict__.update(self.__dict__, **changes)
        return other

    @property
    def filters(self) -> bool:
        return any(v is not None for v in (self.gender, self.age, self.emotion, self.race))

    @property
    def selector(self) -> bool:
        return bool(self.indexes or self.side or self.middle or self.size or self.superlative or self.emotion_most) or (
            self.adjacent is not None
        )

    @property
    def picks(self) -> bool:
        """Whether any words pick out particular faces (a photo alone does not)."""
        return bool(self.filters or self.selector or self.pronoun or self.everyone or self.plural or self.unresolved)

    @property
    def empty(self) -> bool:
        return not self.picks and self.image is None


# Words one of which a pattern needs. Most questions lack most of them, and a set test is far cheaper
# than a regex search (routing should cost a small fraction of a millisecond).
def _tokens(*phrases) -> frozenset[str]:
    return frozenset(w for phrase in phrases for w in phrase.split())


_IMAGE_WORDS = _tokens("photo photos photograph photographs image images picture pictures pic pics shot shots")
_SIDES = _tokens("left right leftmost rightmost")
_INDEX_WORDS = _tokens("person persons face faces individual number subject")
GATES = {
    "image": _IMAGE_WORDS,
    "image_n": _IMAGE_WORDS,
    "all_images": _IMAGE_WORDS,
    "possessive_side": _SIDES,
    "adjacent": _SIDES | _tokens("next beside besides by alongside near"),
    "to_last": _tokens("last"),
    "nth_side": _SIDES,
    "far": _SIDES,
    "side": _SIDES,
    "middle": _tokens("middle center central centermost"),
    "nth": _tokens(*ORDINALS, *(f"{n}{s}" for n in range(1, 21) for s in ("st", "nd", "rd", "th"))),
    "last": _tokens("last"),
    "size": _tokens(
        "largest biggest closest nearest smallest tiniest farthest furthest front foreground back background"
    ),
    "super": _tokens("oldest eldest youngest older elder younger senior junior"),
    "emotion_most": _tokens("happiest saddest angriest most"),
    "emotion_rel": _tokens("who that which"),
    "emotion_adj": _tokens(*emotion_words()),
    "emotion_participle": _tokens("looking with"),
    "race": _tokens(*race_words()),
    "age": _tokens(*AGE_WORDS),
    "gender": _tokens(*(w for w in GENDER_WORDS if w not in PRONOUNS)),
    "pronoun": _tokens(*PRONOUNS),
    "everyone": _tokens("everyone everybody every each all both two"),
    "plural": _tokens("people persons faces men women guys ladies children kids individuals ones these those"),
    "unresolved": _tokens(
        "holding wearing carrying dressed uniform with in who sitting standing smoking eating drinking"
    ),
}


class _Text:
    """The question being read; each recognised phrase is blanked so no word is read twice."""

    def __init__(self, text: str):
        self.text = text
        self.words = frozenset(text.split())

    def take(self, name: str, every: bool = False) -> list[re.Match]:
        found = []
        if self.words.isdisjoint(GATES[name]):
            return found
        while match := RX[name].search(self.text):
            found.append(match)
            self.text = self.text[: match.start()] + " " * (match.end() - match.start()) + self.text[match.end() :]
            if not every:
                break
        return found


def _ordinal(word: str) -> int:
    if word in ORDINALS:
        return ORDINALS[word]
    return int(re.match(r"\d+", word).group())


def _number(word: str) -> int:
    return 1 if word == "one" else int(word)


def parse(text: str) -> Referent:
    """Read the referring words of a normalised question (see router.normalise)."""
    t = _Text(text)
    ref = Referent()
    images = []  # (position, image)
    for m in t.take("image", every=True):
        images.append((m.start(), _ordinal(m.group(1))))
    for m in t.take("image_n", every=True):
        images.append((m.start(), _number(m.group(1))))
    images.sort()
    if t.take("all_images"):
        ref.all_images = ref.plural = True
    for m in t.take("possessive_side"):
        ref.adjacent, ref.anchor = m.group(2), parse(m.group(1))
        ref.words.append(m.group())
    for m in t.take("adjacent"):
        ref.adjacent = m.group(1) or m.group(2) or "next"
        ref.anchor = parse(m.group(3))
        ref.words.append(m.group())
    _indexes(t, ref, images)
    if len({i for _, i in images}) == 1:
        ref.image = images[0][1]
    if m := (t.take("to_last") or [None])[0]:
        ref.side, ref.nth = "right", _ordinal(m.group(1))
    elif m := (t.take("nth_side") or [None])[0]:
        n = _ordinal(m.group(1))
        ref.side, ref.nth = (m.group(2), n) if n > 0 else ("right" if m.group(2) == "left" else "left", 1)
    elif (m := (t.take("far") or [None])[0]) or (m := (t.take("side") or [None])[0]):
        ref.side = next(g for g in m.groups() if g)
    elif m := (t.take("middle") or [None])[0]:
        ref.middle = True
    elif m := (t.take("last") or [None])[0]:
        ref.side = "right"
    elif m := (t.take("nth") or [None])[0]:
        n = _ordinal(m.group(1))
        ref.side, ref.nth = ("left", n) if n > 0 else ("right", 1)
    if m:
        ref.words.append(m.group().strip())
        _nouns(ref, m.group())
    for m in t.take("size"):
        word = m.group(1) or m.group(2)
        ref.size = (
            "largest" if word in ("largest", "biggest", "closest", "nearest", "front", "foreground") else "smallest"
        )
        ref.words.append(m.group())
    for m in t.take("emotion_most"):
        ref.emotion_most = emotion_words().get(m.group(2) or "") or {
            "happiest": "Happiness", "saddest": "Sadness", "angriest": "Anger"
        }[m.group(1)]  # fmt: skip
        ref.words.append(m.group())
    for m in t.take("super"):
        ref.superlative = (
            "oldest" if m.group(1) in ("oldest", "eldest", "older", "elder", "most senior") else "youngest"
        )
        ref.words.append(m.group())
    for name in ("emotion_rel", "emotion_adj", "emotion_participle"):
        for m in t.take(name):
            ref.emotion = emotion_words()[m.group(1)]
            ref.words.append(m.group())
            _nouns(ref, m.group())
    for m in t.take("race"):
        ref.race = race_words()[m.group(1)]
        ref.words.append(m.group(1))
    for m in t.take("unresolved"):
        ref.unresolved = m.group().strip()
        _nouns(ref, m.group())
    # Age, gender and pronoun words are read last: the phrases above may contain them.
    for m in t.take("age", every=True):
        ref.age = m.group(1)
        ref.words.append(m.group(1))
    for m in t.take("gender", every=True):
        ref.gender = GENDER_WORDS[m.group(1)]
        ref.words.append(m.group(1))
        ref.plural |= m.group(1) in _PLURAL_GENDER_WORDS
    for m in t.take("pronoun", every=True):
        ref.pronoun = PRONOUNS[m.group(1)]
        ref.words.append(m.group(1))
    if t.take("everyone"):
        ref.everyone = True
    ref.plural |= ref.everyone or ref.pronoun == "they" or bool(t.take("plural")) or len(ref.indexes) > 1
    ref.rest = t.text
    ref.words.sort(key=text.find)
    return ref


def _nouns(ref: Referent, phrase: str) -> None:
    """A phrase read for its position or emotion may name a gender or age too ("the second man", "the sad child")."""
    for m in RX["gender"].finditer(phrase):
        ref.gender = GENDER_WORDS[m.group(1)]
    for m in RX["age"].finditer(phrase):
        ref.age = m.group(1)


def _indexes(t: _Text, ref: Referent, images: list[tuple[int, int]]) -> None:
    """ "person 1 and 3", "#2", "person 1 in the first photo and person 1 in the second"."""
    found = []  # (position, id)
    if t.words.isdisjoint(_INDEX_WORDS) and "#" not in t.text:
        return
    while m := RX["index"].search(t.text):
        found.append((m.start(), _number(m.group(1))))
        end = m.end()
        while more := RX["index_more"].match(t.text[end:]):
            found.append((end + more.start(1), _number(more.group(1))))
            end += more.end()
        ref.words.append(" ".join(t.text[m.start() : end].split()))
        t.text = t.text[: m.start()] + " " * (end - m.start()) + t.text[end:]
    if not found:
        return
    found.sort()
    for i, (position, face) in enumerate(found):
        limit = found[i + 1][0] if i + 1 < len(found) else len(t.text) + 1
        after = [image for at, image in images if position < at < limit]
        ref.indexes.append((face, after[0] if after else None))
    # One image named after a list ("person 1 and 3 in the second photo") holds the whole list.
    named = {image for _, image in ref.indexes if image is not None}
    if len(named) == 1 and ref.indexes[-1][1] is not None:
        ref.indexes = [(face, image if image is not None else next(iter(named))) for face, image in ref.indexes]


# --- grounding ------------------------------------------------------------------------------------


@dataclass
class Grounding:
    targets: list[FaceRef]
    candidates: list[FaceRef]
    status: Status = "ok"
    reason: str = ""
    note: str = ""


Faces = dict[FaceRef, FaceReport]


def years(face: FaceReport) -> float | None:
    """Apparent age in years, or the middle of the apparent age group when only a group is known."""
    if face.age is None:
        return None
    if face.age.years is not None:
        return face.age.years
    low, _, high = face.age.group.replace("+", "-").partition("-")
    return (int(low) + int(high or int(low) + 10)) / 2


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
    return f"{ordinal_word(k)} from the {side}"


_ORDINAL_WORDS = {v: k for k, v in ORDINALS.items() if v > 0}


def ordinal_word(n: int) -> str:
    return _ORDINAL_WORDS.get(n, f"{n}th")


def label(ref: FaceRef, faces: Faces, n_images: int, where: bool = True) -> str:
    """ "person 2 (second from the left)", "person 1 in photo 2"."""
    text = f"person {ref.face}"
    if n_images > 1:
        text += f" in photo {ref.image}"
    if where and sum(r.image == ref.image for r in faces) > 1:
        text += f" ({position(ref, faces)})"
    return text


def _matches(face: FaceReport, ref: Referent) -> bool:
    if ref.gender and (face.gender is None or face.gender.label != ref.gender):
        return False
    if ref.emotion and (face.emotion is None or face.emotion.label != ref.emotion):
        return False
    if ref.race and (face.race is None or face.race.label != ref.race):
        return False
    if ref.age:
        low, high = AGE_WORDS[ref.age]
        age = years(face)
        if age is None or not low <= age <= high:
            return False
    return True


def _age_range(word: str) -> str:
    low, high = AGE_WORDS[word]
    if low == 0:
        return f"under {high + 0.01:.0f}"
    return f"{low} or older" if high >= 120 else f"{low}-{int(high)}"


def describe_filters(ref: Referent, plural: bool = False) -> str:
    """The filters as a predicate: "appears female and looks happy" (plural: "appear ... look")."""
    s = "" if plural else "s"
    parts = []
    if ref.gender:
        parts.append(f"appear{s} {display('gender', ref.gender)}")
    if ref.age:
        parts.append(f"appear{s} to be {_age_range(ref.age)}")
    if ref.race:
        parts.append(f"appear{s} {display('race', ref.race)}")
    if ref.emotion:
        parts.append(f"look{s} {display('emotion', ref.emotion)}")
    return " and ".join(parts)


def ground(
    ref: Referent, faces: Faces, n_images: int, focus: Sequence[FaceRef] = (), singular: bool = True
) -> Grounding:
    """The faces `ref` picks among `faces` (every face of the chat), or why it picks none or several."""
    every = list(faces)
    if not every:
        return Grounding([], [], "no_faces", "there are no faces in the " + ("photos" if n_images > 1 else "photo"))
    scope = every
    if ref.image is not None:
        image = n_images if ref.image == -1 else ref.image
        if not 1 <= image <= n_images:
            return Grounding([], every, "not_found", f"there is no photo {ref.image}; you gave {n_images}")
        scope = [r for r in every if r.image == image]
        if not scope:
            return Grounding([], every, "not_found", f"there are no faces in photo {image}")
    reasons: list[str] = []

    if ref.indexes:
        return _by_index(ref, faces, scope, every, n_images)
    if ref.race and not any(faces[r].race for r in scope):
        return Grounding([], scope, "unsupported", "apparent race is not estimated by the embedded face engine")

    pool = scope
    if ref.adjacent:
        anchor = ground(ref.anchor or Referent(), faces, n_images, focus, singular=True)
        if anchor.status != "ok":
            return Grounding(
                [], anchor.candidates, anchor.status, f"I can't tell who you mean them to be next to: {anchor.reason}"
            )
        a = anchor.targets[0]
        row = sorted(r for r in every if r.image == a.image)
        i = row.index(a)
        left, right = row[i - 1 : i] if i else [], row[i + 1 : i + 2]
        pool = {"left": left, "right": right, "next": left + right}[ref.adjacent]
        side = "beside" if ref.adjacent == "next" else f"to the {ref.adjacent} of"
        reasons.append(
            f"{side} {label(a, faces, n_images, where=False)}" + (" in the image" if ref.adjacent != "next" else "")
        )
        if not pool:
            return Grounding([], row, "not_found", f"nobody is {side} {label(a, faces, n_images)}")
    elif ref.pronoun and ref.pronoun != "they" and focus and not (ref.selector or ref.filters):
        if len(focus) == 1:
            return Grounding(
                list(focus),
                list(focus),
                reason="the face we were talking about",
                note=_pronoun_note(ref, faces[focus[0]]),
            )
        gender = {"he": "Male", "she": "Female"}.get(ref.pronoun)
        narrowed = [r for r in focus if gender and faces[r].gender and faces[r].gender.label == gender]
        if len(narrowed) == 1:
            return Grounding(
                narrowed,
                narrowed,
                reason="of the faces we were talking about, the only one that "
                + describe_filters(Referent(gender=gender)),
            )
        if len(narrowed) > 1 or not gender:
            return Grounding(
                [],
                narrowed or list(focus),
                "ambiguous",
                f"'{ref.pronoun}' could be any of {len(narrowed or focus)} faces we were talking about",
            )
        ref = ref.but(gender=gender)  # nobody we talked about fits: read it as "the man" / "the woman"
    elif ref.pronoun == "they" and focus and not (ref.selector or ref.filters or ref.everyone):
        return Grounding(list(focus), list(focus), reason="the faces we were talking about")
    elif ref.pronoun in ("he", "she") and not (ref.selector or ref.filters):
        ref = ref.but(gender="Male" if ref.pronoun == "he" else "Female")

    if ref.filters:
        matched = [r for r in pool if _matches(faces[r], ref)]
        if not matched:
            if len(pool) == 1 and not ref.selector and len(scope) == 1:
                return Grounding(pool, pool, note=_mismatch_note(ref, faces[pool[0]]))
            return Grounding([], pool, "not_found", f"no face here {describe_filters(ref)}")
        reasons.append(f"the only face that {describe_filters(ref)}" if len(matched) == 1 else "")
        pool = matched

    if ref.side or ref.middle:
        images = {r.image for r in pool}
        if len(images) > 1:
            return Grounding(
                [], pool, "ambiguous", "there is more than one photo; say which one (e.g. 'in the first photo')"
            )
        row = sorted(pool)
        if ref.middle:
            if len(row) % 2 == 0:
                middle = row[len(row) // 2 - 1 : len(row) // 2 + 1]
                return Grounding([], middle, "ambiguous", f"there are {len(row)} faces, so two are in the middle")
            pool = [row[len(row) // 2]]
        else:
            if ref.nth > len(row):
                return Grounding(
                    [],
                    row,
                    "not_found",
                    f"there are only {len(row)} such faces, no {ordinal_word(ref.nth)} from the {ref.side}",
                )
            pool = [row[ref.nth - 1] if ref.side == "left" else row[-ref.nth]]
            whole = sorted(r for r in every if r.image == pool[0].image)
            if len(whole) >= ref.nth and pool[0] != (whole[ref.nth - 1] if ref.side == "left" else whole[-ref.nth]):
                nth = f"{ordinal_word(ref.nth)} " if ref.nth > 1 else ""
                reasons.append(f"the {nth}{'leftmost' if ref.side == 'left' else 'rightmost'} of those")
    if ref.size:
        ranked = sorted(pool, key=lambda r: faces[r].area, reverse=ref.size == "largest")
        if len(ranked) > 1 and abs(faces[ranked[0]].area - faces[ranked[1]].area) <= 0.05 * faces[ranked[0]].area:
            return Grounding(
                [], ranked[:2], "ambiguous", f"the two {ref.size} faces are within 5% of each other in size"
            )
        pool = ranked[:1]
        reasons.append(f"the {ref.size} face" + (" (a stand-in for closest)" if ref.size == "largest" else ""))
    if ref.superlative:
        aged = [r for r in pool if years(faces[r]) is not None]
        if not aged:
            return Grounding([], pool, "unsupported", "no apparent age is available for these faces")
        best = (
            max(aged, key=lambda r: years(faces[r]))
            if ref.superlative == "oldest"
            else min(aged, key=lambda r: years(faces[r]))
        )
        pool = [best]
        reasons.append(f"the {ref.superlative} in appearance")
    if ref.emotion_most:
        scored = [r for r in pool if faces[r].emotion and faces[r].emotion.scores]
        if not scored:
            return Grounding([], pool, "unsupported", "no emotion scores are available for these faces")
        pool = [max(scored, key=lambda r: faces[r].emotion.scores.get(ref.emotion_most, 0.0))]
        reasons.append(f"the one that looks most {display('emotion', ref.emotion_most)}")

    reason = "; ".join(r for r in reasons if r)
    if len(pool) == 1 or not singular or ref.plural:
        return Grounding(pool, pool, reason=reason)
    if ref.filters:
        return Grounding([], pool, "ambiguous", f"{len(pool)} faces {describe_filters(ref, plural=True)}")
    if ref.adjacent:
        return Grounding([], pool, "ambiguous", f"{len(pool)} faces are {reasons[0]}; say which side")
    return Grounding([], pool, "ambiguous", f"there are {len(pool)} faces")


def _by_index(ref: Referent, faces: Faces, scope: list[FaceRef], every: list[FaceRef], n_images: int) -> Grounding:
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
            count = len(pool)
            return Grounding(
                [], pool, "not_found", f"there is no person {face}{where}: I see {count} face{'s' * (count != 1)}"
            )
        if len(hits) > 1:
            return Grounding([], hits, "ambiguous", f"each photo has a person {face}; say which photo")
        targets.append(hits[0])
    return Grounding(targets, targets)


def _pronoun_note(ref: Referent, face: FaceReport) -> str:
    said = {"he": "Male", "she": "Female"}.get(ref.pronoun)
    if said and face.gender and face.gender.label != said:
        return (
            f"you said '{ref.pronoun}'; the model reads this face as {display('gender', face.gender.label)} "
            f"({face.gender.score:.0%}), and apparent gender can be wrong"
        )
    return ""


def _mismatch_note(ref: Referent, face: FaceReport) -> str:
    return (
        f"there is only one face, and to the model it does not {describe_filters(ref, plural=True)}; "
        "apparent attributes can be wrong"
    )
