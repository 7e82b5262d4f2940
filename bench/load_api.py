"""Load run against `faceqa serve` on loopback: thousands of mixed requests at concurrency 1, 8 and 32.

The mix, by request number: chat questions about the example photos (plain, streamed,
and multi-turn follow-ups), face analysis, and one bad request in ten (a broken photo,
an unknown model, malformed JSON), which must get its 4xx. Every 25th request sends a
photo the server has never seen (a re-encoded crop of the group photo), so the bounded
analysis cache keeps missing and evicting: memory must still level off. An error is
any unexpected status, a transport failure or an empty answer. The last level runs
twice: by then the cache is full and evicting, so the server's memory after the two
runs shows whether it has levelled off.

Bounded: --requests per level and --max-seconds per level, whichever comes first.

    python bench/load_api.py [--requests 2000] [--levels 1,8,32,32] [--max-seconds 120] [--url http://127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import time
from urllib.parse import urlsplit

import httpx
import psutil
from bench_api import ROOT, percentile, start_server
from PIL import Image
from record import save

from faceqa.app.config import is_loopback

EXAMPLES = ROOT / "faceqa" / "examples"
PHOTOS = ("group.jpg", "obama.jpg", "biden.jpg", "astronaut.png", "grace_hopper.jpg", "obama2.jpg")
QUESTIONS = ("How old does the person on the far left look?", "Who looks the oldest?", "How many people are there?",
             "Is the first person smiling? Explain step by step.", "Is the second person a man or a woman?")


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


class Mix:
    """Request number -> (method, path, body, expected status, streamed?)."""

    def __init__(self) -> None:
        self.photos = [data_url((EXAMPLES / name).read_bytes(), "image/png" if name.endswith("png") else "image/jpeg")
                       for name in PHOTOS]
        self.group = Image.open(EXAMPLES / "group.jpg").convert("RGB")
        self.fresh = 0

    def unseen_photo(self) -> str:
        """A photo no earlier request sent: the group photo, cropped by a few pixels, re-encoded."""
        self.fresh += 1
        dx, dy = self.fresh % 23, (self.fresh // 23) % 17
        buffer = io.BytesIO()
        self.group.crop((dx, dy, self.group.width - 23 + dx, self.group.height - 17 + dy)).save(
            buffer, format="JPEG", quality=90)
        return data_url(buffer.getvalue(), "image/jpeg")

    def request(self, n: int) -> tuple[str, bytes, int, bool]:
        photo = self.unseen_photo() if n % 25 == 24 else self.photos[(n * 7) % len(self.photos)]
        question = QUESTIONS[n % len(QUESTIONS)]

        def user(text: str, *urls: str) -> dict:
            return {"role": "user", "content": [{"type": "text", "text": text},
                                                *({"type": "image_url", "image_url": {"url": u}} for u in urls)]}

        kind = n % 10
        if kind == 9:
            bad = n // 10 % 3
            if bad == 0:
                body = {"model": "faceqa-local", "messages": [user(question, data_url(b"\xff\xd8 not a jpeg",
                                                                                      "image/jpeg"))]}
                return "/v1/chat/completions", json.dumps(body).encode(), 400, False
            if bad == 1:
                body = {"model": "no-such-model", "messages": [user(question, photo)]}
                return "/v1/chat/completions", json.dumps(body).encode(), 404, False
            return "/v1/chat/completions", b'{"model": "faceqa-local", "messages": [', 400, False
        if kind == 7:
            return "/v1/faces/analyze", json.dumps({"images": [photo]}).encode(), 200, False
        if kind == 8:
            messages = [user("Who looks the oldest?", photo), {"role": "assistant", "content": "..."},
                        user("How old does that person look?")]
            return "/v1/chat/completions", json.dumps({"model": "faceqa-local", "messages": messages}).encode(), \
                200, False
        body = {"model": "faceqa-local", "messages": [user(question, photo)], "stream": kind == 6}
        return "/v1/chat/completions", json.dumps(body).encode(), 200, kind == 6


async def level(url: str, mix: Mix, concurrency: int, count: int, max_seconds: float, first: int) -> dict:
    latencies: list[float] = []
    failures: dict[str, int] = {}
    next_n = first
    stop = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    def fail(reason: str) -> None:
        failures[reason] = failures.get(reason, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def user() -> None:
            nonlocal next_n
            while next_n < first + count and time.perf_counter() < stop:
                path, body, expected, streamed = mix.request(next_n)
                next_n += 1
                start = time.perf_counter()
                try:
                    async with client.stream("POST", path, content=body,
                                             headers={"Content-Type": "application/json"}) as response:
                        payload = await response.aread()
                except httpx.HTTPError as error:
                    fail(type(error).__name__)
                    continue
                latencies.append(time.perf_counter() - start)
                if response.status_code != expected:
                    fail(f"HTTP {response.status_code} (expected {expected})")
                elif expected == 200 and not _answered(payload, streamed, path):
                    fail("empty or malformed answer")

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    done = next_n - first
    return {"concurrency": concurrency, "requests": done, "seconds": round(elapsed, 1),
            "throughput_rps": round(done / elapsed, 1),
            "p50_ms": round(1000 * percentile(latencies, 50), 1), "p99_ms": round(1000 * percentile(latencies, 99), 1),
            "errors": sum(failures.values()), "error_kinds": failures}


def _answered(payload: bytes, streamed: bool, path: str) -> bool:
    if streamed:
        events = [line[6:] for line in payload.decode().splitlines() if line.startswith("data: ")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in map(json.loads, events[:-1])
                       if c["choices"])
        return events[-1:] == ["[DONE]"] and bool(text)
    document = json.loads(payload)
    if path.endswith("analyze"):
        return "faces" in document["data"][0]
    return bool(document["choices"][0]["message"]["content"])


def rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def run(url: str, pid: int | None, args: argparse.Namespace) -> dict:
    mix = Mix()
    asyncio.run(level(url, mix, 4, 200, 60, 0))  # warm up: every example photo analysed once
    results: dict = {"requests_per_level": args.requests, "max_seconds_per_level": args.max_seconds,
                     "server_rss_mb_before": rss_mb(pid) if pid is not None else None, "levels": []}
    first = 200
    for concurrency in args.levels:
        outcome = asyncio.run(level(url, mix, concurrency, args.requests, args.max_seconds, first))
        first += outcome["requests"]
        if pid is not None:
            outcome["server_rss_mb_after"] = rss_mb(pid)
        results["levels"].append(outcome)
        print(json.dumps(outcome), flush=True)
    results["unseen_photos_sent"] = mix.fresh
    results["total_errors"] = sum(level["errors"] for level in results["levels"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="Requests per concurrency level.")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 32])
    parser.add_argument("--max-seconds", type=float, default=120.0, help="Time bound per level.")
    parser.add_argument("--url", help="A running server on loopback (default: start one).")
    args = parser.parse_args()
    if args.url:
        if not is_loopback(urlsplit(args.url).hostname or ""):
            parser.error("load runs are for loopback servers only")
        results = run(args.url.rstrip("/"), None, args)
    else:
        with start_server() as (url, pid):
            results = run(url, pid, args)
        results["server"] = "faceqa serve (defaults: 1 worker, analysis cache 256)"
    save("load_api", results)


if __name__ == "__main__":
    main()
