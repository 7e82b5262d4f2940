"""Numbers the seed papers report, shown beside ours as reference rows: published, not measured here.

They come from the papers' own test sets and protocols; a row of ours is comparable
only when the dataset and the task match, and even then the splits may differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

LABEL = "published, not measured"


@dataclass(frozen=True)
class PublishedResult:
    model: str
    dataset: str
    task: str
    accuracy: float
    note: str = LABEL


PUBLISHED = (
    PublishedResult("FaceScanPaliGemma", "FairFace", "race", 0.811),
    PublishedResult("FaceScanPaliGemma", "FairFace", "gender", 0.958),
    PublishedResult("FaceScanPaliGemma", "FairFace", "age_group", 0.80),
    PublishedResult("FaceScanPaliGemma", "AffectNet", "emotion", 0.594),
    PublishedResult("ExpLLM", "RAF-DB", "emotion", 0.9103),
    PublishedResult("ExpLLM", "AffectNet-8", "emotion", 0.6593),
    # FaceXBench (Narayan et al. 2025), all 5,000 questions; no model there scores above 60%.
    PublishedResult("GPT-4o", "FaceXBench", "facexbench", 0.5024),
    PublishedResult("Gemini 1.5 Pro", "FaceXBench", "facexbench", 0.5440),
)


def published_rows(tasks: tuple[str, ...] | list[str] | None = None) -> list[dict]:
    return [asdict(r) for r in PUBLISHED if tasks is None or r.task in tasks]
