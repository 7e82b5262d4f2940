"""Numbered face boxes drawn on a photo, with the faces an answer is about highlighted.

The drawing is the set-of-marks one (`faceqa.vlm.marks`): the page shows the numbers the
answers use and a VLM is shown.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from faceqa.schema import ImageReport
from faceqa.vlm.marks import marked_photo


def annotate(rgb: np.ndarray, report: ImageReport, highlight: set[int] | frozenset[int] = frozenset()) -> Image.Image:
    """The photo with every face boxed and numbered as in the answers (left to right, from 1)."""
    return marked_photo(rgb, report, highlight)
