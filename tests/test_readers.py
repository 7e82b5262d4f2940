"""Dataset readers on tiny fixtures written in each dataset's native layout."""

import csv
from collections import Counter
from pathlib import Path

import pytest
from affectnet_release import write_affectnet_release
from PIL import Image

from faceqa.datasets.readers import (
    LabelAudit,
    read_affectnet,
    read_csv,
    read_dataset,
    read_fairface,
    read_image_folder,
    read_rafdb,
    read_utkface,
)


def image(path: Path, shade: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 255 - shade, 64)).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    return path


def table(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_fairface_layout(tmp_path):
    header = ["file", "age", "gender", "race", "service_test"]
    table(tmp_path / "fairface_label_train.csv", header, [
        ["train/1.jpg", "20-29", "Male", "East Asian", "True"],
        ["train/2.jpg", "more than 70", "Female", "Latino_Hispanic", "False"],
        ["train/3.jpg", "30-39", "Female", "Martian", "False"],  # outside the taxonomy
        ["train/4.jpg", "3-9", "Male", "White", "False"],  # image missing
    ])
    table(tmp_path / "fairface_label_val.csv", header, [["val/1.jpg", "0-2", "Female", "Indian", "True"]])
    for name in ("train/1.jpg", "train/2.jpg", "train/3.jpg", "val/1.jpg"):
        image(tmp_path / name)
    audit = LabelAudit()
    records = list(read_fairface(tmp_path, audit=audit))
    assert [(r.key, r.split) for r in records] == [
        ("fairface:train/1.jpg", "train"), ("fairface:train/2.jpg", "train"), ("fairface:train/3.jpg", "train"),
        ("fairface:val/1.jpg", "validation"),
    ]
    assert records[0].labels == {"age_group": "20-29", "gender": "Male", "race": "East Asian"}
    assert records[0].extra["service_test"] is True
    assert records[1].labels["age_group"] == "70+"
    # The unknown race is reported and the row is kept with its other labels.
    assert records[2].labels == {"age_group": "30-39", "gender": "Female"}
    assert records[2].extra["native"]["race"] == "Martian"
    assert audit.unmapped == {"fairface:race='Martian'": 1}
    assert audit.skipped == {"fairface:image missing": 1}
    assert "train/4.jpg" in audit.summary()["skipped_rows"]["fairface:image missing"]["examples"][0]
    assert [r.key for r in read_fairface(tmp_path, splits=("val",))] == ["fairface:val/1.jpg"]


def test_keys_name_where_a_row_really_points_through_symlinks_and_dot_dots(tmp_path):
    """A key is the image's resolved path under the root: folders are resolved once, links still followed."""
    root = tmp_path / "ff"
    image(root / "train/1.jpg")
    image(root / "shared/2.jpg")
    (root / "train/2.jpg").symlink_to(root / "shared/2.jpg")  # a linked file: keyed where it lives
    (root / "linked").symlink_to(root / "train", target_is_directory=True)  # a linked folder
    table(root / "fairface_label_train.csv", ["file", "age", "gender", "race"], [
        ["train/1.jpg", "20-29", "Male", "White"], ["train/2.jpg", "20-29", "Male", "White"],
        ["linked/1.jpg", "20-29", "Male", "White"], ["shared/../train/1.jpg", "20-29", "Male", "White"],
    ])
    keys = [r.key for r in read_fairface(root, splits=("train",))]
    assert keys == ["fairface:train/1.jpg", "fairface:shared/2.jpg", "fairface:train/1.jpg", "fairface:train/1.jpg"]


def test_fairface_missing_column_is_a_clear_error(tmp_path):
    table(tmp_path / "fairface_label_val.csv", ["file", "age", "gender"], [["val/1.jpg", "0-2", "Female"]])
    with pytest.raises(ValueError, match="missing column"):
        list(read_fairface(tmp_path, splits=("val",)))


def test_utkface_file_names(tmp_path):
    image(tmp_path / "UTKFace" / "25_0_1_20170116174525125.jpg.chip.jpg")
    image(tmp_path / "UTKFace" / "72_1_2_20170117190000000.jpg")  # Asian: East or Southeast, not guessed
    image(tmp_path / "UTKFace" / "39_1_20170116174525125.jpg.chip.jpg")  # a known malformed name
    audit = LabelAudit()
    records = {r.key: r for r in read_utkface(tmp_path, audit=audit)}
    first = records["utkface:UTKFace/25_0_1_20170116174525125.jpg.chip.jpg"]
    assert first.labels == {"gender": "Male", "race": "Black", "age_group": "20-29"}
    assert first.years == 25.0 and first.split is None
    second = records["utkface:UTKFace/72_1_2_20170117190000000.jpg"]
    assert second.labels == {"gender": "Female", "age_group": "70+"}
    assert second.extra["native"] == {"gender": "1", "race": "2"}
    assert audit.unmapped == {"utkface:race='2' (one of East Asian | Southeast Asian)": 1}
    assert "Asian" in audit.summary()["mapping_notes"]["utkface_race"]
    assert sum(audit.skipped.values()) == 1 and len(records) == 2


@pytest.mark.parametrize("variant", ["aligned", "original"])
def test_rafdb_basic(tmp_path, variant):
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 5\ntrain_00002.jpg 4\ntest_0001.jpg 7\ntest_0002.jpg 1\n")
    for stem in ("train_00001", "train_00002", "test_0001"):
        name = f"{stem}_aligned.jpg" if variant == "aligned" else f"{stem}.jpg"
        image(tmp_path / "Image" / variant / name)
    audit = LabelAudit()
    records = list(read_rafdb(tmp_path, variant=variant, audit=audit))
    assert [(r.split, r.labels["emotion"]) for r in records] == [
        ("train", "Sadness"), ("train", "Happiness"), ("test", "Neutral")]
    assert audit.skipped == {"rafdb:image missing": 1}


def test_rafdb_without_label_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="list_patition_label"):
        list(read_rafdb(tmp_path))


