"""Evidence a plan needs beyond the face reports: identity similarities and expression reasoning.

Identity embeddings are biometric templates: they are computed only for the faces a
same-person question compares (`Plan.identity_faces`), from the photo when the report
does not carry them, and never stored in the conversation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from faceqa.prompts.cot import compose_cot
from faceqa.schema import FaceReport

from .compose import Evidence, Pair
from .plan import FaceRef, Plan

Embed = Callable[[np.ndarray, FaceReport], list[float]]
NEED_PHOTOS = (
    "To compare identities I need the photos themselves (identity embeddings are not kept in the conversation); "
    "please send the photos again with the question."
)


def gather(plan: Plan, faces: dict[FaceRef, FaceReport], rgbs: Sequence[np.ndarray | None], embed: Embed) -> Evidence:
    """The evidence for `plan` (for each part of a compound plan)."""
    if plan.parts:
        return Evidence(parts=[gather(part, faces, rgbs, embed) for part in plan.parts])
    evidence = Evidence()
    if plan.status != "ok":
        return evidence
    if plan.needs_identities:
        embeddings = {}
        for ref in plan.targets:
            face, rgb = faces[ref], rgbs[ref.image - 1]
            if face.embedding is not None:
                embeddings[ref] = face.embedding
            elif rgb is not None:
                embeddings[ref] = embed(rgb, face)
            else:
                evidence.missing = NEED_PHOTOS
                return evidence
        from faceqa.faces.identity import SAME_PERSON_COSINE, cosine

        evidence.pairs = [
            Pair(a, b, cosine(embeddings[a], embeddings[b]), SAME_PERSON_COSINE)
            for a, b in itertools.combinations(plan.targets, 2)
        ]
    if plan.intent == "reasoning":
        from faceqa.faces.engine import GEOMETRIC_AU_SOURCE

        for ref in plan.targets:
            face = faces[ref]
            if face.emotion is not None:
                geometric = face.sources.get("action_units") == GEOMETRIC_AU_SOURCE
                scores = face.emotion.scores or {face.emotion.label: face.emotion.score}
                evidence.cots[ref] = compose_cot(face.action_units, face.emotion.label, scores, geometric=geometric)
    return evidence
