"""The one interface the evaluator runs: a predictor answers one task about one labelled image.

Adapters (embedded engine, OpenAI-compatible endpoint, in-process VLM backend) stay
thin: they produce a canonical label or None (unanswered: unparseable text, no face),
the raw text when there is one, and the latency they measured themselves. The runner
calls `predict_batch`, one job at a time unless a predictor batches (`batching`: the Ray
predictor sends several jobs per request).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from faceqa.crops import JPEG_QUALITY
from faceqa.datasets.readers import FaceRecord
from faceqa.prompts.taxonomy import ATTRIBUTES

if TYPE_CHECKING:
    from faceqa.finetune.crop import CropConfig
    from faceqa.vlm.recipe import Recipe

IMAGE = {"type": "image"}  # where the image goes in a prompt; each adapter sends it its own way


def prompts(style: str = "chat") -> dict[str, list[dict[str, Any]]]:
    """Per task, the chat messages that ask it, worded by `faceqa.prompts` templates like the training data.

    "chat" adds the system prompt; "paligemma" is the bare question its fine-tuning used.
    """
    from faceqa.prompts import templates

    system = [{"role": "system", "content": templates.system_prompt()}] if style == "chat" else []
    return {
        task: [*system, {"role": "user", "content": [IMAGE, {"type": "text", "text": templates.question(task, style)}]}]
        for task in ATTRIBUTES
    }


AUTO, AS_IS = "auto", "as-is"  # `--crop`: the build's crop the recipe records; the dataset's images, unchanged


def trained_crop(crop: str, recipe: Recipe | None) -> CropConfig | None:
    """The face crop a VLM is shown for `--crop` (None: the images as they are).

    "auto" is the build's crop the adapter's recipe records (as-is without one); "detect" or
    "trust" that crop mode with the recipe's margin and size (the builder's defaults without)."""
    from faceqa.finetune.crop import CROP_MODES, CropConfig

    if crop == AUTO:
        if recipe is None or recipe.crop_mode is None:
            return None
        crop = recipe.crop_mode
    if crop == AS_IS:
        return None
    if crop not in CROP_MODES:
        raise ValueError(f"--crop must be {AUTO}, {AS_IS} or one of {', '.join(CROP_MODES)}, got {crop!r}")
    defaults = CropConfig()
    margin = recipe.crop_margin if recipe and recipe.crop_margin is not None else defaults.margin
    size = recipe.image_size if recipe and recipe.image_size is not None else defaults.size
    return CropConfig(mode=crop, margin=margin, size=size)


class UnusableInput(ValueError):
    """This item can never be answered (unreadable image, missing file): record it, don't retry it."""


def encoded_image(item: FaceRecord) -> bytes:
    """The item's image bytes, or UnusableInput saying why there are none."""
    try:
        data = item.payload()
    except OSError as error:
        raise UnusableInput(f"{item.key}: {error.strerror or error}") from None
    if not data:
        raise UnusableInput(f"{item.key}: empty file (0 bytes)")
    return data


class ModelImage:
    """What a VLM is shown of an item: the dataset's image as it is, or the face crop its adapter was trained on.

    With a crop, the item goes through the dataset builder's own steps (`FaceCropper.of_record`,
    then `encode_jpeg`): the labelled face found (or taken from the dataset's box, or the image
    trusted as a crop), cut with the recipe's margin and size and encoded at the JPEG quality the
    build recorded, so a model is scored on the very bytes a training row holds. A build that
    recorded no quality (an older one) gets the builder's default, and `describe` says so. An
    image with no face to cut is an unusable input, recorded once. The evaluator's threads take
    turns at the detector (its OpenCV network is not safe to share) while their endpoint calls
    overlap.
    """

    def __init__(self, crop: CropConfig | None = None, jpeg_quality: int | None = None):
        self.crop = crop
        self.recorded_quality = jpeg_quality  # the build's, from the adapter's recipe; None: not recorded
        self._lock = threading.Lock()

    @property
    def jpeg_quality(self) -> int:
        """The quality crops are encoded at: the build's, else the builder's default."""
        return self.recorded_quality if self.recorded_quality is not None else JPEG_QUALITY

    @cached_property
    def _cropper(self):
        from faceqa.finetune.crop import FaceCropper

        assert self.crop is not None  # only asked for when cropping
        return FaceCropper(self.crop)

    def tag(self) -> str:
        """How the images differ from the dataset's, for cache names and the card ("" when they do not)."""
        if self.crop is None:
            return ""
        return f"crop={self.crop.mode},{self.crop.margin:g},{self.crop.size},q{self.jpeg_quality}"

    def describe(self) -> str:
        """For the model card."""
        if self.crop is None:
            return "the dataset's images as they are"
        quality = (f"JPEG quality {self.jpeg_quality}" if self.recorded_quality is not None else
                   f"JPEG quality {self.jpeg_quality}, the builder's default: no recipe recorded one")
        return (f"face crops cut as the dataset builder cuts them ({self.crop.mode}, margin {self.crop.margin:g}, "
                f"{self.crop.size} px, {quality})")

    def __call__(self, item: FaceRecord) -> bytes:
        if self.crop is None:
            return encoded_image(item)
        from faceqa.crops import encode_jpeg
        from faceqa.finetune.crop import NoFace
        from faceqa.images import BadImage

        try:
            with self._lock:
                crop = self._cropper.of_record(item)
        except (BadImage, NoFace) as error:
            raise UnusableInput(f"{item.key}: {error}") from None
        return encode_jpeg(crop.rgb, self.jpeg_quality)


@dataclass(frozen=True)
class Prediction:
    label: str | None
    latency: float
    text: str | None = None
    years: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def answered(task: str, text: str, latency: float) -> Prediction:
    """A model's text read by the shared parser: its label, or unanswered with the parser's reason."""
    from faceqa.prompts.parser import parse_answer

    parsed = parse_answer(task, text)
    if parsed.ok:
        return Prediction(parsed.label, latency, text=text)
    return Prediction(None, latency, text=text, reason=parsed.reason)


class Predictor(ABC):
    """`name` identifies the model in the prediction cache: change it when the answers would change."""

    name: str
    tasks: tuple[str, ...] = ATTRIBUTES

    @abstractmethod
    def predict(self, item: FaceRecord, task: str) -> Prediction:
        """Answer `task` for `item`. Raise for a bad input or a failed call; never return a guess."""

    def batching(self, concurrency: int) -> tuple[int, int]:
        """How the runner calls `predict_batch` at `concurrency`: (jobs per call, calls at once)."""
        return 1, concurrency

    def predict_batch(self, jobs: Sequence[tuple[FaceRecord, str]]) -> list[Prediction | Exception]:
        """Each job's prediction or the error its `predict` raised, in order."""
        outcomes: list[Prediction | Exception] = []
        for item, task in jobs:
            try:
                outcomes.append(self.predict(item, task))
            except Exception as error:  # the runner tells the input's fault from the call's
                outcomes.append(error)
        return outcomes

    def describe(self) -> dict[str, Any]:
        """Model details for the model card: what it is, where it comes from, its licences."""
        return {"name": self.name}

    def is_transient(self, error: Exception) -> bool:
        """Whether `error` is the call's fault (retry it next run) rather than this input's (record it)."""
        return isinstance(error, OSError | TimeoutError)

    def close(self) -> None:  # noqa: B027 - optional hook, most predictors hold nothing
        """Release clients or models."""
