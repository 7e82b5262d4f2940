"""A VLM running in this process through transformers: PaliGemma, LLaVA, Idefics3/SmolVLM.

For notebooks, offline evaluation and machines without a vLLM server. The prompt is
built exactly as vLLM builds it (same chat template, no extra special tokens, PIL
image preprocessing), so a greedy request gives the same text through either path.
Structured output uses xgrammar, the grammar engine vLLM uses by default, with the
whitespace rules vLLM applies under `disable_any_whitespace`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from .base import (
    Completion,
    GenerationParams,
    ImageLike,
    PromptOrMessages,
    VLMBackend,
    VLMError,
    VLMRequest,
    to_messages,
    to_pil,
)
from .chat_template import CHAT_TEMPLATES
from .recipe import PREFIX_ATTENTION, Recipe, mask_warning, set_prefix_attention

log = logging.getLogger(__name__)


def choice_grammar(choices: Sequence[str]) -> str:
    """An EBNF grammar accepting exactly one of `choices` (escaped as vLLM escapes them)."""
    escapes = {"\\": r"\\", '"': r"\"", "\n": r"\n", "\r": r"\r", "\t": r"\t"}

    def escape(text: str) -> str:
        return "".join(
            escapes.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in text
        )

    return "root ::= " + " | ".join(f'"{escape(c)}"' for c in choices)


class TransformersBackend(VLMBackend):
    """A local checkpoint folder loaded with AutoProcessor + AutoModelForImageTextToText.

    `quantization` ("4bit"/"8bit") loads through bitsandbytes, which needs a CUDA
    GPU; `adapter` is a PEFT LoRA folder applied on top (merged when `merge_adapter`,
    which is faster to run but cannot be unloaded). `prefix_attention` is PaliGemma's
    prefix mask (`faceqa.vlm.recipe`): by default the one the adapter's recipe records,
    else transformers' own ("full"); pass "causal" to answer as vLLM on CPU does.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        device: str | None = None,
        dtype: str | None = None,
        quantization: Literal["4bit", "8bit"] | None = None,
        adapter: str | Path | None = None,
        merge_adapter: bool = False,
        batch_size: int = 4,
        prefix_attention: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_path = Path(model_path)
        self.adapter = adapter
        if not (self.model_path / "config.json").is_file():
            raise ValueError(f"{self.model_path}: not a model folder (no config.json)")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device == "cuda" else torch.float32)
        load_kwargs: dict = {"dtype": torch_dtype}
        if quantization is not None:
            load_kwargs["quantization_config"] = self._bnb_config(quantization, torch_dtype)
            load_kwargs["device_map"] = {"": self.device}
        self.model_type = AutoConfig.from_pretrained(self.model_path).model_type
        self.recipe = Recipe.load(adapter) if adapter is not None else Recipe.load(self.model_path)
        recorded = self.recipe.prefix_attention if self.recipe is not None else None
        self.prefix_attention = prefix_attention or recorded or "full"
        if self.prefix_attention not in PREFIX_ATTENTION:
            raise ValueError(f"prefix_attention must be one of {', '.join(PREFIX_ATTENTION)}")
        if warning := mask_warning(self.recipe, self.prefix_attention, self.label):
            log.warning("%s", warning)
        self.processor = AutoProcessor.from_pretrained(self.model_path, backend="pil")
        model: Any = AutoModelForImageTextToText.from_pretrained(self.model_path, **load_kwargs)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
            if merge_adapter:
                model = model.merge_and_unload()
        if quantization is None:
            model = model.to(self.device)
        self.model = model.eval()

    def _bnb_config(self, quantization: str, compute_dtype):
        if quantization not in ("4bit", "8bit"):
            raise ValueError(f"quantization must be '4bit' or '8bit', got {quantization!r}")
        if self.device != "cuda":
            raise ValueError("bitsandbytes 4/8-bit loading needs a CUDA GPU; load in full precision on CPU")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError("4/8-bit loading needs the bitsandbytes package (pip install bitsandbytes)")
        from transformers import BitsAndBytesConfig

        if quantization == "8bit":
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype
        )

    @property
    def label(self) -> str:
        adapter = f"+{Path(self.adapter).name}" if self.adapter else ""
        return f"{self.name}:{self.model_path.name}{adapter}"

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @cached_property
    def _grammar_compiler(self):
        import xgrammar

        vocab_size = self.model.config.get_text_config().vocab_size
        info = xgrammar.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab_size)
        return xgrammar.GrammarCompiler(info)

    def _logits_processors(self, params: GenerationParams) -> list:
        if params.json_schema is None and params.choices is None:
            return []
        import json

        from xgrammar.contrib.hf import LogitsProcessor

        if params.json_schema is not None:
            compiled = self._grammar_compiler.compile_json_schema(
                json.dumps(params.json_schema), any_whitespace=False, separators=(",", ":")
            )
        else:
            compiled = self._grammar_compiler.compile_grammar(choice_grammar(params.choices or ()))
        return [LogitsProcessor(compiled)]

    def _prompt_text(self, images: Sequence[ImageLike], prompt: PromptOrMessages) -> str:
        messages = to_messages(images, prompt)
        # Released PaliGemma checkpoints ship no chat template: use the one serve-vlm gives vLLM, so both agree.
        template = None if getattr(self.processor, "chat_template", None) else CHAT_TEMPLATES.get(self.model_type)
        text = self.processor.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                                  tokenize=False)
        if self.model_type == "paligemma":
            # PaliGemma's template emits text only; like vLLM, images go first, then <bos>.
            text = self.processor.image_token * len(images) + text
        return text

    def _encode(self, items: Sequence[VLMRequest]):
        texts = [self._prompt_text(item.images, item.prompt) for item in items]
        images = [[to_pil(image) for image in item.images] for item in items]
        n_images = sum(len(i) for i in images)
        if self.model_type == "paligemma" and any(len(i) != 1 for i in images):
            raise ValueError("PaliGemma takes exactly one image per request")
        self.tokenizer.padding_side = "left"
        inputs = self.processor(
            images=images if n_images else None,
            text=texts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        inputs.pop("labels", None)
        if self.model_type == "paligemma":
            inputs = set_prefix_attention(inputs, self.processor.image_token_id, self.prefix_attention)
        return inputs.to(self.device)

    def _generate(self, items: Sequence[VLMRequest], params: GenerationParams) -> list[Completion]:
        import torch

        inputs = self._encode(items)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        sampling: dict = {"do_sample": False}
        if params.temperature > 0:
            sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": None}
        if params.stop:
            sampling.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                **sampling,
                max_new_tokens=params.max_tokens,
                logits_processor=self._logits_processors(params),
                pad_token_id=self.tokenizer.pad_token_id,
                return_dict_in_generate=True,
                output_logits=params.logprobs,  # raw logits: before constraints, like vLLM's raw_logprobs
            )
        eos = self.model.generation_config.eos_token_id
        stop_ids = set(eos if isinstance(eos, list) else [eos])
        prompt_len = inputs["input_ids"].shape[1]
        completions = []
        for index, (row, attention) in enumerate(zip(output.sequences, inputs["attention_mask"], strict=True)):
            new = row[prompt_len:].tolist()
            end = next((i for i, t in enumerate(new) if t in stop_ids), None)
            logprob = None
            if params.logprobs:
                answer = new if end is None else new[:end]
                logprob = sum(
                    float(torch.log_softmax(output.logits[step][index].float(), dim=-1)[token])
                    for step, token in enumerate(answer)
                )
            text = self.tokenizer.decode(new if end is None else new[:end], skip_special_tokens=True)
            stopped = end is not None
            for stop in params.stop:
                if stop in text:
                    text, stopped = text[: text.index(stop)], True
            if not stopped:
                # Cut mid-character by max_tokens: like vLLM, drop the incomplete UTF-8 tail.
                text = text.rstrip("\ufffd")
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=int(attention.sum()),
                    completion_tokens=len(new) if end is None else end + 1,  # counts the EOS, as vLLM does
                    finish_reason="stop" if stopped else "length",
                    logprob=logprob,
                )
            )
        return completions

    def complete(
        self, images: Sequence[ImageLike], prompt: PromptOrMessages, params: GenerationParams | None = None
    ) -> Completion:
        try:
            return self._generate([VLMRequest(images, prompt)], params or GenerationParams())[0]
        except VLMError:
            raise
        except (ValueError, TypeError, RuntimeError) as error:  # processor refusals, torch shape errors
            raise VLMError(str(error)) from None

    def complete_batch(
        self, requests: Sequence[VLMRequest], params: GenerationParams | None = None
    ) -> list[Completion | VLMError]:
        """Generate `batch_size` requests per forward pass (left-padded).

        A batch that fails is retried item by item, so one bad request only costs
        its own answer.
        """
        params = params or GenerationParams()
        results: list[Completion | VLMError] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            try:
                results.extend(self._generate(chunk, params))
            except (ValueError, TypeError, RuntimeError):  # RuntimeError covers VLMError and torch errors
                results.extend(super().complete_batch(chunk, params))
        return results

    def close(self) -> None:
        self.model = None
