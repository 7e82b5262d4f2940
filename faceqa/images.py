"""Decoding any image a user may hand us into one RGB array, or one clear error.

Every entry point (CLI, API, app, dataset builder) decodes through here, so the
same inputs are refused for the same reasons everywhere. Images stay in memory.

The contract: `load_image` returns an HxWx3 uint8 array or raises `BadImage`, whose
`kind` says what went wrong (callers branch on the kind, never on the message) and
whose message is one line. Any exception a decoder raises on hostile bytes (Pillow's
plugins raise OSError, ValueError, SyntaxError, but also RuntimeError, struct.error,
IndexError, MemoryError, ...) is a `BadImage` of kind "damaged": one bad image is a
per-image error, never a crash of the batch it is in.

The work is bounded before any pixel is decoded, from the header alone: at most
`MAX_PIXELS` pixels, and no side longer than `MAX_SIDE`. The side limit exists for
strip images: a 48x333,333 PNG is 20 KB and under the pixel cap, but the detector
keeps a strip's short side at 48 px and so would run on all 16 M pixels of it
(5.5 s and 1.5 GB). With sides up to 20,000 px the detector's input stays under
1 M pixels whatever the shape. Such images are refused, not downscaled: shrinking a
48 px strip would shrink its faces below what the detector can find.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # a 40-megapixel photo is large; more is almost surely a decompression bomb
MAX_SIDE = 20_000  # pixels on the longest side; a longer image is a strip the detector would scan whole

# The file names a folder walk picks up (the CLI's folders, the dataset readers, the chat page's uploader): every
# format `load_image` decodes, so no entry point skips a photo another one would read. GIF gives its first frame;
# AVIF needs Pillow >= 11.2 (built in). Other files are not listed, not refused: `load_image` judges what it is given.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".bmp", ".gif", ".tif", ".tiff")

BadImageKind = Literal["empty", "missing", "not_a_file", "unreadable", "not_an_image", "damaged", "too_large"]


class BadImage(ValueError):
    """The input cannot be used as a photo; the message says why in one line, `kind` says it as data."""

    def __init__(self, message: str, kind: BadImageKind) -> None:
        super().__init__(message)
        self.kind: BadImageKind = kind

    def __reduce__(self) -> tuple[type[BadImage], tuple[str, BadImageKind]]:
        return type(self), (str(self), self.kind)  # survives pickling into and out of worker processes


def load_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a path or encoded bytes into an HxWx3 uint8 RGB array, upright per EXIF.

    Animated images give their first frame; 16-bit, 32-bit, float, CMYK, palette,
    grayscale and alpha images are converted to 8-bit RGB (alpha composited on white).
    """
    if isinstance(source, bytes):
        if not source:
            raise BadImage("empty image data (0 bytes)", "empty")
        return _decode(io.BytesIO(source), "image data", max_pixels)
    name = str(source)
    with _open_regular_file(Path(source), name) as stream:
        return _decode(stream, name, max_pixels)


def _open_regular_file(path: Path, name: str) -> io.BufferedReader:
    """The file opened for reading, or BadImage saying what the path is instead.

    Opened non-blocking and checked with fstat on the open descriptor, so a FIFO (or a
    device) is refused without ever waiting for a writer, and nothing can swap the
    file between the check and the read.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise BadImage(f"{name}: no such file", "missing") from None
    except PermissionError:
        raise BadImage(f"{name}: permission denied (cannot read the file)", "unreadable") from None
    except OSError as error:
        raise BadImage(f"{name}: cannot open ({error.strerror or error})", "unreadable") from None
    info = os.fstat(descriptor)
    what = _not_regular(info.st_mode)
    if what is not None or info.st_size == 0:
        os.close(descriptor)
        if what is not None:
            raise BadImage(f"{name}: is {what}, not a regular file", "not_a_file")
        raise BadImage(f"{name}: empty file (0 bytes)", "empty")
    return os.fdopen(descriptor, "rb")


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _decode(stream: io.BytesIO | io.BufferedReader, name: str, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's metadata warnings on odd files are noise on the terminal
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadImage(f"{name}: {width}x{height} is over the {max_pixels:,}-pixel limit", "too_large")
                if max(width, height) > MAX_SIDE:
                    raise BadImage(f"{name}: {width}x{height} has a side over the {MAX_SIDE:,}-pixel limit",
                                   "too_large")
                image.seek(0)
                image.load()
                return _to_rgb(ImageOps.exif_transpose(image))
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(f"{name}: not an image (unrecognised format)", "not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"{name}: too many pixels (decompression bomb guard)", "too_large") from None
    except Exception as error:  # a decoder's failure on hostile bytes, whatever its type
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise BadImage(f"{name}: damaged or truncated image ({detail})", "damaged") from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit integer or float samples
        wide = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = wide.max() if wide.size and wide.max() > 0 else 1.0
        image = Image.fromarray(np.clip(wide * (255.0 / top), 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))
