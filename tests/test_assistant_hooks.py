"""The assistant's seams: conversation JSON, the VLM resolver and attribute hooks, the dataset
builder's phrasings, caveats on references the model disagrees with, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

from faceqa.assistant import Assistant, Conversation, FaceRef, ReferentResolver, route
from faceqa.images import load_image
from faceqa.prompts import templates
from faceqa.schema import ImageReport, LabelScore


@pytest.fixture(scope="module")
def group(engine) -> tuple[np.ndarray, ImageReport]:
    rgb = load_image(EXAMPLES / "group.jpg")
    return rgb, engine.analyze(rgb)


@pytest.fixture(scope="module")
def hopper(engine) -> ImageReport:
    return engine.analyze(EXAMPLES / "grace_hopper.jpg")


def _row(report: ImageReport) -> list[int]:
    return [f.id for f in sorted(report.faces, key=lambda f: f.center[0])]


def test_conversation_survives_json(engine, group):
    rgb, report = group
    assistant = Assistant(engine)
    chat = Conversation()
    first = assistant.answer(rgb, "How old is the person on the far left?", chat)
    assert first.faces == [_row(report)[0]]
    restored = Conversation.model_validate_json(chat.model_dump_json())
    assert restored == chat and restored.focus == [FaceRef(1, _row(report)[0])]
    follow = assistant.answer(None, "and the person next to him?", restored)
    assert follow.faces == [_row(report)[1]] and follow.task == "attribute"
    assert len(restored.turns) == 2 and restored.turns[1].faces == [FaceRef(1, _row(report)[1])]


def test_conversation_keeps_no_identity_embeddings(engine):
    report = engine.analyze(EXAMPLES / "obama.jpg", embeddings=True)
    chat = Conversation()
    Assistant(engine).answer(report, "How old is he?", chat)
    assert report.faces[0].embedding is not None
    assert all(f.embedding is None for r in chat.reports for f in r.faces)
    assert "embedding" not in chat.model_dump_json(exclude_none=True)


class ListResolver:
    """Stands in for a VLM: returns fixed face ids for any description."""

    def __init__(self, ids):
        self.ids = ids
        self.calls = []

    def find_faces(self, description, question, rgb, report):
        self.calls.append((description, question, rgb.shape))
        return self.ids


def test_resolver_grounds_what_rules_cannot(engine, group):
    rgb, report = group
    men = [f.id for f in report.faces if f.gender.label == "Male"]
    resolver = ListResolver([men[-1]])
    assert isinstance(resolver, ReferentResolver)
    plan = route("How old is the boy holding a ball?", [report], resolver=resolver, images=[rgb])
    assert plan.status == "ok" and plan.targets == (FaceRef(1, men[-1]),)
    assert resolver.calls[0][0] == "the boy holding a ball" and resolver.calls[0][2] == rgb.shape
    answer = Assistant(engine, resolver=resolver).answer(rgb, "How old is the boy holding a ball?")
    assert answer.faces == [men[-1]] and "picked by the VLM" in answer.answer

    unsure = route("How old is the boy holding a ball?", [report], resolver=ListResolver(None), images=[rgb])
    assert unsure.status == "ambiguous" and unsure.targets == ()
    several = route("How old is the boy holding a ball?", [report], resolver=ListResolver(men[:2]), images=[rgb])
    assert several.status == "ambiguous" and sorted(r.face for r in several.candidates) == men[:2]
    # A face the rules already ruled out (not read as a boy) is not accepted from the resolver.
    woman = next(f.id for f in report.faces if f.gender.label == "Female")
    ruled_out = route("How old is the boy holding a ball?", [report], resolver=ListResolver([woman]), images=[rgb])
    assert ruled_out.status == "ambiguous"


class RaceFiller:
    """Stands in for the VLM attribute engine: fills race and leaves the rest alone."""

    def fill(self, rgb, report):
        faces = [f.model_copy(update={"race": LabelScore(label="East Asian", score=0.7)}) for f in report.faces]
        return report.model_copy(update={"faces": faces})


def test_attribute_engine_fills_race(engine):
    plain = Assistant(engine).answer(EXAMPLES / "astronaut.png", "What is her race?")
    assert plain.status == "unsupported" and "VLM" in plain.answer
    filled = Assistant(engine, attributes=RaceFiller()).answer(EXAMPLES / "astronaut.png", "What is her race?")
    assert filled.status == "ok" and "appears East Asian (confidence 70%)" in filled.answer
    assert filled.result.faces[0].race.label == "East Asian"


def test_reference_the_model_disagrees_with_gets_a_caveat(engine, hopper):
    """Grace Hopper is read as male by the engine: "she" and "the woman" still mean the only face, with a caveat."""
    face = hopper.faces[0]
    for question in ("How old is she?", "How old is the woman?"):
        answer = Assistant(engine).answer(hopper, question)
        assert answer.status == "ok" and answer.faces == [face.id]
        assert ("can be wrong" in answer.answer) == (face.gender.label != "Female")
    chat = Conversation()
    Assistant(engine).answer(hopper, "How old is the person?", chat)
    followup = Assistant(engine).answer(None, "Is she smiling?", chat)
    assert ("you said 'she'" in followup.answer) == (face.gender.label != "Female")


def _expected(kind: str, fields: dict, report: ImageReport) -> tuple[str, list[int]]:
    row = _row(report)
    if kind == "side":
        pool = [i for i in row if "gender" not in fields or report.faces[i - 1].gender.label == fields["gender"]]
        return "ok", [pool[0] if fields["side"] == "left" else pool[-1]]
    if kind == "ordinal":
        return "ok", [row[fields["ordinal"] - 1] if fields["side"] == "left" else row[-fields["ordinal"]]]
    if kind == "middle":
        middle = row[len(row) // 2 - 1 : len(row) // 2 + 1] if len(row) % 2 == 0 else [row[len(row) // 2]]
        return ("ok" if len(middle) == 1 else "ambiguous"), middle
    if kind == "id":
        return "ok", [fields["id"]]
    if kind == "largest":
        return "ok", [max(report.faces, key=lambda f: f.area).id]
    if kind == "emotion":
        hits = [f.id for f in report.faces if f.emotion.label == fields["emotion"]]
        if not hits:  # nobody looks like that: the answer lists everyone instead
            return "not_found", row
        return ("ok" if len(hits) == 1 else "ambiguous"), hits
    raise ValueError(kind)


def test_dataset_builder_phrasings_route(group):
    """Every referent and person-question template of prompts/ reaches the face it describes."""
    _, report = group
    three = report.model_copy(update={"faces": report.faces[:3]})
    tasks = {"person_age_group": "age", "person_gender": "gender", "person_emotion": "emotion", "person_race": "race"}
    emotions = sorted({f.emotion.label for f in report.faces}) + ["Anger"]
    referents = [("side", {"side": s}) for s in ("left", "right")]
    referents += [("side", {"side": s, "gender": g}) for s in ("left", "right") for g in ("Male", "Female")]
    referents += [("ordinal", {"ordinal": n, "side": s}) for n in (1, 2, 3) for s in ("left", "right")]
    referents += [("middle", {}), ("largest", {})] + [("id", {"id": i}) for i in (1, 2, 3, 4)]
    referents += [("emotion", {"emotion": e}) for e in emotions]
    checked = 0
    for kind, fields in referents:
        phrases = {templates.referent(kind, seed=seed, **fields) for seed in range(12)}
        for phrase in phrases:
            for photo in (report, three) if kind in ("middle", "side") else (report,):
                status, ids = _expected(kind, fields, photo)
                if "gender" in fields and "person" in phrase:  # a template without the gender noun
                    status, ids = _expected(kind, {"side": fields["side"]}, photo)
                for task, attribute in tasks.items():
                    for style in ("chat", "paligemma"):
                        for template in templates.questions(task, style):
                            question = templates.render(template, {"referent": phrase, "options": "..."})
                            plan = route(question, [photo])
                            assert plan.status == status, (question, plan.reason)
                            assert attribute in plan.attributes, question
                            got = plan.targets if status == "ok" else plan.candidates
                            assert sorted(r.face for r in got) == sorted(ids), question
                            checked += 1
    print(f"\n{checked} dataset-builder questions routed to the faces they describe")
    assert checked > 300


def test_bad_input(engine, tmp_path):
    assistant = Assistant(engine)
    with pytest.raises(ValueError, match="no photo"):
        assistant.answer(None, "How many people?")
    with pytest.raises(ValueError, match="empty"):
        assistant.answer(EXAMPLES / "obama.jpg", "  ")
    from faceqa.images import BadImage

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(BadImage, match="broken.jpg"):
        assistant.answer(broken, "How many people?")


def test_routing_is_deterministic(group):
    _, report = group
    for question in ("Who is the oldest?", "How old is the man?", "Explain her expression step by step"):
        assert route(question, [report]) == route(question, [report])


def test_any_text_gets_an_answer(group):
    """Word soup from the case table, with and without faces or earlier turns: never an exception."""
    import random
    import tomllib

    _, report = group
    empty = report.model_copy(update={"faces": []})
    data = tomllib.loads((Path(__file__).parent / "data" / "assistant_cases.toml").read_text())
    words = sorted({w for c in data["case"] for w in c["q"].split()} | {"#", "0", "9", "and", "than", "as", "photo"})
    rng = random.Random(0)
    assistant = Assistant(engine=object())  # reports only: the engine is never called
    statuses = set()
    for _ in range(1500):
        photos = rng.choice([[report], [report, report], [empty], [report, empty]])
        chat = Conversation()
        for _turn in range(2):
            question = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
            answer = assistant.answer(photos if not chat.turns else None, question, chat)
            assert answer.answer and answer.task
            statuses.add(answer.status)
    assert statuses == {"ok", "ambiguous", "not_found", "no_faces", "unsupported"}


@pytest.mark.parametrize("task", ["gender", "age_group", "emotion"])
def test_vlm_style_prompts_with_an_answer_format_are_routed_as_the_attribute_question(engine, examples, task):
    """The evaluator and VLM-minded clients end questions with "Answer with one of: Male, Female."; the listed
    options must not turn the question into "is this person male?"."""
    from faceqa.assistant import Assistant
    from faceqa.prompts import templates

    report = engine.analyze(examples / "astronaut.png")
    answer = Assistant(engine).answer([report], templates.question(task, "chat"))
    assert answer.status == "ok" and answer.faces == [1]
    assert not answer.answer.startswith(("Yes", "No")) and "Note:" not in answer.answer
