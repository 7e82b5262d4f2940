"""Every kind of awkward input either decodes to a correct RGB array or fails with one clear line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from faceqa.images import BadImage, load_image


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
