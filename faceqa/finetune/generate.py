"""Answer rows of a built dataset with a transformers model, and score them against the ground truth.

Used for the label accuracy logged at every evaluation during training, and by
tests that check a fine-tuned model before it is served.
"""

from __future__ import annotations

from typing import Any

from faceqa.prompts import templates
from faceqa.prompts.taxonomy import normalize


def prompt_inputs(arch: str, processor, rows: list[dict[str, Any]], prefix_attention: str = "image") -> Any:
    """The model inputs of the rows' questions, without their answers (left-padded for generation)."""
    images = [[row["image"].convert("RGB")] for row in rows]
    if arch == "paligemma":
        from faceqa.vlm.recipe import set_prefix_attention

        token = processor.tokenizer.convert_ids_to_tokens(processor.image_token_id)
        batch = processor(text=[token + row["prefix"] for row in rows], images=images, padding="longest",
                          padding_side="left", return_tensors="pt")
        return set_prefix_attention(batch, processor.image_token_id, prefix_attention)
    prompts = [[{"role": m["role"], "content": [{"type": "image"} if p["type"] == "image" else
                                                {"type": "text", "text": p["text"]} for p in m["content"]]}
                for m in row["messages"][:-1]] for row in rows]
    texts = processor.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False)
    return processor(text=texts, images=images, padding="longest", padding_side="left", return_tensors="pt",
                     add_special_tokens=False)


def generate_answers(model, processor, arch: str, rows: list[dict[str, Any]], max_new_tokens: int = 24,
                     prefix_attention: str = "image") -> list[str]:
    import torch

    inputs = prompt_inputs(arch, processor, rows, prefix_attention).to(model.device)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = output[:, inputs["input_ids"].shape[1]:]
    return [text.strip() for text in processor.batch_decode(new, skip_special_tokens=True)]


def label_correct(row: dict[str, Any], answer: str) -> bool | None:
    """Whether a single-label answer names the row's ground truth; None for tasks with no single label."""
    attribute = templates.task(row["task"]).attribute if row["task"] in templates.tasks() else None
    if attribute is None:
        return None
    truth = normalize(attribute, row["suffix"])
    return truth is not None and normalize(attribute, answer) == truth
