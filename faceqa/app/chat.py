"""The faceqa chat page (Streamlit): drop in photos, ask about the people in them.

Run with `faceqa app`. Photos live only in this browser session's memory.

Layout: the photo panel (the chosen photo with numbered boxes, the faces the latest answer is
about highlighted, a button per face, the face table and the reports as JSON) is the left
column and stays in view while the conversation grows in the right one (sticky, data/chat.css);
on a phone the columns stack, photo first. Every step runs inside an error boundary: whatever
fails becomes a friendly message, and the conversation and the chat input stay.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import streamlit as st

from faceqa.app.chat_examples import STARTERS, examples_for
from faceqa.app.chat_tables import RACE_NOTE, au_table, emotion_frame, face_table
from faceqa.app.draw import annotate
from faceqa.app.gate import require_password
from faceqa.app.remote import RemoteError, ask_remote
from faceqa.artifacts import ArtifactCorrupt, ArtifactMissing
from faceqa.assistant import Assistant, Conversation
from faceqa.images import IMAGE_SUFFIXES, BadImage, load_image
from faceqa.schema import FaceReport, ImageReport

EXAMPLES = resources.files("faceqa") / "examples"
STYLE = Path(str(resources.files("faceqa.app") / "data" / "chat.css"))
UPLOAD_TYPES = [suffix.removeprefix(".") for suffix in IMAGE_SUFFIXES]
EMBEDDED = "Embedded engine (offline)"
TAB = "photo_tab"  # session-state key of the photo tabs: the page switches them to the photo an answer is about
log = logging.getLogger("faceqa.app.chat")


@dataclass
class Photo:
    """One photo of the chat: its pixels and its analysis, with identity embeddings so that a question only
    reads the report (none is analysed again) and "same person?" still compares faces. Both stay in this
    session's memory; the downloaded report leaves the embeddings out."""

    name: str
    rgb: np.ndarray
    report: ImageReport

    def report_json(self) -> str:
        return self.report.model_dump_json(indent=2, exclude={"faces": {"__all__": {"embedding"}}})


@dataclass
class Message:
    role: str
    content: str
    faces: list[tuple[int, int]] = field(default_factory=list)  # (photo number, face id) the answer is about
    detail: str | None = None  # the step-by-step reasoning, shown in the answer's one "Details" expander
    error: bool = False


@dataclass
class Chat:
    """Everything this browser session keeps: its photos, its messages, the faces last talked about."""

    photos: list[Photo] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    conversation: Conversation = field(default_factory=Conversation)
    highlight: set[tuple[int, int]] = field(default_factory=set)
    suggest_for: int | None = None  # the photo just added, whose example questions are offered
    seen: set[str] = field(default_factory=set)


@st.cache_resource(show_spinner="Loading the face models…")
def assistant() -> Assistant:
    from faceqa.faces.engine import FaceEngine

    return Assistant(engine=FaceEngine().load())


def chat() -> Chat:
    if "chat" not in st.session_state:
        st.session_state.chat = Chat()
    return st.session_state.chat


def say(role: str, content: str, **extra) -> None:
    chat().messages.append(Message(role, content, **extra))


def _remedy(error: Exception) -> str:
    """What the person running the page can do about a failure, when its type says (never its message)."""
    match error:
        case ArtifactMissing():
            return " The face models are not installed on this server: run `faceqa models pull` there."
        case ArtifactCorrupt():
            return " A face model file on this server is damaged: run `faceqa models pull --force` there."
        case _:
            return ""


@contextmanager
def boundary(doing: str, inline: bool = False) -> Iterator[None]:
    """The page's last line of defence: a failure becomes a friendly note (in the chat, or `inline` where the
    failed part would have been), never a traceback or a server path; what the session holds is kept."""
    try:
        yield
    except Exception as error:
        log.warning("chat page: a step failed (%s)", type(error).__name__)  # no message or file name: they may
        # hold server paths or what a person called their photo
        text = (f"Sorry, something went wrong while {doing}.{_remedy(error)} Your conversation is kept; "
                "please try again.")
        if inline:
            st.warning(text)
        else:
            say("assistant", text, error=True)


def tab_label(photo: int) -> str:
    return f"Photo {photo}"


