"""The chat page through Streamlit's AppTest: pick the group photo, ask, follow up, read the table."""

from __future__ import annotations

import io
from importlib import resources

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

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
    app.file_uploader(key="uploads").set_value([(name, data, "image/jpeg") for name, data in files]).run()
    assert not app.exception


def test_uploaded_group_photo_questions_follow_up_and_table(page, group_report, examples):
    upload(page, ("group.jpg", (examples / "group.jpg").read_bytes()))
    assert "4 faces" in page.chat_message[-1].markdown[0].value
    [frame] = page.dataframe
    table = frame.value
    assert len(table) == 4 and list(table["face"]) == [1, 2, 3, 4]
    assert list(table["apparent race"]) == ["needs a VLM"] * 4

    assert "4 people" in ask(page, "How many people are there?")

    left = group_report.faces[0]
    reply = ask(page, "How old is the person on the left?")
    assert "Person 1" in reply and left.age.group in reply

    follow_up = ask(page, "and the person next to him?")
    assert "Person 2" in follow_up and group_report.faces[1].age.group in follow_up

    reasoning = ask(page, "Explain her expression step by step")
    assert "Person 2" in reasoning and "Conclusion" in reasoning


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
    upload(page, ("notes.jpg", b"this is a text file"), ("wall.png", blank.getvalue()), ("huge.png", bomb.getvalue()))
    replies = [m.markdown[0].value for m in page.chat_message[-3:]]
    assert "can't use **notes.jpg**" in replies[0] and "not an image" in replies[0]
    assert "couldn't find any face in **wall.png**" in replies[1]
    assert "can't use **huge.png**" in replies[2] and "pixel limit" in replies[2]
    assert not page.exception and not page.dataframe  # no face, no table


def test_clear_conversation_forgets_photos_and_messages(page):
    page.sidebar.selectbox(key="example").select("astronaut.png").run()
    assert page.chat_message
    page.sidebar.selectbox(key="example").select("—").run()
    page.sidebar.button(key="clear").click().run()
    assert not page.exception and len(page.chat_message) == 0


def test_unreachable_server_is_reported_and_the_conversation_kept(page):
    page.sidebar.selectbox(key="example").select("astronaut.png").run()
    page.sidebar.radio(key="backend").set_value("OpenAI-compatible server").run()
    page.sidebar.text_input(key="base_url").set_value("http://127.0.0.1:9/v1").run()
    reply = ask(page, "How old is she?")
    assert "didn't answer: cannot reach http://127.0.0.1:9/v1" in reply and "conversation is kept" in reply
    assert len(page.chat_message) == 3  # the photo note, the question, the apology: nothing lost
