"""Face detection with YuNet: boxes, a score and five landmarks per face."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceqa.artifacts import resolve


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels
    score: float
    landmarks5: np.ndarray  # 5x2: right eye, left eye, nose tip, right and left mouth corner


MIN_SIDE = 48  # pixels; smaller images (or strips) hold no face YuNet can find


class YuNetDetector:
    """OpenCV's YuNet; large photos are scaled down for detection only, which keeps latency flat."""

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int = 640):
        self.max_side = max_side
        self._net = cv2.FaceDetectorYN.create(str(resolve("detector")), "", (320, 320), score_threshold, nms_threshold)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        if min(height, width) < MIN_SIDE:
            return []  # no detectable face fits; YuNet answers such inputs with garbage boxes
        # Scale the long side down to max_side, but never the short side below MIN_SIDE (a 60x5000 strip).
        scale = min(1.0, max(self.max_side / max(height, width), MIN_SIDE / min(height, width)))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        rows = np.asarray(rows, dtype=np.float64)
        rows[:, :14] = rows[:, :14] / scale
        detections = []
        for row in rows[np.isfinite(rows).all(axis=1)]:
            box = _clip(row[:4], width, height)
            if box[2] >= 1 and box[3] >= 1:
                detections.append(Detection(box=box, score=float(row[14]), landmarks5=row[4:14].reshape(5, 2)))
        return detections


def _clip(box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), box[0] + box[2]), min(float(height), box[1] + box[3])
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))
