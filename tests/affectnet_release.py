"""A miniature of AffectNet's 2017 release layout, for the reader, the builder and the evaluator.

    ROOT/Manually_Annotated_Images/<dir>/<sha>.jpg   (whole photos; the face is a box inside)
    ROOT/Manually_Annotated_file_lists/training.csv  (also accepted beside the images folder)
    ROOT/Manually_Annotated_file_lists/validation.csv

with the release's columns: subDirectory_filePath (relative to the images folder),
face_x, face_y, face_width, face_height, facial_landmarks, expression (0-10), valence,
arousal. Every photo is grey with a coloured square where its box is, so a test can
tell a crop of the box from a crop of the whole photo.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from PIL import Image

HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
          "expression", "valence", "arousal"]
FACE = (200, 40, 40)  # the box's colour; the rest of the photo is grey
PHOTO = (96, 64)  # width, height: not square, not a face crop


def write_affectnet_release(root: Path, training: list[int], validation: list[int],
                            lists_folder: bool = True) -> Path:
    """Write photos and CSVs whose rows have these expression codes; returns `root`."""
    root = Path(root)
    lists = root / "Manually_Annotated_file_lists" if lists_folder else root
    lists.mkdir(parents=True, exist_ok=True)
    for name, codes in (("training.csv", training), ("validation.csv", validation)):
        with open(lists / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for i, code in enumerate(codes):
                sha = hashlib.sha1(f"{name}{i}".encode()).hexdigest()
                relative = f"{i % 3 + 1}/{sha}.jpg"
                path = root / "Manually_Annotated_Images" / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                box = (40 + i % 5, 10, 30, 34)
                photo = Image.new("RGB", PHOTO, (128, 128, 128))
                photo.paste(FACE, (box[0], box[1], box[0] + box[2], box[1] + box[3]))
                photo.save(path, quality=95)
                landmarks = ";".join(f"{box[0] + j % 30}.0;{box[1] + j % 34}.0" for j in range(68))
                writer.writerow([relative, *box, landmarks, code, "0.5", "-0.25"])
    return root
