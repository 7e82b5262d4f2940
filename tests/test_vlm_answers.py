"""The assistant with a VLM: each kind of question reaches the model with the right prompt and image.

A stand-in OpenAI-compatible server records every request; the tests read what it was sent
(decoded images compared pixel for pixel with the crop / marked photo they should be) and
what the answer made of the reply, including a planted CoT disagreement and a box number
that is not on the photo.
"""

from __future__ import annotations

import numpy as np
import pytest
from eval_standin import StandIn, sent_images, sent_text

from faceqa.crops import face_crop
from faceqa.images import load_image
from faceqa.prompts import templates
from faceqa.vlm.answers import FALLBACK, OPEN_PREFIX, VLMAssistant
from faceqa.vlm.cot_check import band
from faceqa.vlm.marks import marked_photo
from faceqa.vlm.openai_backend import OpenAIBackend

COT = """Key observations:
- AU4 brow lowerer (eyebrows lowered and drawn together) 0.95, strong
- AU15 lip corner depressor (lip corners pulled down) 0.80, strong

Overall emotional interpretation:
AU4 with AU15 reads as sadness.

Conclusion:
The expression is best described as sad (Sadness)."""


class Replies:
    """What the stand-in says, by the kind of prompt it receives."""

    def __init__(self, mark: str = "2"):
        self.mark = mark

    def __call__(self, image: bytes, prompt: str) -> str:
        if prompt == templates.question("reasoning", "chat"):
            return COT
        if "Which number marks" in prompt:
            return self.mark
        if "Answer from what is visible" in prompt:
            return "Person 4 wears a dark uniform; nobody wears glasses."
        return "I cannot tell."


@pytest.fixture
def ask(engine, examples):
    servers = []

    def ask(question: str, replies: Replies | None = None):
        server = StandIn(replies or Replies()).__enter__()
        servers.append(server)
        assistant = VLMAssistant(OpenAIBackend(server.base_url, "standin", max_retries=0), engine=engine)
        return assistant.answer([examples / "group.jpg"], question), server.received

    yield ask
    for server in servers:
        server.__exit__()


def test_expression_reasoning_sends_the_face_crop_and_shows_the_checked_vlm_cot(ask, examples, group_report):
    answer, received = ask("Explain the expression of person 3 step by step")
    assert len(received) == 1 and sent_text(received[0]) == templates.question("reasoning", "chat")
    face = group_report.faces[2]
    crop = face_crop(load_image(examples / "group.jpg"), face.box)
    assert np.array_equal(sent_images(received[0])[0], crop)  # the crop training used, not the whole photo
    au4 = face.action_units["AU4"]
    assert answer.reasoning.startswith("Key observations:")  # the engine's own reasoning stays first
    assert "The VLM's step-by-step explanation of person 3, checked against the measured cues:" in answer.reasoning
    assert (f"the model cites a strong (0.95) brow lowerer (AU4); the measured cue is {band(au4)}, {au4:.2f}"
            in answer.reasoning)


def test_a_referent_the_rules_cannot_ground_is_asked_on_the_marked_photo(ask, examples, group_report):
    answer, received = ask("How old is the boy holding a ball?", Replies(mark="3"))  # a face the rules call male
    assert answer.faces == [3] and answer.status == "ok" and "as picked by the VLM" in answer.answer
    asked = [r for r in received if "Which number marks" in sent_text(r)]
    assert len(asked) == 1 and "the boy holding a ball" in sent_text(asked[0])
    marked = np.asarray(marked_photo(load_image(examples / "group.jpg"), group_report))
    assert np.array_equal(sent_images(asked[0])[0], marked)


def test_a_box_number_that_is_not_on_the_photo_is_rejected_not_shown(ask):
    answer, _ = ask("How old is the boy holding a ball?", Replies(mark="7"))
    assert answer.status == "ambiguous" and 7 not in answer.faces and "person 7" not in answer.answer.lower()


def test_an_open_question_goes_to_the_vlm_with_the_per_face_report_and_says_whose_words_it_is(ask, group_report):
    answer, received = ask("Is anyone wearing glasses?")
    assert answer.answer == OPEN_PREFIX + "Person 4 wears a dark uniform; nobody wears glasses."
    prompt = sent_text(received[-1])
    assert prompt.rstrip().endswith("Is anyone wearing glasses?")
    for face in group_report.faces:
        assert f"- {face.id}: apparently {face.gender.label.lower()}" in prompt
    assert sent_images(received[-1])[0].shape == (380, 1200, 3)


def test_a_compound_question_sends_each_part_where_it_is_best_answered(ask, examples, group_report):
    """The age part stays with the engine; only the reasoning part reaches the VLM, with person 2's crop."""
    answer, received = ask("How old is person 1 and why does person 2 look surprised?")
    assert len(received) == 1 and sent_text(received[0]) == templates.question("reasoning", "chat")
    crop = face_crop(load_image(examples / "group.jpg"), group_report.faces[1].box)
    assert np.array_equal(sent_images(received[0])[0], crop)
    age, why = answer.result.parts
    assert age.task == "attribute" and "VLM" not in (age.reasoning or "") + age.answer
    assert answer.answer.startswith(age.answer) and age.answer.startswith("Person 1 (far left) appears")
    header = "The VLM's step-by-step explanation of person 2, checked against the measured cues:"
    assert header in why.reasoning and header in answer.reasoning and "person 1," not in answer.reasoning


