"""Batches for training: rows of a built dataset -> model inputs with the loss on the answer only.

PaliGemma is a prefix-LM trained on `prefix`/`suffix` pairs; its processor builds
the image tokens, the prefix and the loss mask itself (`suffix=`), exactly as vLLM
rebuilds the prompt at serving time. Chat models (LLaVA, Idefics3, ...) take the
`messages` column through TRL's vision collator as a prompt/completion pair, so
the question is context and only the assistant's answer is learned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faceqa.vlm.recipe import set_prefix_attention


class PaliGemmaCollator:
    def __init__(self, processor, max_length: int | None = None, prefix_attention: str = "image"):
        self.processor = processor
        self.max_length = max_length
        self.prefix_attention = prefix_attention
        self.image_token = processor.tokenizer.convert_ids_to_tokens(processor.image_token_id)

    def __call__(self, rows: list[dict[str, Any]]) -> dict:
        images = [[row["image"].convert("RGB")] for row in rows]
        # The image token in front, as PaliGemma's processor expects; it expands it to the image's tokens.
        prefixes = [self.image_token + row["prefix"] for row in rows]
        batch = self.processor(text=prefixes, images=images, suffix=[row["suffix"] for row in rows],
                               padding="longest", truncation=self.max_length is not None,
                               max_length=self.max_length, return_tensors="pt")
        return set_prefix_attention(batch, self.processor.image_token_id, self.prefix_attention)


class ChatCollator:
    def __init__(self, processor, max_length: int | None = None):
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        self.collator = DataCollatorForVisionLanguageModeling(processor, max_length=max_length,
                                                              completion_only_loss=True)

    def __call__(self, rows: list[dict[str, Any]]) -> dict:
        examples = []
        for row in rows:
            messages = [{"role": m["role"], "content": [_part(p) for p in m["content"]]} for m in row["messages"]]
            examples.append({"images": [row["image"].convert("RGB")], "prompt": messages[:-1],
                             "completion": messages[-1:]})
        return self.collator(examples)


def _part(part: dict) -> dict:
    """Arrow stores every content part with both keys; chat templates want an image part without text."""
    return {"type": "image"} if part["type"] == "image" else {"type": "text", "text": part["text"]}


def collator_for(arch: str, processor, max_length: int | None = None,
                 prefix_attention: str = "image") -> Callable[[list[dict]], dict]:
    if arch == "paligemma":
        return PaliGemmaCollator(processor, max_length, prefix_attention)
    return ChatCollator(processor, max_length)
