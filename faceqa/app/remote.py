"""The chat page's remote backend: any OpenAI-compatible server (`faceqa serve`, vLLM, a hosted model)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from faceqa.vlm.endpoint import image_data_url, openai_client

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam


class RemoteError(RuntimeError):
    """The server could not be reached or refused the request; the message is fit for the page."""


def _turn(role: str, content: str) -> ChatCompletionMessageParam:
    if role == "user":
        return {"role": "user", "content": content}
    return {"role": "assistant", "content": content}


def ask_remote(settings: dict, photos: list[np.ndarray], messages: list[dict], timeout: float = 60.0) -> str:
    """Send the chat so far, with the photos attached to the latest question, and return the reply text."""
    import openai

    history = [_turn(m["role"], m["content"]) for m in messages[:-1] if not m.get("error")]
    last = messages[-1]["content"]
    parts: list[ChatCompletionContentPartParam] = [{"type": "text", "text": last}]
    parts += [{"type": "image_url", "image_url": {"url": image_data_url(rgb, jpeg_quality=95)}} for rgb in photos]
    client = openai_client(settings["base_url"], settings.get("api_key"), timeout, max_retries=1)
    try:
        reply = client.chat.completions.create(model=settings["model"],
                                               messages=[*history, {"role": "user", "content": parts}])
    except openai.APIConnectionError:
        raise RemoteError(f"cannot reach {settings['base_url']}") from None
    except openai.APITimeoutError:
        raise RemoteError(f"no reply from {settings['base_url']} within {timeout:.0f} s") from None
    except openai.APIStatusError as error:
        raise RemoteError(f"{error.status_code}: {error.message}") from None
    return reply.choices[0].message.content or ""
