"""Talking to an OpenAI-compatible endpoint (vLLM, `faceqa serve`, a hosted model): the client, images as data URLs.

Every caller (the VLM backend, the evaluator's predictors, the chat page's remote backend)
builds its client here and encodes its images here, so a key placeholder, a timeout rule or
an encoding choice is made once. Images travel inline as base64 `data:` URLs, so the server
needs no access to our files and nothing is written to disk. `openai` is imported when a
client is built, so importing this module costs nothing.

Decoded pixels are sent as lossless PNG unless a JPEG quality is given; then they are
encoded by `faceqa.crops.encode_jpeg`, the encoder of the dataset builder's rows, so a
served adapter gets the very bytes a training row of that crop holds.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from typing import TYPE_CHECKING

import numpy as np

from faceqa.crops import encode_jpeg

from .base import ImageLike, to_pil

if TYPE_CHECKING:
    import openai


def openai_client(base_url: str, api_key: str | None, timeout: float, max_retries: int) -> openai.OpenAI:
    """The official client; vLLM ignores the key unless started with --api-key, but the client insists on one."""
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries)


def data_url(data: bytes, mime: str) -> str:
    """Encoded bytes as a `data:<mime>;base64,` URL."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def file_data_url(data: bytes, name: str) -> str:
    """An image file's bytes as a data URL, the type guessed from its name (JPEG when it says nothing)."""
    return data_url(data, mimetypes.guess_type(name)[0] or "image/jpeg")


def image_data_url(image: ImageLike, jpeg_quality: int | None = None) -> str:
    """Decoded pixels as a data URL: lossless PNG, or with `jpeg_quality` the shared JPEG encoder's bytes."""
    pil = to_pil(image)
    if jpeg_quality is not None:
        return data_url(encode_jpeg(np.asarray(pil), jpeg_quality), "image/jpeg")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return data_url(buffer.getvalue(), "image/png")
