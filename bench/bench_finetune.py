"""Training throughput and peak memory on the tiny PaliGemma: LoRA versus QLoRA (4-bit NF4), CPU.

    python bench/bench_finetune.py [--steps 40] [--batch-size 8]

Each method trains in a fresh subprocess on the same synthetic dataset with the
same settings and one thread, so samples/s and the process's peak RSS are
comparable; both are measured in one run, alternated, best of `--repeats`. The
tiny model (hidden 64, two layers) says how much the training loop and the 4-bit
kernels cost, not how a 3B model behaves: there the base weights dominate memory
and QLoRA's ~4x smaller weights are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = """
import json, resource, sys, time
from faceqa.finetune.train import FinetuneConfig, run_finetune

if __name__ == "__main__":
    import torch
    torch.set_num_threads(1)  # one thread: two spinning threads on a shared 2-core machine measure the neighbours
    model, dataset, out, method, steps, batch = sys.argv[1:7]
    config = FinetuneConfig(model=model, dataset=dataset, output_dir=out, method=method, max_steps=int(steps),
                            batch_size=int(batch), eval_steps=None, save_steps=10**6, logging_steps=10**6,
                            learning_rate=5e-3, precision="fp32", resume=False, tasks=["age_group"])
    from faceqa.finetune.train import load_model
    model = load_model(config, "paligemma")
    language = model.model.language_model
    weight_bytes = sum(p.numel() * p.element_size() for p in language.parameters())
    del model, language
    record = run_finetune(config)
    metrics = record["metrics"]
    print(json.dumps({"samples_per_second": metrics["train_samples_per_second"],
                      "language_model_weight_bytes": weight_bytes,
                      "train_seconds": metrics["train_runtime"], "train_loss": metrics["train_loss"],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def prepare(root: Path) -> tuple[Path, Path]:
    from faceqa.dev.synthetic import write_fairface_layout
    from faceqa.dev.tiny import make_tiny_vlm
    from faceqa.finetune.build import BuildConfig, Source, run_build
    from faceqa.finetune.crop import CropConfig
    from faceqa.finetune.worker import FaceJobConfig

    images = write_fairface_layout(root / "images", {"train": 256, "val": 16}, size=64)
    job = FaceJobConfig(crop=CropConfig(mode="trust", size=64), tasks=("attribute",))
    run_build([Source.parse(f"fairface={images}")], root / "qa", BuildConfig(job=job), progress=False)
    return make_tiny_vlm("paligemma", root / "tiny-paligemma"), root / "qa"


def train(model: Path, dataset: Path, method: str, steps: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"faceqa-bench-{method}-") as out:
        result = subprocess.run([sys.executable, "-c", CHILD, str(model), str(dataset), out, method, str(steps),
                                 str(batch)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faceqa-bench-ft-") as root:
        model, dataset = prepare(Path(root))
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        runs: dict[str, list[dict]] = {"lora": [], "qlora": []}
        for _ in range(args.repeats):  # alternated, best of each: other jobs on the machine only slow a run
            for method in runs:
                runs[method].append(train(model, dataset, method, args.steps, args.batch_size))
    results = {m: max(r, key=lambda x: x["samples_per_second"]) for m, r in runs.items()}
    for method, r in results.items():
        each = ", ".join(f"{x['samples_per_second']:.1f}" for x in runs[method])
        print(f"{method:6s} {r['samples_per_second']:.1f} samples/s (runs: {each}), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"language-model weights {r['language_model_weight_bytes'] / 1024:.0f} KiB, "
              f"train loss {r['train_loss']:.3f} ({args.steps} steps x {args.batch_size})")
    ratio = results["qlora"]["samples_per_second"] / results["lora"]["samples_per_second"]
    print(f"QLoRA / LoRA throughput: {ratio:.2f}x; load average after: {os.getloadavg()[0]:.1f}")
    RESULTS.mkdir(exist_ok=True)
    report = {"steps": args.steps, "batch_size": args.batch_size, "runs": runs, **results,
              "qlora_over_lora_throughput": ratio}
    (RESULTS / "bench_finetune.json").write_text(json.dumps(report, indent=2))
    print(f"written: {RESULTS / 'bench_finetune.json'}")


if __name__ == "__main__":
    main()
