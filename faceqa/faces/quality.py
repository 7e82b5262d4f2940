"""How far a face's attributes can be trusted: size and sharpness of the face crop."""

from __future__ import annotations

import cv2
import numpy as np

MIN_FACE = 48  # below this many pixels the chips the models see are upsampled noise
MIN_SHARPNESS = 40.0  # variance of the Laplacian on a 112-pixel crop; lower looks blurred


def assess(gray: np.ndarray, box: tuple[float, float, float, float]) -> tuple[int, float, str]:
    """(face size in pixels, sharpness, note) for one face."""
    x, y, w, h = (int(round(v)) for v in box)
    crop = gray[max(0, y) : y + h, max(0, x) : x + w]
    size = min(w, h)
    sharpness = float(cv2.Laplacian(cv2.resize(crop, (112, 112)), cv2.CV_64F).var()) if crop.size else 0.0
    problems = []
    if size < MIN_FACE:
        problems.append(f"small face ({size}px)")
    if sharpness < MIN_SHARPNESS:
        problems.append("blurred")
    return size, sharpness, "; ".join(problems) or "ok"
