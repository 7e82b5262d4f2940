"""What the engine says about its own uncertainty, beyond a model's confidence.

Gender is hard to tell from the face of a child: on public benchmarks the models here are near
chance for infants and far from reliable before puberty, yet they state it with high confidence.
So when the face's apparent age is under CHILD_YEARS, the gender estimate carries a note that the
assistant can show instead of a bare percentage. The threshold is a round number taken from the
issue's description of the failure (faces that look under about 13), not fitted to any data.
"""

from __future__ import annotations

from faceqa.schema import AgeEstimate, LabelScore

from .base import Attributes

CHILD_YEARS = 13.0
CHILD_GENDER_NOTE = "gender is hard to tell from the face at this apparent age"


def temper_child_gender(face: Attributes) -> Attributes:
    """The face's attributes, with the child note on its gender when its apparent age is under CHILD_YEARS."""
    age, gender = face.get("age"), face.get("gender")
    if not isinstance(age, AgeEstimate) or not isinstance(gender, LabelScore) or age.years is None:
        return face
    if age.years >= CHILD_YEARS:
        return face
    return {**face, "gender": gender.model_copy(update={"note": CHILD_GENDER_NOTE})}
