"""Saving checkpoints that both transformers and vLLM load.

transformers 5 writes LLaVA/PaliGemma vision towers as `vision_tower.embeddings…`;
vLLM's SigLIP/CLIP loaders only accept `vision_tower.vision_model.…`, the spelling of
released checkpoints, which transformers still reads through its conversion rules.
Every folder faceqa writes for serving (tiny test models, merged LoRA checkpoints)
goes through `save_for_vllm`.
"""

from __future__ import annotations

import re
from pathlib import Path

_TOWER = re.compile(r"^((?:model\.)?vision_tower\.)(?!vision_model\.)")


def rename_vision_weights(folder: Path) -> None:
    """Rewrite `folder`'s safetensors so vision tower keys carry the `vision_model.` level."""
    from safetensors.torch import load_file, save_file

    for path in sorted(Path(folder).glob("*.safetensors")):
        tensors = load_file(path)
        if any(_TOWER.match(k) for k in tensors):
            renamed = {_TOWER.sub(r"\1vision_model.", k): v for k, v in tensors.items()}
            save_file(renamed, path, metadata={"format": "pt"})


def save_for_vllm(model, processor, out: Path) -> Path:
    """Save model and processor to `out` in the layout vLLM and transformers both load."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if model.config.model_type in ("llava", "paligemma"):
        rename_vision_weights(out)
    return out


def merge_lora(base: Path, adapter: Path, out: Path) -> Path:
    """Fold a PEFT LoRA adapter into its base checkpoint and save the result for serving.

    vLLM serves LoRA on the language model only; an adapter that also touched the
    vision tower or projector, or a deployment that wants no LoRA overhead, serves
    the merged folder as a plain model instead.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return save_for_vllm(merged, AutoProcessor.from_pretrained(base, backend="pil"), out)
