"""The face crop, one function for training, serving and evaluation.

A VLM fine-tuned on faces learns what a face crop looks like: how much context
around the face, square or squashed, how the photo's edge is filled. If serving
cut faces differently the model would be asked about pictures unlike any it saw.
So the dataset builder (`faceqa.finetune.crop`) and the VLM attribute engine
(`faceqa.vlm.attributes`) both call `face_crop`, and the margin and size a model was
trained with travel with its adapter (`faceqa.vlm.recipe`).

The crop is a square centred on the face box, its side the box's longer side grown
by `margin` on each side (FairFace's own crops use padding 0.25), resized to `size`.
Parts outside the photo are filled by edge replication rather than black bars: a
black border is a shortcut feature (faces near the photo's edge) that a model would
otherwise learn.

A crop reaches a model as bytes, and the bytes are part of what it learns: a training
row holds each crop as JPEG at the build's quality, artifacts and all. So `encode_jpeg`
is the one encoder of a crop's bytes: the dataset builder writes rows with it, the
evaluator sends those bytes, and the VLM serving path (`faceqa.vlm.endpoint`) encodes at
the quality the adapter's recipe records (`JPEG_QUALITY`, the builder's default, when it
records none). The module is a leaf (numpy and PIL only) so every side imports it
without importing the others.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

MARGIN = 0.25  # context on each side, as a fraction of the face box's longer side
SIZE = 224  # PaliGemma-224's input side
JPEG_QUALITY = 95  # the dataset builder's JPEG quality of face crops, unless a build sets another


def square_around(box: Sequence[float], margin: float) -> tuple[int, int, int]:
    """(left, top, side) of the square centred on `box` (x, y, w, h), its longer side grown by `margin` per side."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), max(1, round(side))


def face_crop(rgb: np.ndarray, box: Sequence[float], margin: float = MARGIN, size: int | None = SIZE) -> np.ndarray:
    """The square crop of the face in `box`, resized to `size` x `size` (None: not resized).

    Raises ValueError when the box does not overlap the image at all.
    """
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    height, width = rgb.shape[:2]
    x, y, w, h = box
    if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"face box {list(box)} lies outside the {width}x{height} image")
    left, top, side = square_around(box, margin)
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:
        rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        left, top = left + pad, top + pad
    region = np.ascontiguousarray(rgb[top:top + side, left:left + side])
    if size is None or size == side:
        return region
    return np.asarray(Image.fromarray(region).resize((size, size), Image.Resampling.BILINEAR))


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """The JPEG bytes of an RGB array at `quality` (PIL's 0-100): a training row's image, what a served adapter gets."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
