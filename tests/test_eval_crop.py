"""The evaluator shows a VLM the face crop its adapter was trained on: the dataset builder's own cut.

Train, serve and evaluate the same thing: with `--crop detect` (or `auto` and an adapter whose
recipe says the build detected faces), the bytes the endpoint receives are exactly the JPEG the
dataset builder writes for that record; with `as-is`, the dataset's own file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from eval_standin import StandIn, image_digest
from typer.testing import CliRunner

from faceqa.datasets.readers import read_dataset
from faceqa.eval.cli import _eval_crop, app
from faceqa.eval.predictor import ModelImage
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.train import FinetuneConfig, recipe
from faceqa.finetune.worker import Face, FaceJob, FaceJobConfig
from faceqa.vlm.recipe import Recipe

EXAMPLES = Path(__file__).resolve().parents[1] / "faceqa" / "examples"


def _folder(root: Path) -> Path:
    for name, gender in (("obama.jpg", "Male"), ("grace_hopper.jpg", "Female")):
        (root / gender).mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / name, root / gender / name)
    (root / "Male" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def _run(dataset: Path, out: Path, url: str, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["run", str(dataset), "-f", "imagefolder", "--attribute", "gender",
                                      "--tasks", "gender", "--endpoint", url, "--model", "standin", "-o", str(out),
                                      "--no-progress", "--no-plots", "--bootstrap", "0", *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


def test_a_vlm_is_shown_exactly_the_crop_the_dataset_builder_cuts(tmp_path):
    dataset = _folder(tmp_path / "faces")
    crop = CropConfig(mode="detect")  # what `--crop detect` cuts without a recipe: margin 0.25, 224 px
    job = FaceJob(FaceJobConfig(crop=crop, tasks=("attribute",)))
    built = {}
    for record in read_dataset("imagefolder", dataset, attribute="gender"):
        face = job(record)
        if isinstance(face, Face):
            built[record.image.name] = image_digest(face.jpeg)
    assert set(built) == {"obama.jpg", "grace_hopper.jpg"}

    with StandIn(lambda image, prompt: "male") as server:
        report = _run(dataset, tmp_path / "cropped", server.base_url, "--crop", "detect")
        sent = {digest for digest, _ in server.hits}
        assert sent == set(built.values())  # the builder's bytes, nothing else; the broken file is never sent
        assert report["model"]["face_crop"].endswith(  # no recipe: the defaults, and the card says so
            "(detect, margin 0.25, 224 px, JPEG quality 95, the builder's default: no recipe recorded one)")
        assert report["unusable_inputs"]["count"] == 1  # the broken file: recorded once, never sent

    with StandIn(lambda image, prompt: "male") as server:
        _run(dataset, tmp_path / "as-is", server.base_url, "--crop", "as-is")
        originals = {image_digest(p.read_bytes()) for p in dataset.rglob("*.jpg")}  # the broken one too, undecoded
        assert {digest for digest, _ in server.hits} == originals


def test_auto_takes_the_crop_from_the_adapters_recipe_and_defaults_to_the_images_as_they_are():
    recipe = Recipe("/m", "paligemma", "paligemma", "causal", 96, 0.3, "detect")
    assert _eval_crop("auto", recipe, engine=False) == CropConfig(mode="detect", margin=0.3, size=96)
    assert _eval_crop("trust", recipe, engine=False) == CropConfig(mode="trust", margin=0.3, size=96)
    assert _eval_crop("auto", Recipe("/m", "paligemma", "paligemma", "causal", 96, 0.3), engine=False) is None
    assert _eval_crop("auto", None, engine=False) is None and _eval_crop("as-is", recipe, engine=False) is None
    with pytest.raises(typer.BadParameter, match="auto, as-is or one of detect, trust"):
        _eval_crop("squash", recipe, engine=False)
    with pytest.raises(typer.BadParameter, match="embedded engine"):
        _eval_crop("detect", None, engine=True)


def test_auto_sends_the_training_rows_jpeg_bytes_at_the_quality_the_build_recorded(tmp_path):
    dataset = _folder(tmp_path / "faces")
    job = FaceJobConfig(crop=CropConfig(mode="detect", margin=0.3, size=96), tasks=("attribute",), jpeg_quality=60)
    assert job.jpeg_quality != FaceJobConfig().jpeg_quality
    built = tmp_path / "built"
    run_build([Source.parse(f"imagefolder={dataset},attribute=gender")], built,
              BuildConfig(job=job, dedup_distance=-1, composite_every=0), progress=False)
    rows = {image_digest(image["bytes"]) for shard in built.glob("*/shard-*.parquet")
            for image in pq.read_table(shard, columns=["image"]).column("image").to_pylist()}
    assert len(rows) == 2  # the two faces; the broken file made no row
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    recipe(FinetuneConfig(model="/m", dataset=str(built), output_dir=str(tmp_path)), "paligemma").save(adapter)

    with StandIn(lambda image, prompt: "male", root=str(adapter)) as server:  # found as vLLM lists a LoRA
        report = _run(dataset, tmp_path / "auto", server.base_url)  # --crop auto, the default
        assert {digest for digest, _ in server.hits} == rows  # the training rows' bytes exactly
    assert report["model"]["face_crop"].endswith("(detect, margin 0.3, 96 px, JPEG quality 60)")
    older = ModelImage(CropConfig(mode="detect"), None)  # a recipe from before builds recorded their quality
    assert older.describe().endswith("JPEG quality 95, the builder's default: no recipe recorded one)")
