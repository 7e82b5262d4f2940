"""Multi-person images made from single-face crops: 2-4 faces side by side.

No public face dataset labels several people per photo, yet the assistant must
answer "how old is the woman on the left?". A row of labelled crops gives such
pictures with a ground truth for every person. Faces stand in one row so "left",
"right", "second from the left" and "person 2" (numbered left to right, as the
face engine numbers faces) are never ambiguous; the row is letterboxed into a
square so the faces are not squashed when a VLM processor resizes to a square.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

BACKGROUND = (128, 128, 128)


def tile_boxes(count: int, side: int, gap: int = 4) -> list[tuple[int, int, int, int]]:
    """[x, y, w, h] of each face's tile in a collage of `count`, left to right (set-of-marks boxes)."""
    if not 2 <= count <= 8:
        raise ValueError(f"a collage holds 2 to 8 faces, got {count}")
    tile = (side - gap * (count - 1)) // count
    return [(i * (tile + gap), (side - tile) // 2, tile, tile) for i in range(count)]


def collage(jpegs: list[bytes], side: int, gap: int = 4) -> np.ndarray:
    """A `side` x `side` RGB image with the faces in one row, left to right in the given order."""
    canvas = Image.new("RGB", (side, side), BACKGROUND)
    for (x, y, tile, _), data in zip(tile_boxes(len(jpegs), side, gap), jpegs, strict=True):
        with Image.open(io.BytesIO(data)) as face:
            face.draft("RGB", (tile, tile))  # JPEG: decode at a reduced scale, no larger than needed
            canvas.paste(face.convert("RGB").resize((tile, tile), Image.Resampling.BILINEAR), (x, y))
    return np.asarray(canvas)