def test_affectnet_per_class_folders(tmp_path):
    image(tmp_path / "train" / "happy" / "a.jpg")
    image(tmp_path / "train" / "contempt" / "b.png")
    image(tmp_path / "val" / "0" / "c.jpg")  # a numeric class folder: code 0 is Neutral
    image(tmp_path / "val" / "9" / "d.jpg")  # Uncertain: no emotion, so not a labelled face
    (tmp_path / "train" / "happy" / "notes.txt").write_text("not an image")
    audit = LabelAudit()
    records = list(read_affectnet(tmp_path, audit=audit))
    assert [(r.split, r.labels.get("emotion")) for r in records] == [
        ("train", "Contempt"), ("train", "Happiness"), ("validation", "Neutral")]
    assert audit.unmapped == {"affectnet:emotion='9'": 1}
    assert sum(audit.skipped.values()) == 1


def test_affectnet_2017_release_layout_with_boxes_and_both_splits(tmp_path):
    # training: Neutral, Happy, None (8), Uncertain (9), Non-Face (10), Contempt; validation: Sad, Happy
    root = write_affectnet_release(tmp_path, training=[0, 1, 8, 9, 10, 7], validation=[2, 1])
    audit = LabelAudit()
    records = list(read_affectnet(root, audit=audit))  # affectnet=/data/affectnet, as the README says
    assert [(r.split, r.labels["emotion"]) for r in records] == [
        ("train", "Neutral"), ("train", "Happiness"), ("train", "Contempt"),
        ("validation", "Sadness"), ("validation", "Happiness")]
    assert all(r.image.is_file() and r.image.parent.parent.name == "Manually_Annotated_Images" for r in records)
    assert records[0].box == (40.0, 10.0, 30.0, 34.0) and records[1].box == (41.0, 10.0, 30.0, 34.0)
    assert records[0].extra["valence"] == 0.5 and records[0].extra["arousal"] == -0.25
    # Codes 8-10 never become faces: skipped and counted.
    assert sum(n for k, n in audit.skipped.items() if "8-10" in k) == 3
    assert [r.split for r in read_affectnet(root, splits=("val",))] == ["validation", "validation"]


def test_affectnet_csvs_beside_the_images_folder_are_found_too(tmp_path):
    root = write_affectnet_release(tmp_path, training=[3], validation=[4], lists_folder=False)
    assert [r.labels["emotion"] for r in read_affectnet(root)] == ["Surprise", "Fear"]


def test_affectnet_class_balancing_caps_each_expression_per_split(tmp_path):
    root = write_affectnet_release(tmp_path, training=[1, 1, 1, 0, 1, 0, 7], validation=[1, 1, 1])
    audit = LabelAudit()
    records = list(read_affectnet(root, max_per_class=2, audit=audit))
    counts = Counter((r.split, r.labels["emotion"]) for r in records)
    assert counts == {("train", "Happiness"): 2, ("train", "Neutral"): 2, ("train", "Contempt"): 1,
                      ("validation", "Happiness"): 2}
    assert audit.skipped == {"affectnet:over max_per_class=2": 3}
    with pytest.raises(ValueError, match="at least 1"):
        list(read_affectnet(root, max_per_class=0))


def test_affectnet_single_csv_with_action_units_and_a_bad_box(tmp_path):
    image(tmp_path / "Manually_Annotated_Images" / "1" / "x.jpg")
    image(tmp_path / "Manually_Annotated_Images" / "2" / "y.jpg")
    image(tmp_path / "Manually_Annotated_Images" / "2" / "z.jpg")
    csv_path = table(tmp_path / "validation.csv",
                     ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression",
                      "valence", "arousal", "AU12_r", "AU4"],
                     [["1/x.jpg", "1", "1", "6", "6", "1", "0.7", "0.3", "2.5", "0"],
                      ["2/y.jpg", "", "", "", "", "3", "", "", "", ""],
                      ["2/z.jpg", "1", "1", "6"]])  # a short row
    audit = LabelAudit()
    records = list(read_affectnet(tmp_path, csv_path=csv_path, audit=audit))
    assert len(records) == 1 and records[0].labels == {"emotion": "Happiness"} and records[0].split == "validation"
    assert records[0].box == (1.0, 1.0, 6.0, 6.0)
    assert records[0].extra["action_units"] == {"AU12_r": 2.5, "AU4": 0.0}
    assert audit.skipped == {"affectnet:face box unreadable (face_x/y/width/height)": 1,
                             "affectnet:row has too few columns": 1}


