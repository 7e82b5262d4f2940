"""Checking the assistant against tables of questions (tests/data/assistant_cases.toml, assistant_questions.toml).

Expected faces come from selectors evaluated here on the engine's own reports, independently
of the router's code: "oldest" is the face with the highest estimated years, "left:2" the
second box centre from the left. `run_chat` asks one conversation's turns and checks each
plan (`check_plan`) and answer (`check_answer`) against the turn's expectations.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import EXAMPLES

from faceqa.assistant import Assistant, Conversation, route
from faceqa.assistant.plan import FaceRef
from faceqa.prompts.taxonomy import display
from faceqa.schema import ImageReport

FILES = {
    "group": "group.jpg",
    "astronaut": "astronaut.png",
    "obama": "obama.jpg",
    "obama2": "obama2.jpg",
    "biden": "biden.jpg",
    "grace_hopper": "grace_hopper.jpg",
}


def analysed(engine) -> dict[str, ImageReport]:
    """Each example photo analysed once, with identity embeddings (for the same-person cases)."""
    from faceqa.images import load_image

    rgbs = {name: load_image(EXAMPLES / file) for name, file in FILES.items()}
    rgbs["group_mirror"] = np.ascontiguousarray(rgbs["group"][:, ::-1])
    rgbs["blank"] = np.full((240, 320, 3), 200, dtype=np.uint8)
    return {name: engine.analyze(rgb, embeddings=True) for name, rgb in rgbs.items()}


# --- expected faces, from the reports ------------------------------------------------------------


def _all(reports: list[ImageReport]) -> list[tuple[FaceRef, object]]:
    return [(FaceRef(i, f.id), f) for i, r in enumerate(reports, 1) for f in r.faces]


def _cond(face, cond: str) -> bool:
    for term in cond.split("&"):
        if m := re.fullmatch(r"age(>=|<)(\d+)", term):
            years = face.age.years
            if not (years >= int(m.group(2)) if m.group(1) == ">=" else years < int(m.group(2))):
                return False
        elif "!=" in term:
            key, value = term.split("!=")
            if getattr(face, key) is None or getattr(face, key).label == value:
                return False
        else:  # key=A|B: any of the labels
            key, value = term.split("=")
            if getattr(face, key) is None or getattr(face, key).label not in value.split("|"):
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
    expr = expr.removeprefix("unique:")
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
    if kind == "leastemo":
        return [min(faces, key=lambda x: x[1].emotion.scores[arg])[0]]
    if kind in ("top", "bottom"):
        centre = (
            (lambda x: x[1].box[1] + x[1].box[3] / 2) if kind == "top" else (lambda x: -x[1].box[1] - x[1].box[3] / 2)
        )
        return [min(faces, key=centre)[0]]
    if kind == "each":
        return [r for part in arg.split("+") for r in select(part, reports)]
    if kind == "others":
        named = set(select(arg, reports))
        return [r for r, _ in faces if r not in named]
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
    if "parts" in case:
        assert plan.intent == "compound", f"intent {plan.intent}, expected compound"
        assert len(plan.parts) == len(case["parts"]), f"{len(plan.parts)} parts: {[p.question for p in plan.parts]}"
        for part, expected_part in zip(plan.parts, case["parts"], strict=True):
            check_plan(part, expected_part, reports)
        return
    status, faces = expected(case, reports)
    assert plan.status == status, f"status {plan.status} ({plan.why}), expected {status}"
    for key in ("intent", "comparison", "emotion", "topic", "choice"):
        if key in case:
            assert getattr(plan, key) == case[key], f"{key}: {getattr(plan, key)} != {case[key]}"
    if "ages" in case:
        assert plan.ages == tuple(case["ages"]), f"ages {plan.ages}, expected {case['ages']}"
    if "attributes" in case:
        assert set(plan.attributes) == set(case["attributes"]), f"attributes {plan.attributes}"
    if "asked" in case:  # a label, or a list of labels any of which answers yes
        wanted = {a: tuple(v) if isinstance(v, list) else (v,) for a, v in case["asked"].items()}
        assert plan.asked == wanted, f"asked {plan.asked}, expected {wanted}"
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


def check_answer(answer, plan, case: dict, reports: list[ImageReport], race_said: bool = False) -> None:
    """The answer says what the plan found, in our wording rules. `race_said`: the chat already had the race caveat."""
    faces = dict(_all(reports))
    assert answer.task == plan.intent
    assert answer.status == case.get("answer_status", plan.status)
    if plan.intent in ("refuse", "not_visible", "other_language"):
        assert answer.faces == [] and answer.result.kind == "declined"
        assert "confidence" not in answer.answer and "%" not in answer.answer, "no attribute beside a refusal"
        for phrase in case.get("contains", []):
            assert phrase in answer.text, f"{phrase!r} not in {answer.text!r}"
        if plan.intent == "refuse":
            from faceqa.assistant.policy import categories

            assert answer.answer == next(c.reply for c in categories() if c.name == plan.topic)
        if plan.intent == "other_language":
            assert answer.answer.count(". ") == 0 and answer.answer.endswith("."), "one sentence"
        return
    if plan.intent == "compound":
        assert answer.result.kind == "compound" and len(answer.result.parts) == len(plan.parts)
        for part_answer, part in zip(answer.result.parts, plan.parts, strict=True):
            check_answer(part_answer, part, {}, reports, race_said)
        return
    shown = plan.targets if plan.status == "ok" else plan.candidates
    assert answer.faces == [r.face for r in shown]
    assert answer.boxes == [faces[r].box for r in shown]
    for phrase in case.get("contains", []):
        assert phrase in answer.text, f"{phrase!r} not in {answer.text!r}"
    for phrase in case.get("lacks", []):
        assert phrase not in answer.text, f"{phrase!r} in {answer.text!r}"
    assert not re.search(r"\bAU\d", answer.answer), "AU codes belong in the reasoning, not the answer"
    assert not re.search(r"\bonly 0 years|\b0 years apart", answer.answer)
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
                assert ("VLM" in text) == ("race" in plan.named and not race_said), "race caveat: once, when asked"
            inside = True
            if plan.ages:  # "is person 2 over 40?": Yes or No; "older or younger than 40?": which side
                low, high = plan.ages
                inside = low <= face.age.years <= high
                if plan.choice:
                    assert f"so {f'{low:.0f} or older' if inside else f'under {low:.0f}'}." in text, text
            if plan.choice:  # "is she happy or sad?": the label that applies, or neither of them; no Yes/No
                for attribute, labels in plan.asked.items():
                    said = display(attribute, getattr(face, attribute).label)
                    fits = getattr(face, attribute).label in labels
                    assert re.search(rf"{said} \(confidence [^)]*\)(; [^,.]*)?, {'not' if fits else 'neither'} ", text)
            elif len(plan.targets) == 1 and (plan.asked or plan.ages):  # one verdict: Yes when every condition holds
                holds = inside and all(getattr(face, a).label in labels for a, labels in plan.asked.items())
                assert text.split()[0] == ("Yes:" if holds else "No:") and text.split()[1] not in ("Yes:", "No:"), text
        if plan.choice:
            assert not text.startswith(("Yes", "No")), text
        elif (plan.asked or plan.ages) and len(plan.targets) > 1:  # one verdict for all of them first, with the count
            low, high = plan.ages or (0.0, 1000.0)
            fitting = sum(
                all(getattr(faces[r], a).label in w for a, w in plan.asked.items())
                and low <= faces[r].age.years <= high
                for r in plan.targets
            )
            n = len(plan.targets)
            every = "Yes: both " if n == 2 else f"Yes: all {n} "
            assert text.startswith(every if fitting == n else f"No: {fitting} of {n} "), text
    elif plan.intent == "count":
        assert re.search(rf"\b{len(plan.targets)}\b", text)
        assert answer.result.count == len(plan.targets)
        if plan.yes_no:
            assert text.startswith("Yes" if plan.targets else "No")
    elif plan.intent == "describe":
        for ref in plan.targets:
            assert f"person {ref.face}" in text and f"{faces[ref].gender.score:.0%}" in text
    elif plan.comparison in ("oldest", "youngest"):
        (ref,) = plan.targets
        assert f"about {faces[ref].age.years:.0f} years" in text
        if plan.yes_no:  # "is person 1 older than person 3?": the first face named is the one asked about
            assert text.startswith("Yes: " if ref == plan.candidates[0] else "No: "), text
            assert f"person {ref.face}" in text
        else:
            assert text.startswith(f"Person {ref.face}")
    elif plan.comparison == "emotion" and plan.yes_no:
        assert text.startswith("Yes" if plan.targets else "No")
    elif plan.comparison == "same_age":
        same = len({faces[r].age.group for r in plan.targets}) == 1
        assert text.startswith("Yes" if same else "No") if plan.yes_no else True
    elif plan.comparison == "average":  # the mean of the apparent years, said as an estimate, each face named
        mean = sum(faces[r].age.years for r in plan.targets) / len(plan.targets)
        assert f"about {mean:.0f} years" in text and "estimate" in text, text
        assert all(f"person {r.face} appears" in text for r in plan.targets)
    elif plan.comparison == "same_person":
        from faceqa.faces.identity import SAME_PERSON_COSINE, cosine

        pairs = answer.result.pairs
        for pair in pairs:
            a, b = faces[FaceRef(*pair.a)], faces[FaceRef(*pair.b)]
            similarity = cosine(a.embedding, b.embedding)
            assert pair.cosine == pytest.approx(similarity, abs=1e-4)
            assert pair.same == (similarity >= SAME_PERSON_COSINE)
        if len(pairs) == 1:
            assert ("same person" if pairs[0].same else "different people") in text
        if plan.yes_no:
            assert text.startswith("Yes" if any(p.same for p in pairs) else "No")
    elif plan.intent == "reasoning":
        detail = answer.reasoning or ""
        for heading in ("Key observations:", "Overall emotional interpretation:", "Conclusion:"):
            assert detail.count(heading) == len(plan.targets) and heading not in text
        for ref in plan.targets:
            label = faces[ref].emotion.label
            assert f"{label}: the expression classifier" in detail
            # The plain sentence names the classifier's emotion; asked about another one, it starts with No.
            assert f"looks {display('emotion', label)}" in text
            asked = plan.asked.get("emotion")
            if asked and plan.choice:  # "why is she happy or sad?": which of them, or neither; no Yes/No
                said = f"looks {display('emotion', label)}, {'not' if label in asked else 'neither'} "
                assert said in text and not text.startswith(("Yes", "No")), text
            elif asked and label not in asked:
                assert text.startswith("No:")


def run_chat(turns: list[dict], photos: dict, assistant: Assistant) -> list[str]:
    """Ask the turns of one chat in order; the failures (a chat stops at its first failing turn)."""
    names = turns[0].get("photos", ["group"])
    reports = [photos[n] for n in names]
    chat = Conversation()
    for i, case in enumerate(turns):
        # The conversation drops identity embeddings, so a same-person follow-up sends the photos again
        # (here: the reports that carry them), as an app would.
        resend = i == 0 or case.get("resend") or case.get("comparison") == "same_person"
        images = reports if resend else None
        race_said = chat.race_note_said
        try:
            plan = route(case["q"], reports, chat if i else None)
            check_plan(plan, case, reports)
            answer = assistant.answer(images, case["q"], chat)
            check_answer(answer, plan, case, reports, race_said)
        except AssertionError as error:
            return [f"turn {i + 1} {case['q']!r}: {error}"]
        except Exception as error:  # a crash is a failed question, reported with the others
            return [f"turn {i + 1} {case['q']!r}: {type(error).__name__}: {error}"]
    return []
