"""Train/validation assignment that keeps a person (or, without identities, a file) on one side.

The split is a pure function of the group key and a seed, so it is the same in every
worker process, on every resume and on every machine, with no table to keep.
"""

from __future__ import annotations

import hashlib

from faceqa.datasets.readers import SPLIT_NAMES

SPLIT_POLICIES = ("auto", "native", "hash")


def _unit(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def hash_split(group: str, val_fraction: float, seed: int) -> str:
    """'validation' for about `val_fraction` of groups, 'train' for the rest."""
    return "validation" if _unit(f"{seed}|{group}") < val_fraction else "train"


def assign_split(native: str | None, group: str, policy: str, val_fraction: float, seed: int) -> str:
    """The split of one face.

    auto    the dataset's own split when it has one (FairFace, RAF-DB, AffectNet's
            CSVs), otherwise a hash split
    native  the dataset's own split, which must exist
    hash    a hash split of the group key: identity when the dataset names people,
            else the file
    """
    if policy not in SPLIT_POLICIES:
        raise ValueError(f"split policy must be one of {', '.join(SPLIT_POLICIES)}, got {policy!r}")
    if policy != "hash" and native:
        name = SPLIT_NAMES.get(native.lower())
        if name is None:
            raise ValueError(f"unknown native split {native!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return name
    if policy == "native":
        raise ValueError(f"{group}: the dataset gives no split for this row (use --split hash or auto)")
    return hash_split(group, val_fraction, seed)
