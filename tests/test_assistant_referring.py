"""`referring.refer`: what a referring phrase means, the definition the dataset builder and the evaluator share.

Rows of made-up faces (boxes and apparent attributes only, no photo), so each rule is checked alone.
"""

from __future__ import annotations

import pytest

from faceqa.assistant import Assistant, Conversation, Person, refer
from faceqa.schema import AgeEstimate, FaceReport, ImageInfo, ImageReport, LabelScore

# Left to right: man 30, woman 25, man 70, woman 80; the third face is the largest, the last the highest.
ROW = [
    Person((0, 100, 40, 40), "Male", 30.0, "Happiness", emotion_scores={"Happiness": 0.9, "Sadness": 0.1}),
    Person((100, 100, 40, 40), "Female", 25.0, "Happiness", emotion_scores={"Happiness": 0.6, "Sadness": 0.4}),
    Person((200, 100, 80, 80), "Male", 70.0, "Sadness", emotion_scores={"Happiness": 0.2, "Sadness": 0.8}),
    Person((300, 10, 40, 40), "Female", 80.0, "Neutral", emotion_scores={"Happiness": 0.0, "Neutral": 1.0}),
]


@pytest.mark.parametrize(("phrase", "meant"), [
    ("the person on the left", [0]),
    ("the person on the far right", [3]),
    ("the second person from the left", [1]),
    ("the second from the right", [2]),
    ("the second man from the left", [2]),  # gendered ordinals count among that gender
    ("the first woman from the right", [3]),
    ("the woman on the left", [1]),
    ("the man on the right", [2]),
    ("person 3", [2]),
    ("the largest face", [2]),
    ("the person at the top", [3]),
    ("the oldest man", [2]),
    ("the youngest", [1]),
    ("the happiest person", [0]),
    ("the least happy person", [3]),
    ("the women", [1, 3]),
    ("the person in the middle", [1, 2]),  # an even row has two middle faces
    ("people over 60", [2, 3]),
    ("people under 30", [1]),
    ("everyone in their twenties", [1]),
    ("the people who are not smiling", [2, 3]),
    ("the people who look happy or sad", [0, 1, 2]),  # a disjunction fits either
    ("the people who are not happy or sad", [3]),  # negated: neither
    ("the child", []),
    ("the fifth person from the left", [0, 1, 2, 3]),  # no fifth: the faces it was choosing among
])
def test_a_phrase_means_the_faces_the_rules_say(phrase, meant):
    assert sorted(refer(phrase, ROW)) == meant


def test_position_is_the_box_centre_not_the_order_given():
    shuffled = [ROW[2], ROW[0], ROW[3], ROW[1]]
    assert refer("the second man from the left", shuffled) == [0]
    assert refer("person 1", shuffled) == [1]


def test_age_conditions_include_their_bound():
    """ "over 60" includes 60, "under 30" excludes 30, "in their twenties" is 20 to 29.99."""
    row = [Person((0, 0, 10, 10), age=60.0), Person((20, 0, 10, 10), age=30.0), Person((40, 0, 10, 10), age=20.0)]
    assert refer("people over 60", row) == [0]
    assert refer("people under 30", row) == [2]
    assert refer("people in their twenties", row) == [2]
    assert refer("people in their thirties", row) == [1]


def test_an_unknown_attribute_never_fits():
    unknown = [Person((0, 0, 10, 10)), Person((20, 0, 10, 10), "Female")]
    assert refer("the woman", unknown) == [1]
    assert refer("the oldest", unknown) == [0, 1]  # no ages at all: it cannot pick


def _face(i: int, years: float | None) -> FaceReport:
    age = AgeEstimate(years=years, group="30-39", score=0.5) if years is not None else None
    return FaceReport(id=i, box=(100 * i, 0, 50, 50), score=0.9, landmarks5=[(0.0, 0.0)] * 5, age=age,
                      gender=LabelScore(label="Male", score=0.9))


def test_oldest_with_an_age_left_empty_answers_from_the_faces_that_have_one():
    """A VLM may leave an age empty: "who is the oldest?" used to raise TypeError sorting None."""
    report = ImageReport(image=ImageInfo(width=400, height=60), faces=[_face(1, 31.0), _face(2, None), _face(3, 35.0)])
    answer = Assistant(engine=object()).answer([report], "who is the oldest?")
    assert answer.status == "ok" and answer.faces == [3]
    assert "person 2" not in answer.answer.split("Apparent ages:")[1]
    nobody = report.model_copy(update={"faces": [_face(1, None), _face(2, None)]})
    assert Assistant(engine=object()).answer([nobody], "who is the oldest?").status == "unsupported"


