"""The assistant's table of cases (tests/data/assistant_cases.toml) over real photos.

Each case is routed (Plan checked) and answered (Answer checked). Expected faces come from
selectors evaluated here on the engine's own reports, independently of the router's code:
"oldest" is the face with the highest estimated years, "left:2" the second box centre from
the left. The last test prints the pass rate of the whole table.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from faceqa.assistant import Assistant, Conversation, route
from faceqa.assistant.plan import FaceRef
from faceqa.prompts.taxonomy import display
from faceqa.schema import ImageReport

CASES_FILE = Path(__file__).parent / "data" / "assistant_cases.toml"
EXAMPLES = Path(__file__).resolve().parent.parent / "faceqa" / "examples"
FILES = {
    "group": "group.jpg",
    "astronaut": "astronaut.png",
    "obama": "obama.jpg",
    "obama2": "obama2.jpg",
    "biden": "biden.jpg",
    "grace_hopper": "grace_hopper.jpg",
}


def _cases() -> list[tuple[str, list[dict]]]:
    """(id, turns): a single case is a one-turn chat."""
    data = tomllib.loads(CASES_FILE.read_text())
    out = [(f"{i:03d}-{'+'.join(c.get('photos', ['group']))}-{c['q']}", [c]) for i, c in enumerate(data["case"])]
    for i, chat in enumerate(data["conversation"]):
        turns = [{**t, "photos": chat["photos"], "resend": chat.get("resend", False)} for t in chat["turns"]]
        out.append((f"chat{i}-{'+'.join(chat['photos'])}-{turns[0]['q']}", turns))
    return out


CASES = _cases()
RESULTS: dict[str, tuple[int, int]] = {}  # case id -> (turns passed, turns)


@pytest.fixture(scope="module")
def photos(engine) -> dict[str, ImageReport]:
    """Each example photo analysed once, with identity embeddings (for the same-person cases)."""
    from faceqa.images import load_image

    rgbs = {name: load_image(EXAMPLES / file) for name, file in FILES.items()}
    rgbs["group_mirror"] = np.ascontiguousarray(rgbs["group"][:, ::-1])
    rgbs["blank"] = np.full((240, 320, 3), 200, dtype=np.uint8)
    return {name: engine.analyze(rgb, embeddings=True) for name, rgb in rgbs.items()}


@pytest.fixture(scope="module")
def assistant(engine) -> Assistant:
    return Assistant(engine)


# --- expected faces, from the reports ------------------------------------------------------------


def _all(reports: list[ImageReport]) -> list[tuple[FaceRef, object]]:
    return [(FaceRef(i, f.id), f) for i, r in enumerate(reports, 1) for f in r.faces]


def _cond(face, cond: str) -> bool:
    for term in cond.split("&"):
        if m := re.fullmatch(r"age(>=|<)(\d+)", term):
            years = face.age.years
            if not (years >= int(m.group(2)) if m.group(1) == ">=" else years < int(m.group(2))):
                return False
        else:
            key, value = term.split("=")
            if getattr(face, key) is None or getattr(face, key).label != value:
                return False
    return True


def _row(faces, image: int) -> list:
    """Faces of one photo from left to right by box centre (computed here, not taken from the ids)."""
    return sorted((x for x in faces if x[0].image == image), key=lambda x: x[1].box[0] + x[1].box[2] / 2)


def _ref(token: str) -> FaceRef:
    face, _, image = token.partition("@")
    return FaceRef(int(image or 1), int(face))


def select(expr: str, reports: list[ImageReport]) -> list[FaceRef]:
    faces = _all(reports)
    kind, _, arg = expr.partition(":")
    if kind == "all":
        return [r for r, _ in faces]
    if kind == "none":
        return []
    if kind == "id":
        return [_ref(arg)]
    if kind == "ids":
        return [_ref(t) for t in arg.split(",")]
    if kind in ("left", "right"):
        arg, _, image = arg.partition("@")
        n, _, cond = arg.partition(":")
        row = [x for x in _row(faces, int(image or 1)) if not cond or _cond(x[1], cond)]
        row = row if kind == "left" else row[::-1]
        return [row[int(n) - 1][0]]
    if kind == "middle":
        row = _row(faces, 1)
        mid = len(row) // 2
        return [row[mid][0]] if len(row) % 2 else [row[mid - 1][0], row[mid][0]]
    if kind in ("largest", "smallest"):
        ranked = sorted(faces, key=lambda x: x[1].area, reverse=kind == "largest")
        tie = len(ranked) > 1 and abs(ranked[0][1].area - ranked[1][1].area) <= 0.05 * ranked[0][1].area
        return [x[0] for x in ranked[: 2 if tie else 1]]
    if kind in ("oldest", "youngest", "oldest_of", "youngest_of"):
        if kind.endswith("_of"):
            wanted = {_ref(t) for t in arg.split(",")}
            pool = [x for x in faces if x[0] in wanted]
        else:
            pool = [x for x in faces if not arg or _cond(x[1], arg)]
        pick = max if kind.startswith("oldest") else min
        return [pick(pool, key=lambda x: x[1].age.years)[0]]
    if kind == "mostemo":
        return [max(faces, key=lambda x: x[1].emotion.scores[arg])[0]]
    if kind == "where":
        return [r for r, f in faces if _cond(f, arg)]
    if kind in ("next", "leftof", "rightof"):
        (anchor,) = select(arg, reports)
        row = [r for r, _ in _row(faces, anchor.image)]
        i = row.index(anchor)
        left, right = row[i - 1 : i] if i else [], row[i + 1 : i + 2]
        return {"next": left + right, "leftof": left, "rightof": right}[kind]
    raise ValueError(f"unknown selector {expr!r}")


def expected(case: dict, reports: list[ImageReport]) -> tuple[str, list[FaceRef]]:
    expr = case["expect"]
    if expr.startswith("unique:"):
        found = select(expr.removeprefix("unique:"), reports)
        status = "ok" if len(found) == 1 else "ambiguous" if found else "not_found"
        return status, found
    return case.get("status", "ok"), select(expr, reports)


# --- checking one turn ----------------------------------------------------------------------------


def check_plan(plan, case: dict, reports: list[ImageReport]) -> None:
    status, faces = expected(case, reports)
    assert plan.status == status, f"status {plan.status} ({plan.reason}), expected {status}"
    for key in ("intent", "comparison", "emotion"):
        if key in case:
            assert getattr(plan, key) == case[key], f"{key}: {getattr(plan, key)} != {case[key]}"
    if "attributes" in case:
        assert set(plan.attributes) == set(case["attributes"]), f"attributes {plan.attributes}"
    if "asked" in case:
        assert plan.asked == case["asked"]
    if status == "ok":
        assert sorted(plan.targets) == sorted(faces), f"targets {plan.targets}, expected {faces}"
    else:
        assert plan.targets == ()
        if case["expect"].startswith("unique:") and faces:
            assert sorted(plan.candidates) == sorted(faces), f"candidates {plan.candidates}, expected {faces}"
    if "candidates" in case:
        assert sorted(plan.candidates) == sorted(select(case["candidates"], reports))


def _age_words(face) -> str:
    return "70 or older" if face.age.group == "70+" else f"{face.age.group} years old"


def check_answer(answer, plan, case: dict, reports: list[ImageReport]) -> None:
    faces = dict(_all(reports))
    assert answer.task == plan.intent
    assert answer.status == case.get("answer_status", plan.status)
    shown = plan.targets if plan.status == "ok" else plan.candidates
    assert answer.faces == [r.face for r in shown]
    assert answer.boxes == [faces[r].box for r in shown]
    for phrase in case.get("contains", []):
        assert phrase in answer.answer, f"{phrase!r} not in {answer.answer!r}"
    text = answer.answer
    if plan.status in ("ambiguous", "not_found"):  # says so, and lists who is there
        for ref in faces:
            assert f"person {ref.face}" in text
        return
    if plan.status != "ok":
        return
    if plan.intent == "attribute":
        for ref in plan.targets:
            face = faces[ref]
            if "age" in plan.attributes:
                assert _age_words(face) in text and f"{face.age.score:.0%}" in text
            if "gender" in plan.attributes:
                assert f"appears {display('gender', face.gender.label)} (confidence {face.gender.score:.0%})" in text
            if "emotion" in plan.attributes:
                assert f"looks {display('emotion', face.emotion.label)} (confidence {face.emotion.score:.0%})" in text
            if "race" in plan.attributes and face.race is None:
                assert "VLM" in text
            for attribute, label in plan.asked.items():
                verdict = "Yes:" if getattr(face, attribute).label == label else "No:"
                assert text.startswith(verdict)
    elif plan.intent == "count":
        assert re.search(rf"\b{len(plan.targets)}\b", text)
        assert answer.attributes["count"] == len(plan.targets)
    elif plan.intent == "describe":
        for ref in plan.targets:
            assert f"person {ref.face}" in text and f"{faces[ref].gender.score:.0%}" in text
    elif plan.comparison in ("oldest", "youngest"):
        (ref,) = plan.targets
        assert text.startswith(f"Person {ref.face}") and f"about {faces[ref].age.years:.0f} years" in text
    elif plan.comparison == "same_person":
        from faceqa.faces.identity import SAME_PERSON_COSINE, cosine

        for pair in answer.attributes["pairs"]:
            a, b = faces[FaceRef(*pair["a"])], faces[FaceRef(*pair["b"])]
            similarity = cosine(a.embedding, b.embedding)
            assert pair["cosine"] == pytest.approx(similarity, abs=1e-4)
            assert pair["same"] == (similarity >= SAME_PERSON_COSINE)
        if len(answer.attributes["pairs"]) == 1:
            assert ("same person" if answer.attributes["pairs"][0]["same"] else "different people") in text
    elif plan.intent == "reasoning":
        for heading in ("Key observations:", "Overall emotional interpretation:", "Conclusion:"):
            assert text.count(heading) == len(plan.targets)
        for ref in plan.targets:
            assert f"{faces[ref].emotion.label}: the expression classifier" in text


@pytest.mark.parametrize("turns", [turns for _, turns in CASES], ids=[name for name, _ in CASES])
def test_case(turns: list[dict], photos, assistant, request):
    names = turns[0].get("photos", ["group"])
    reports = [photos[n] for n in names]
    chat = Conversation() if len(turns) > 1 else None
    failures, passed = [], 0
    for i, case in enumerate(turns):
        # The conversation drops identity embeddings, so a same-person follow-up sends the photos again
        # (here: the reports that carry them), as an app would.
        resend = i == 0 or case.get("resend") or case.get("comparison") == "same_person"
        images = reports if resend else None
        try:
            plan = route(case["q"], reports, chat)
            check_plan(plan, case, reports)
            answer = assistant.answer(images, case["q"], chat)
            check_answer(answer, plan, case, reports)
            passed += 1
        except AssertionError as error:
            failures.append(f"turn {i + 1} {case['q']!r}: {error}")
            break
    RESULTS[request.node.callspec.id] = (passed, len(turns))
    assert not failures, "\n".join(failures)


def test_pass_rate():
    """The table's pass rate (printed; the lead's CI log keeps it). Needs the cases above to have run."""
    if len(RESULTS) < len(CASES):
        pytest.skip("run the whole table to get its pass rate")
    passed = sum(p for p, _ in RESULTS.values())
    total = sum(n for _, n in RESULTS.values())
    print(f"\nassistant cases: {passed}/{total} questions answered as expected ({passed / total:.1%})")
    assert total >= 150
    assert passed == total
