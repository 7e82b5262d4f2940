"""What a fine-tuned adapter was trained with, written beside it so everyone runs it the same way.

A LoRA adapter is only right with the prompts, the crop and (PaliGemma) the prefix
attention it was trained with. Flags a user must remember at every command drift:
the wrong prompt style gives a model questions it never saw, the wrong prefix mask
changes its greedy answers. So `faceqa finetune` writes `faceqa_recipe.json` into the
adapter folder, and `serve-vlm`, `faceqa serve --vlm-*`, `faceqa ask --backend vlm`,
`faceqa eval run` and TransformersBackend read it (`--prompt-style auto`, the
default). Clients of a server find the adapter folder through the server's
`/v1/models` (vLLM lists a LoRA adapter with its path as `root`).

PaliGemma's prefix mask (`set_prefix_attention`): transformers (like big_vision)
attends bidirectionally over the whole prefix, image and question (`token_type_ids`
0). vLLM does not: its GPU attention backends make only the image tokens
bidirectional, its CPU backend none at all. A model trained with one mask and served
with another answers differently, so the mask is chosen to match the server: "full"
(transformers), "image" (vLLM on GPU), "causal" (vLLM on CPU).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, cast

from faceqa.crops import JPEG_QUALITY

RECIPE = "faceqa_recipe.json"
PROMPT_STYLES = ("chat", "paligemma")
PromptStyle = Literal["chat", "paligemma"]
PREFIX_ATTENTION = ("full", "image", "causal")


@dataclass(frozen=True)
class Recipe:
    """How an adapter was trained: its base model, prompt wording, PaliGemma prefix mask and face crop."""

    base_model: str  # a local base is recorded as an absolute path, so the adapter works from any directory
    architecture: str
    prompt_style: str  # "paligemma" (answer en ... prefixes, bare answers) or "chat"
    prefix_attention: str | None  # PaliGemma only: full | image | causal
    image_size: int | None  # side of the face crops it was trained on
    crop_margin: float | None
    crop_mode: str | None = None  # the build's `--crop`: "detect" (faces found and cut) or "trust" (images as crops)
    jpeg_quality: int | None = None  # the build's JPEG quality of its face crops (None: the build recorded none)

    def __post_init__(self) -> None:
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got {self.prompt_style!r}")
        if self.prefix_attention is not None and self.prefix_attention not in PREFIX_ATTENTION:
            raise ValueError(f"prefix_attention must be one of {', '.join(PREFIX_ATTENTION)}")

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / RECIPE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Recipe | None:
        """The recipe in `folder`, or None when it has none (a base model, an adapter from elsewhere)."""
        path = Path(folder) / RECIPE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def style_of_architecture(model_type: str | None) -> PromptStyle:
    """The prompt style a checkpoint without a recipe answers: PaliGemma's task prefixes, else chat."""
    return "paligemma" if model_type == "paligemma" else "chat"


def server_mask(cpu: bool) -> str:
    """The prefix attention vLLM gives PaliGemma: none on its CPU backend, over the image on GPU."""
    return "causal" if cpu else "image"


def mask_warning(recipe: Recipe | None, served_with: str, name: str) -> str | None:
    """A sentence when the adapter was trained with another prefix mask than it is served with."""
    if recipe is None or recipe.prefix_attention is None or recipe.prefix_attention == served_with:
        return None
    return (f"{name} was trained with prefix_attention {recipe.prefix_attention!r} but is served with "
            f"{served_with!r}: its answers will differ from the ones it was validated on; retrain with "
            f"prefix_attention: {served_with} for this server")


