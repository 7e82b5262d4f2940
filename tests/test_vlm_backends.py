"""The VLM interface and TransformersBackend on tiny random checkpoints (no server, no download).

The tiny models' words are random: tests check determinism, constraints, adapters
and error handling, never what the text says.
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import pytest
from conftest import noise
from pydantic import BaseModel, ConfigDict

from faceqa.vlm.base import GenerationParams, VLMError, VLMRequest, to_messages, to_pil

PROMPT = "How old does the person in this photo look?"


class Attributes(BaseModel):
    """Bounded like faceqa's attribute answers: a free string could run on until max_tokens."""

    model_config = ConfigDict(extra="forbid")
    age_group: Literal["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
    smiling: bool


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints):
    """Each architecture and its LoRA adapter (the run's shared ones)."""
    from faceqa.dev.tiny import ARCHS

    for arch in ARCHS:
        tiny_checkpoints.lora(arch)
    return tiny_checkpoints.root


@pytest.fixture(scope="module")
def backends(tiny):
    from faceqa.vlm.transformers_backend import TransformersBackend

    cache: dict[tuple[str, bool], TransformersBackend] = {}

    def get(arch: str, lora: bool = False) -> TransformersBackend:
        if (arch, lora) not in cache:
            adapter = tiny / f"{arch}-lora" if lora else None
            cache[arch, lora] = TransformersBackend(tiny / arch, adapter=adapter)
        return cache[arch, lora]

    return get


# -- the interface ------------------------------------------------------------------------------


def test_plain_prompt_puts_images_first_in_one_user_turn():
    messages = to_messages([noise(0), noise(1)], "Compare them.")
    assert messages == [
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare them."}]}
    ]


def test_messages_without_image_parts_get_images_on_the_last_user_turn():
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi"},
        {"role": "user", "content": "Who is smiling?"},
    ]
    messages = to_messages([noise(0)], history)
    assert messages[3]["content"] == [{"type": "image"}, {"type": "text", "text": "Who is smiling?"}]
    assert history[3]["content"] == "Who is smiling?"  # the caller's list is not modified


@pytest.mark.parametrize(
    ("images", "prompt", "error"),
    [
        ([], "  ", "empty prompt"),
        ([noise(0)], [], "no messages"),
        ([noise(0)], [{"role": "robot", "content": "x"}], "unknown message role"),
        ([noise(0)], [{"role": "user", "content": [{"type": "image"}, {"type": "image"}]}], "refer to 2 images"),
        ([noise(0)], [{"role": "system", "content": "x"}], "no user message"),
    ],
)
def test_bad_prompts_are_refused_clearly(images, prompt, error):
    with pytest.raises(ValueError, match=error):
        to_messages(images, prompt)


