"""Shared fixtures: the example photos, one face engine and one set of tiny checkpoints for the whole run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "faceqa" / "examples"  # modules import it: from conftest import


def noise(seed: int, height: int = 48, width: int = 40) -> np.ndarray:
    """Random pixels at a size that is not any model's, so preprocessing really resizes."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def engine():
    from faceqa.faces.engine import FaceEngine

    return FaceEngine().load()


@pytest.fixture(scope="session")
def group_report(engine):
    return engine.analyze(EXAMPLES / "group.jpg")


class TinyCheckpoints:
    """Tiny random checkpoints (`faceqa.dev.tiny`) under one folder: each written the first time a test asks for it.

    `root / arch` is the checkpoint, `root / f"{arch}-lora"` its rank-8 adapter (`f"{arch}-lora-r{rank}"` for another
    rank). A folder appears only when complete (written under a temporary name, then renamed), so a build that
    fails halfway is redone, never served half-written to the next test.
    """

    def __init__(self, root: Path):
        self.root = root

    def _build(self, name: str, write) -> Path:
        out = self.root / name
        if not out.exists():
            partial = self.root / f".{name}.partial"
            write(partial)
            partial.rename(out)
        return out

    def vlm(self, arch: str) -> Path:
        from faceqa.dev.tiny import make_tiny_vlm

        return self._build(arch, lambda out: make_tiny_vlm(arch, out))

    def lora(self, arch: str, rank: int = 8) -> Path:
        from faceqa.dev.tiny import make_tiny_lora

        base = self.vlm(arch)
        return self._build(f"{arch}-lora" if rank == 8 else f"{arch}-lora-r{rank}",
                           lambda out: make_tiny_lora(base, out, rank=rank))


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> TinyCheckpoints:
    """The run's tiny checkpoints, shared by every module that needs one (building them is seconds each)."""
    return TinyCheckpoints(tmp_path_factory.mktemp("tiny-checkpoints"))


@pytest.fixture(scope="session")
def ray_local():
    """One small local Ray instance for every Ray test of the run (starting one costs ~10-20 s)."""
    from faceqa.cluster import RaySettings, connect

    settings = RaySettings(workers=2, num_cpus=2, object_store_mb=256)
    ray = connect(settings)
    yield settings
    ray.shutdown()
