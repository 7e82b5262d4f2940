"""A synthetic dataset in FairFace's native layout whose labels can be learned from the pixels.

No labelled face dataset can be fetched here, yet the whole loop (build -> fine-tune
-> serve -> evaluate) must run in CI. Each class is a colour; every image of a class
is that colour under a random smooth light pattern, so a model can learn the label
and every image still has its own perceptual hash (flat colours would all collapse
into one near duplicate). The labels are FairFace labels so the real reader, the
taxonomies and the templates are used unchanged. Nothing here resembles a face:
build with crop mode "trust".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class SyntheticClass:
    colour: tuple[int, int, int]
    age: str  # FairFace's spelling ("more than 70")
    gender: str
    race: str


CLASSES = (
    SyntheticClass((215, 40, 40), "3-9", "Female", "East Asian"),
    SyntheticClass((40, 170, 60), "20-29", "Male", "Black"),
    SyntheticClass((45, 80, 215), "40-49", "Female", "White"),
    SyntheticClass((225, 200, 40), "more than 70", "Male", "Indian"),
)


def synthetic_image(label: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Class colour times a random smooth light field (0.5-1.0), plus faint noise."""
    coarse = rng.uniform(0.5, 1.0, (4, 4)).astype(np.float32)
    light = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    noise = rng.normal(0.0, 4.0, (size, size, 3))
    pixels = np.asarray(CLASSES[label].colour, dtype=np.float32) * np.clip(light, 0.4, 1.0)[..., None] + noise
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_fairface_layout(root: str | Path, per_split: dict[str, int], size: int = 64, seed: int = 0,
                          classes: int = len(CLASSES)) -> Path:
    """`root/{split}/N.jpg` and `root/fairface_label_{split}.csv`, classes in turn; returns `root`.

    Existing images are kept (generated once, reused by later runs), so a benchmark
    can cache a large set; the CSV is always rewritten.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in per_split.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        with open(root / f"fairface_label_{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "age", "gender", "race", "service_test"])
            for i in range(count):
                label = i % classes
                name = f"{split}/{i + 1}.jpg"
                path = root / name
                if not path.exists():
                    Image.fromarray(synthetic_image(label, rng, size)).save(path, quality=95)
                c = CLASSES[label]
                writer.writerow([name, c.age, c.gender, c.race, "True"])
    return root



@dataclass(frozen=True)
class SyntheticExpression:
    colour: tuple[int, int, int]
    code: int  # AffectNet's expression code
    action_units: dict[str, float]  # its EMFACS prototype's units, as an AU-annotated dataset gives them


EXPRESSIONS = (
    SyntheticExpression((215, 40, 40), 1, {"AU6": 0.7, "AU12": 0.9}),  # Happy
    SyntheticExpression((40, 170, 60), 2, {"AU1": 0.6, "AU4": 0.5, "AU15": 0.8}),  # Sad
    SyntheticExpression((45, 80, 215), 3, {"AU1": 0.8, "AU2": 0.8, "AU5": 0.6, "AU26": 0.7}),  # Surprise
    SyntheticExpression((225, 200, 40), 6, {"AU4": 0.9, "AU5": 0.5, "AU7": 0.6, "AU23": 0.7}),  # Anger
)


def write_affectnet_layout(root: str | Path, per_split: dict[str, int], size: int = 64, seed: int = 0) -> Path:
    """AffectNet's release layout with AU columns: `Manually_Annotated_Images/`, `training.csv`, `validation.csv`.

    Expressions are colours as in the FairFace layout; each row's AU columns are its
    expression's prototype, so the dataset builder writes Exp-CoT targets for it.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    images = root / "Manually_Annotated_Images"
    images.mkdir(parents=True, exist_ok=True)
    columns = sorted({au for e in EXPRESSIONS for au in e.action_units}, key=lambda au: int(au[2:]))
    for split, count in per_split.items():
        table = {"train": "training.csv", "val": "validation.csv"}[split]
        with open(root / table, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["subDirectory_filePath", "expression", *columns])
            for i in range(count):
                e = EXPRESSIONS[i % len(EXPRESSIONS)]
                name = f"{split}_{i + 1}.jpg"
                if not (images / name).exists():
                    pixels = np.clip(synthetic_image(0, rng, size).astype(np.float32) / np.asarray(CLASSES[0].colour)
                                     * np.asarray(e.colour), 0, 255).astype(np.uint8)
                    Image.fromarray(pixels).save(images / name, quality=95)
                writer.writerow([name, e.code, *(e.action_units.get(au, "") for au in columns)])  # unannotated: blank
    return root
