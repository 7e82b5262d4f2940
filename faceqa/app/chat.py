"""The faceqa chat page (Streamlit): drop in photos, ask about the people in them.

Run with `faceqa app`. Photos live only in this browser session's memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import pandas as pd
import streamlit as st

from faceqa.app.draw import annotate
from faceqa.app.gate import require_password
from faceqa.app.remote import RemoteError, ask_remote
from faceqa.assistant import Conversation
from faceqa.images import BadImage, load_image
from faceqa.schema import Answer, ImageReport

EXAMPLES = resources.files("faceqa") / "examples"
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
MAX_UPLOAD_PIXELS = 40_000_000


@dataclass
class Photo:
    name: str
    rgb: np.ndarray
    report: ImageReport


@dataclass
class Chat:
    """Everything this browser session keeps: its photos, its messages, the faces last talked about."""

    photos: list[Photo] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    conversation: Conversation | None = None
    highlight: set[tuple[int, int]] = field(default_factory=set)  # (photo number, face id) the answer is about
    seen: set[str] = field(default_factory=set)


@st.cache_resource(show_spinner="Loading the face models…")
def assistant():
    from faceqa.assistant import Assistant
    from faceqa.faces.engine import FaceEngine

    return Assistant(engine=FaceEngine().load())


def chat() -> Chat:
    if "chat" not in st.session_state:
        st.session_state.chat = Chat()
    return st.session_state.chat


def say(role: str, content: str, **extra) -> None:
    chat().messages.append({"role": role, "content": content, **extra})


def add_photo(name: str, data: bytes) -> None:
    """Decode and analyse one photo; any problem becomes a friendly chat message, never a traceback."""
    state = chat()
    key = hashlib.sha256(data).hexdigest()
    if key in state.seen:
        return
    state.seen.add(key)
    try:
        rgb = load_image(data, max_pixels=MAX_UPLOAD_PIXELS)
    except BadImage as error:
        say("assistant", f"I can't use **{name}**: {str(error).removeprefix('image data: ')}.")
        return
    report = assistant().engine.analyze(rgb, path=name)
    state.photos.append(Photo(name, rgb, report))
    count = len(report.faces)
    if count == 0:
        say("assistant", f"I couldn't find any face in **{name}**. Try a photo where faces are visible and not tiny.")
    else:
        say("assistant", f"I found {count} face{'s' if count > 1 else ''} in **{name}**, numbered left to right.")


def face_table(photos: list[Photo]) -> pd.DataFrame:
    rows = []
    for number, photo in enumerate(photos, start=1):
        for face in photo.report.faces:
            rows.append(
                {
                    "photo": number,
                    "face": face.id,
                    "apparent age": f"{face.age.group} (~{face.age.years:.0f} y)" if face.age else "—",
                    "apparent gender": f"{face.gender.label} ({face.gender.score:.0%})" if face.gender else "—",
                    "apparent emotion": f"{face.emotion.label} ({face.emotion.score:.0%})" if face.emotion else "—",
                    "apparent race": f"{face.race.label} ({face.race.score:.0%})" if face.race else "needs a VLM",
                }
            )
    return pd.DataFrame(rows)


def sidebar() -> dict:
    with st.sidebar:
        st.header("Settings")
        backend = st.radio("Backend", ["Embedded engine (offline)", "OpenAI-compatible server"], key="backend")
        settings = {"backend": backend, "style": st.radio("Answer style", ["short", "with reasoning"], key="style")}
        if backend != "Embedded engine (offline)":
            settings["base_url"] = st.text_input("Server URL", "http://127.0.0.1:8000/v1", key="base_url")
            settings["model"] = st.text_input("Model", "faceqa-local", key="model")
            settings["api_key"] = st.text_input("API key", "", type="password", key="api_key")
        st.divider()
        names = sorted(p.name for p in EXAMPLES.iterdir() if p.name.endswith((".jpg", ".png")))
        example = st.selectbox("Try an example photo", ["—", *names], key="example")
        if example != "—":
            add_photo(example, (EXAMPLES / example).read_bytes())
        if st.button("Clear conversation", key="clear"):
            st.session_state.chat = Chat()
            st.rerun()
        st.caption("Your photos stay in this browser session's memory only: nothing is written to disk or logged.")
    return settings


def show_photos(state: Chat) -> None:
    for number, photo in enumerate(state.photos, start=1):
        chosen = {face for image, face in state.highlight if image == number}
        st.image(annotate(photo.rgb, photo.report, chosen), caption=f"Photo {number}: {photo.name}")
    if any(photo.report.faces for photo in state.photos):
        st.dataframe(face_table(state.photos), hide_index=True, key="faces")
        faces = [(n, f) for n, photo in enumerate(state.photos, start=1) for f in photo.report.faces]
        chosen = [(n, f) for n, f in faces if (n, f.id) in state.highlight] or faces
        several = len(state.photos) > 1
        scores = {
            (f"photo {n} face {f.id}" if several else f"face {f.id}"): f.emotion.scores
            for n, f in chosen
            if f.emotion and f.emotion.scores
        }
        if scores:
            st.caption("Apparent emotion distribution")
            st.bar_chart(pd.DataFrame(scores), height=220)


def answer(question: str, settings: dict) -> None:
    state = chat()
    with st.spinner("Looking at the faces…"):
        if settings["backend"] == "Embedded engine (offline)":
            if state.conversation is None:
                state.conversation = Conversation()
            try:
                result: Answer = assistant().answer([p.rgb for p in state.photos], question, state.conversation)
            except ValueError as error:
                say("assistant", f"I can't answer that: {error}.")
                return
            state.highlight = {tuple(ref) for ref in state.conversation.turns[-1].faces}
            details = result.attributes if settings["style"] == "with reasoning" else None
            say("assistant", result.answer, reasoning=result.reasoning, details=details)
            return
        try:
            text = ask_remote(settings, [p.rgb for p in state.photos], state.messages)
        except RemoteError as error:
            say("assistant", f"The server didn't answer: {error}. Your conversation is kept; try again.", error=True)
            return
        say("assistant", text)


def main() -> None:
    require_password()
    st.set_page_config(page_title="faceqa", page_icon="🙂", layout="wide")
    st.title("faceqa — ask about the people in a photo")
    settings = sidebar()
    state = chat()
    photos_column, chat_column = st.columns([3, 2])
    with chat_column:
        uploads = st.file_uploader("Photos", type=UPLOAD_TYPES, accept_multiple_files=True, key="uploads")
        for upload in uploads or []:
            add_photo(upload.name, upload.getvalue())
        with st.expander("Take a photo"):
            shot = st.camera_input("Camera", key="camera")
            if shot is not None:
                add_photo("camera photo", shot.getvalue())
        history = st.container()
        question = st.chat_input("Ask about the people in the photo…", key="question")
        if question:
            say("user", question)
            if not state.photos:
                say("assistant", "Add a photo first (upload one, take one, or pick an example in the sidebar).")
            else:
                answer(question, settings)
        with history:
            for message in state.messages:
                with st.chat_message(message["role"]):
                    st.markdown(message["content"])
                    if message.get("reasoning"):
                        with st.expander("Reasoning, step by step"):
                            st.markdown(message["reasoning"])
                    if message.get("details"):
                        with st.expander("What the answer rests on"):
                            st.json(message["details"])
    with photos_column:
        show_photos(state)


main()