def test_to_pil_accepts_rgb_arrays_and_refuses_others():
    assert to_pil(noise(0)).size == (40, 48)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        to_pil(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        to_pil(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(TypeError):
        to_pil("photo.jpg")


def test_generation_params_are_validated():
    with pytest.raises(ValueError, match="not both"):
        GenerationParams(json_schema={"type": "object"}, choices=("a",))
    with pytest.raises(ValueError, match="max_tokens"):
        GenerationParams(max_tokens=0)
    with pytest.raises(ValueError, match="choices"):
        GenerationParams(choices=("a", ""))


# -- tiny checkpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["paligemma", "llava", "idefics3"])
def test_tiny_checkpoint_loads_completely_and_is_small(tiny, arch):
    from safetensors import safe_open
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    folder = tiny / arch
    _, info = AutoModelForImageTextToText.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000
    with safe_open(folder / "model.safetensors", "pt") as weights:
        towers = [k for k in weights.keys() if "vision_tower" in k]  # noqa: SIM118 - safe_open has no __iter__
    assert all(".vision_tower.vision_model." in "." + k for k in towers)  # the spelling vLLM loads
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "\n" in tokenizer.get_vocab()  # vLLM's PaliGemma looks the literal newline up
    assert tokenizer.chat_template


def test_tiny_checkpoints_are_reproducible(tmp_path):
    from safetensors.torch import load_file

    from faceqa.dev.tiny import make_tiny_vlm

    a = load_file(make_tiny_vlm("llava", tmp_path / "a", seed=3) / "model.safetensors")
    b = load_file(make_tiny_vlm("llava", tmp_path / "b", seed=3) / "model.safetensors")
    c = load_file(make_tiny_vlm("llava", tmp_path / "c", seed=4) / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)


def test_unknown_architecture_is_refused(tmp_path):
    from faceqa.dev.tiny import make_tiny_vlm

    with pytest.raises(ValueError, match="paligemma, llava, idefics3"):
        make_tiny_vlm("qwen", tmp_path)


def test_tiny_lora_touches_only_the_language_model(tiny):
    from safetensors import safe_open

    for arch in ("paligemma", "llava", "idefics3"):
        with safe_open(tiny / f"{arch}-lora" / "adapter_model.safetensors", "pt") as weights:
            keys = list(weights.keys())  # noqa: SIM118
            assert keys and all(("language_model" in k or "text_model" in k) for k in keys)
            assert all(weights.get_tensor(k).abs().sum() > 0 for k in keys)


# -- TransformersBackend ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["paligemma", "llava", "idefics3"])
def test_greedy_generation_is_deterministic_and_counts_tokens(backends, arch):
    backend = backends(arch)
    params = GenerationParams(max_tokens=8)
    first = backend.complete([noise(0)], PROMPT, params)
    again = backend.complete([noise(0)], PROMPT, params)
    assert first == again
    assert first.prompt_tokens > 16  # image tokens + prompt
    assert 1 <= first.completion_tokens <= 8
    assert first.finish_reason in ("stop", "length")


@pytest.mark.parametrize("arch", ["paligemma", "llava", "idefics3"])
def test_lora_adapter_changes_greedy_output(backends, arch):
    params = GenerationParams(max_tokens=8)
    assert backends(arch).generate([noise(0)], PROMPT, params) != backends(arch, lora=True).generate(
        [noise(0)], PROMPT, params
    )


def test_the_image_reaches_the_model(backends):
    backend = backends("idefics3", lora=True)
    params = GenerationParams(max_tokens=8)
    answers = {backend.generate([noise(seed)], "Describe the face.", params) for seed in range(4)}
    assert len(answers) > 1


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_batch_matches_one_by_one(backends, arch):
    backend = backends(arch, lora=True)
    params = GenerationParams(max_tokens=6)
    requests = [VLMRequest([noise(s)], p) for s in range(2) for p in (PROMPT, "Describe the face in detail please.")]
    batched = backend.generate_batch(requests, params)
    assert batched == [backend.generate(r.images, r.prompt, params) for r in requests]


def test_a_bad_item_does_not_sink_the_batch(backends):
    backend = backends("paligemma", lora=True)
    params = GenerationParams(max_tokens=4)
    requests = [
        VLMRequest([noise(0)], PROMPT),
        VLMRequest([noise(0), noise(1)], PROMPT),  # PaliGemma takes one image
        VLMRequest([noise(1)], PROMPT),
    ]
    results = backend.generate_batch(requests, params)
    assert isinstance(results[1], VLMError) and "one image" in str(results[1])
    assert results[0] == backend.generate([noise(0)], PROMPT, params)
    assert results[2] == backend.generate([noise(1)], PROMPT, params)


@pytest.mark.parametrize("arch", ["paligemma", "llava", "idefics3"])
def test_choice_output_is_one_of_the_choices(backends, arch):
    choices = ("happy", "sad", "neutral", "surprised")
    params = GenerationParams(max_tokens=8, choices=choices)
    for seed in range(2):
        assert backends(arch, lora=True).generate([noise(seed)], "Which emotion?", params) in choices


@pytest.mark.parametrize("arch", ["paligemma", "llava", "idefics3"])
def test_json_output_validates_against_its_schema(backends, arch):
    params = GenerationParams(max_tokens=48, json_schema=Attributes.model_json_schema())
    text = backends(arch, lora=True).generate([noise(0)], "Describe as JSON.", params)
    Attributes.model_validate_json(text)
    assert json.loads(text) == json.loads(json.dumps(json.loads(text), separators=(",", ":")))
    assert " " not in text.replace(json.loads(text)["age_group"], "")  # compact, as vLLM is told to be


def test_stop_string_cuts_the_answer(backends):
    backend = backends("llava", lora=True)
    full = backend.generate([noise(0)], PROMPT, GenerationParams(max_tokens=12))
    stop = full[3:5]
    cut = backend.complete([noise(0)], PROMPT, GenerationParams(max_tokens=12, stop=(stop,)))
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"


def test_merged_adapter_gives_the_adapter_output(backends, tiny, tmp_path):
    from faceqa.vlm.checkpoint import merge_lora
    from faceqa.vlm.transformers_backend import TransformersBackend

    merged = TransformersBackend(merge_lora(tiny / "llava", tiny / "llava-lora", tmp_path / "merged"))
    params = GenerationParams(max_tokens=8)
    assert merged.generate([noise(0)], PROMPT, params) == backends("llava", lora=True).generate(
        [noise(0)], PROMPT, params
    )


def test_text_only_request_on_a_model_that_allows_it(backends):
    text = backends("llava").generate([], "Say something.", GenerationParams(max_tokens=4))
    assert isinstance(text, str)


def test_paligemma_refuses_text_only_requests_with_a_vlm_error(backends):
    with pytest.raises(VLMError):
        backends("paligemma").generate([], PROMPT, GenerationParams(max_tokens=4))


def test_quantization_on_cpu_is_refused_clearly(tiny):
    from faceqa.vlm.transformers_backend import TransformersBackend

    with pytest.raises(ValueError, match="CUDA"):
        TransformersBackend(tiny / "llava", device="cpu", quantization="4bit")


def test_not_a_model_folder(tmp_path):
    from faceqa.vlm.transformers_backend import TransformersBackend

    with pytest.raises(ValueError, match="no config.json"):
        TransformersBackend(tmp_path)


def test_paligemma_answers_with_the_prefix_mask_its_adapter_recorded(tiny, tmp_path, caplog):
    """The recipe's mask reaches the model: a 'causal' adapter answers as it does with an explicit 'causal'."""
    import shutil

    from faceqa.vlm.recipe import Recipe
    from faceqa.vlm.transformers_backend import TransformersBackend

    adapter = shutil.copytree(tiny / "paligemma-lora", tmp_path / "lora")
    Recipe(str(tiny / "paligemma"), "paligemma", "paligemma", "causal", 224, 0.25).save(adapter)
    recorded = TransformersBackend(tiny / "paligemma", adapter=adapter)
    assert recorded.prefix_attention == "causal"
    inputs = recorded._encode([VLMRequest([noise(0)], PROMPT)])
    assert inputs["token_type_ids"].tolist() == [[1] * inputs["input_ids"].shape[1]]
    full = TransformersBackend(tiny / "paligemma", adapter=adapter, prefix_attention="full")
    assert "trained with prefix_attention 'causal' but is served with 'full'" in caplog.text
    assert full._encode([VLMRequest([noise(0)], PROMPT)])["token_type_ids"].sum() == 0
    params = GenerationParams(max_tokens=6)
    requests = [VLMRequest([noise(seed)], PROMPT) for seed in range(4)]
    causal = TransformersBackend(tiny / "paligemma", adapter=tiny / "paligemma-lora", prefix_attention="causal")
    assert recorded.generate_batch(requests, params) == causal.generate_batch(requests, params)
    assert recorded.generate_batch(requests, params) != full.generate_batch(requests, params)


def test_a_paligemma_checkpoint_without_a_chat_template_is_prompted_as_vllm_is(tiny, tmp_path):
    """Released PaliGemma checkpoints ship no chat template; TransformersBackend uses serve-vlm's, so prompts agree."""
    import shutil

    from faceqa.vlm.transformers_backend import TransformersBackend

    released = shutil.copytree(tiny / "paligemma", tmp_path / "released")
    (released / "chat_template.jinja").unlink()
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    prompt = "answer en How old does this person look?"
    shipped = TransformersBackend(tiny / "paligemma")._prompt_text([image], prompt)
    assert TransformersBackend(released)._prompt_text([image], prompt) == shipped
