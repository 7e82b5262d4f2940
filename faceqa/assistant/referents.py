"""Referring words: "the second man from the right in the first photo" -> a `Referent`.

`parse` reads a normalised question (see `normalize.normalize_question`) once, left to right by
pattern, blanking each phrase it takes so no word is read twice, and returns what the
words say about the faces meant: filters (gender, age range, emotion, race), a selector
(position, size, superlative), the photo, pronouns and adjacency. It only reads words;
`referring.select` and `grounding.ground` apply a Referent to faces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .vocabulary import Gated, Reading, alternatives, tokens, vocabulary

V = vocabulary()


@dataclass
class Referent:
    """What the words say about the faces meant."""

    image: int | None = None  # 1-based; -1 is the last image
    all_images: bool = False
    indexes: list[tuple[int, int | None]] = field(default_factory=list)  # (face id, image or None)
    side: str | None = None  # "left" or "right": the nth face from that side
    nth: int = 1
    middle: bool = False
    vertical: str | None = None  # "top" or "bottom"
    size: str | None = None  # "largest" or "smallest"
    superlative: str | None = None  # "oldest" or "youngest"
    emotion_most: str | None = None  # emotion label whose score picks the face ("the happiest")
    least: bool = False  # "the least happy": the lowest score of emotion_most
    gender: str | None = None
    ages: tuple[float, float] | None = None  # apparent years, inclusive
    age_words: str = ""  # how the age filter was said ("children", "over 60")
    emotions: tuple[str, ...] = ()  # emotion labels: a face fits when it reads any of them ("surprised or scared")
    not_emotion: bool = False  # "not smiling": the face reads none of them
    race: str | None = None
    pronoun: str | None = None  # "he", "she", "they" or "this"
    contrast: bool = False  # "and her?", "what about him?": someone other than the face just talked about
    everyone: bool = False
    others: bool = False  # "the others", "everyone else", "the rest"
    among: bool = False  # "which one", "of them", "the older one": within the faces last talked about, if several
    both: bool = False  # "both", "the two" (no noun after it): two faces, the two just talked about (sets among)
    plural: bool = False
    adjacent: str | None = None  # "next", "left", "right" (of the anchor, in the image)
    anchor: Referent | None = None
    unresolved: str = ""  # a description only a VLM could ground ("the boy holding a ball")
    words: list[str] = field(default_factory=list)  # the phrases read, in order

    def but(self, **changes: object) -> Referent:
        """A copy with some fields changed (dataclasses.replace is ten times slower, and this is hot)."""
        other = object.__new__(Referent)
        other.__dict__.update(self.__dict__, **changes)
        return other

    @property
    def filters(self) -> bool:
        return bool(self.emotions) or any(v is not None for v in (self.gender, self.ages, self.race))

    @property
    def selector(self) -> bool:
        return bool(
            self.indexes
            or self.side
            or self.middle
            or self.vertical
            or self.size
            or self.superlative
            or self.emotion_most
            or self.adjacent
        )

    @property
    def picks(self) -> bool:
        """Whether any words pick out particular faces (a photo alone does not)."""
        return bool(
            self.filters
            or self.selector
            or self.pronoun
            or self.everyone
            or self.others
            or self.plural
            or self.unresolved
        )

    @property
    def empty(self) -> bool:
        return not self.picks and self.image is None


_ORD = rf"(?:{alternatives(V.ordinals)}|\d+(?:st|nd|rd|th))"
_NUM = r"(?:\d+|one)"
_IMAGE = r"(?:photo|photograph|image|picture|pic|shot)s?"
_NOUNS = (
    "person persons people face faces individual individuals one ones man men woman women guy guys lady ladies "
    "boy boys girl girls gentleman gentlemen child children kid kids baby teen teenager adult figure"
)
PERSON = rf"(?:{alternatives(_NOUNS.split())})"
_EMO = alternatives(V.emotions)
ANY_EMOTION = rf"(?:{_EMO})(?: (?:or )?(?:{_EMO}))*"  # "surprised or scared", "sad, scared or angry": any of them
_EMO_WORD = re.compile(rf"\b({_EMO})\b")
_VERB = (
    r"(?:is|are|looks?|seems?|appears?|feels?)(?: not)?(?: to be)?"
    r"(?: (?:very|so|quite|rather|a bit|most|more|really))?"
)
_ANCHOR = (
    rf"(?:her|him|them|it|this person|that person|this one|that one|(?:person|face)\s*#?\s*{_NUM}|#\s*\d+"
    rf"|the (?:[a-z]+ ){{0,2}}?{PERSON}(?: (?:on|at) the (?:far )?(?:left|right)| in the (?:middle|center))?)"
)
_IMAGE_WORDS = tokens("photo photos photograph photographs image images picture pictures pic pics shot shots")
_SIDES = tokens("left right leftmost rightmost")
_ORDINAL_TOKENS = tokens(*V.ordinals, *(f"{n}{s}" for n in range(1, 21) for s in ("st", "nd", "rd", "th")))
_GENDER_NOUNS = [w for w in V.gender if w not in V.pronouns]
_AGE_WORDS = [w for w in V.ages if w not in V.gender]  # "grandma" is read as a gender word, then its age

RX = {
    # "in the second photo"; "the second photo, on the left" names it too
    "image": Gated(rf"\b(?:(?:in|from|of|on|for) (?:the )?|the )?({_ORD}) {_IMAGE}\b", _IMAGE_WORDS),
    "image_n": Gated(rf"\b(?:(?:in|from|of|on|for) )?{_IMAGE} (?:#|number |no )?({_NUM})\b", _IMAGE_WORDS),
    "all_images": Gated(
        rf"\b(?:in|across|from|of) (?:both|all|each|every)(?: of)?(?: the| these)? {_IMAGE}\b", _IMAGE_WORDS
    ),
    # Possessive quantifiers (*+): blanked phrases leave long runs of spaces, which plain \s* pairs would
    # backtrack over quadratically.
    "index": Gated(
        rf"(?:\b(?:person|persons|face|faces|individual|number|subject)\s*+#?\s*+|#\s*+)({_NUM})\b",
        tokens("person persons face faces individual number subject #"),
    ),
    "possessive_side": Gated(r"\b(?:to|on|at) (her|his|their) (left|right)(?: side)?\b", _SIDES),
    "adjacent": Gated(
        rf"\b(?:(?:right |directly |just |sitting |standing )?(?:next to|beside|besides|by|alongside|near)"
        rf"|(?:to|on) the (left|right) of|(?:on )?(?:the )?(left|right) of)\s+({_ANCHOR})",
        _SIDES | tokens("next beside besides by alongside near"),
    ),
    "to_last": Gated(rf"\b({_ORD})[ -]to[ -]last\b(?: {PERSON})?", tokens("last")),
    "nth_side": Gated(rf"\b({_ORD})(?: {PERSON})? (?:from|on) (?:the )?(left|right)\b", _SIDES),
    "far": Gated(
        r"\b(?:(?:far|very|extreme|outer)[ -](left|right)|(left|right)[ -]?most"
        r"|(left|right)(?:[ -]hand)? (?:end|edge))\b",
        _SIDES,
    ),
    "side": Gated(
        rf"\b(?:(?:on|at|in|to) the (left|right)(?:[ -]hand)?(?: side)?(?! of\b)|the (left|right) {PERSON}"
        rf"|on (left|right)\b)",
        _SIDES,
    ),
    "middle": Gated(
        rf"\b(?:in the |at the )?(middle|center|central|centermost)\b(?! aged)(?: {PERSON})?",
        tokens("middle center central centermost"),
    ),
    "vertical": Gated(
        rf"\b(?:(?:at|on|in) the (top|bottom)|(top|bottom)(?:most)? {PERSON}|(upper|lower) (?:row|part|half))\b",
        tokens("top bottom upper lower topmost bottommost"),
    ),
    "nth": Gated(rf"\b({_ORD}) {PERSON}\b", _ORDINAL_TOKENS),
    "last": Gated(rf"\bthe last(?: {PERSON})?\b", tokens("last")),
    "size": Gated(
        r"\b(largest|biggest|closest|nearest|smallest|tiniest|farthest|furthest)\b(?: (?:face|one|to the camera))?"
        r"|\b(?:in|at) the (front|foreground|back|background)\b|\bin (front)\b"
        r"|\b(behind) (?:the others|everyone|them)\b",
        tokens("largest biggest closest nearest smallest tiniest farthest furthest front foreground back behind"),
    ),
    "super": Gated(
        r"\b(oldest|eldest|youngest|older|elder|younger|most senior|most junior)\b",
        tokens("oldest eldest youngest older elder younger senior junior"),
    ),
    "emotion_most": Gated(
        rf"\b(happiest|saddest|angriest|(most|least) ({_EMO}))\b", tokens("happiest saddest angriest most least")
    ),
    "emotion_not": Gated(
        rf"\b(?:not|never) (?:looking |look |looks |seem |seems |appear |appears |feeling )?({ANY_EMOTION})\b",
        tokens("not never"),
    ),
    "emotion_rel": Gated(rf"\b{PERSON} (?:who|that|which) {_VERB} ({ANY_EMOTION})\b", tokens("who that which")),
    "emotion_adj": Gated(rf"\bthe ({ANY_EMOTION})(?: looking)? {PERSON}\b", tokens(*V.emotions)),
    "emotion_participle": Gated(
        rf"\b{PERSON} (?:looking|with an?) ({ANY_EMOTION})(?: expression| face| look)?\b", tokens("looking with")
    ),
    "race": Gated(rf"\b({alternatives(V.races)})(?= {PERSON}\b)", tokens(*V.races)),
    "age_over": Gated(
        r"\b(?:over|above|older than|aged over)\s+(\d+)(?: years?(?: old)?)?\b|\b(?:more than|at least) (\d+) years"
        r"|\b(\d+) (?:years? old )?(?:or|and) (?:older|over|above|up)\b",
        tokens("over above older more least"),
    ),
    "age_under": Gated(
        r"\b(?:under|below|younger than)\s+(\d+)(?: years?(?: old)?)?\b|\b(?:less than|at most) (\d+) years"
        r"|\b(\d+) (?:years? old )?(?:or|and) (?:younger|under|below)\b",
        tokens("under below younger less most"),
    ),
    "age_decade": Gated(
        r"\b(?:in (?:their|his|her|the) )?(?:(early|late|mid) )?(teens|twenties|thirties|forties|fifties|sixties"
        r"|seventies|eighties|nineties|20s|30s|40s|50s|60s|70s|80s|90s)\b",
        tokens(
            "teens twenties thirties forties fifties sixties seventies eighties nineties "
            "20s 30s 40s 50s 60s 70s 80s 90s"
        ),
    ),
    "age": Gated(rf"\b({alternatives(_AGE_WORDS)})\b", tokens(*_AGE_WORDS)),
    "gender": Gated(rf"\b({alternatives(_GENDER_NOUNS)})\b", tokens(*_GENDER_NOUNS)),
    "pronoun": Gated(rf"\b({alternatives(V.pronouns)})\b", tokens(*V.pronouns)),
    "among": Gated(
        rf"\b(?:{alternatives(V.among)})\b|\b(?:{alternatives(V.comparatives)})\b(?! than\b)",
        tokens("which among of out between", *V.comparatives),
    ),
    "others": Gated(
        r"\b(?:the others?|(?:everyone|everybody|anyone|anybody) else|the rest(?: of them)?|all the others"
        r"|the other (?:ones?|people|persons|faces|two|three|\d+))\b",
        tokens("others other else rest"),
    ),
    "everyone": Gated(
        r"\b(everyone|everybody|every (?:person|face|one)|each (?:person|face|one|individual)|each of them"
        r"|all (?:of )?(?:them|these|those|the (?:people|persons|faces|men|women|individuals)|people|faces|persons)"
        r"|all \d+|both(?: of them)?|the (?:two|2)|either(?: one| of them| of (?:the|these|those) (?:two|2))?"
        r"|whichever(?: one)?)\b",
        tokens("everyone everybody every each all both two 2 either whichever"),
    ),
    "plural": Gated(
        r"\b(people|persons|faces|men|women|guys|ladies|children|kids|individuals|ones|these|those)\b",
        tokens("people persons faces men women guys ladies children kids individuals ones these those"),
    ),
    "unresolved": Gated(
        r"\b(?:the |a |an )?(?:[a-z]+ ){0,2}?(?:holding|wearing|carrying|dressed in|in uniform|with glasses"
        r"|with sunglasses|with (?:a|an) \w+|with the (?!same\b|largest\b|biggest\b|smallest\b)\w+|in (?:a|an) \w+ \w+"
        r"|in (?:red|blue|green|black|white|yellow|grey|gray|pink|purple|orange|brown)\b|who (?:has|wears|holds)"
        r"|sitting|standing|smoking|eating|drinking)[a-z ]*",
        tokens("holding wearing carrying dressed uniform with in who sitting standing smoking eating drinking"),
    ),
}
_INDEX_MORE = re.compile(rf"^\s*+(?:(?:,|and|&|or|vs|versus|with)\s*+)?(?:(?:person|face|number)\s*+)?#?\s*+({_NUM})\b")
# "how old are both?", "and the two?": the two faces just talked about, as "of them" says ("both men" need not be).
_BOTH = re.compile(rf"(?:both|the (?:two|2))(?! (?:of )?(?:the )?{PERSON}\b)")
# "either", "whichever": any of the faces just talked about will do, so each of them is answered.
_EITHER = re.compile(r"either|whichever")
_DECADES = {
    "teens": 10, "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
    "eighties": 80, "nineties": 90,
}  # fmt: skip
_SIZES = {"largest": "largest", "biggest": "largest", "closest": "largest", "nearest": "largest",
          "front": "largest", "foreground": "largest"}  # fmt: skip
_MOST = {"happiest": "Happiness", "saddest": "Sadness", "angriest": "Anger"}
_OLDEST = ("oldest", "eldest", "older", "elder", "most senior")


def ordinal(word: str) -> int:
    if word in V.ordinals:
        return V.ordinals[word]
    digits = re.match(r"\d+", word)
    return int(digits.group()) if digits else 1


def emotion_labels(words: str) -> tuple[str, ...]:
    """The emotion labels a phrase names, in order ("surprised or scared" -> Surprise, Fear)."""
    return tuple(dict.fromkeys(V.emotions[w] for w in _EMO_WORD.findall(words)))


def _number(word: str) -> int:
    return 1 if word == "one" else int(word)


def parse(text: str) -> Referent:
    """Read the referring words of a normalised question."""
    t = Reading(text)
    ref = Referent()
    # Found, not taken: "which of them" still reads "them" as a pronoun and "older" as a superlative, for when
    # fewer than two faces were talked about.
    ref.among = bool(t.find(RX["among"]))
    taken = [(m, ordinal(m.group(1))) for m in t.take(RX["image"], every=True)]
    taken += [(m, _number(m.group(1))) for m in t.take(RX["image_n"], every=True)]
    images = sorted((m.start(), number) for m, number in taken)
    ref.words += [m.group() for m, _ in taken]  # "in the second photo": read words, never left over
    if t.take(RX["all_images"]):
        ref.all_images = ref.plural = True
    for m in t.take(RX["possessive_side"]):
        ref.adjacent, ref.anchor = m.group(2), parse(m.group(1))
        ref.words.append(m.group())
    for m in t.take(RX["adjacent"]):
        ref.adjacent = m.group(1) or m.group(2) or "next"
        ref.anchor = parse(m.group(3))
        ref.words.append(m.group())
    _indexes(t, ref, images)
    if len({i for _, i in images}) == 1:
        ref.image = images[0][1]
    _position(t, ref)
    for m in t.take(RX["size"]):
        ref.size = _SIZES.get(next(g for g in m.groups() if g), "smallest")
        ref.words.append(m.group())
    for m in t.take(RX["emotion_most"]):
        ref.emotion_most = V.emotions.get(m.group(3) or "") or _MOST[m.group(1)]
        ref.least = m.group(2) == "least"
        ref.words.append(m.group())
    _ages(t, ref)
    for m in t.take(RX["super"]):
        ref.superlative = "oldest" if m.group(1) in _OLDEST else "youngest"
        ref.words.append(m.group())
    for m in t.take(RX["emotion_not"]):
        ref.emotions, ref.not_emotion = emotion_labels(m.group(1)), True
        ref.words.append(m.group().strip())
        ref.plural = True
    for name in ("emotion_rel", "emotion_adj", "emotion_participle"):
        for m in t.take(RX[name]):
            ref.emotions = emotion_labels(m.group(1))
            ref.words.append(m.group())
            _nouns(ref, m.group())
    for m in t.take(RX["race"]):
        ref.race = V.races[m.group(1)]
        ref.words.append(m.group(1))
    for m in t.take(RX["unresolved"]):
        ref.unresolved = m.group().strip()
        _nouns(ref, m.group())
    if t.take(RX["others"]):
        ref.others = ref.plural = True
        ref.words.append("the others")
    # Age, gender and pronoun words are read last: the phrases above may contain them.
    for m in t.take(RX["age"], every=True):
        _age_word(ref, m.group(1))
    for m in t.take(RX["gender"], every=True):
        word = m.group(1)
        ref.gender = V.gender[word]
        if word in V.ages:
            _age_word(ref, word)
        ref.words.append(word)
        ref.plural |= word in V.plural_gender
    everyone = t.take(RX["everyone"])  # before the pronoun it may hold ("all of them"), so all of it is read
    for m in t.take(RX["pronoun"], every=True):
        ref.pronoun = V.pronouns[m.group(1)]
        ref.words.append(m.group(1))
    for m in everyone:
        ref.everyone = True
        ref.words.append(m.group())
        if _BOTH.match(text, m.start()):
            ref.both = ref.among = True
        elif _EITHER.match(text, m.start()):
            ref.among = True
        if pronoun := RX["pronoun"].rx.search(m.group()):
            ref.pronoun = V.pronouns[pronoun.group(1)]
    ref.plural |= ref.everyone or ref.pronoun == "they" or bool(t.take(RX["plural"])) or len(ref.indexes) > 1
    ref.words.sort(key=text.find)
    return ref


def _position(t: Reading, ref: Referent) -> None:
    m: re.Match | None
    if m := t.first(RX["to_last"]):
        ref.side, ref.nth = "right", ordinal(m.group(1))
    elif m := t.first(RX["nth_side"]):
        n = ordinal(m.group(1))
        ref.side, ref.nth = (m.group(2), n) if n > 0 else ("right" if m.group(2) == "left" else "left", 1)
    elif (m := t.first(RX["far"])) or (m := t.first(RX["side"])):
        ref.side = next(g for g in m.groups() if g)
    elif m := t.first(RX["middle"]):
        ref.middle = True
    elif m := t.first(RX["last"]):
        ref.side = "right"
    elif m := t.first(RX["nth"]):
        n = ordinal(m.group(1))
        ref.side, ref.nth = ("left", n) if n > 0 else ("right", 1)
    if m:
        ref.words.append(m.group().strip())
        _nouns(ref, m.group())
    if m := t.first(RX["vertical"]):
        word = next(g for g in m.groups() if g)
        ref.vertical = "top" if word in ("top", "upper") else "bottom"
        ref.words.append(m.group().strip())
        _nouns(ref, m.group())


def _ages(t: Reading, ref: Referent) -> None:
    """ "over 60", "under 30", "in their twenties", "in her early 30s"."""
    if m := t.first(RX["age_over"]):  # "over 60": 60 or more apparent years
        ref.ages, ref.age_words = (float(next(g for g in m.groups() if g)), 200.0), m.group()
    if m := t.first(RX["age_under"]):  # "under 30": less than 30
        low = ref.ages[0] if ref.ages else 0.0
        ref.ages, ref.age_words = (low, float(next(g for g in m.groups() if g)) - 0.01), m.group()
    if m := t.first(RX["age_decade"]):
        word = m.group(2)
        base = _DECADES.get(word) or int(word[:2])
        low, high = (13.0, 19.99) if word == "teens" else (float(base), base + 9.99)
        if m.group(1) == "early":
            high = low + 3.99
        elif m.group(1) == "late":
            low = low + 6
        elif m.group(1) == "mid":
            low, high = low + 3, low + 6.99
        ref.ages, ref.age_words = (low, high), m.group().strip()
    if ref.ages:
        ref.words.append(ref.age_words)


def _age_word(ref: Referent, word: str) -> None:
    ref.ages, ref.age_words = V.ages[word], word
    ref.words.append(word)


def _nouns(ref: Referent, phrase: str) -> None:
    """A phrase read for its position or emotion may name a gender, an age or a plural too ("the second man",
    "the sad child", "the people who look sad")."""
    for m in RX["gender"].rx.finditer(phrase):
        ref.gender = V.gender[m.group(1)]
    for m in RX["age"].rx.finditer(phrase):
        ref.ages, ref.age_words = V.ages[m.group(1)], m.group(1)
    ref.plural |= bool(RX["plural"].rx.search(phrase))  # "the people who look sad" are all of them


def _indexes(t: Reading, ref: Referent, images: list[tuple[int, int]]) -> None:
    """ "person 1 and 3", "#2", "person 1 in the first photo and person 1 in the second"."""
    found = []  # (position, id)
    if t.words.isdisjoint(RX["index"].gate) and "#" not in t.text:
        return
    while m := RX["index"].rx.search(t.text):
        found.append((m.start(), _number(m.group(1))))
        end = m.end()
        while more := _INDEX_MORE.match(t.text[end:]):
            found.append((end + more.start(1), _number(more.group(1))))
            end += more.end()
        ref.words.append(" ".join(t.text[m.start() : end].split()))
        t.blank(m.start(), end)
    if not found:
        return
    found.sort()
    for i, (at, face) in enumerate(found):
        limit = found[i + 1][0] if i + 1 < len(found) else len(t.text) + 1
        after = [image for where, image in images if at < where < limit]
        ref.indexes.append((face, after[0] if after else None))
    # One image named after a list ("person 1 and 3 in the second photo") holds the whole list.
    named = {image for _, image in ref.indexes if image is not None}
    if len(named) == 1 and ref.indexes[-1][1] is not None:
        ref.indexes = [(face, image if image is not None else next(iter(named))) for face, image in ref.indexes]
