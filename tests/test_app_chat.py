"""The chat page through Streamlit's AppTest: photos, questions, follow-ups, examples, the face table, failures."""

from __future__ import annotations

import io
import json
from importlib import resources

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from faceqa.app.chat_examples import examples_for
from faceqa.app.chat_tables import face_table
from faceqa.schema import LabelScore

PAGE = str(resources.files("faceqa.app") / "chat.py")


@pytest.fixture
def page() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.run()
    assert not app.exception
    return app


def ask(app: AppTest, question: str) -> str:
    app.chat_input(key="question").set_value(question).run()
    assert not app.exception
    return app.chat_message[-1].markdown[0].value


def upload(app: AppTest, *files: tuple[str, bytes]) -> None:
    app.file_uploader[0].set_value([(name, data, "image/jpeg") for name, data in files]).run()
    assert not app.exception


def texts(app: AppTest) -> str:
    """Everything the page says, as one string (markdown, captions, alerts)."""
    return "\n".join(m.value for m in [*app.markdown, *app.caption, *app.warning, *app.error])


def highlight(app: AppTest) -> set[tuple[int, int]]:
    return app.session_state["chat"].highlight


def test_uploaded_group_photo_questions_follow_up_and_table(page, group_report, examples):
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    assert "4 faces" in page.chat_message[-1].markdown[0].value
    [frame] = page.dataframe
    table = frame.value
    assert list(table["person"]) == [1, 2, 3, 4]
    assert "apparent race" not in table.columns
    assert sum("Apparent race is not estimated" in c.value for c in page.caption) == 1

    assert "4 people" in ask(page, "How many people are there?")

    left = group_report.faces[0]
    reply = ask(page, "How old is the person on the left?")
    assert "Person 1" in reply and left.age.group in reply
    assert highlight(page) == {(1, 1)}

    follow_up = ask(page, "and the person next to him?")
    assert "Person 2" in follow_up and group_report.faces[1].age.group in follow_up
    assert highlight(page) == {(1, 2)}

    assert "different people" in ask(page, "Are person 1 and person 4 the same person?")  # from the kept embeddings
    photo = page.session_state["chat"].photos[0]
    assert '"embedding"' not in photo.report_json() and len(json.loads(photo.report_json())["faces"]) == 4


def test_reasoning_reads_plainly_with_the_detail_once_in_one_expander(page, examples):
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    reply = ask(page, "Explain person 3's expression step by step")
    assert reply.startswith("Person 3") and "looks neutral" in reply  # face-api reads person 3 neutral (50%), sad next
    assert "Key observations" not in reply and "AU15" not in reply and not reply.endswith(":")
    [detail] = page.chat_message[-1].expander
    assert detail.label == "Details" and not detail.children  # drawn only once opened
    page.session_state[f"details_0_{len(page.session_state['chat'].messages) - 1}"] = True  # open it
    page.run()
    [detail] = page.chat_message[-1].expander
    said = "\n".join(m.value for m in detail.markdown)
    assert said.count("Key observations") == 1 and "Conclusion" in said
    aus, = detail.dataframe
    assert list(aus.value.columns) == ["AU", "Person 3", "movement"]
    assert aus.value.set_index("AU").loc["AU15", "Person 3"] > 0.5  # the cue the reasoning cites as strong
    assert "Apparent emotion distribution" in [c.value for c in detail.caption]
    assert [c for c in detail.children.values() if c.type == "vega_lite_chart"]


def test_empty_conversation_offers_example_questions_and_a_click_asks_one(page, group_report):
    assert page.button(key="example_0").label.startswith("Who is the oldest?")
    page.button(key="example_0").click().run()
    assert not page.exception
    oldest = max(group_report.faces, key=lambda f: f.age.years)
    assert page.chat_message[-2].markdown[0].value == "Who is the oldest?"
    assert f"Person {oldest.id}" in page.chat_message[-1].markdown[0].value
    assert highlight(page) == {(1, oldest.id)}


