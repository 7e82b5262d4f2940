"""Dataset-building throughput, scaling and memory on a synthetic FairFace-layout set, one machine vs Ray.

    python bench/bench_build_dataset.py [--rows 20000] [--small 5000] [--size 224] [--old-pool-commit 2cff083]
                                        [--photos UTKFACE_FOLDER --photo-rows 2000]

Images are generated once into bench/results/cache/ (224 px JPEGs like FairFace's
padding-0.25 crops) and reused. Each build runs in a fresh subprocess, in one run:

- in this process (no Ray), Ray local with 1 and with 2 workers: rows/s, and the
  scaling 2 ÷ 1 worker (target >= 1.8x);
- the home-made 2-process pool that Ray replaced, run from the commit that still had it
  (`git archive` of faceqa/ at --old-pool-commit into a temporary folder, PYTHONPATH'd):
  Ray 2 workers ÷ old pool 2 processes (target >= 1.0);
- Ray 2 workers on --small rows: peak memory at two sizes (target: flat), sampled over
  the whole process tree (driver, raylet, actors) and for the driver alone;
- a simulated two-node cluster: two `ray start` nodes of one CPU each on this machine,
  the build joining it by address with 2 workers (one actor per node).

- with --photos (a UTKFace folder of real face photos, kept outside the repository): the
  first --photo-rows photos (linked from a temporary folder), built with
  `--crop detect` as a user's build of real photos runs (YuNet finds and cuts every
  face): one machine, Ray with 1 and with 2 workers, and their scaling.

Every build's shards are hashed: one machine, Ray 1/2 workers and two nodes must write
byte-identical shards (the old pool is older code, so its rows are not compared).
Crop mode "trust" (the images are not faces), the default tasks of FaceJobConfig (the
four the old pool knows; no marks), the default shard size.

Wall clock on shared cores moves with other jobs, so every build also reports its CPU
seconds per source row: the driver's (this process: getrusage, the sampler thread's own
CPU taken out), the actors' (processes titled ray::FaceStage, sampled with psutil every
0.25 s, also on other nodes of this machine) and Ray's other processes'. On 2 cores one
worker runs at most 1/a rows/s (a = actor CPU per row) and two at most 2/(a+d+o), so
2 ÷ 1 worker is bounded by 2a/(a+d+o) whatever else the machine does (reported from the
2-worker run, whose per-row figures include each process's start-up: smaller with more
rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, save  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import hashlib, json, os, resource, sys, threading, time
import psutil
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.worker import FaceJobConfig

ACTOR = "FaceStage"  # in a Ray actor's process title (ray::FaceStage...)
REMOTE = sys.argv[3] not in ("one-machine", "old-pool", "local")  # another cluster's actors: not our children

def cpu(process):
    times = process.cpu_times()
    return times.user + times.system

def sample(peak, seconds, stop):
    # Peak RSS of the process tree; CPU seconds per process (latest reading wins: a process may vanish).
    me = psutil.Process()
    while True:
        total = me.memory_info().rss
        try:
            children = me.children(recursive=True)  # Ray's workers come and go: one may vanish mid-walk
        except psutil.Error:
            children = []
        pids = {c.pid for c in children}
        actors = [p for p in psutil.process_iter() if p.pid not in pids and p.pid != me.pid] if REMOTE else []
        for process in [*children, *actors]:
            try:
                title = " ".join(process.cmdline())
                if process.pid not in pids and ACTOR not in title:
                    continue
                if process.pid in pids:
                    total += process.memory_info().rss
                kind, _, first = seconds.get(process.pid, ("other_processes", 0.0, cpu(process)))
                kind = "actors" if ACTOR in title else kind  # once an actor, always: a dying one has no title
                seconds[process.pid] = (kind, cpu(process), first)
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)
        if stop.wait(0.25):
            seconds["sampler"] = ("sampler", time.thread_time(), 0.0)  # its own CPU, counted in the driver's
            return

def own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

if __name__ == "__main__":
    spec, out, mode, workers, size, crop = sys.argv[1:7]
    job = FaceJobConfig(crop=CropConfig(mode=crop, size=int(size)))
    workers = int(workers)
    if mode == "old-pool":
        config = BuildConfig(job=job, processes=workers)
    elif mode == "one-machine":
        config = BuildConfig(job=job)
    else:  # "local" or a cluster's address
        from faceqa.cluster import RaySettings, connect
        config = BuildConfig(job=job, ray=RaySettings(address=mode, workers=workers))
        connect(config.ray)  # start or join the cluster before the clock starts: a service, not build work
    peak, seconds, stop = [0], {}, threading.Event()
    sampler = threading.Thread(target=sample, args=(peak, seconds, stop), daemon=True)
    sampler.start()
    time.sleep(0.5)  # a first reading of Ray's processes before the build
    started, driver_cpu = time.perf_counter(), own_cpu()
    summary = run_build([Source.parse(spec)], out, config, overwrite=True, progress=False)
    seconds_taken, driver_cpu = time.perf_counter() - started, own_cpu() - driver_cpu
    stop.set()
    sampler.join()
    digest = hashlib.sha256()
    for path in sorted(p for p in __import__("pathlib").Path(out).glob("*/shard-*.parquet")):
        digest.update(path.name.encode() + path.read_bytes())
    faces = sum(sum(v.values()) for v in (s.get("gender", {}) for s in summary["balance"].values()))
    cpus = {"actors": 0.0, "other_processes": 0.0, "sampler": 0.0}
    for kind, last, first in seconds.values():
        cpus[kind] += last - first
    driver_cpu -= cpus.pop("sampler")
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds_taken, "source_rows": faces + sum(summary["dropped"].values()),
                      "rows": sum(summary["rows"].values()), "shards_sha256": digest.hexdigest(),
                      "cpu_seconds": {"driver": driver_cpu, **cpus},
                      "actor_processes": sum(kind == "actors" for kind, _, _ in seconds.values()),
                      "peak_rss_mb_driver": own.ru_maxrss / 1024, "peak_rss_mb_tree": peak[0] / 2**20}))
"""


