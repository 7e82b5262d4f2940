"""Decoding any image a user may hand us into one RGB array, or one clear error.

Every entry point (CLI, API, app, dataset builder) decodes through here, so the
same inputs are refused for the same reasons everywhere. Images stay in memory.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # a 40-megapixel photo is large; more is almost surely a decompression bomb


class BadImage(ValueError):
    """The input cannot be used as a photo; the message says why in one line."""


def load_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a path or encoded bytes into an HxWx3 uint8 RGB array, upright per EXIF.

    Animated images give their first frame; 16-bit, CMYK, palette, grayscale and
    alpha images are converted to 8-bit RGB (alpha composited on white).
    """
    if isinstance(source, bytes):
        if not source:
            raise BadImage("empty image data (0 bytes)")
        stream: io.BytesIO | Path = io.BytesIO(source)
        name = "image data"
    else:
        stream = Path(source)
        name = str(stream)
        if not stream.exists():
            raise BadImage(f"{name}: no such file")
        if stream.is_dir():
            raise BadImage(f"{name}: is a directory")
        if stream.stat().st_size == 0:
            raise BadImage(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadImage(f"{name}: {width}x{height} is over the {max_pixels:,}-pixel limit")
                image.seek(0)
                image.load()
                return _to_rgb(ImageOps.exif_transpose(image))
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"{name}: too many pixels (decompression bomb guard)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImage(f"{name}: damaged or truncated image ({error})") from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        top = wide.max() or 1.0
        image = Image.fromarray((wide * (255.0 / top)).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))