def test_example_questions_after_a_photo_fit_that_photo(page, examples, engine):
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    offered = [b.label for b in page.button if b.key and b.key.startswith("example_")]
    assert "Who is the oldest?" in offered and "Who is smiling?" in offered
    page.button(key="example_0").click().run()
    assert "looks the oldest" in page.chat_message[-1].markdown[0].value
    assert not [b for b in page.button if b.key and b.key.startswith("example_")]  # asked: the offer is gone

    solo = engine.analyze(examples / "astronaut.png")
    assert not [q for q in examples_for([solo], 1) if "oldest" in q]
    group = engine.analyze(examples / "group.jpg")
    assert "Explain person 1's expression step by step" in examples_for([group], 1)  # no face reads sad: the smile
    group.faces[2].emotion = LabelScore(label="Sadness", score=0.5)
    assert "Explain person 3's expression step by step" in examples_for([group], 1)  # sad beats a smile
    for face in group.faces:
        face.emotion = LabelScore(label="Neutral", score=0.9)
    assert not [q for q in examples_for([group], 1) if "smiling" in q]
    assert all(q.endswith(("in photo 2?", "in photo 2 step by step", "in photo 2")) for q in examples_for(
        [group, solo], 2))


def test_example_questions_the_router_cannot_resolve_are_never_offered(engine, examples, monkeypatch):
    from faceqa.app import chat_examples

    group = engine.analyze(examples / "group.jpg")  # three faces read as men: "the man" is ambiguous
    candidates = ["How old is the man?", "Who is the oldest?"]
    monkeypatch.setattr(chat_examples, "_candidates", lambda report, where: candidates)
    assert examples_for([group], 1) == ["Who is the oldest?"]


def test_clicking_a_face_asks_about_that_person(page, examples, group_report):
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    page.button(key="ask_1_3").click().run()
    assert not page.exception
    assert page.chat_message[-2].markdown[0].value == "Tell me about person 3"
    assert page.chat_message[-1].markdown[0].value.startswith("Person 3")
    assert highlight(page) == {(1, 3)}
    assert page.button(key="ask_1_3").proto.type == "primary" and page.button(key="ask_1_2").proto.type == "secondary"
    assert page.get("download_button")[0].label == "Download the face reports (JSON)"


def test_two_photos_switch_tabs_and_follow_the_answer(page, examples):
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()),
           ("astronaut.png", (examples / "astronaut.png").read_bytes()))
    assert [t.label for t in page.tabs] == ["Photo 1", "Photo 2"]
    assert page.session_state["photo_tab"] == "Photo 2"  # the photo just added
    assert "Person 3 in photo 1" in ask(page, "Explain the expression of person 3 in photo 1")
    assert page.session_state["photo_tab"] == "Photo 1" and highlight(page) == {(1, 3)}
    assert "photo 2" in ask(page, "How old is the person in photo 2?")
    assert page.session_state["photo_tab"] == "Photo 2" and highlight(page) == {(2, 1)}


def test_face_table_shows_race_only_when_a_backend_provides_it(group_report):
    assert "apparent race" not in face_table(group_report.faces).columns
    faces = [f.model_copy() for f in group_report.faces]
    faces[1].race = LabelScore(label="White", score=0.8)
    table = face_table(faces)
    assert list(table["apparent race"]) == ["—", "White (80%)", "—", "—"]


def test_the_camera_is_only_asked_for_once_switched_on(page):
    assert not page.get("camera_input")
    page.toggle[0].set_value(True).run()
    assert page.get("camera_input") and not page.exception


def test_example_photo_from_the_sidebar(page):
    page.sidebar.selectbox(key="example").select("astronaut.png").run()
    assert "1 face" in page.chat_message[-1].markdown[0].value
    assert "appears female" in ask(page, "What is her gender?")


