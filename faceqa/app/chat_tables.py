"""The chat page's tables, as plain DataFrames: the faces of a photo, and the detail behind an answer.

Race is a column only when some face has it (a VLM backend); the embedded engine has no race
model, and the page says so once in a note rather than on every row.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from faceqa.prompts.cot import emfacs
from faceqa.schema import FaceReport, LabelScore

RACE_NOTE = "Apparent race is not estimated: the offline models have no race model (a VLM backend adds it)."


def _label(value: LabelScore | None) -> str:
    return f"{value.label} ({value.score:.0%})" if value else "—"


def _age(face: FaceReport) -> str:
    if face.age is None:
        return "—"
    if face.age.years is None:
        return face.age.group
    return f"{face.age.group} (~{face.age.years:.0f} y)"


def face_table(faces: Sequence[FaceReport]) -> pd.DataFrame:
    """One row per face: the number drawn on the photo and its apparent attributes with confidence."""
    with_race = any(face.race for face in faces)
    rows = []
    for face in faces:
        row = {"person": face.id, "apparent age": _age(face), "apparent gender": _label(face.gender),
               "apparent emotion": _label(face.emotion)}
        if with_race:
            row["apparent race"] = _label(face.race)
        rows.append(row)
    return pd.DataFrame(rows)


def au_table(faces: dict[str, FaceReport]) -> pd.DataFrame:
    """Action-unit intensities (rows) of each named face (columns, 0..1), then what the AU looks like."""
    names = emfacs()["aus"]
    measured = sorted({au for face in faces.values() for au in face.action_units}, key=lambda au: int(au[2:]))
    rows = []
    for au in measured:
        name, plain = names.get(au, ("action unit", au))
        rows.append({"AU": au, **{who: face.action_units.get(au) for who, face in faces.items()},
                     "movement": f"{name}: {plain}"})
    return pd.DataFrame(rows)


def emotion_frame(faces: dict[str, FaceReport]) -> pd.DataFrame:
    """Apparent emotion distribution: one column per named face, one row per emotion label."""
    return pd.DataFrame({who: face.emotion.scores for who, face in faces.items()
                         if face.emotion and face.emotion.scores})