def add_photo(name: str, data: bytes) -> None:
    """Decode and analyse one photo; a bad file becomes a friendly chat message."""
    state = chat()
    key = hashlib.sha256(data).hexdigest()
    if key in state.seen:
        return
    state.seen.add(key)
    try:
        rgb = load_image(data)  # the limits every entry point shares (faceqa.images)
    except BadImage as error:
        say("assistant", f"I can't use **{name}**: {str(error).removeprefix('image data: ')}.")
        return
    with st.spinner(f"Finding the faces in {name}…"):
        report = assistant().engine.analyze(rgb, path=name, embeddings=True)
    state.photos.append(Photo(name, rgb, report))
    number = len(state.photos)
    st.session_state[TAB] = tab_label(number)
    state.highlight = set()
    count = len(report.faces)
    where = f" (photo {number})" if number > 1 else ""
    if count == 0:
        say("assistant", f"I couldn't find any face in **{name}**{where}. Try a photo where faces are visible and "
                         "not tiny.")
        state.suggest_for = None
    else:
        say("assistant", f"I found {count} face{'s' if count > 1 else ''} in **{name}**{where}, numbered left to "
                         "right. Ask me about them, or click a person under the photo.")
        state.suggest_for = number


def ask(question: str, settings: dict) -> None:
    state = chat()
    say("user", question)
    state.suggest_for = None
    if not state.photos:
        say("assistant", "Add a photo first: upload one, take one, or pick an example in the sidebar.")
        return
    with st.spinner("Looking at the faces…"):
        if settings["backend"] != EMBEDDED:
            history = [{"role": m.role, "content": m.content, "error": m.error} for m in state.messages]
            try:
                text = ask_remote(settings, [p.rgb for p in state.photos], history)
            except RemoteError as error:
                say("assistant", f"The server didn't answer: {error}. Your conversation is kept; try again.",
                    error=True)
                return
            say("assistant", text)
            return
        try:
            result = assistant().answer([p.report for p in state.photos], question, state.conversation)
        except ValueError as error:
            say("assistant", f"I can't answer that: {error}.")
            return
    faces = [(ref.image, ref.face) for ref in state.conversation.turns[-1].faces]
    state.highlight = set(faces)
    if faces:
        st.session_state[TAB] = tab_label(faces[0][0])
    say("assistant", result.answer, faces=faces, detail=result.reasoning)  # the reasoning is never in the answer


def queue(question: str, photo: str | None = None) -> None:
    """Button callback: ask `question` on this run (after adding the example `photo`, when given)."""
    st.session_state.pending = (photo, question)


def clear() -> None:
    """Button callback: forget the photos and messages, and empty the widgets that would bring photos back."""
    st.session_state.chat = Chat()
    st.session_state.example = "—"
    st.session_state.inputs = st.session_state.get("inputs", 0) + 1  # new upload and camera widgets


def sidebar() -> dict:
    with st.sidebar:
        st.header("Settings")
        settings = {"backend": st.radio("Backend", [EMBEDDED, "OpenAI-compatible server"], key="backend")}
        if settings["backend"] != EMBEDDED:
            settings["base_url"] = st.text_input("Server URL", "http://127.0.0.1:8000/v1", key="base_url")
            settings["model"] = st.text_input("Model", "faceqa-local", key="model")
            settings["api_key"] = st.text_input("API key", "", type="password", key="api_key")
        st.divider()
        names = sorted(p.name for p in EXAMPLES.iterdir() if p.name.endswith((".jpg", ".png")))
        example = st.selectbox("Try an example photo", ["—", *names], key="example")
        if example != "—":
            add_photo(example, (EXAMPLES / example).read_bytes())
        st.button("Clear conversation", key="clear", on_click=clear)
        st.caption("Your photos stay in this browser session's memory only: nothing is written to disk or logged.")
    return settings


def add_uploads() -> None:
    inputs = st.session_state.get("inputs", 0)
    uploads = st.file_uploader("Add photos", type=UPLOAD_TYPES, accept_multiple_files=True, key=f"uploads_{inputs}")
    for upload in uploads or []:
        with boundary(f"reading {upload.name}"):
            add_photo(upload.name, upload.getvalue())
    if st.toggle("Take a photo with the camera", key=f"camera_on_{inputs}"):  # the browser asks for the camera
        shot = st.camera_input("Camera", key=f"camera_{inputs}")                # only once this is switched on
        if shot is not None:
            with boundary("reading the camera photo"):
                add_photo("camera photo", shot.getvalue())


def person(photo: int, face: int, several: bool) -> str:
    return f"person {face} in photo {photo}" if several else f"person {face}"


def show_photo(state: Chat, number: int, photo: Photo) -> None:
    several = len(state.photos) > 1
    chosen = {face for image, face in state.highlight if image == number}
    about = ", ".join(f"person {face}" for face in sorted(chosen))
    caption = f"{tab_label(number)}: {photo.name}" + (f" — highlighted: {about}" if about else "")
    st.image(annotate(photo.rgb, photo.report, chosen), caption=caption)
    if not photo.report.faces:
        return
    with st.container(horizontal=True, gap="xsmall", key=f"faces_{number}"):
        for face in photo.report.faces:
            st.button(f"Person {face.id}", key=f"ask_{number}_{face.id}", type="primary" if face.id in chosen
                      else "secondary", on_click=queue, args=(f"Tell me about {person(number, face.id, several)}",),
                      help=f"Ask about {person(number, face.id, several)}")
    table = face_table(photo.report.faces)
    st.dataframe(table, hide_index=True, key=f"table_{number}")
    if "apparent race" not in table:
        st.caption(RACE_NOTE)
    st.download_button("Download the face reports (JSON)", photo.report_json(),
                       file_name=f"{Path(photo.name).stem}.faces.json", mime="application/json",
                       key=f"download_{number}")