def test_questions_before_a_photo_and_bad_uploads_get_friendly_messages(page):
    assert "Add a photo first" in ask(page, "How many people are there?")
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), "grey").save(blank, "PNG")
    bomb = io.BytesIO()
    Image.new("L", (9000, 5000)).save(bomb, "PNG")
    strip = io.BytesIO()
    Image.new("RGB", (24000, 6), "white").save(strip, "PNG")
    upload(page, ("notes.jpg", b"this is a text file"), ("wall.png", blank.getvalue()), ("huge.png", bomb.getvalue()),
           ("strip.png", strip.getvalue()))
    replies = [m.markdown[0].value for m in page.chat_message[-4:]]
    assert "can't use **notes.jpg**" in replies[0] and "not an image" in replies[0]
    assert "couldn't find any face in **wall.png**" in replies[1]
    assert "can't use **huge.png**" in replies[2] and "pixel limit" in replies[2]
    assert "can't use **strip.png**" in replies[3] or "couldn't find any face in **strip.png**" in replies[3]
    assert "went wrong" not in "".join(replies)  # each one a reason, not the error boundary's apology
    assert not page.exception and not page.dataframe  # no face, no table


def test_any_failure_becomes_a_friendly_message_and_the_conversation_stays(page, examples, monkeypatch):
    from faceqa.assistant import Assistant
    from faceqa.faces.engine import FaceEngine

    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    assert "How many people" not in texts(page)

    def explode(*args, **kwargs):
        raise RuntimeError("/srv/faceqa/secret/path.py: boom")

    monkeypatch.setattr(Assistant, "answer", explode)
    reply = ask(page, "How many people are there?")
    assert "something went wrong while answering" in reply and "conversation is kept" in reply
    monkeypatch.setattr(FaceEngine, "analyze", explode)
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()),
           ("astronaut.png", (examples / "astronaut.png").read_bytes()))
    assert "something went wrong while reading astronaut.png" in page.chat_message[-1].markdown[0].value
    monkeypatch.setattr("faceqa.app.draw.annotate", explode)
    page.run()
    assert "something went wrong while showing the photo" in texts(page)

    said = [m.markdown[0].value for m in page.chat_message]
    assert said[0].startswith("I found 4 faces") and said[1] == "How many people are there?"  # nothing lost
    assert "boom" not in texts(page) and "/srv" not in texts(page) and not page.exception
    assert page.chat_input(key="question")  # and the chat still takes questions
    monkeypatch.undo()
    page.run()
    assert "4 people" in ask(page, "How many people are there?")


def test_missing_models_are_named_with_the_remedy_and_no_path(page, examples, monkeypatch):
    from faceqa.artifacts import ArtifactMissing
    from faceqa.faces.engine import FaceEngine

    def missing(*args, **kwargs):
        raise ArtifactMissing("model 'detector' is missing (/root/.faceqa/models/yunet.onnx); run: faceqa models pull")

    monkeypatch.setattr(FaceEngine, "analyze", missing)
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    reply = page.chat_message[-1].markdown[0].value
    assert "face models are not installed" in reply and "`faceqa models pull`" in reply
    assert "/root" not in reply and "yunet" not in reply and not page.exception


def test_clear_conversation_forgets_photos_and_messages(page, examples):
    page.sidebar.selectbox(key="example").select("astronaut.png").run()
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    assert len(page.session_state["chat"].photos) == 2
    page.sidebar.button(key="clear").click().run()
    page.run()  # and they stay forgotten: neither the uploader nor the example picker brings them back
    assert not page.exception and not page.session_state["chat"].photos and not page.dataframe
    assert len(page.chat_message) == 1  # only the welcome with its example questions
    assert page.button(key="example_0") and page.sidebar.selectbox(key="example").value == "—"
    assert not page.file_uploader[0].value


def test_unreachable_server_is_reported_and_the_conversation_kept(page):
    page.sidebar.selectbox(key="example").select("astronaut.png").run()
    page.sidebar.radio(key="backend").set_value("OpenAI-compatible server").run()
    page.sidebar.text_input(key="base_url").set_value("http://127.0.0.1:9/v1").run()
    reply = ask(page, "How old is she?")
    assert "didn't answer: cannot reach http://127.0.0.1:9/v1" in reply and "conversation is kept" in reply
    assert len(page.chat_message) == 3  # the photo note, the question, the apology: nothing lost