def set_prefix_attention(batch: Any, image_token_id: int, policy: str) -> Any:
    """Set PaliGemma's `token_type_ids` so its prefix attends the way `policy` says (see the module docstring).

    0 marks prefix tokens (bidirectional), 1 suffix tokens (causal). "full" keeps the
    processor's marks (the whole prompt 0, a training suffix 1). Only `token_type_ids`
    changes; the loss mask is the processor's.
    """
    if policy not in PREFIX_ATTENTION:
        raise ValueError(f"prefix_attention must be one of {', '.join(PREFIX_ATTENTION)}, got {policy!r}")
    if policy == "full":
        if "token_type_ids" not in batch:
            batch["token_type_ids"] = batch["input_ids"].new_zeros(batch["input_ids"].shape)
    elif policy == "image":
        batch["token_type_ids"] = (batch["input_ids"] != image_token_id).long()
    else:
        batch["token_type_ids"] = batch["input_ids"].new_ones(batch["input_ids"].shape)
    return batch


def served_model(base_url: str, model: str, api_key: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """The `/v1/models` entry of `model`; ValueError naming what is served when it is absent or unreachable."""
    request = urllib.request.Request(base_url.rstrip("/") + "/models",
                                     headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            listed = json.loads(response.read())["data"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"cannot list the models of {base_url}: {error}") from None
    for entry in listed:
        if isinstance(entry, dict) and entry.get("id") == model:
            return entry
    names = ", ".join(str(e.get("id")) for e in listed if isinstance(e, dict)) or "none"
    raise ValueError(f"{base_url} does not serve a model named {model!r}; it serves: {names}")


def recipe_of(path: str | Path) -> tuple[Recipe | None, str | None]:
    """(recipe, architecture) of a local adapter or checkpoint folder; (None, None) when it is not readable here."""
    folder = Path(path)
    recipe = Recipe.load(folder) if folder.is_dir() else None
    if recipe is not None:
        return recipe, recipe.architecture
    config = folder / "config.json"
    if config.is_file():
        return None, json.loads(config.read_text()).get("model_type")
    return None, "paligemma" if "paligemma" in str(path).lower() else None


def resolve_style(style: str, recipe: Recipe | None, architecture: str | None) -> PromptStyle:
    """`style` itself, or for "auto" the recipe's, else the architecture's."""
    if style != "auto":
        if style not in PROMPT_STYLES:
            raise ValueError(f"prompt style must be auto, chat or paligemma, got {style!r}")
        return cast(PromptStyle, style)
    return cast(PromptStyle, recipe.prompt_style) if recipe is not None else style_of_architecture(architecture)


def served_recipe(
    style: str, base_url: str, model: str, api_key: str | None = None,
) -> tuple[PromptStyle, Recipe | None]:
    """The prompt style for `model` at an OpenAI-compatible server, and its adapter's recipe when readable here.

    Checks first that the server serves `model`. The recipe is found through the folder
    the server names (vLLM's `root`, else the LoRA's `parent`); with "auto" the style is
    the recipe's, else that folder's architecture's, else chat. The recipe also says
    which face crop the adapter was trained on (`crop_of`).
    """
    entry = served_model(base_url, model, api_key)
    for path in (entry.get("root"), entry.get("parent")):
        if path:
            recipe, architecture = recipe_of(path)
            if recipe is not None or architecture is not None:
                return resolve_style(style, recipe, architecture), recipe
    return resolve_style(style, None, None) if style != "auto" else "chat", None


def crop_of(recipe: Recipe | None) -> dict[str, Any]:
    """The face crop an adapter was trained on, as VLMAttributesConfig fields (margin, crop_size); {} if unknown."""
    if recipe is None:
        return {}
    trained = {"margin": recipe.crop_margin, "crop_size": recipe.image_size}
    return {name: value for name, value in trained.items() if value is not None}


def jpeg_quality_of(recipe: Recipe | None) -> int | None:
    """The JPEG quality to send an adapter's images at: its build's (the builder's default when it recorded none).

    None without a recipe (a base or hosted model): no training encoding to match, so images go as PNG."""
    if recipe is None:
        return None
    return recipe.jpeg_quality if recipe.jpeg_quality is not None else JPEG_QUALITY
