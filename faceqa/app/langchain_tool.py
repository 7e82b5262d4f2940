"""`FaceAnalysisTool`: faceqa as a LangChain tool, so an agent's LLM can look at the people in a photo.

The tool runs faceqa in-process (no server, no LLM of its own). With a question it
answers through the assistant; without one it returns every face's apparent
attributes. The LLM gets short text; the full record (Answer or ImageReport) rides
along as the tool message's artifact for the program around the agent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

from faceqa.images import BadImage, load_image
from faceqa.schema import ImageReport

from .completions import answer_text
from .policy import decode_data_url


class FaceAnalysisInput(BaseModel):
    image: str = Field(description="The photo: a local image file path or a data:image/...;base64 URL.")
    question: str | None = Field(
        None, description="A question about the people in the photo (apparent age, gender, emotion; who is the "
        "oldest; why does someone look happy). Leave it out to get every face's attributes.")


class FaceAnalysisTool(BaseTool):
    """Ask faceqa about the people in a photo. Faces are numbered left to right from 1."""

    name: str = "face_analysis"
    description: str = (
        "Looks at the people in a photo. Given an image (file path or data: URL) and optionally a question, "
        "returns the answer, or without a question each face's apparent age group, gender and emotion with "
        "confidences, numbered left to right. Attributes are estimates from appearance, not facts."
    )
    args_schema: type[BaseModel] = FaceAnalysisInput
    response_format: Literal["content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    image_dir: Path | None = Field(None, description="If set, file paths must lie inside this folder.")
    assistant: Any = Field(None, description="A faceqa Assistant to use; one over the embedded engine by default.")

    def _run(self, image: str, question: str | None = None, run_manager: Any = None) -> tuple[str, dict]:
        rgb = self._load(image)
        assistant = self._assistant()
        if question and question.strip():
            answer = assistant.answer([rgb], question.strip())
            return answer_text(answer), answer.model_dump(mode="json")
        [(_, report)] = assistant.analyze(rgb)
        return _summary(report), report.model_dump(mode="json", exclude_none=True)

    def _assistant(self) -> Any:
        if self.assistant is None:
            from faceqa.assistant import Assistant
            from faceqa.faces.engine import FaceEngine

            self.assistant = Assistant(engine=FaceEngine().load())
        return self.assistant

    def _load(self, image: str):
        try:
            if image.startswith("data:"):
                return load_image(decode_data_url(image))
            if "://" in image:
                raise ToolException("only local file paths and data: URLs are accepted")
            path = Path(image).expanduser().resolve()
            if self.image_dir is not None and not path.is_relative_to(self.image_dir.expanduser().resolve()):
                raise ToolException(f"{image} is outside the folder this tool may read")
            return load_image(path)
        except (BadImage, ValueError) as error:
            raise ToolException(str(error)) from None


def _summary(report: ImageReport) -> str:
    """One compact JSON line per face: what an LLM needs, without landmarks or model names."""
    if not report.faces:
        return "No faces found in the photo."
    faces = []
    for face in report.faces:
        entry: dict[str, Any] = {"face": face.id, "box": list(face.box)}
        if face.age:
            entry["apparent_age_group"] = face.age.group
            if face.age.years is not None:
                entry["apparent_age_years"] = round(face.age.years)
        for name in ("gender", "emotion", "race"):
            value = getattr(face, name)
            if value is not None:
                entry[f"apparent_{name}"] = {"label": value.label, "confidence": round(value.score, 2)}
        faces.append(entry)
    return f"{len(faces)} face(s), numbered left to right:\n" + "\n".join(json.dumps(f) for f in faces)
