"""The hooks for what the rules cannot do, filled by a VLM backend.

`ReferentResolver` grounds descriptions the referring rules cannot read ("the boy holding a
ball"): the router asks it when a question's referent has such a description. Questions the
rules cannot answer at all carry `Plan.vlm` ("not_visible", "referent", "open_question"), so a
VLM integration can answer those plans instead of the composer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from faceqa.schema import ImageReport


@runtime_checkable
class ReferentResolver(Protocol):
    def find_faces(self, description: str, question: str, rgb: np.ndarray, report: ImageReport) -> list[int] | None:
        """Ids of the faces of `report` that `description` refers to; None when the resolver cannot tell.

        The router only trusts an answer of exactly one face; several ids come back to
        the user as an ambiguity, listing those faces.
        """
        ...
