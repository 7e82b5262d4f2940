"""The wire format: OpenAI's chat-completions objects (the subset faceqa serves) and faceqa's own endpoints.

Requests are validated strictly ("1" is not a number) so that what the OpenAPI document
says is what the server accepts; fields OpenAI defines that faceqa has no use for
(tools, logit_bias, seed, ...) are accepted and ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from faceqa.schema import Answer, ImageError, ImageReport

from .config import LOCAL_MODEL


class _In(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ----------------------------------------------------------------------------------------


class ImageURL(_In):
    url: str = Field(description="`data:image/...;base64,...`, or an http(s) URL of a host the operator allowed.")
    detail: Literal["auto", "low", "high"] | None = Field(None, description="Accepted; faceqa always looks closely.")


class TextPart(_In):
    type: Literal["text"]
    text: str


class ImagePart(_In):
    type: Literal["image_url"]
    image_url: ImageURL | str


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_In):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = Field(
        None, description="Images only in user messages. The answer is rebuilt from the user turns; "
        "system, developer, assistant and tool messages do not steer it.")
    name: str | None = None


class JSONSchemaFormat(_In):
    name: str
    description: str | None = None
    schema_: dict | None = Field(None, alias="schema", description="JSON Schema the answer must validate against.")
    strict: bool | None = None


class ResponseFormat(_In):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(_In):
    include_usage: bool | None = None


class ChatCompletionRequest(_In):
    model: str = Field(description="`faceqa-local`, or `faceqa-vlm` with a VLM backend (see /v1/models).")
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(1, ge=1, description="Choices to return; the server's limit applies (default 8).")
    max_tokens: int | None = Field(None, ge=1, description="Cut the answer after this many tokens (words and "
                                   "punctuation marks); finish_reason is then `length`.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens; the smaller one wins.")
    temperature: float | None = Field(None, ge=0, le=2, description="Accepted; faceqa's answers are deterministic.")
    top_p: float | None = Field(None, ge=0, le=1, description="Accepted; faceqa's answers are deterministic.")
    stop: str | list[str] | None = Field(None, description="Cut the answer before the first of these strings.")
    response_format: ResponseFormat | None = None
    user: str | None = None


class AnalyzeRequest(_In):
    images: list[str] = Field(min_length=1, description="Image URLs, as in `image_url.url` (data: URLs, "
                              "or http(s) URLs of allowed hosts).")
    model: str = Field(LOCAL_MODEL, description="`faceqa-vlm` fills the attributes with the VLM backend.")
    embeddings: bool = Field(False, description="Also return identity embeddings (biometric templates).")


# --- responses ---------------------------------------------------------------------------------------


class Usage(_Out):
    prompt_tokens: int = Field(description="Words and punctuation marks of the messages' text; images not counted.")
    completion_tokens: int
    total_tokens: int


class AssistantMessage(_Out):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(_Out):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(_Out):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    faceqa: Answer = Field(description="faceqa extension: the structured answer (task, faces, boxes, attributes).")


class Delta(_Out):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(_Out):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(_Out):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    faceqa: Answer | None = Field(None, description="faceqa extension, on each choice's last chunk: the structured "
                                  "answer.")


class ModelCard(_Out):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "faceqa"


class ModelList(_Out):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class FaceAnalysis(_Out):
    object: Literal["faces.analysis"] = "faces.analysis"
    model: str
    data: list[ImageReport | ImageError] = Field(
        description="One entry per input image, in order: its report, or why it could not be analysed.")


class Health(_Out):
    status: Literal["ok"] = "ok"
    version: str
    models: list[str]
    workers: int
    pending: int = Field(description="Requests waiting for or using a model worker.")


class ErrorDetail(_Out):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Out):
    error: ErrorDetail
