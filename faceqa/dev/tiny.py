"""Tiny randomly initialised VLM checkpoints, built offline in seconds.

There is no model hub here, yet the whole serving path (processor, chat template,
tokenizer, vLLM weight loading, LoRA) must be exercised on the real architectures.
These folders have the exact layout of PaliGemma / LLaVA / Idefics3 checkpoints with
every size shrunk; their outputs are random words and mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceqa.vlm.chat_template import CHAT_TEMPLATES
from faceqa.vlm.checkpoint import save_for_vllm

ARCHS = ("paligemma", "llava", "idefics3")


# A few lines in the register of faceqa's prompts and answers, so the tiny BPE learns
# merges that look like real text; the model itself never learns from it.
_CORPUS = """\
How old does the person in this photo look? Answer with one age group.
What emotion does the face show: neutral, happy, sad, surprise, fear, disgust, anger or contempt?
Apparent gender: male or female. Apparent race: White, Black, Latino Hispanic, East Asian,
Southeast Asian, Indian, Middle Eastern. Age groups 0-2 3-9 10-19 20-29 30-39 40-49 50-59 60-69 70+.
Key observations: the inner brows are raised, the lip corners are pulled up, the cheeks are raised.
Overall interpretation: the expression is consistent with happiness. Conclusion: happy.
{"age_group": "30-39", "gender": "female", "emotion": "neutral", "race": "East Asian"}
There are three people in the picture; the person on the left is smiling.
"""


@dataclass(frozen=True)
class TinySize:
    """Shrunk dimensions shared by all architectures.

    head_dim 32 because vLLM's CPU attention kernels only accept a few head sizes;
    image_size/patch_size give 16 patches per image so prompts stay short.
    """

    hidden: int = 64
    intermediate: int = 128
    layers: int = 2
    heads: int = 2
    kv_heads: int = 1
    head_dim: int = 32
    image_size: int = 32
    patch_size: int = 8
    bpe_vocab: int = 400
    max_positions: int = 512
    # For a checkpoint that must learn (the skills loop, `LEARNER`); False / None keep the default one byte
    # for byte. `bpe_on_prompts`: the BPE is also trained on faceqa's prompt data, as a real tokenizer has
    # whole tokens for its words (a concise Exp-CoT is 160 tokens with the default BPE, 90 with this one).
    # `output_std`: an untied LM head (PaliGemma ties it by default) drawn with this deviation. Tied to embeddings
    # initialised at transformers' 0.02, every logit stays within about +-1.3 (hidden 64), the output
    # distribution is almost uniform whatever the adapter does, and LoRA, which cannot touch the head,
    # learned neither positions nor the CoT layout.
    bpe_on_prompts: bool = False
    output_std: float | None = None


# The tiny PaliGemma that learns the skills loop in a CI budget (tests/test_skills_e2e.py): wider and deeper
# than the default, the CoT's words as tokens, an untied head. Still random: it proves the path, not quality.
LEARNER = TinySize(hidden=128, intermediate=256, layers=4, heads=4, kv_heads=2, bpe_vocab=1000,
                   bpe_on_prompts=True, output_std=0.3)


def _special_tokens(arch: str) -> list[str]:
    tokens = ["<pad>", "<bos>", "<eos>", "<unk>", "<image>"]
    if arch == "idefics3":
        tokens += ["<fake_token_around_image>", "<end_of_utterance>", "<global-img>"]
        tokens += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    return tokens


PROMPT_DATA = ("templates.toml", "cot_wording.toml", "emfacs.toml", "taxonomies.toml")


def _corpus(prompts: bool) -> list[str]:
    lines = _CORPUS.splitlines()
    if prompts:
        from importlib import resources

        data = resources.files("faceqa.prompts").joinpath("data")
        lines += [line for name in PROMPT_DATA for line in data.joinpath(name).read_text("utf-8").splitlines()]
    return lines


def _tokenizer(arch: str, size: TinySize):
    """A byte-level BPE trained on `_CORPUS`, wrapped as a transformers fast tokenizer.

    "\\n" is an added token because vLLM's PaliGemma looks the literal "\\n" up in the
    vocabulary to terminate the prefix (byte-level BPE would otherwise spell it "Ċ").
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = _special_tokens(arch)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size.bpe_vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(size.bpe_on_prompts), trainer=trainer)
    tok.add_tokens([AddedToken("\n", normalized=False)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"} if arch != "idefics3" else None,
        add_bos_token=False,
        add_eos_token=False,
        model_max_length=size.max_positions,
    )
    if arch == "idefics3":
        fast.add_special_tokens({"additional_special_tokens": specials[4:]})
    return fast


def _image_processor(arch: str, size: TinySize):
    """PIL-backed image processors: the same pixels whether or not torchvision is installed.

    With torchvision present (the vLLM venv) transformers would pick its torchvision
    resize, whose interpolation differs slightly from PIL's; greedy parity between
    TransformersBackend and vLLM needs identical inputs.
    """
    from transformers import CLIPImageProcessorPil, Idefics3ImageProcessorPil, SiglipImageProcessorPil

    side = {"height": size.image_size, "width": size.image_size}
    if arch == "paligemma":
        proc = SiglipImageProcessorPil(size=side, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        proc.image_seq_length = (size.image_size // size.patch_size) ** 2  # type: ignore[attr-defined]  # PaliGemmaProcessor reads it
        return proc
    if arch == "llava":
        return CLIPImageProcessorPil(size={"shortest_edge": size.image_size}, crop_size=side)
    return Idefics3ImageProcessorPil(
        size={"longest_edge": size.image_size},
        max_image_size={"longest_edge": size.image_size},
        do_image_splitting=False,
    )


def _processor(arch: str, size: TinySize):
    from transformers import Idefics3Processor, LlavaProcessor, PaliGemmaProcessor

    tokenizer = _tokenizer(arch, size)
    image_processor = _image_processor(arch, size)
    template = CHAT_TEMPLATES[arch]
    if arch == "paligemma":
        return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    if arch == "llava":
        return LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=size.patch_size,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            chat_template=template,
        )
    scale = 2
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=(size.image_size // size.patch_size) ** 2 // scale**2,
        chat_template=template,
    )


def _config(arch: str, size: TinySize, tokenizer):
    from transformers import (
        CLIPVisionConfig,
        GemmaConfig,
        Idefics3Config,
        Idefics3VisionConfig,
        LlamaConfig,
        LlavaConfig,
        PaliGemmaConfig,
        SiglipVisionConfig,
    )

    vocab = -(-len(tokenizer) // 64) * 64  # room for every added token, padded like real vocabularies
    special: dict[str, Any] = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    text: dict[str, Any] = {
        "hidden_size": size.hidden,
        "intermediate_size": size.intermediate,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.kv_heads,
        "head_dim": size.head_dim,
        "vocab_size": vocab,
        "max_position_embeddings": size.max_positions,
        **special,
    }
    vision: dict[str, Any] = {
        "hidden_size": size.hidden,
        "intermediate_size": size.intermediate,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "image_size": size.image_size,
        "patch_size": size.patch_size,
    }
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    if arch == "paligemma":
        tied = size.output_std is None
        return PaliGemmaConfig(
            vision_config=SiglipVisionConfig(**(vision | {"vision_use_head": False})),
            text_config=GemmaConfig(**text, tie_word_embeddings=tied),
            image_token_index=image_token,
            vocab_size=vocab,
            projection_dim=size.hidden,
            hidden_size=size.hidden,
            tie_word_embeddings=tied,
            **special,
        )
    if arch == "llava":
        return LlavaConfig(
            vision_config=CLIPVisionConfig(**vision, projection_dim=size.hidden),
            text_config=LlamaConfig(**text, tie_word_embeddings=False),
            image_token_index=image_token,
            vision_feature_select_strategy="default",
            vision_feature_layer=-2,
            image_seq_length=(size.image_size // size.patch_size) ** 2,
        )
    return Idefics3Config(
        vision_config=Idefics3VisionConfig(**vision),
        text_config=LlamaConfig(**text, tie_word_embeddings=False),
        image_token_id=image_token,
        scale_factor=2,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
    )


def _model_class(arch: str):
    from transformers import (
        Idefics3ForConditionalGeneration,
        LlavaForConditionalGeneration,
        PaliGemmaForConditionalGeneration,
    )

    return {
        "paligemma": PaliGemmaForConditionalGeneration,
        "llava": LlavaForConditionalGeneration,
        "idefics3": Idefics3ForConditionalGeneration,
    }[arch]


def make_tiny_vlm(arch: str, out: Path, seed: int = 0, size: TinySize | None = None,
                  add_bos_token: bool = False) -> Path:
    """Write a randomly initialised `arch` checkpoint folder (config, weights, processor) to `out`.

    `add_bos_token=True` (PaliGemma only) saves a tokenizer that adds <bos> itself, as
    PaliGemma 1's do (google/paligemma-3b-*); PaliGemma 2's, like the default here, do
    not. vLLM places the image tokens differently for the two (vLLM PR 14015).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if add_bos_token and arch != "paligemma":
        raise ValueError("add_bos_token is PaliGemma 1's tokenizer behaviour: only for paligemma")
    import json

    import torch

    size = size or TinySize()
    processor = _processor(arch, size)
    config = _config(arch, size, processor.tokenizer)
    torch.manual_seed(seed)
    model = _model_class(arch)(config).to(torch.float32).eval()
    if size.output_std is not None:
        with torch.no_grad():
            model.get_output_embeddings().weight.normal_(0.0, size.output_std)
    model.generation_config.do_sample = False
    folder = save_for_vllm(model, processor, out)
    if add_bos_token:  # PaliGemmaProcessor switches it off in memory; released PaliGemma 1 files keep it on
        settings = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "add_bos_token": True}, indent=2))
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
        bos = processor.tokenizer.bos_token
        tokenizer["post_processor"] = {  # Gemma's: <bos> before every encoded text
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [processor.tokenizer.bos_token_id], "tokens": [bos]}},
        }
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    return folder


def make_tiny_lora(base: Path, out: Path, seed: int = 0, rank: int = 8) -> Path:
    """Write a PEFT LoRA adapter for `base` that touches the language model only.

    vLLM applies LoRA to the language model of multimodal models (tower/connector
    LoRA is an experimental opt-in), so the adapter targets only language-model
    projections. Weights are random and non-zero (PEFT's default leaves B at zero,
    which would make the adapter a no-op) so greedy output visibly changes.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig

    base, out = Path(base), Path(out)
    arch = AutoConfig.from_pretrained(base).model_type
    model = _model_class(arch).from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=4 * rank,
        target_modules=r".*(language_model|text_model).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        init_lora_weights=False,
        lora_dropout=0.0,
    )
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0.0, 0.3)
    peft_model.save_pretrained(str(out))
    return out
