"""Geometric action-unit cues: how far a face's landmarks have moved from a neutral face.

These are *estimates from geometry*, not an AU detector. Landmarks are put in
an eye-aligned frame (eye line horizontal, inter-ocular distance 1), each cue
measures one distance there, and its intensity is the change from the same
distance on the mean 300-W face (data/neutral_face_68.toml), divided by the
change we take as full intensity, clipped to [0, 1]. A face whose resting shape
differs from the mean (a low brow, a wide mouth) reads as a small AU at rest;
cheek raise and nose wrinkle are only approximations, since geometry sees their
side effects (narrowed eyes, a shorter nose-to-lip gap), not the muscles.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

import numpy as np

# Full-intensity change of each cue, in inter-ocular distances.
FULL_SCALE = {
    "AU1": 0.10,
    "AU2": 0.10,
    "AU4": 0.08,
    "AU5": 0.06,
    "AU6": 0.06,
    "AU9": 0.06,
    "AU12": 0.08,
    "AU15": 0.06,
    "AU20": 0.25,
    "AU25": 0.15,
    "AU26": 0.35,
}


def _aligned(points: np.ndarray) -> np.ndarray:
    """Rotate, scale and shift 68 landmarks so the eyes sit at (-0.5, 0) and (0.5, 0)."""
    right_eye, left_eye = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    axis = left_eye - right_eye
    distance = float(np.hypot(*axis)) or 1.0
    cos, sin = axis / distance
    rotation = np.array([[cos, sin], [-sin, cos]])
    return (points - (right_eye + left_eye) / 2) @ rotation.T / distance


def measures(points: np.ndarray) -> dict[str, float]:
    """Raw distances (inter-ocular units, y pointing down) that the cues compare with the neutral face."""
    p = _aligned(np.asarray(points, dtype=np.float64))
    y = p[:, 1]
    eye_open = np.mean([y[41] - y[37], y[40] - y[38], y[47] - y[43], y[46] - y[44]])
    return {
        "inner_brow": float(np.mean([y[39] - y[21], y[42] - y[22]])),
        "outer_brow": float(np.mean([y[36] - y[18], y[45] - y[25]])),
        "brow_gap": float(p[22, 0] - p[21, 0]),
        "eye_open": float(eye_open),
        "nose_to_lip": float(y[51] - y[33]),
        "corner_to_nose": float(np.mean([y[48], y[54]]) - y[33]),
        "mouth_width": float(np.hypot(*(p[54] - p[48]))),
        "lip_gap": float(y[66] - y[62]),
        "jaw": float(y[8] - y[33]),
    }


@cache
def neutral() -> dict[str, float]:
    text = resources.files(__package__).joinpath("data/neutral_face_68.toml").read_text()
    return measures(np.array(tomllib.loads(text)["points"]))


def action_units(points: np.ndarray) -> dict[str, float]:
    """Intensity in [0, 1] of each geometric AU cue for one face's 68 landmarks."""
    m, n = measures(points), neutral()

    def rise(key: str, au: str) -> float:
        return float(np.clip((m[key] - n[key]) / FULL_SCALE[au], 0.0, 1.0))

    def fall(key: str, au: str) -> float:
        return float(np.clip((n[key] - m[key]) / FULL_SCALE[au], 0.0, 1.0))

    # Mouth corners ride down about half of any jaw drop; discount that before judging corner movement.
    corner = m["corner_to_nose"] - n["corner_to_nose"] - 0.5 * max(0.0, m["jaw"] - n["jaw"])
    lip_corner_pull = float(np.clip(-corner / FULL_SCALE["AU12"], 0.0, 1.0))
    cues = {
        "AU1": rise("inner_brow", "AU1"),
        "AU2": rise("outer_brow", "AU2"),
        "AU4": (fall("inner_brow", "AU4") + fall("brow_gap", "AU4")) / 2,
        "AU5": rise("eye_open", "AU5"),
        "AU6": fall("eye_open", "AU6"),
        # A smile shortens the nose-to-lip gap too; only the part a smile does not explain counts.
        "AU9": fall("nose_to_lip", "AU9") * (1.0 - lip_corner_pull),
        "AU12": lip_corner_pull,
        "AU15": float(np.clip(corner / FULL_SCALE["AU15"], 0.0, 1.0)),
        # Likewise a smile widens the mouth: only widening without lifted corners is lip stretch.
        "AU20": rise("mouth_width", "AU20") * (1.0 - lip_corner_pull),
        "AU25": rise("lip_gap", "AU25"),
        "AU26": rise("jaw", "AU26"),
    }
    return {au: round(value, 3) for au, value in cues.items()}
