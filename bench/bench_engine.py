"""Embedded engine benchmark: model load time, per-image latency, and the pipeline's overhead ratio.

The overhead ratio is the whole `FaceEngine.analyze` time divided by the sum of the
raw model calls it makes (YuNet, both dlib shape predictors, the age and gender
networks, the emotion network) on the same image, timed alternately in the same
run so machine noise hits both alike. Everything else (decoding aside: images are
decoded once up front) is ours: chips, pose, AU cues, quality, the report.

    python bench/bench_engine.py [--runs 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from record import save

from faceqa.faces import engine as engine_module
from faceqa.faces.age_gender import AGE_CHIP, GENDER_CHIP
from faceqa.faces.engine import EngineConfig, FaceEngine
from faceqa.faces.landmarks import chip
from faceqa.images import load_image

EXAMPLES = Path(__file__).resolve().parent.parent / "faceqa" / "examples"


def raw_model_seconds(engine: FaceEngine, rgb: np.ndarray) -> float:
    """Time only the model calls the pipeline makes for this image (inputs prepared outside the clock)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    spent = 0.0
    start = time.perf_counter()
    detections = engine.detector.detect(rgb)
    spent += time.perf_counter() - start
    boxes = [d.box for d in detections]
    start = time.perf_counter()
    for box in boxes:
        engine.landmarks.shape(rgb, box)
    shapes = [engine.chips.shape(rgb, box) for box in boxes]
    spent += time.perf_counter() - start
    age_chips = engine_module._with_mirrors([chip(rgb, s, AGE_CHIP) for s in shapes])
    gender_chips = engine_module._with_mirrors([chip(rgb, s, GENDER_CHIP) for s in shapes])
    start = time.perf_counter()
    engine.age.predict(age_chips)
    engine.gender.predict(gender_chips)
    for box in boxes:
        engine.emotion.predict(gray, box)
    return spent + time.perf_counter() - start


def measure(engine: FaceEngine, rgb: np.ndarray, runs: int) -> dict:
    engine.analyze(rgb)  # warm caches and lazy allocations
    pipeline, raw = [], []
    for _ in range(runs):
        start = time.perf_counter()
        report = engine.analyze(rgb)
        pipeline.append(time.perf_counter() - start)
        raw.append(raw_model_seconds(engine, rgb))
    return {
        "faces": len(report.faces),
        "median_ms": round(1000 * statistics.median(pipeline), 1),
        "p90_ms": round(1000 * float(np.percentile(pipeline, 90)), 1),
        "raw_models_median_ms": round(1000 * statistics.median(raw), 1),
        "overhead_ratio": round(sum(pipeline) / sum(raw), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    engine = FaceEngine(EngineConfig(threads=args.threads)).load()
    load_seconds = time.perf_counter() - start
    results = {"threads": args.threads, "runs": args.runs, "model_load_s": round(load_seconds, 2)}
    for name in ("astronaut.png", "group.jpg"):
        results[name] = measure(engine, load_image(EXAMPLES / name), args.runs)
    save("engine", results)


if __name__ == "__main__":
    main()
