"""Joining a Ray cluster for `build-dataset --ray` and `eval run --ray`; Ray is the optional `ray` extra.

`--ray local` starts a private Ray instance inside this process's lifetime (its workers
and raylet die with it, also on SIGKILL); `--ray ADDRESS` joins a running cluster
(`ray start --head` on the head node, `ray start --address HEAD:6379` on the others),
whose job-scoped actors Ray removes when this driver exits. Either way faces stay off
disk: usage statistics are off, and a local instance never spills objects (face crops)
to disk; the build and the evaluator bound what they have in flight instead (Ray Data,
in batch_llm.py, applies backpressure).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

LOCAL = "local"


class RayMissing(ImportError):
    """`--ray` needs the `ray` extra."""


@dataclass(frozen=True)
class RaySettings:
    """Where to run (`local` or a cluster address such as `ray://head:10001` or `head:6379`) and how wide."""

    address: str = LOCAL
    workers: int = 2  # actors for the per-row work, across the whole cluster
    num_cpus: int | None = None  # a local instance's CPUs; default: as many as the workers need
    object_store_mb: int = 1024  # a local instance's shared-memory object store

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")


def ray_module() -> Any:
    """`ray`, or RayMissing naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayMissing("--ray needs Ray: pip install 'faceqa[ray]'") from None
    return ray


def connect(settings: RaySettings) -> Any:
    """Start or join the cluster once per process; returns the `ray` module."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry: read before Ray starts
    ray = ray_module()
    if ray.is_initialized():
        return ray
    if settings.address == LOCAL:
        # address="local": always a new instance, never a cluster some `ray start` left on this machine
        ray.init(address=LOCAL, num_cpus=settings.num_cpus or settings.workers, include_dashboard=False,
                 object_store_memory=settings.object_store_mb * 2**20, log_to_driver=False,
                 _system_config={"automatic_object_spilling_enabled": False})
    else:
        ray.init(address=settings.address, log_to_driver=False)
    return ray