def dataset(rows: int, size: int) -> Path:
    """The cached synthetic set with `rows` training rows (a prefix of the largest one generated)."""
    from faceqa.dev.synthetic import write_fairface_layout

    root = RESULTS / "cache" / f"fairface-synthetic-{size}px-{rows}"
    started = time.perf_counter()
    write_fairface_layout(root, {"train": rows}, size=size)
    (root / "fairface_label_val.csv").write_text("file,age,gender,race,service_test\n")
    print(f"dataset: {rows} rows at {root} ({time.perf_counter() - started:.0f} s to generate or check)")
    return root


def old_code(commit: str, folder: Path) -> Path:
    """faceqa/ as it was at `commit` (the one with finetune/parallel.py), unpacked into `folder`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "faceqa"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    if not (folder / "faceqa/finetune/parallel.py").exists():
        raise SystemExit(f"commit {commit} has no faceqa/finetune/parallel.py: not the old pool")
    return folder


def photos(folder: Path, rows: int, into: Path) -> Path:
    """The first `rows` UTKFace photos of `folder` (sorted by name), linked (not copied: they stay where they are)."""
    chosen = sorted(p for p in folder.rglob("*.jpg") if p.is_file())[:rows]
    if len(chosen) < rows:
        raise SystemExit(f"{folder} holds {len(chosen)} photos, fewer than --photo-rows {rows}")
    root = into / "images"
    root.mkdir(parents=True)
    for path in chosen:
        (root / path.name).symlink_to(path.resolve())
    print(f"photos: {rows} UTKFace photos of {folder}")
    return into


def build(root: Path, mode: str, workers: int, size: int, pythonpath: Path = REPO, label: str = "",
          source: str = "fairface", crop: str = "trust") -> dict:
    with tempfile.TemporaryDirectory(prefix="faceqa-bench-") as folder:
        env = {**os.environ, "PYTHONPATH": str(pythonpath), "TQDM_DISABLE": "1"}
        result = subprocess.run([sys.executable, "-c", CHILD, f"{source}={root}", f"{folder}/out", mode,
                                 str(workers), str(size), crop], capture_output=True, text=True, env=env,
                                cwd=folder)  # not this checkout
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record.update(rows_per_second=record["source_rows"] / record["seconds"], mode=label or mode, workers=workers,
                  load_average_after=os.getloadavg()[0],
                  cpu_ms_per_row={k: 1000 * v / record["source_rows"] for k, v in record["cpu_seconds"].items()})
    cpu = record["cpu_ms_per_row"]
    print(f"{record['mode']:>24} x{workers}: {record['rows_per_second']:.0f} rows/s ({record['source_rows']} rows "
          f"in {record['seconds']:.1f} s; peak RSS driver {record['peak_rss_mb_driver']:.0f} MB, process tree "
          f"{record['peak_rss_mb_tree']:.0f} MB; load average {record['load_average_after']:.1f}); CPU ms per row: "
          f"driver {cpu['driver']:.2f}, actors {cpu['actors']:.2f} ({record['actor_processes']} processes), "
          f"others {cpu['other_processes']:.2f}", flush=True)
    return record


class TwoNodes:
    """Two Ray nodes of one CPU each on this machine (`ray start --block`), stopped by their own pids."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.address = ""

    def __enter__(self) -> TwoNodes:
        from faceqa.dev.ports import free_port

        # Token authentication with a token of this run, shared with the build through the environment.
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
        ray, env, port = str(Path(sys.executable).with_name("ray")), dict(os.environ), free_port()
        common = ["--num-cpus", "1", "--object-store-memory", str(512 * 2**20), "--block", "--disable-usage-stats",
                  "--node-ip-address", "127.0.0.1"]
        self.processes.append(subprocess.Popen([ray, "start", "--head", "--port", str(port), "--include-dashboard",
                                                "false", *common], env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True))
        self.address = f"127.0.0.1:{port}"
        time.sleep(15)  # the head's GCS up before the second node joins
        self.processes.append(subprocess.Popen([ray, "start", "--address", self.address, *common], env=env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            self._wait_for_nodes(2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for_nodes(self, count: int) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        for _ in range(30):
            status = subprocess.run([ray, "status", "--address", self.address], capture_output=True, text=True,
                                    timeout=60)
            if len(re.findall(r"^\s*1 node_", status.stdout, re.M)) >= count:
                return
            time.sleep(2)
        raise RuntimeError(f"the two-node cluster did not come up: {status.stdout[-1500:]} {status.stderr[-1500:]}")

    def __exit__(self, *_: object) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        Path(tempfile.gettempdir(), "ray", "ray_current_cluster").unlink(missing_ok=True)  # `ray start` left it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--old-pool-commit", default="2cff083",
                        help="a commit whose faceqa/finetune/parallel.py is the pool Ray replaced")
    parser.add_argument("--skip-two-nodes", action="store_true")
    parser.add_argument("--photos", type=Path, help="a UTKFace folder: also build real photos with --crop detect")
    parser.add_argument("--photo-rows", type=int, default=2000)
    args = parser.parse_args()

    large, small = dataset(args.rows, args.size), dataset(args.small, args.size)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other jobs skew rows/s)")
    runs = {"local": build(large, "one-machine", 1, args.size, label="one machine, no Ray"),
            "ray_1": build(large, "local", 1, args.size, label="Ray local")}
    with tempfile.TemporaryDirectory(prefix="faceqa-old-pool-") as folder:
        old = old_code(args.old_pool_commit, Path(folder))
        runs["old_pool_2"] = build(large, "old-pool", 2, args.size, pythonpath=old,
                                   label=f"old pool @{args.old_pool_commit}")
    runs["ray_2"] = build(large, "local", 2, args.size, label="Ray local")
    runs["ray_2_small"] = build(small, "local", 2, args.size, label="Ray local (small)")
    if not args.skip_two_nodes:
        with TwoNodes() as nodes:
            runs["two_nodes_2"] = build(large, nodes.address, 2, args.size, label="Ray, two local nodes")

    if args.photos:
        with tempfile.TemporaryDirectory(prefix="faceqa-photos-") as folder:
            real = photos(args.photos, args.photo_rows, Path(folder))
            for name, mode, workers in (("photos_local", "one-machine", 1), ("photos_ray_1", "local", 1),
                                        ("photos_ray_2", "local", 2)):
                runs[name] = build(real, mode, workers, args.size, label=f"photos, detect ({mode})",
                                   source="utkface", crop="detect")

    rate = {name: run["rows_per_second"] for name, run in runs.items()}
    cpu = runs["ray_2"]["cpu_ms_per_row"]
    a, d, o = cpu["actors"], cpu["driver"], cpu["other_processes"]
    same = {name: runs[name]["shards_sha256"] == runs["local"]["shards_sha256"]
            for name in ("ray_1", "ray_2", "two_nodes_2") if name in runs}
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "runs": runs,
        "scaling_ray_2_vs_1": rate["ray_2"] / rate["ray_1"],
        "ray_2_vs_old_pool_2": rate["ray_2"] / rate["old_pool_2"],
        "ray_1_vs_no_ray": rate["ray_1"] / rate["local"],
        # On 2 cores, 1 worker is bound by its actor (1/a rows/s), 2 by the cores (2/(a+d+o)): whatever the load.
        "cpu_ms_per_row_ray_2": cpu,
        "scaling_bound_2_vs_1_from_cpu": 2 * a / (a + d + o),
        "scaling_bound_2_vs_1_driver_only": 2 * a / (a + d),
        "two_nodes_vs_ray_1": rate["two_nodes_2"] / rate["ray_1"] if "two_nodes_2" in rate else None,
        "peak_rss_growth_tree": runs["ray_2"]["peak_rss_mb_tree"] / runs["ray_2_small"]["peak_rss_mb_tree"],
        "peak_rss_growth_driver": runs["ray_2"]["peak_rss_mb_driver"] / runs["ray_2_small"]["peak_rss_mb_driver"],
        "same_shards_as_one_machine": same,
    }
    if args.photos:
        cpu = runs["photos_ray_2"]["cpu_ms_per_row"]
        results["photos"] = {
            "rows": args.photo_rows, "scaling_ray_2_vs_1": rate["photos_ray_2"] / rate["photos_ray_1"],
            "ray_1_vs_no_ray": rate["photos_ray_1"] / rate["photos_local"],
            "scaling_bound_2_vs_1_from_cpu": 2 * cpu["actors"] / sum(cpu.values()),
            "same_shards_as_one_machine": {name: runs[name]["shards_sha256"] == runs["photos_local"]["shards_sha256"]
                                           for name in ("photos_ray_1", "photos_ray_2")},
        }
    save("bench_build_dataset", results)
    print(f"Ray 2 vs 1 worker {results['scaling_ray_2_vs_1']:.2f}x (target >= 1.8; the CPU seconds per row bound it "
          f"at {results['scaling_bound_2_vs_1_from_cpu']:.2f}x, 2a/(a+d) = "
          f"{results['scaling_bound_2_vs_1_driver_only']:.2f}x); Ray 2 workers vs old 2-process "
          f"pool {results['ray_2_vs_old_pool_2']:.2f}x (target >= 1.0); peak RSS {args.small} -> {args.rows} rows: "
          f"tree {results['peak_rss_growth_tree']:.2f}x, driver {results['peak_rss_growth_driver']:.2f}x; "
          f"byte-identical shards: {same}")
    if args.photos:
        p = results["photos"]
        print(f"real photos, --crop detect: Ray 2 vs 1 worker {p['scaling_ray_2_vs_1']:.2f}x (CPU bound "
              f"{p['scaling_bound_2_vs_1_from_cpu']:.2f}x); byte-identical shards: {p['same_shards_as_one_machine']}")


if __name__ == "__main__":
    main()