@pytest.mark.parametrize(("ages", "said", "never"), [
    ((40.2, 40.0), "looks about the same age, so treat this as a toss-up", "only 0"),
    ((41.6, 40.0), "looks only 2 years younger, so treat this as a toss-up", "only 0"),
    ((41.0, 40.0), "looks only 1 year younger", "1 years younger"),
    ((50.0, 40.0), "Apparent ages: person 1 about 50, person 2 about 40.", "toss-up"),
])
def test_close_ages_are_called_a_toss_up_in_words_that_fit(ages, said, never):
    report = ImageReport(image=ImageInfo(width=300, height=60), faces=[_face(1, ages[0]), _face(2, ages[1])])
    text = Assistant(engine=object()).answer([report], "who is the oldest?").answer
    assert said in text and never not in text


def _feeling(i: int, emotion: str) -> FaceReport:
    return _face(i, 30.0 + i).model_copy(update={"emotion": LabelScore(label=emotion, score=0.8)})


@pytest.mark.parametrize(("question", "faces", "said"), [
    ("who looks surprised or scared?", [1, 2], "and person 2 (second from the left) look surprised or afraid"),
    ("Is anyone surprised or scared?", [1, 2], "Yes: "),
    ("how many people look surprised or scared?", [1, 2], "2 of 4 faces look surprised or afraid"),
    # Asked of one face, the labels are a choice: the one that applies, or neither; no Yes/No.
    ("is person 3 surprised or scared?", [3], "Person 3 (second from the right) looks happy (confidence 80%), "
                                              "neither surprised nor afraid."),
    ("is person 2 surprised or scared?", [2], "Person 2 (second from the left) looks afraid (confidence 80%), "
                                              "not surprised."),
    ("who looks sad, surprised or scared?", [1, 2], "look sad, surprised or afraid"),  # a list: any of them
    ("how old are the people who look scared or surprised?", [1, 2], "Person 2 (second from the left) appears 30-39"),
])
def test_a_disjunction_of_emotions_matches_either(question, faces, said):
    """ "surprised or scared" is any of the two labels, in who-questions, counts, searches and filters alike."""
    people = [_feeling(1, "Surprise"), _feeling(2, "Fear"), _feeling(3, "Happiness"), _feeling(4, "Neutral")]
    report = ImageReport(image=ImageInfo(width=500, height=60), faces=people)
    answer = Assistant(engine=object()).answer([report], question)
    assert answer.status == "ok" and answer.faces == faces, answer.answer
    assert said in answer.answer, answer.answer


def test_the_average_age_is_an_estimate_with_the_range_the_age_groups_allow():
    report = ImageReport(image=ImageInfo(width=400, height=60), faces=[_face(1, 31.0), _face(2, 35.0), _face(3, 39.0)])
    text = Assistant(engine=object()).answer([report], "what is the average age?").answer
    assert text.startswith("The average apparent age of the 3 faces is about 35 years. This is an estimate")
    assert "person 2 appears 30-39 years old (about 35 years, confidence 50%)" in text
    assert text.endswith("If every face is within its apparent age group, the average is 30-39.")
    odd = report.model_copy(update={"faces": [*report.faces[:2], _face(3, 39.0).model_copy(
        update={"age": AgeEstimate(years=39.0, group="adult", score=0.5)})]})  # fmt: skip
    text = Assistant(engine=object()).answer([odd], "what is the average age?").answer
    assert "about 35 years" in text and "age group, the average" not in text  # no range from a group that is none


@pytest.mark.parametrize("question", ["which is older, person 3 or her?", "is she older than person 3?"])
def test_a_comparison_keeps_the_caveat_on_a_pronoun_the_model_reads_otherwise(question):
    """Person 1 was talked about and appears male: "her" still means person 1, and the answer says the model
    reads that face as male, whichever way the comparison is asked."""
    report = ImageReport(image=ImageInfo(width=400, height=60), faces=[_face(1, 50.0), _face(2, 40.0), _face(3, 30.0)])
    chat = Conversation()
    Assistant(engine=object()).answer([report], "how old is person 1?", chat)
    answer = Assistant(engine=object()).answer(None, question, chat)
    assert answer.status == "ok" and answer.result.kind == "ranking", answer.answer
    assert "you said 'she'; the model reads this face as male" in answer.answer, answer.answer
