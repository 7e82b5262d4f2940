"""`build-dataset --ray`: the same rows as the one-machine path, resumption, and nothing left running after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import test_build_dataset
from test_build_dataset import _config

from faceqa.finetune.build import Source, run_build
from faceqa.finetune.store import Manifest

RAY = {"chunk_size": 8}  # several batches per actor
fairface, built = test_build_dataset.fairface, test_build_dataset.built  # the one-machine fixtures and build


def _files(out: Path) -> dict[str, list[dict]]:
    """Every shard's rows, image bytes included, by file name."""
    return {p.relative_to(out).as_posix(): pq.read_table(p).to_pylist() for p in sorted(out.glob("*/shard-*"))}


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_ray_writes_exactly_the_shards_and_manifest_of_one_machine(fairface, built, ray_local, tmp_path):
    out, summary = built
    ray_summary = run_build([Source.parse(f"fairface={fairface}")], tmp_path / "ray", _config(ray=ray_local, **RAY),
                            progress=False)
    assert {k: v for k, v in ray_summary.items() if k != "output"} == {k: v for k, v in summary.items()
                                                                        if k != "output"}
    assert _files(tmp_path / "ray") == _files(out)  # ids, prompts, answers, composites and JPEG bytes
    assert _manifest(tmp_path / "ray") == _manifest(out)
    assert sum(len(rows) for rows in _files(out).values()) > 120  # several rows per face, plus collages


def test_the_driver_of_a_ray_build_does_no_per_row_image_work(fairface, built, ray_local, tmp_path, monkeypatch):
    """Crops, rows, collages and Parquet are made on the actors: in this process they would raise."""
    from faceqa.finetune import rows, store, worker

    def not_here(*_, **__):
        raise AssertionError("per-row work on the driver")

    for module, name in ((worker.FaceJob, "__call__"), (rows, "collage_rows"), (rows, "face_rows"),
                         (store, "encode_shard"), (store, "shard_table")):
        monkeypatch.setattr(module, name, not_here)
    run_build([Source.parse(f"fairface={fairface}")], tmp_path / "ray", _config(ray=ray_local, **RAY), progress=False)
    monkeypatch.undo()
    assert _files(tmp_path / "ray") == _files(built[0])


def test_actors_that_cannot_see_the_output_folder_stop_the_build_with_a_clear_error(ray_local, tmp_path):
    """The actors write the shards: an output folder their node does not see is named before any work."""
    from faceqa.finetune.ray_stages import RayStage
    from faceqa.finetune.worker import FaceJobConfig

    with pytest.raises(FileNotFoundError, match="not visible on .*storage every node mounts"):
        RayStage(FaceJobConfig(), tmp_path / "elsewhere", ray_local)


def test_an_interrupted_ray_build_resumes_without_duplicates_or_losses(fairface, built, ray_local, tmp_path,
                                                                      monkeypatch):
    sources = [Source.parse(f"fairface={fairface}")]
    real_commit = Manifest.commit
    calls = Counter()

    def crash_on_third(self, pending):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_commit(self, pending)

    monkeypatch.setattr(Manifest, "commit", crash_on_third)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_build(sources, out, _config(ray=ray_local, **RAY), progress=False)
    assert len(_manifest(out)) == 2
    monkeypatch.setattr(Manifest, "commit", real_commit)
    run_build(sources, out, _config(ray=ray_local, **RAY), progress=False)
    keys = [k for record in _manifest(out) for k in record["keys"]]
    assert len(keys) == len(set(keys)) == 120
    single = lambda files: sorted(r["id"] for rows in files.values() for r in rows  # noqa: E731
                                  if not r["id"].startswith("composite:"))
    assert single(_files(out)) == single(_files(built[0]))


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_sigkill_of_a_ray_build_leaves_no_process_and_the_rerun_completes_it(fairface, built, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from faceqa.cli import main; main()", "build-dataset", f"fairface={fairface}",
               "--out", str(out), "--tasks", "attribute,attributes,composite", "--crop", "trust", "--size", "48",
               "--composite-every", "4", "--shard-size", "25", "--ray", "local", "--workers", "2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:  # until Ray's actors run
        seen.update({p.pid: p for p in _descendants(process.pid)})
        if any("FaceStage" in " ".join(p.cmdline()) or "MapWorker" in p.name() for p in seen.values()
               if p.is_running()):
            break
        time.sleep(0.1)
    assert process.poll() is None, "the build ended before Ray's workers could be seen"
    seen.update({p.pid: p for p in _descendants(process.pid)})
    assert len(seen) >= 3  # Ray's own processes and the actors
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    gone, alive = psutil.wait_procs(list(seen.values()), timeout=150)  # Ray's agents give the GCS 60 s
    assert not alive, [p.name() for p in alive]

    # The same command again finishes the build: every source row once, the rows of an uninterrupted build.
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300)
    keys = [k for record in _manifest(out) for k in record["keys"]]
    assert len(keys) == len(set(keys)) == 120
    single = lambda files: sorted(r["id"] for rows in files.values() for r in rows  # noqa: E731
                                  if not r["id"].startswith("composite:"))
    assert single(_files(out)) == single(_files(built[0]))
