"""API overhead: requests/s through `faceqa serve` at concurrency 8 vs. the assistant called in-process.

Both sides do the same work per request: decode the photo, analyse every face, answer
one of three questions (attribute, multi-person, step-by-step reasoning) about the
4-face group photo. The server runs with its analysis cache off, so no request is
cheaper than its in-process twin; it is a separate process (as in production) with
the same number of model workers as the in-process side has threads. (The server
decodes the next photo on its own thread while a worker analyses the current one;
a plain in-process loop does the two one after the other.) Phases alternate
(in-process, server, in-process, ...) in one run so machine noise hits both alike;
the ratio is of the medians. CPU time per request (this process for the in-process side;
the server process, and separately the client, for the other) is reported too: on a
shared machine it is the figure that other processes' load disturbs least. While the
server is loaded, /health is polled on its own connection to show that model work does
not block the event loop.

    python bench/bench_api.py [--seconds 5] [--rounds 8] [--workers 1] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psutil
from record import save

ROOT = Path(__file__).resolve().parent.parent
GROUP = ROOT / "faceqa" / "examples" / "group.jpg"
QUESTIONS = ("How old does the person on the far left look?", "Who looks the oldest?",
             "Is the second person smiling? Explain step by step.")
LAUNCH = "import typer; from faceqa.app.cli import serve; typer.run(serve)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def start_server(*options: str, code: Path = ROOT, log_level: str = "warning") -> Iterator[tuple[str, int]]:
    """`faceqa serve` from the source tree `code` in a child process on a free loopback port; yields URL and pid."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(code)}
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", log_level, *options], cwd=code, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become healthy in 120 s")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def chat_body(photo: bytes, question: str) -> bytes:
    url = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
    return json.dumps({"model": "faceqa-local", "messages": [{"role": "user", "content": [
        {"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}]}]}).encode()


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- in-process ----------------------------------------------------------------------------------------


def in_process(photo: bytes, workers: int, seconds: float, assistants: list) -> dict:
    """`workers` threads, each with its own assistant (engines are not thread-safe), for `seconds`."""
    from faceqa.images import load_image

    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    def loop(assistant, offset: int) -> None:
        n = offset
        while time.perf_counter() < stop:
            start = time.perf_counter()
            assistant.answer([load_image(photo)], QUESTIONS[n % len(QUESTIONS)])
            latencies.append(time.perf_counter() - start)
            n += 1

    start, cpu = time.perf_counter(), own_cpu()
    threads = [threading.Thread(target=loop, args=(a, i)) for i, a in enumerate(assistants[:workers])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {"rps": len(latencies) / elapsed, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99), "requests": len(latencies),
            "cpu_ms_per_request": 1000 * (own_cpu() - cpu) / max(len(latencies), 1)}


# --- through the server --------------------------------------------------------------------------------


async def idle_health(url: str, seconds: float) -> list[float]:
    """/health latencies with the server idle: the machine's own noise, to read the loaded figures against."""
    latencies = []
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=10) as prober:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            assert (await prober.get("/health")).status_code == 200
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.2)
    return latencies


async def through_server(url: str, pid: int, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    health: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client, \
            httpx.AsyncClient(base_url=url, timeout=10) as prober:

        async def user(offset: int) -> None:
            nonlocal errors
            n = offset
            while time.perf_counter() < stop:
                start = time.perf_counter()
                response = await client.post("/v1/chat/completions", content=bodies[n % len(bodies)],
                                             headers={"Content-Type": "application/json"})
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
                n += 1

        async def probe() -> None:
            await asyncio.sleep(0.5)  # let the load build up first
            while time.perf_counter() < stop:
                start = time.perf_counter()
                assert (await prober.get("/health")).status_code == 200
                health.append(time.perf_counter() - start)
                await asyncio.sleep(0.2)

        start, cpu, server_cpu = time.perf_counter(), own_cpu(), process_cpu(pid)
        await asyncio.gather(*(user(i) for i in range(concurrency)), probe())
        elapsed = time.perf_counter() - start
    done = max(len(latencies), 1)
    return {"rps": len(latencies) / elapsed, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99), "requests": len(latencies), "errors": errors,
            "server_cpu_ms_per_request": 1000 * (process_cpu(pid) - server_cpu) / done,
            "client_cpu_ms_per_request": 1000 * (own_cpu() - cpu) / done,
            "health_p50_ms": 1000 * percentile(health, 50), "health_p99_ms": 1000 * percentile(health, 99),
            "health_max_ms": 1000 * max(health, default=float("nan")), "health_probes": len(health)}


def rounded(record: dict) -> dict:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in record.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="Length of each phase.")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="Model workers (server) = threads (in-process).")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from faceqa.assistant import Assistant
    from faceqa.faces.engine import FaceEngine

    photo = GROUP.read_bytes()
    bodies = [chat_body(photo, q) for q in QUESTIONS]
    assistants = [Assistant(engine=FaceEngine().load()) for _ in range(args.workers)]
    for assistant in assistants:
        in_process(photo, 1, 0.5, [assistant])  # warm up
    local, served = [], []
    load_before = os.getloadavg()[0]
    with start_server("--workers", str(args.workers), "--cache-size", "0") as (url, pid):
        asyncio.run(through_server(url, pid, bodies, args.concurrency, 2.0))  # warm up
        idle = asyncio.run(idle_health(url, args.seconds))
        for _ in range(args.rounds):
            local.append(in_process(photo, args.workers, args.seconds, assistants))
            served.append(asyncio.run(through_server(url, pid, bodies, args.concurrency, args.seconds)))
    with start_server("--workers", str(args.workers)) as (url, pid):
        asyncio.run(through_server(url, pid, bodies, args.concurrency, 2.0))
        cached = asyncio.run(through_server(url, pid, bodies, args.concurrency, args.seconds))

    def median(records: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in records)

    local_rps, served_rps = median(local, "rps"), median(served, "rps")
    results = {
        "image": "group.jpg (4 faces)", "model": "faceqa-local", "workers": args.workers,
        "concurrency": args.concurrency, "seconds_per_phase": args.seconds, "rounds": args.rounds,
        "cpus": os.cpu_count(), "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "in_process_rps": round(local_rps, 2),
        "server_rps": round(served_rps, 2),
        "server_over_in_process": round(served_rps / local_rps, 3),
        "server_over_in_process_per_round": [round(s["rps"] / i["rps"], 3) for i, s in zip(local, served,
                                                                                           strict=True)],
        "in_process_cpu_ms_per_request": round(median(local, "cpu_ms_per_request"), 1),
        "server_cpu_ms_per_request": round(median(served, "server_cpu_ms_per_request"), 1),
        "client_cpu_ms_per_request": round(median(served, "client_cpu_ms_per_request"), 1),
        "in_process_p99_ms": round(median(local, "p99_ms"), 1),
        "server_p50_ms": round(median(served, "p50_ms"), 1),
        "server_p99_ms": round(median(served, "p99_ms"), 1),
        "server_errors": sum(r["errors"] for r in served),
        "health_idle_p50_ms": round(1000 * percentile(idle, 50), 2),
        "health_idle_p99_ms": round(1000 * percentile(idle, 99), 2),
        "health_under_load_p50_ms": round(median(served, "health_p50_ms"), 2),
        "health_under_load_p99_ms": round(max(r["health_p99_ms"] for r in served), 2),
        "health_under_load_max_ms": round(max(r["health_max_ms"] for r in served), 2),
        "server_with_cache_rps": round(cached["rps"], 2),
        "server_with_cache_p99_ms": round(cached["p99_ms"], 1),
        "server_with_cache_cpu_ms_per_request": round(cached["server_cpu_ms_per_request"], 2),
        "rounds_detail": {"in_process": [rounded(r) for r in local], "server": [rounded(r) for r in served]},
    }
    save("api", results)


if __name__ == "__main__":
    main()
