"""Head pose (yaw, pitch, roll in degrees) from six of the 68 landmarks and a generic 3-D face."""

from __future__ import annotations

import cv2
import numpy as np

from faceqa.schema import Pose

# Generic head model in OpenCV's camera frame (x right, y down, z away from the camera), arbitrary
# units, for landmarks nose tip 30, chin 8, eye outer corners 36 and 45, mouth corners 48 and 54.
_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, 330.0, 65.0),
        (-225.0, -170.0, 135.0),
        (225.0, -170.0, 135.0),
        (-150.0, 150.0, 125.0),
        (150.0, 150.0, 125.0),
    ],
    dtype=np.float64,
)
_INDICES = [30, 8, 36, 45, 48, 54]


def head_pose(landmarks68: np.ndarray, width: int, height: int) -> Pose:
    """Yaw > 0: the face turns towards the image's right; pitch > 0: looks up; roll > 0: clockwise tilt."""
    image_points = np.ascontiguousarray(landmarks68[_INDICES], dtype=np.float64)
    focal = float(max(width, height))
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)
    ok, rotation, _ = cv2.solvePnP(_MODEL, image_points, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return Pose(yaw=0.0, pitch=0.0, roll=0.0)
    matrix, _ = cv2.Rodrigues(rotation)
    pitch = np.degrees(np.arctan2(matrix[2, 1], matrix[2, 2]))
    yaw = np.degrees(np.arcsin(np.clip(-matrix[2, 0], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))
    return Pose(yaw=round(float(-yaw), 1), pitch=round(float(_wrap(pitch)), 1), roll=round(float(roll), 1))


def _wrap(angle: float) -> float:
    """solvePnP may return the face seen from behind (pitch near ±180); fold it back to the front."""
    if angle > 90:
        return angle - 180
    if angle < -90:
        return angle + 180
    return angle
