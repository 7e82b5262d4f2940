"""Dataset-building throughput and memory on a synthetic FairFace-layout set.

    python bench/bench_build_dataset.py [--rows 20000] [--small 5000] [--size 224]

Images are generated once into bench/results/cache/ (224 px JPEGs like FairFace's
padding-0.25 crops) and reused. Each build runs in a fresh subprocess so its peak
RSS is its own: rows/s with 1 and with 2 worker processes on the same rows, in the
same run (scaling ratio, target >= 1.7x), and the peak memory of the parent process
at two dataset sizes (target: flat). Crop mode "trust" (the images are not faces),
all tasks on, the default shard size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = """
import json, resource, sys, time
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.worker import FaceJobConfig

if __name__ == "__main__":
    root, out, processes, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    config = BuildConfig(job=FaceJobConfig(crop=CropConfig(mode="trust", size=size)), processes=processes)
    started = time.perf_counter()
    summary = run_build([Source.parse(f"fairface={root}")], out, config, overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    faces = sum(sum(v.values()) for v in (s.get("gender", {}) for s in summary["balance"].values()))
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"seconds": seconds, "source_rows": faces + sum(summary["dropped"].values()),
                      "faces": faces, "rows": sum(summary["rows"].values()), "dropped": summary["dropped"],
                      "cpu_seconds_parent": own.ru_utime + own.ru_stime,
                      "cpu_seconds_workers": workers.ru_utime + workers.ru_stime,
                      "peak_rss_mb_parent": own.ru_maxrss / 1024,
                      "peak_rss_mb_largest_worker": workers.ru_maxrss / 1024}))
"""


def dataset(rows: int, size: int) -> Path:
    """The cached synthetic set with `rows` training rows (a prefix of the largest one generated)."""
    from faceqa.dev.synthetic import write_fairface_layout

    root = RESULTS / "cache" / f"fairface-synthetic-{size}px"
    started = time.perf_counter()
    write_fairface_layout(root, {"train": rows}, size=size)
    (root / "fairface_label_val.csv").write_text("file,age,gender,race,service_test\n")
    print(f"dataset: {rows} rows at {root} ({time.perf_counter() - started:.0f} s to generate or check)")
    return root


def build(root: Path, processes: int, size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="faceqa-bench-") as out:
        result = subprocess.run([sys.executable, "-c", CHILD, str(root), out, str(processes), str(size)],
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record["rows_per_second"] = record["source_rows"] / record["seconds"]
    record["cpu_ms_per_row"] = 1000 * (record["cpu_seconds_parent"] + record["cpu_seconds_workers"]) / \
        record["source_rows"]
    record["processes"] = processes
    record["load_average_after"] = os.getloadavg()[0]
    return record


def describe(record: dict) -> str:
    return (f"{record['rows_per_second']:.0f} rows/s ({record['source_rows']} rows in {record['seconds']:.1f} s; "
            f"{record['cpu_ms_per_row']:.2f} CPU-ms per row, parent {record['cpu_seconds_parent']:.0f} s of CPU; "
            f"load average {record['load_average_after']:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=1, help="Alternating runs per process count; best is kept.")
    args = parser.parse_args()

    large = dataset(args.rows, args.size)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other jobs skew rows/s)")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.repeats):  # alternated, best of each: other jobs on the machine only ever slow a run
        for processes in (1, 2):
            runs[processes].append(build(large, processes, args.size))
            print(f"{processes} process(es): {describe(runs[processes][-1])}")
    one, two = (max(runs[p], key=lambda r: r["rows_per_second"]) for p in (1, 2))
    scaling = two["rows_per_second"] / one["rows_per_second"]
    print(f"scaling 2 vs 1 process: {scaling:.2f}x (target >= 1.7x)")

    small = build(dataset(args.small, args.size), 2, args.size)
    growth = two["peak_rss_mb_parent"] / small["peak_rss_mb_parent"]
    print(f"peak RSS of the building process: {small['peak_rss_mb_parent']:.0f} MB at {small['source_rows']} rows, "
          f"{two['peak_rss_mb_parent']:.0f} MB at {two['source_rows']} rows ({growth:.2f}x for "
          f"{two['source_rows'] / small['source_rows']:.0f}x the rows); largest worker "
          f"{two['peak_rss_mb_largest_worker']:.0f} MB")

    RESULTS.mkdir(exist_ok=True)
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
              "runs": runs, "one_process": one, "two_processes": two, "scaling": scaling, "small_two_processes": small,
              "peak_rss_growth": growth}
    (RESULTS / "bench_build_dataset.json").write_text(json.dumps(report, indent=2))
    print(f"written: {RESULTS / 'bench_build_dataset.json'}")


if __name__ == "__main__":
    main()