def photo_panel(state: Chat) -> None:
    with st.container(key="photo_panel"):
        if not state.photos:
            st.info("Your photo appears here, every face boxed and numbered left to right.")
            return
        if len(state.photos) == 1:
            show_photo(state, 1, state.photos[0])
            return
        tabs = st.tabs([tab_label(n) for n in range(1, len(state.photos) + 1)], key=TAB, on_change="rerun")
        for number, (tab, photo) in enumerate(zip(tabs, state.photos, strict=True), start=1):
            if tab.open is not False:
                with tab:
                    show_photo(state, number, photo)


def show_detail(state: Chat, message: Message) -> None:
    several = len(state.photos) > 1
    faces: dict[str, FaceReport] = {}
    for image, face_id in message.faces:
        if image <= len(state.photos):
            for face in state.photos[image - 1].report.faces:
                if face.id == face_id:
                    faces[person(image, face_id, several).capitalize()] = face
    if message.detail:
        st.markdown(message.detail)
    aus = au_table(faces)
    if not aus.empty:
        st.caption("Facial action-unit cues (geometric estimates, 0 to 1)")
        bars = {who: st.column_config.ProgressColumn(who, min_value=0.0, max_value=1.0, format="%.2f")
                for who in faces}
        st.dataframe(aus, hide_index=True, column_config=bars)
    emotions = emotion_frame(faces)
    if not emotions.empty:
        st.caption("Apparent emotion distribution")
        st.bar_chart(emotions, height=200, stack=False)


def example_buttons(questions: list[tuple[str | None, str, str]]) -> None:
    """One button per (example photo or None, question, label)."""
    with st.container(horizontal=True, gap="xsmall", key="examples"):
        for index, (photo, question, label) in enumerate(questions):
            st.button(label, key=f"example_{index}", on_click=queue, args=(question, photo))


def conversation(state: Chat) -> None:
    if not state.messages:
        with st.chat_message("assistant"):
            st.markdown("Add a photo (upload one, take one, or pick an example in the sidebar) and ask about the "
                        "people in it. Or try one of these:")
            example_buttons([(s.photo, s.question, s.label) for s in STARTERS])
    inputs = st.session_state.get("inputs", 0)
    for index, message in enumerate(state.messages):
        with st.chat_message(message.role):
            st.markdown(message.content)
            if message.detail or message.faces:
                # Drawn only while open: a long conversation does not rebuild every table and chart on each run.
                # Keyed per conversation (Clear starts new ones) and message.
                with st.expander("Details", key=f"details_{inputs}_{index}", on_change="rerun") as details:
                    if details.open:
                        show_detail(state, message)
    if state.suggest_for is not None:
        questions = examples_for([p.report for p in state.photos], state.suggest_for)
        example_buttons([(None, q, q) for q in questions])


def guarded(step: Callable[[Chat], None], state: Chat, doing: str) -> None:
    with boundary(doing, inline=True):
        step(state)


def main() -> None:
    require_password()
    st.set_page_config(page_title="faceqa", page_icon="🙂", layout="wide")
    background = "#0e1117" if st.context.theme.type == "dark" else "#ffffff"  # Streamlit's two theme backgrounds
    st.markdown(f"<style>:root {{--faceqa-background: {background};}}\n{STYLE.read_text()}</style>",
                unsafe_allow_html=True)  # st.html drops a style-only body here (Streamlit 1.67)
    question = st.chat_input("Ask about the people in the photo…", key="question")
    state = chat()
    settings = {"backend": EMBEDDED}
    with boundary("reading the settings", inline=True):
        settings = sidebar()
    st.markdown("#### faceqa — ask about the people in a photo")
    photo_column, chat_column = st.columns([5, 4], gap="medium")
    with chat_column:
        add_uploads()
        photo, clicked = st.session_state.pop("pending", (None, None))
        with boundary("answering"):
            if photo is not None:
                add_photo(photo, (EXAMPLES / photo).read_bytes())
            if question or clicked:
                ask(question or clicked, settings)
        guarded(conversation, state, "showing the conversation")
    with photo_column:
        guarded(photo_panel, state, "showing the photo")


with boundary("starting the page", inline=True):
    main()
