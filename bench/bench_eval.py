"""Evaluator benchmark: concurrency speed-up against a fixed-latency endpoint, and resumption without repeats.

A stand-in OpenAI-compatible server on 127.0.0.1, in its own process as a real model
server is, answers every chat request after a fixed delay (50 ms), so wall time is
dominated by waiting. In one run: the same items at concurrency 1 and 16 through the real
`openai` client (target ratio >= 10x); at concurrency 16 on a local Ray (2 actors x 8
calls, `RayPredictor`, a batch of calls per request) against the thread pool's 16
(target ratio >= 0.95; the Ray instance is started before the clock, as a cluster would
already be running), with the CPU milliseconds per call of this process (the driver),
of the Ray actors and of Ray's other processes (robust to other load, unlike wall
time); then
`faceqa eval run` in a subprocess, interrupted with SIGINT part-way and run again; the
server's own request count proves no call was repeated.

    python bench/bench_eval.py [--items 2000] [--delay 0.05] [--json results.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eval_standin import StandInProcess, image_digest  # noqa: E402

from faceqa.datasets.readers import read_fairface  # noqa: E402
from faceqa.eval.cache import PredictionCache  # noqa: E402
from faceqa.eval.openai_predictor import OpenAIEndpointPredictor  # noqa: E402
from faceqa.eval.predictor import Predictor  # noqa: E402
from faceqa.eval.runner import run_predictions  # noqa: E402
from faceqa.prompts import templates  # noqa: E402

TASK = "gender"


def fixture(root: Path, n: int) -> dict[str, str]:
    """n distinct tiny images in FairFace's layout; returns image sha256 -> gender."""
    (root / "val").mkdir(parents=True)
    truth, rows = {}, []
    for i in range(n):
        path = root / "val" / f"{i}.png"
        pixels = np.array([[[i % 256, (i // 256) % 256, 7]]], dtype=np.uint8).repeat(4, 0).repeat(4, 1)
        Image.fromarray(pixels).save(path)
        gender = ("Male", "Female")[i % 2]
        rows.append([f"val/{i}.png", "20-29", gender, "White"])
        truth[image_digest(path.read_bytes())] = gender
    with (root / "fairface_label_val.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", "age", "gender", "race"], *rows])
    return truth


def cpu_seconds(server: StandInProcess) -> dict[str, float]:
    """CPU seconds so far of this process (the driver: runner threads, client or Ray driver), of the Ray actors
    answering calls, and of the other processes it started (Ray's raylet, GCS, idle workers), the server aside."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = {"driver": usage.ru_utime + usage.ru_stime, "actors": 0.0, "other_processes": 0.0}
    for process in psutil.Process().children(recursive=True):
        try:
            if process.pid == server.pid:
                continue
            kind = "actors" if "PredictorActor" in " ".join(process.cmdline()) else "other_processes"
            times = process.cpu_times()
            seconds[kind] += times.user + times.system
        except psutil.Error:  # gone between the listing and the reading
            pass
    return seconds


def timed_run(items: list, server: StandInProcess, concurrency: int, cache: Path, ray: bool = False) -> dict:
    if ray:
        from faceqa.cluster import RaySettings
        from faceqa.eval.ray_predictor import RayPredictor

        predictor: Predictor = RayPredictor(partial(OpenAIEndpointPredictor, server.base_url, "standin"),
                                            RaySettings(workers=2), concurrency)
    else:
        predictor = OpenAIEndpointPredictor(server.base_url, "standin")
    before, cpu = server.requests, cpu_seconds(server)
    with PredictionCache(cache) as store:
        stats = run_predictions(items, [TASK], predictor, store, concurrency=concurrency, progress=False)
    cpu = {kind: seconds - cpu[kind] for kind, seconds in cpu_seconds(server).items()}  # before the actors go
    predictor.close()
    return {"concurrency": concurrency, "ray": ray, "calls": stats.calls, "failed": stats.failed,
            "server_requests": server.requests - before, "seconds": round(stats.wall_seconds, 2),
            "calls_per_second": round(stats.calls / stats.wall_seconds, 1),
            "cpu_ms_per_call": {kind: round(1000 * seconds / max(1, stats.calls), 3) for kind, seconds in cpu.items()}}


def resume_run(dataset: Path, out: Path, server: StandInProcess, n: int, stop_after: int) -> dict:
    command = [sys.executable, "-c", "from faceqa.eval.cli import app; app()", "run", str(dataset),
               "--format", "fairface", "--out", str(out), "--tasks", TASK, "--concurrency", "16",
               "--endpoint", server.base_url, "--model", "standin", "--no-progress", "--no-plots"]
    cache = out / "predictions.jsonl"
    before = server.hits
    # A shell's background job ignores SIGINT and its children inherit that: the run must be interruptible.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not cache.exists() or len(cache.read_bytes().splitlines()) < stop_after):
        time.sleep(0.01)
    at_signal = len(cache.read_bytes().splitlines()) if cache.exists() else 0
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    saved = len(cache.read_bytes().splitlines())
    first = server.requests - sum(before.values())
    finished = subprocess.run(command, capture_output=True, timeout=600)
    if finished.returncode != 0:
        raise RuntimeError(f"resumed run failed: {finished.stderr.decode()[-2000:]}")
    per_key = server.hits
    per_key.subtract(before)
    report = json.loads((out / "report.json").read_text())
    return {
        "interrupted_exit_code": process.returncode, "lines_at_signal": at_signal, "saved_before_interrupt": saved,
        "requests_before_interrupt": first, "requests_after_resume": server.requests - sum(before.values()) - first,
        "total_requests": sum(per_key.values()), "items": n,
        "repeated_calls": sum(c - 1 for c in per_key.values() if c > 1),
        "resumed_run_cached": report["run"]["cached"], "resumed_run_calls": report["run"]["calls"],
        "accuracy": report["tasks"][TASK]["accuracy"],
        "interrupt_message": stderr.decode().strip().splitlines()[-1] if stderr else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.05, help="server latency per request, seconds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        truth = fixture(root / "fairface", args.items)
        items = list(read_fairface(root / "fairface", splits=("val",)))
        question = templates.question(TASK, "chat")

        def answer(image: bytes, prompt: str) -> str:
            assert prompt == question
            return truth[image_digest(image)]

        with StandInProcess(answer, delay=args.delay) as server:
            fast = timed_run(items, server, 16, root / "c16.jsonl")
            slow = timed_run(items, server, 1, root / "c1.jsonl")
            from faceqa.cluster import RaySettings, connect

            connect(RaySettings(workers=2))
            on_ray = timed_run(items, server, 16, root / "ray16.jsonl", ray=True)
            threads = timed_run(items, server, 16, root / "c16-again.jsonl")  # after Ray: same conditions
            resume = resume_run(root / "fairface", root / "run", server, args.items, stop_after=args.items // 4)

    results = {
        "items": args.items, "server_delay_ms": args.delay * 1000, "concurrency_16": fast, "concurrency_1": slow,
        "speedup_16_vs_1": round(slow["seconds"] / fast["seconds"], 2),
        "ray_concurrency_16": on_ray, "threads_concurrency_16_after_ray": threads,
        "ray_vs_threads_16": round(min(fast["seconds"], threads["seconds"]) / on_ray["seconds"], 3),
        # CPU per call is what the cores give, whatever else runs: the cost the Ray path adds per call.
        "cpu_ms_per_call_threads_16": fast["cpu_ms_per_call"], "cpu_ms_per_call_ray_16": on_ray["cpu_ms_per_call"],
        "ideal_speedup": 16, "resume": resume,
    }
    print(json.dumps(results, indent=2))
    interrupted = resume["interrupted_exit_code"] == 130 and resume["saved_before_interrupt"] < args.items
    ok = results["speedup_16_vs_1"] >= 10 and resume["repeated_calls"] == 0 and resume["total_requests"] == args.items
    ok = ok and interrupted  # else nothing was resumed: the first run finished before the signal
    ok = ok and results["ray_vs_threads_16"] >= 0.95 and on_ray["server_requests"] == args.items
    print(f"CPU ms per call: threads {fast['cpu_ms_per_call']}, Ray {on_ray['cpu_ms_per_call']}")
    print(f"Ray (2 actors x 8) vs 16 threads: {results['ray_vs_threads_16']}x (target >= 0.95); "
          f"speed-up {results['speedup_16_vs_1']}x (target >= 10x); resumed run repeated "
          f"{resume['repeated_calls']} calls ({resume['total_requests']} requests for {args.items} items; interrupted "
          f"after {resume['saved_before_interrupt']}, exit {resume['interrupted_exit_code']}): "
          f"{'PASS' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
