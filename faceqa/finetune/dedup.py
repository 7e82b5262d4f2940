"""Near-duplicate faces by perceptual hash, so one face never ends up in both splits or ten times in one.

Face video datasets and scraped collections repeat the same shot with a shifted crop,
a re-encode or a resize; a difference hash (dHash: is each pixel brighter than its
right neighbour, on a tiny grayscale thumbnail) survives all of those. Two hashes
within `max_distance` bits are the same picture. Lookup is exact, not approximate:
the hash is cut into `max_distance + 1` bands, and by pigeonhole two hashes that
close agree on at least one whole band, so only faces sharing a band are compared.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from PIL import Image


def dhash(rgb: np.ndarray, size: int = 8) -> int:
    """A `size * size`-bit difference hash of an RGB image."""
    gray = Image.fromarray(rgb).convert("L").resize((size + 1, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(gray, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


class NearDuplicateIndex:
    """Hashes seen so far; `add` says whether a new one is a near duplicate of any of them."""

    def __init__(self, bits: int = 64, max_distance: int = 4):
        if not 0 <= max_distance < bits:
            raise ValueError(f"max_distance must be in [0, {bits}), got {max_distance}")
        self.max_distance = max_distance
        bands = max_distance + 1
        edges = [round(i * bits / bands) for i in range(bands + 1)]
        self._masks = [(((1 << (hi - lo)) - 1) << lo, lo) for lo, hi in zip(edges, edges[1:], strict=False)]
        self._tables: list[dict[int, list[int]]] = [defaultdict(list) for _ in self._masks]
        self.size = 0

    def _bands(self, value: int) -> list[int]:
        return [(value & mask) >> shift for mask, shift in self._masks]

    def find(self, value: int) -> int | None:
        """A stored hash within `max_distance` bits of `value`, or None."""
        for table, band in zip(self._tables, self._bands(value), strict=True):
            for other in table.get(band, ()):
                if (other ^ value).bit_count() <= self.max_distance:
                    return other
        return None

    def insert(self, value: int) -> None:
        for table, band in zip(self._tables, self._bands(value), strict=True):
            table[band].append(value)
        self.size += 1

    def add(self, value: int) -> bool:
        """Store `value` unless it is a near duplicate; True when it was new."""
        if self.find(value) is not None:
            return False
        self.insert(value)
        return True
