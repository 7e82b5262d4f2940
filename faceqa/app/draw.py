"""Numbered face boxes drawn on a photo, with the faces an answer is about highlighted."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceqa.schema import ImageReport

PLAIN, HIGHLIGHT = (64, 160, 255), (255, 190, 0)


def annotate(rgb: np.ndarray, report: ImageReport, highlight: set[int] | frozenset[int] = frozenset()) -> Image.Image:
    """The photo with every face boxed and numbered as in the answers (left to right, from 1)."""
    image = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    font = ImageFont.load_default(size=max(14, round(max(image.size) / 40)))
    for face in report.faces:
        x, y, w, h = face.box
        chosen = face.id in highlight
        colour = HIGHLIGHT if chosen else PLAIN
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=width * (2 if chosen else 1))
        label = str(face.id)
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        tag = (x, max(0, y - (bottom - top) - 6), x + (right - left) + 8, max(bottom - top + 6, y))
        draw.rectangle(tag, fill=colour)
        draw.text((tag[0] + 4, tag[1] + 1), label, fill=(0, 0, 0), font=font)
    return image
