"""Compose faceqa/examples/group.jpg (four people, side by side) from the public-domain portraits.

Run once; the result is committed. Each portrait is cropped around its detected
face (with head and shoulders), resized to the same 300x380 tile and placed left
to right: Obama, the astronaut, Biden, Grace Hopper.
"""

from pathlib import Path

from PIL import Image

from faceqa.faces.engine import FaceEngine

EXAMPLES = Path(__file__).resolve().parent.parent / "faceqa" / "examples"
ORDER = ["obama.jpg", "astronaut.png", "biden.jpg", "grace_hopper.jpg"]
TILE = (300, 380)


def tile(engine: FaceEngine, name: str) -> Image.Image:
    x, y, w, h = engine.analyze(EXAMPLES / name).faces[0].box
    cx, cy, half = x + w / 2, y + h / 2, 1.1 * max(w, h)
    image = Image.open(EXAMPLES / name).convert("RGB")
    crop = image.crop((cx - half * TILE[0] / TILE[1], cy - half, cx + half * TILE[0] / TILE[1], cy + half * 1.1))
    return crop.resize(TILE, Image.LANCZOS)


def main() -> None:
    engine = FaceEngine()
    group = Image.new("RGB", (TILE[0] * len(ORDER), TILE[1]), "white")
    for index, name in enumerate(ORDER):
        group.paste(tile(engine, name), (index * TILE[0], 0))
    group.save(EXAMPLES / "group.jpg", quality=90)


if __name__ == "__main__":
    main()
