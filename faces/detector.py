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


class YuNetDetector:
    """OpenCV's YuNet; large photos are scaled down for detection only, which keeps latency flat."""

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int = 640):
        self.max_side = max_side
        self._net = cv2.FaceDetectorYN.create(str(resolve("detector")), "", (320, 320), score_threshold, nms_threshold)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        rows = rows.astype(np.float64)
        rows[:, :14] /= scale
        return [
            Detection(box=_clip(row[:4], width, height), score=float(row[14]), landmarks5=row[4:14].reshape(5, 2))
            for row in rows
        ]


def _clip(box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), box[0] + box[2]), min(float(height), box[1] + box[3])
    return (x0, y0, x1 - x0, y1 - y0)
