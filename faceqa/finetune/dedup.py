"""Near-duplicate faces by perceptual hash, so one face never ends up in both splits or ten times in one.

Face video datasets and scraped collections repeat the same shot with a shifted crop,
a re-encode or a resize; a difference hash (dHash: is each pixel brighter than its
right neighbour, on a tiny grayscale thumbnail) survives all of those. Two hashes
within `max_distance` bits are the same picture. Lookup is exact, not approximate:
the hash is cut into `max_distance + 1` bands, and by pigeonhole two hashes that
close agree on at least one whole band, so only faces sharing a band are compared.
Faces are alike, so their hashes are not spread evenly and the hashes sharing a band
grow with the dataset (a thousand per band value at 20,000 synthetic faces): a band
value's hashes are kept packed (`array`), and once there are many they are compared
all at once through a numpy view, so the driver of a build of millions of faces stays
fast.
"""

from __future__ import annotations

from array import array

import numpy as np
from PIL import Image


def dhash(rgb: np.ndarray, size: int = 8) -> int:
    """A `size * size`-bit difference hash of an RGB image."""
    gray = Image.fromarray(rgb).convert("L").resize((size + 1, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(gray, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


VECTORIZED = 48  # hashes in a band value from which one numpy comparison beats a Python loop


def _near(stored: array, value: int, distance: int) -> int | None:
    """A hash in `stored` within `distance` bits of `value`, or None."""
    if len(stored) < VECTORIZED:
        return next((other for other in stored if (other ^ value).bit_count() <= distance), None)
    view = np.frombuffer(stored, dtype=np.uint64)
    near = np.flatnonzero(np.bitwise_count(view ^ np.uint64(value)) <= distance)
    return int(view[near[0]]) if len(near) else None


class NearDuplicateIndex:
    """Hashes (of at most 64 bits) seen so far; `add` says whether a new one is a near duplicate of any of them."""

    def __init__(self, bits: int = 64, max_distance: int = 4):
        if not 0 < bits <= 64:
            raise ValueError(f"hashes of 1 to 64 bits (hash_size up to 8), got {bits}")
        if not 0 <= max_distance < bits:
            raise ValueError(f"max_distance must be in [0, {bits}), got {max_distance}")
        self.max_distance = max_distance
        bands = max_distance + 1
        edges = [round(i * bits / bands) for i in range(bands + 1)]
        self._masks = [(((1 << (hi - lo)) - 1) << lo, lo) for lo, hi in zip(edges, edges[1:], strict=False)]
        self._tables: list[dict[int, array]] = [{} for _ in self._masks]
        self.size = 0

    def _bands(self, value: int) -> list[int]:
        return [(value & mask) >> shift for mask, shift in self._masks]

    def find(self, value: int) -> int | None:
        """A stored hash within `max_distance` bits of `value`, or None."""
        for table, band in zip(self._tables, self._bands(value), strict=True):
            stored = table.get(band)
            if stored is not None and (other := _near(stored, value, self.max_distance)) is not None:
                return other
        return None

    def insert(self, value: int) -> None:
        for table, band in zip(self._tables, self._bands(value), strict=True):
            table.setdefault(band, array("Q")).append(value)
        self.size += 1

    def add(self, value: int) -> bool:
        """Store `value` unless it is a near duplicate; True when it was new."""
        if self.find(value) is not None:
            return False
        self.insert(value)
        return True
