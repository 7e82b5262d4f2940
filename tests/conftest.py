"""Shared fixtures: the example photos and one face engine for the whole run (models load once)."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "faceqa" / "examples"


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


@pytest.fixture(scope="session")
def ray_local():
    """One small local Ray instance for every Ray test of the run (starting one costs ~10-20 s)."""
    from faceqa.cluster import RaySettings, connect

    settings = RaySettings(workers=2, num_cpus=2, object_store_mb=256)
    ray = connect(settings)
    yield settings
    ray.shutdown()
