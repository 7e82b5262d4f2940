"""The hook a VLM backend fills to ground descriptions the rules cannot ("the boy holding a ball")."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from faceqa.schema import ImageReport


@runtime_checkable
class ReferentResolver(Protocol):
    def resolve(self, description: str, question: str, rgb: np.ndarray, report: ImageReport) -> list[int] | None:
        """Ids of the faces of `report` that `description` refers to; None when the resolver cannot tell.

        The router only trusts an answer of exactly one face; several ids come back to
        the user as an ambiguity, listing those faces.
        """
        ...
