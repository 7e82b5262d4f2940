"""Question routing cost: time per `route()` call over the assistant's case table, against the face analysis.

Every question of tests/data/assistant_cases.toml and assistant_questions.toml is routed on the
engine's reports of its photos (reports computed once, outside the clock), `--rounds` times, interleaved with
`FaceEngine.analyze` of group.jpg and with whole `Assistant.answer` calls on ready reports,
so machine noise (the CPUs are shared) hits all three alike. The target is routing "well
under a millisecond"; the ratios say what share of an answer routing is. Routing's own CPU
time is reported beside wall-clock time: on busy shared cores the wall-clock tail is the
scheduler's, not the router's.

    python bench/bench_router.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
from record import save

from faceqa.assistant import Assistant, route
from faceqa.faces.engine import FaceEngine
from faceqa.images import load_image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "faceqa" / "examples"
FILES = {"group": "group.jpg", "astronaut": "astronaut.png", "obama": "obama.jpg", "obama2": "obama2.jpg",
         "biden": "biden.jpg", "grace_hopper": "grace_hopper.jpg"}  # fmt: skip


def questions() -> list[tuple[list[str], str]]:
    data = tomllib.loads((ROOT / "tests" / "data" / "assistant_cases.toml").read_text())
    found = [(c.get("photos", ["group"]), c["q"]) for c in data["case"]]
    found += [(chat["photos"], turn["q"]) for chat in data["conversation"] for turn in chat["turns"]]
    table = tomllib.loads((ROOT / "tests" / "data" / "assistant_questions.toml").read_text())
    found += [(g.get("photos", ["group"]), c["q"]) for g in table["group"] for c in g["cases"]]
    found += [(chain["photos"], turn["q"]) for chain in table["chain"] for turn in chain["turns"]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    engine = FaceEngine().load()
    rgbs = {name: load_image(EXAMPLES / file) for name, file in FILES.items()}
    rgbs["group_mirror"] = np.ascontiguousarray(rgbs["group"][:, ::-1])
    rgbs["blank"] = np.full((240, 320, 3), 200, dtype=np.uint8)
    reports = {name: engine.analyze(rgb) for name, rgb in rgbs.items()}
    table = [([reports[p] for p in photos], q) for photos, q in questions()]
    assistant = Assistant(engine)

    per_question: dict[str, list[float]] = defaultdict(list)
    by_intent: dict[str, list[float]] = defaultdict(list)
    analyze, answer, cpu_times = [], [], []
    for _ in range(args.rounds):
        for photos, question in table:
            cpu, start = time.thread_time(), time.perf_counter()
            plan = route(question, photos)
            spent = time.perf_counter() - start
            cpu_times.append(time.thread_time() - cpu)
            per_question[question].append(spent)
            by_intent[plan.intent].append(spent)
        start = time.perf_counter()
        engine.analyze(rgbs["group"])
        analyze.append(time.perf_counter() - start)
        start = time.perf_counter()
        for photos, question in table:
            if not any(r.faces for r in photos) or "same" in question:
                continue  # same-person answers need embeddings these reports were made without
            assistant.answer(photos, question)
        answer.append((time.perf_counter() - start) / len(table))

    every = [t for times in per_question.values() for t in times]
    us = 1e6
    results = {
        "questions": len(table),
        "rounds": args.rounds,
        "route_median_us": round(us * statistics.median(every), 1),
        "route_p99_us": round(us * float(np.percentile(every, 99)), 1),
        "route_max_us": round(us * max(every), 1),
        # CPU time of the routing thread: the wall-clock tail above is the scheduler (shared cores), not routing.
        "route_cpu_median_us": round(us * statistics.median(cpu_times), 1),
        "route_cpu_p99_us": round(us * float(np.percentile(cpu_times, 99)), 1),
        "slowest_questions_median_us": {
            q: round(us * statistics.median(t), 1)
            for q, t in sorted(per_question.items(), key=lambda item: -statistics.median(item[1]))[:3]
        },
        "route_median_us_by_intent": {k: round(us * statistics.median(v), 1) for k, v in sorted(by_intent.items())},
        "answer_median_us": round(us * statistics.median(answer), 1),
        "analyze_group_median_ms": round(1000 * statistics.median(analyze), 1),
        "route_share_of_answer": round(statistics.median(every) / statistics.median(answer), 3),
        "route_share_of_analysis": round(statistics.median(every) / statistics.median(analyze), 5),
    }
    save("router", results)


if __name__ == "__main__":
    main()
