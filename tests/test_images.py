"""Every kind of awkward input either decodes to a correct RGB array or fails with one clear line."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceqa.images import MAX_PIXELS, MAX_SIDE, BadImage, load_image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def astronaut(examples) -> Image.Image:
    return Image.open(examples / "astronaut.png").convert("RGB")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty image data"),
        (b"hello, I am not a picture", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),
    ],
)
def test_garbage_bytes_are_refused_with_a_reason(data, message):
    with pytest.raises(BadImage, match=message):
        load_image(data)


def test_truncated_jpeg_is_refused(astronaut):
    data = _encode(astronaut, "JPEG")
    with pytest.raises(BadImage, match="damaged or truncated"):
        load_image(data[: len(data) // 2])


def test_missing_empty_and_directory_paths(tmp_path):
    with pytest.raises(BadImage, match="no such file"):
        load_image(tmp_path / "absent.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(BadImage, match="empty file"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(BadImage, match="is a directory"):
        load_image(tmp_path)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _encode(Image.new("L", (9000, 5000)), "PNG")  # 45 MP of zeros compresses to a few kB
    assert len(bomb) < 200_000
    with pytest.raises(BadImage, match="pixel limit"):
        load_image(bomb)
    assert load_image(bomb, max_pixels=50_000_000).shape == (5000, 9000, 3)


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "L", "LA", "P", "I;16"])
def test_every_colour_mode_becomes_8bit_rgb(astronaut, mode):
    if mode == "I;16":
        wide = (np.asarray(astronaut.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        image, fmt = Image.fromarray(wide), "PNG"
    else:
        image, fmt = astronaut.convert(mode), ("JPEG" if mode == "CMYK" else "PNG")
    rgb = load_image(_encode(image, fmt))
    assert rgb.dtype == np.uint8 and rgb.shape == (512, 512, 3)
    assert 40 < rgb.mean() < 200  # real content, not a black or white frame


def test_transparent_areas_become_white(astronaut):
    image = astronaut.convert("RGBA")
    image.putalpha(0)
    assert load_image(_encode(image, "PNG")).min() == 255


def test_exif_rotation_is_applied_so_faces_stay_upright(engine, astronaut):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; viewers turn it 90 degrees clockwise
    stored = astronaut.rotate(90, expand=True)
    rgb = load_image(_encode(stored, "JPEG", exif=exif.tobytes()))
    assert rgb.shape == (512, 512, 3)
    assert len(engine.analyze(rgb).faces) == 1


def test_animated_gif_gives_its_first_frame(astronaut):
    frames = [astronaut.convert("P"), Image.new("P", astronaut.size, 0)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    rgb = load_image(data)
    assert rgb.shape == (512, 512, 3) and rgb.mean() > 40  # the astronaut, not the black second frame


CRASHERS = sorted((Path(__file__).parent / "data" / "crashers").iterdir())


@pytest.mark.parametrize("path", CRASHERS, ids=[p.name for p in CRASHERS])
def test_files_that_once_crashed_a_decoder_are_refused_as_damaged(path):
    # tests/data/crashers/: inputs fuzzing found (the AVIF one made Pillow raise RuntimeError).
    with pytest.raises(BadImage, match="damaged") as refused:
        load_image(path.read_bytes())
    assert refused.value.kind == "damaged"
    with pytest.raises(BadImage, match=path.name):  # by path too, naming the file
        load_image(path)


def _decoding_raises(monkeypatch, error: BaseException) -> None:
    def load(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(Image.Image, "load", load)


def test_any_exception_inside_a_decoder_is_a_bad_image(monkeypatch, astronaut):
    data = _encode(astronaut, "PNG")
    _decoding_raises(monkeypatch, IndexError("list index out of range"))
    with pytest.raises(BadImage, match="damaged or truncated image .list index out of range") as refused:
        load_image(data)
    assert refused.value.kind == "damaged"


def test_every_refusal_says_its_kind_as_data(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases = {b"": "empty", b"not a picture": "not_an_image", tmp_path / "absent.jpg": "missing",
             tmp_path: "not_a_file", tmp_path / "empty.jpg": "empty",
             _encode(Image.new("L", (9000, 5000)), "PNG"): "too_large"}
    for source, kind in cases.items():
        with pytest.raises(BadImage) as refused:
            load_image(source)
        assert refused.value.kind == kind, (source, refused.value)


def test_a_bad_image_survives_pickling_into_worker_processes():
    import pickle

    copy = pickle.loads(pickle.dumps(BadImage("x.jpg: no such file", "missing")))
    assert str(copy) == "x.jpg: no such file" and copy.kind == "missing"


def test_float_tiffs_keep_their_content(astronaut):
    gray = np.asarray(astronaut.convert("L"), dtype=np.float32) / 255.0  # float samples in 0..1
    rgb = load_image(_encode(Image.fromarray(gray, mode="F"), "TIFF"))
    assert rgb.shape == (512, 512, 3)
    assert 40 < rgb.mean() < 200  # the astronaut, not a black frame


def test_a_fifo_is_named_as_such_and_never_waited_on(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # keeps a broken reader from hanging the suite
    try:
        with pytest.raises(BadImage, match="photo.jpg: is a FIFO") as refused:
            load_image(fifo)
    finally:
        os.close(writer)
    assert refused.value.kind == "not_a_file"
    with pytest.raises(BadImage, match="is a device"):
        load_image("/dev/null")


def test_an_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    photo = tmp_path / "private.jpg"
    photo.write_bytes(b"\xff\xd8 not really")
    photo.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the kernel's answer for an ordinary user
        real_open = os.open

        def refused_open(path, *args, **kwargs):
            if Path(path) == photo:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refused_open)
    with pytest.raises(BadImage, match="private.jpg: permission denied") as refused:
        load_image(photo)
    assert refused.value.kind == "unreadable"


def test_a_strip_image_is_refused_from_its_header_before_decoding(monkeypatch):
    strip = _encode(Image.new("RGB", (333_333, 48), (120, 120, 120)), "PNG")  # 47 KB, 16 M pixels
    assert len(strip) < 100_000 and MAX_PIXELS > 333_333 * 48
    _decoding_raises(monkeypatch, AssertionError("the strip was decoded"))
    with pytest.raises(BadImage, match="333333x48 has a side over the 20,000-pixel limit") as refused:
        load_image(strip)
    assert refused.value.kind == "too_large"


def test_long_but_not_extreme_strips_still_decode():
    rgb = load_image(_encode(Image.new("RGB", (MAX_SIDE, 48), (120, 120, 120)), "PNG"))
    assert rgb.shape == (48, MAX_SIDE, 3)
