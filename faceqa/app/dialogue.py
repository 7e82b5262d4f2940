"""From an OpenAI message list to what the assistant needs: the user turns, their questions and images.

The server keeps no session: every request carries the whole conversation, so the
faces a follow-up refers to ("and the woman next to him?") are recovered by replaying
the earlier user questions against the same images (see service.Service.converse).
Assistant, system and tool messages do not steer faceqa's answers and are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .config import ServerConfig
from .errors import APIError
from .openai_schema import ImagePart, Message

DEFAULT_QUESTION = "Describe the people in this photo."
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass
class ImageRef:
    url: str
    param: str  # where the image sits in the request, for error messages


@dataclass
class UserTurn:
    """One user message of a request: its text and its images (not the assistant's conversation turn)."""

    question: str
    images: list[ImageRef] = field(default_factory=list)


def count_tokens(text: str) -> int:
    """Words and punctuation marks: faceqa-local has no tokenizer, and usage must still be comparable."""
    return len(_TOKEN.findall(text))


def message_text(message: Message) -> str:
    if isinstance(message.content, str):
        return message.content
    if not message.content:
        return ""
    return "\n".join(part.text for part in message.content if not isinstance(part, ImagePart))


def user_turns(messages: list[Message], config: ServerConfig) -> list[UserTurn]:
    """The user turns in order, checked against the server's limits; the last one is the question."""
    if len(messages) > config.max_messages:
        raise APIError(400, f"{len(messages)} messages is over this server's limit of {config.max_messages}",
                       param="messages", code="too_many_messages")
    if messages[-1].role != "user":
        raise APIError(400, "the last message must be the user's question", param=f"messages[{len(messages) - 1}]",
                       code="invalid_value")
    turns: list[UserTurn] = []
    count = 0
    for index, message in enumerate(messages):
        parts = message.content if isinstance(message.content, list) else []
        images = [(i, p) for i, p in enumerate(parts) if isinstance(p, ImagePart)]
        if images and message.role != "user":
            raise APIError(400, f"images are only accepted in user messages, not in a {message.role} message",
                           param=f"messages[{index}].content", code="invalid_value")
        if message.role != "user":
            continue
        question = message_text(message).strip()
        if len(question) > config.max_question_chars:
            raise APIError(400, f"question is {len(question):,} characters, over this server's limit of "
                           f"{config.max_question_chars:,}", param=f"messages[{index}].content",
                           code="question_too_long")
        count += len(images)
        if count > config.max_images:
            raise APIError(400, f"more than {config.max_images} images in the conversation (this server's limit)",
                           param=f"messages[{index}].content", code="too_many_images")
        refs = [ImageRef(p.image_url if isinstance(p.image_url, str) else p.image_url.url,
                         f"messages[{index}].content[{i}].image_url") for i, p in images]
        turns.append(UserTurn(question, refs))
    if not turns[-1].question:
        turns[-1].question = DEFAULT_QUESTION
    return turns