def test_fairface_row_with_too_few_columns_is_skipped_and_reported(tmp_path):
    path = tmp_path / "fairface_label_val.csv"
    path.write_text("file,age,gender,race,service_test\nval/1.jpg,20-29,Male,White,True\nval/2.jpg,30-39\n")
    image(tmp_path / "val" / "1.jpg")
    image(tmp_path / "val" / "2.jpg")
    audit = LabelAudit()
    records = list(read_fairface(tmp_path, splits=("val",), audit=audit))
    assert [r.key for r in records] == ["fairface:val/1.jpg"]
    assert audit.skipped == {"fairface:row has too few columns": 1}


def test_generic_csv_with_column_mapping(tmp_path):
    image(tmp_path / "img" / "a.jpg")
    image(tmp_path / "img" / "b.jpg")
    path = table(tmp_path / "labels.csv", ["path", "sex", "mood", "years", "person", "fold"], [
        ["img/a.jpg", "woman", "joyful", "34", "p1", "train"],
        ["img/b.jpg", "male", "meh?", "n/a", "p2", "test"],
    ])
    audit = LabelAudit()
    columns = {"image": "path", "gender": "sex", "emotion": "mood", "age": "years", "identity": "person",
               "split": "fold"}
    records = list(read_csv(path, columns, audit=audit))
    assert records[0].labels == {"gender": "Female", "emotion": "Happiness", "age_group": "30-39"}
    assert (records[0].years, records[0].identity, records[0].split) == (34.0, "p1", "train")
    assert records[1].labels == {"gender": "Male"}
    assert audit.unmapped == {"csv:emotion='meh?'": 1, "csv:age='n/a'": 1}
    with pytest.raises(ValueError, match="unknown field"):
        list(read_csv(path, {"image": "path", "mood": "mood"}))


def test_image_folder_and_dispatcher(tmp_path):
    image(tmp_path / "Angry" / "1.jpg")
    image(tmp_path / "surprised" / "2.jpg")
    records = list(read_dataset("imagefolder", tmp_path, attribute="emotion"))
    assert [(r.split, r.labels["emotion"]) for r in records] == [(None, "Anger"), (None, "Surprise")]
    with pytest.raises(ValueError, match="unknown dataset format"):
        read_dataset("coco", tmp_path)
    with pytest.raises(ValueError, match="attribute must be"):
        list(read_image_folder(tmp_path, "mood"))


def test_readers_stream(tmp_path):
    table(tmp_path / "fairface_label_val.csv", ["file", "age", "gender", "race"],
          [[f"val/{i}.jpg", "20-29", "Male", "White"] for i in range(3)])
    for i in range(3):
        image(tmp_path / "val" / f"{i}.jpg")
    stream = read_fairface(tmp_path, splits=("val",))
    assert next(stream).key == "fairface:val/0.jpg"  # a generator: rows are read as they are asked for


def test_built_dataset_single_face_rows_once_each(tmp_path):
    import io

    pytest.importorskip("datasets", reason="the built-dataset reader needs the datasets extra (part of make test)")
    from faceqa.files import write_atomic
    from faceqa.finetune.store import encode_shard, shard_table

    def jpeg(shade):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (shade, 0, 0)).save(buffer, format="JPEG")
        return buffer.getvalue()

    def row(row_id, task, faces, shade=10):
        return {"id": row_id, "image": {"bytes": jpeg(shade), "path": None}, "task": task, "messages": [],
                "prefix": "", "suffix": "", "faces": faces}

    a = {"key": "fairface:val/1.jpg", "source": "fairface", "race": "White", "gender": "Male",
         "age_group": "20-29", "emotion": None}
    b = {"key": "rafdb:Image/aligned/test_0001_aligned.jpg", "source": "rafdb", "race": None, "gender": None,
         "age_group": None, "emotion": "Fear"}
    rows = [row("1", "race", [a]), row("2", "gender", [a]), row("3", "composite", [a, b]),
            row("4", "emotion", [b], shade=200)]
    write_atomic(tmp_path / "validation" / "shard-00000.parquet", encode_shard(shard_table(rows)))
    records = list(read_dataset("built", tmp_path))
    assert [r.key for r in records] == ["built:fairface:val/1.jpg", "built:rafdb:Image/aligned/test_0001_aligned.jpg"]
    assert records[0].labels == {"race": "White", "gender": "Male", "age_group": "20-29"}
    assert records[1].source == "rafdb" and records[1].payload()[:2] == b"\xff\xd8"  # the crop, still encoded
    with pytest.raises(FileNotFoundError, match="no Parquet shards"):
        list(read_dataset("built", tmp_path, split="train"))
