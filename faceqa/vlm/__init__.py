"""VLM backends, tiny offline checkpoints and vLLM serving.

- `base`: the one interface (`VLMBackend.generate/generate_batch`, `GenerationParams`).
- `openai_backend.OpenAIBackend`: any OpenAI-compatible server (vLLM, faceqa's API, hosted).
- `transformers_backend.TransformersBackend`: a checkpoint folder run in-process.
- `attributes.VLMAttributes`: the VLM attribute engine (race/gender/age/emotion per face).
- `serve`: starting vLLM's OpenAI server from its own venv; `cli`: `faceqa serve-vlm`, `dev`.
- `tiny`: randomly initialised PaliGemma/LLaVA/Idefics3 folders for tests.

Modules import torch/transformers lazily: importing `faceqa.vlm` costs nothing.
"""
