"""/health latency while the server handles one hostile request at a time: the event loop must never block.

For each kind of hostile request (huge or self-multiplying response_format schemas, a body of a million
tiny JSON values, 24 MB of text, a body nested 100,000 deep, a photo-sized base64 string that is not a
photo, the largest schema the server still accepts), one client sends it back to back while another
polls /health on its own connection every 20 ms. Reported per kind: the hostile request's status and
time, and /health's median, p99 and worst latency (worst is what "never blocks" is about), against
/health on an idle server in the same run.

    python bench/bench_hostile.py [--seconds 4] [--code DIR] [--kinds anyOf,enum,text]

`--code DIR` serves another checkout's faceqa (e.g. `git archive` of an older commit), for a before/after;
`--kinds` keeps the kinds whose names contain one of the words (an old server may never finish some).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx
from bench_api import start_server
from record import save

ROOT = Path(__file__).resolve().parent.parent
PHOTO = "data:image/jpeg;base64," + __import__("base64").b64encode((ROOT / "faceqa/examples/group.jpg")
                                                                    .read_bytes()).decode()


def chat(extra: dict | None = None, messages: list | None = None) -> bytes:
    messages = messages or [{"role": "user", "content": [{"type": "text", "text": "Who looks the oldest?"},
                                                         {"type": "image_url", "image_url": {"url": PHOTO}}]}]
    return json.dumps({"model": "faceqa-local", "messages": messages, **(extra or {})}).encode()


def schema(body: dict) -> bytes:
    return chat({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": body}}})


def hostile() -> dict[str, bytes]:
    doubling = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(30)}
    doubling["d30"] = {"type": "object"}
    return {
        "anyOf x50,000 schema (3.4 MB)": schema({"anyOf": [{"type": "string", "minLength": i} for i in range(50_000)]}),
        "enum of 1M values": schema({"properties": {"answer": {"enum": list(range(1_000_000))}}}),
        "refs doubling 30 times": schema({"$defs": doubling, "$ref": "#/$defs/d0"}),
        "largest accepted schema": schema({"type": "object", "properties": {"answer": {"anyOf": [
            {"type": "string", "minLength": i} for i in range(600)] + [{"type": "string"}]}}}),
        "24 MB of text": chat(messages=[{"role": "system", "content": "be brief. " * 2_400_000},
                                        {"role": "user", "content": [{"type": "text", "text": "how old?"},
                                                                     {"type": "image_url",
                                                                      "image_url": {"url": PHOTO}}]}]),
        "nested 100,000 deep": b'{"model": "faceqa-local", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "20 MB base64 that is not a photo": chat(messages=[{"role": "user", "content": [
            {"type": "text", "text": "how old?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "QUJD" * 5_000_000}}]}]),
    }


def poll_health(url: str, stop: threading.Event) -> list[float]:
    latencies = []
    with httpx.Client(timeout=120) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get(f"{url}/health")
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
    return latencies


def measure(url: str, body: bytes | None, seconds: float) -> dict:
    stop = threading.Event()
    result: dict[str, list[float]] = {}
    poller = threading.Thread(target=lambda: result.update(health=poll_health(url, stop)))
    poller.start()
    statuses, times = [], []
    end = time.monotonic() + seconds
    with httpx.Client(timeout=300) as client:
        while time.monotonic() < end:
            if body is None:
                time.sleep(0.1)
                continue
            start = time.perf_counter()
            try:
                response = client.post(f"{url}/v1/chat/completions", content=body,
                                       headers={"Content-Type": "application/json"})
                statuses.append(response.status_code)
            except httpx.TransportError as error:
                statuses.append(type(error).__name__)
            times.append(time.perf_counter() - start)
    stop.set()
    poller.join()
    health = sorted(result["health"])
    return {"status": sorted(set(map(str, statuses))) if body is not None else None,
            "requests": len(times), "request_s_median": round(statistics.median(times), 3) if times else None,
            "health_ms_median": round(statistics.median(health) * 1000, 1),
            "health_ms_p99": round(health[int(0.99 * (len(health) - 1))] * 1000, 1),
            "health_ms_worst": round(health[-1] * 1000, 1), "health_polls": len(health)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--kinds", default="", help="comma-separated words; default: every kind")
    args = parser.parse_args()
    words = [word for word in args.kinds.split(",") if word]
    results = {"code": str(args.code), "seconds_per_kind": args.seconds}
    with start_server(code=args.code, log_level="error") as (url, _):
        results["idle"] = measure(url, None, args.seconds)
        for name, body in hostile().items():
            if words and not any(word in name for word in words):
                continue
            results[name] = measure(url, body, args.seconds)
            print(name, results[name], flush=True)
    save("hostile" if args.code == ROOT else "hostile-other-code", results)


if __name__ == "__main__":
    main()
