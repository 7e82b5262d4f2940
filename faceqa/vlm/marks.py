"""Set-of-marks: the engine's numbered face boxes drawn on the photo, and reading a number back.

One drawing for everything that shows or sends numbered faces: the chat page's
annotated photo, the photo a VLM is asked about, and the dataset builder's marked
collages, so the model is trained on the marks it is served and the numbers in its
answers are the numbers in ours (the engine's: left to right from 1). A number the
model names that is not on the photo is rejected, never shown.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceqa.schema import FaceReport, ImageReport

Box = tuple[int, int, int, int]
PLAIN, HIGHLIGHT = (64, 160, 255), (255, 190, 0)
_NUMBER = re.compile(r"(?<![\d.])(\d{1,3})(?!\d|\.\d)")


def draw_marks(image: np.ndarray | Image.Image, marks: Sequence[tuple[int, Box]],
               highlight: Collection[int] = frozenset()) -> Image.Image:
    """A copy of the image with each (number, [x, y, w, h]) box outlined and its number on a tag above it."""
    picture = (image.copy() if isinstance(image, Image.Image) else Image.fromarray(image)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 300))
    font = ImageFont.load_default(size=max(14, round(max(picture.size) / 40)))
    for number, (x, y, w, h) in marks:
        chosen = number in highlight
        colour = HIGHLIGHT if chosen else PLAIN
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=width * (2 if chosen else 1))
        label = str(number)
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        tag = (x, max(0, y - (bottom - top) - 6), x + (right - left) + 8, max(bottom - top + 6, y))
        draw.rectangle(tag, fill=colour)
        draw.text((tag[0] + 4, tag[1] + 1), label, fill=(0, 0, 0), font=font)
    return picture


def marked_photo(image: np.ndarray | Image.Image, report: ImageReport,
                 highlight: Collection[int] = frozenset()) -> Image.Image:
    """The photo with every face of the report boxed and numbered as in the answers."""
    return draw_marks(image, [(face.id, face.box) for face in report.faces], highlight)


def face_summary(face: FaceReport) -> str:
    """One face's apparent attributes in a line, for the model's context ("apparently male (98%), ...")."""
    from faceqa.prompts.taxonomy import display

    parts = []
    if face.gender:
        parts.append(f"apparently {display('gender', face.gender.label)} ({face.gender.score:.0%})")
    if face.race:
        parts.append(f"apparently {display('race', face.race.label)} ({face.race.score:.0%})")
    if face.age:
        parts.append(f"{face.age.group} years" + (f" (about {face.age.years:.0f})" if face.age.years else ""))
    if face.emotion:
        parts.append(f"looking {display('emotion', face.emotion.label)} ({face.emotion.score:.0%})")
    return ", ".join(parts) or "no attributes estimated"


def open_prompt(question: str, report: ImageReport) -> str:
    """An open question about the marked photo, with the per-face report as context."""
    from faceqa.prompts.templates import marks_prompt

    return marks_prompt(question, [(face.id, face_summary(face)) for face in report.faces])


@dataclass(frozen=True)
class MarkReading:
    id: int | None
    reason: str


def read_mark(text: str | None, ids: Collection[int]) -> MarkReading:
    """The one box number an answer names, checked against the boxes drawn; anything else is rejected."""
    numbers = list(dict.fromkeys(int(n) for n in _NUMBER.findall(text or "")))
    drawn = sorted(ids)
    if not numbers:
        return MarkReading(None, "the answer names no box number")
    if len(numbers) > 1:
        return MarkReading(None, f"the answer names several numbers ({', '.join(map(str, numbers))})")
    if numbers[0] not in ids:
        return MarkReading(None, f"the answer names box {numbers[0]}, which is not on the photo "
                                 f"(boxes {', '.join(map(str, drawn)) or 'none'})")
    return MarkReading(numbers[0], f"box {numbers[0]}")