def test_a_compound_question_asks_the_vlm_only_its_own_open_part(ask, group_report):
    answer, received = ask("How many people are there, and is anyone wearing glasses?")
    assert len(received) == 1 and sent_text(received[0]).rstrip().endswith("is anyone wearing glasses")
    assert "how many" not in sent_text(received[0]).split("\n")[-1]
    count, seen = answer.result.parts
    assert count.task == "count" and count.result.count == len(group_report.faces)
    assert seen.answer == OPEN_PREFIX + "Person 4 wears a dark uniform; nobody wears glasses."
    assert answer.answer == f"{count.answer}\n\n{seen.answer}"


def test_a_compound_answer_highlights_the_faces_of_every_part_in_order_each_once(ask, group_report):
    """The age part is about person 3; the VLM's open part is about everyone on the photo: all are highlighted."""
    answer, _ = ask("How old is person 3, and is anyone wearing glasses?")
    age, seen = answer.result.parts
    assert age.faces == [3] and seen.task == "open_question" and seen.faces == [1, 2, 3, 4]
    assert answer.faces == [3, 1, 2, 4]
    boxes = {face.id: face.box for face in group_report.faces}
    assert answer.boxes == [boxes[i] for i in answer.faces] and seen.boxes == [boxes[i] for i in seen.faces]


def test_a_declined_question_never_reaches_the_model(ask):
    answer, received = ask("Is person 1 a criminal?")
    assert answer.task == "refuse" and received == []


def test_a_vlm_that_cannot_be_reached_leaves_the_embedded_answer_with_a_note(engine, examples):
    from faceqa.dev.ports import free_port

    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "none", timeout=2, max_retries=0)
    assistant = VLMAssistant(backend, engine=engine)
    answer = assistant.answer([examples / "group.jpg"], "Explain the expression of person 3 step by step")
    assert answer.status == "ok" and answer.reasoning.startswith("Key observations:")
    assert FALLBACK.split("{")[0] in answer.answer
    open_answer = assistant.answer([examples / "group.jpg"], "Is anyone wearing glasses?")
    assert FALLBACK.split("{")[0] in open_answer.answer and not open_answer.answer.startswith(OPEN_PREFIX)


@pytest.mark.parametrize(("reply", "found"), [("3", [3]), ("Box 4.", [4]), ("7", None), ("2 or 3", None)])
def test_the_marks_resolver_answers_only_a_number_drawn_on_the_photo(examples, group_report, reply, found):
    from faceqa.vlm.answers import MarksResolver

    with StandIn(lambda image, prompt: reply) as server:
        resolver = MarksResolver(OpenAIBackend(server.base_url, "standin", max_retries=0))
        rgb = load_image(examples / "group.jpg")
        assert resolver.find_faces("the boy holding a ball", "how old is he?", rgb, group_report) == found


def test_the_api_routes_faceqa_vlm_questions_to_the_vlm_with_the_photo_it_was_sent(examples):
    """`faceqa serve --vlm-*`: attribute crops get labels with logprobs; the other kinds get the stand-in's replies."""
    import json

    import openai
    from api_server import data_url, running, stand_in
    from eval_standin import JSONHandler

    from faceqa.app.config import ServerConfig

    received: list[dict] = []
    replies = Replies(mark="3")

    class VLM(JSONHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            choices = (request.get("structured_outputs") or {}).get("choice")
            if choices:  # an attribute question about a crop
                text, logprobs = choices[0], {"content": [{"token": choices[0], "logprob": -0.1, "bytes": None,
                                                           "top_logprobs": []}]}
            else:
                received.append(request)
                text, logprobs = replies(b"", sent_text(request)), None
            self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": request["model"],
                             "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                                          "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    url = data_url((examples / "group.jpg").read_bytes())
    with stand_in(VLM) as server:
        vlm = f"http://127.0.0.1:{server.server_address[1]}/v1"
        with running(ServerConfig(vlm_base_url=vlm, vlm_model="tiny-vlm")) as api, \
                openai.OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0) as client:
            def ask(model: str, question: str) -> str:
                reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
                    {"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}]}])
                return reply.choices[0].message.content or ""

            assert ask("faceqa-vlm", "Is anyone wearing glasses?").startswith(OPEN_PREFIX)
            assert sent_images(received[-1])[0].shape == (380, 1200, 3)
            cot = ask("faceqa-vlm", "Explain the expression of person 3 step by step")
            assert "checked against the measured cues" in cot and "the model cites a strong (0.95) brow lowerer" in cot
            assert sent_text(received[-1]) == templates.question("reasoning", "chat")
            before = len(received)
            assert not ask("faceqa-local", "Is anyone wearing glasses?").startswith(OPEN_PREFIX)
            assert len(received) == before  # faceqa-local never asks the VLM
