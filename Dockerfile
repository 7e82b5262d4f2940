# faceqa on GPUs: one file, two images (pick with --target). Not built in faceqa's CI (no Docker engine there).
#
#   vllm   : vLLM's official OpenAI server image serving a VLM checkpoint + faceqa's LoRA adapter,
#            started through `faceqa serve-vlm` so it gets the same per-architecture flags as a local run
#            (PaliGemma chat template, image limit, LoRA rank, compact structured output).
#   faceqa : the faceqa API (`faceqa serve`) and chat page (`faceqa app`), CPU only; they reach the
#            model through the vLLM container's OpenAI-compatible endpoint.
#
#   docker build --target vllm   --build-arg ADAPTER=adapters/faces -t faceqa-vllm .
#   docker build --target faceqa -t faceqa .
# compose.yaml runs all three; docs/deploy.md explains the flags and multi-GPU/multi-node serving.

ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0

FROM ${VLLM_IMAGE} AS vllm
# faceqa.vlm needs only what the vLLM image already has (torch, transformers, openai, pydantic)
# plus typer/rich for its CLI; --no-deps keeps the face engine's packages out of this image.
COPY . /opt/faceqa
RUN python3 -m pip install --no-cache-dir --no-deps /opt/faceqa \
    && python3 -m pip install --no-cache-dir "typer>=0.12" "rich>=13"
# The adapter is baked in so the image serves exactly what was evaluated. The folder must be in the
# build context (e.g. a `faceqa finetune` output copied to adapters/faces); pass another one with
# --build-arg ADAPTER=... (a PEFT LoRA folder: adapter_config.json + adapter_model.safetensors).
ARG ADAPTER=adapters/faces
COPY ${ADAPTER} /adapters/faces
ENV HF_HOME=/root/.cache/huggingface
EXPOSE 8000
ENTRYPOINT ["python3", "-m", "faceqa.vlm.cli", "serve-vlm"]
# Gated hub models need HF_TOKEN at run time (docker run -e HF_TOKEN=...).
CMD ["google/paligemma-3b-pt-224", "--lora", "faces=/adapters/faces", "--host", "0.0.0.0", "--port", "8000", \
     "--device", "gpu"]

FROM python:3.11-slim AS faceqa
# libgomp: onnxruntime's OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/faceqa
COPY . .
RUN pip install --no-cache-dir ".[api,app]" && faceqa models pull
# The adapter's recipe (prompt style, prefix mask, crop) at the path vLLM lists as the LoRA's root, so
# `faceqa serve --prompt-style auto` asks the way the adapter was trained (written by `faceqa finetune`).
ARG ADAPTER=adapters/faces
COPY ${ADAPTER}/faceqa_recipe.json /adapters/faces/faceqa_recipe.json
EXPOSE 8080 8501
CMD ["faceqa", "serve", "--host", "0.0.0.0", "--port", "8080"]
