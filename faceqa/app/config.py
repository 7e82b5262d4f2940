"""Everything an operator can set on `faceqa serve`, in one flat record.

Defaults are the safe ones: loopback only, no remote image URLs, limits sized for
photos of a few people. The CLI fills this from options; tests build it directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from faceqa.prompts.templates import STYLES

if TYPE_CHECKING:
    from faceqa.vlm.recipe import Recipe

LOCAL_MODEL = "faceqa-local"
VLM_MODEL = "faceqa-vlm"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()
    # Remote images: origins (scheme://host[:port]) whose URLs may be fetched; empty refuses every remote URL.
    allow_remote_origins: tuple[str, ...] = ()
    remote_max_bytes: int = 10_000_000
    remote_timeout: float = 10.0
    remote_max_redirects: int = 3
    # Request limits.
    max_body_bytes: int = 25_000_000
    max_images: int = 8
    max_pixels: int = 16_000_000
    max_messages: int = 64
    max_question_chars: int = 2_000
    max_choices: int = 8
    max_text_chars: int = 100_000  # all text of a request's messages together
    request_timeout: float = 60.0
    # Model work: `workers` engines, each used by one thread at a time; more waiting requests than
    # `max_pending` are refused with 429 rather than queued without bound.
    workers: int = 1  # per model: faceqa-local and faceqa-vlm each have their own, so neither waits for the other
    threads: int = 1
    max_pending: int = 256
    cache_size: int = 256  # image analyses kept in memory, keyed by the image's hash; 0 disables
    # faceqa-vlm: the assistant over an OpenAI-compatible VLM server (e.g. vLLM); absent when unset.
    vlm_base_url: str | None = None
    vlm_model: str | None = None
    vlm_api_key: str | None = field(default=None, repr=False)
    vlm_style: str = "chat"  # prompt wording: "chat", or "paligemma" for PaliGemma's task prefixes
    vlm_recipe: Recipe | None = None  # the served adapter's (its crop and JPEG quality); None: a base or hosted model
    # Host headers answered (DNS-rebinding protection); empty means the loopback names when listening on
    # loopback, and any host otherwise (then API keys are required anyway); "*" turns the check off.
    allowed_hosts: tuple[str, ...] = ()

    @property
    def bind_host(self) -> str:
        """The address to bind: `[::1]` (URL notation) is `::1` to the socket."""
        return self.host.strip().removeprefix("[").removesuffix("]")

    @property
    def host_names(self) -> frozenset[str] | None:
        """Host names (without port) a request's Host header may carry, or None for any."""
        if "*" in self.allowed_hosts or (not self.allowed_hosts and not is_loopback(self.bind_host)):
            return None
        names = self.allowed_hosts or ("localhost", "127.0.0.1", "::1", self.bind_host)
        return frozenset(name.lower().strip("[]") for name in names)

    @property
    def models(self) -> tuple[str, ...]:
        """Models this server really serves, first is the default."""
        return (LOCAL_MODEL, VLM_MODEL) if self.vlm_base_url and self.vlm_model else (LOCAL_MODEL,)

    def check(self) -> None:
        """Refuse configurations that would expose faces without a key, or make no sense."""
        require_protection(self.host, self.api_keys, "an API key: pass --api-key or set FACEQA_API_KEY")
        if bool(self.vlm_base_url) != bool(self.vlm_model):
            raise ValueError("faceqa-vlm needs both --vlm-base-url and --vlm-model")
        if self.vlm_style not in STYLES:
            raise ValueError(f"--vlm-style must be one of {', '.join(STYLES)}")
        for entry in self.allow_remote_origins:
            origin(entry)
            parts = urlsplit(entry.strip())
            if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
                raise ValueError(f"--allow-remote-origin takes scheme://host[:port] only, not {entry[:100]!r}")
        for name in ("max_body_bytes", "max_images", "max_pixels", "max_messages", "max_question_chars",
                     "max_choices", "max_text_chars", "workers", "threads", "max_pending", "remote_max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.request_timeout <= 0 or self.remote_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.cache_size < 0:
            raise ValueError("cache_size must be 0 (off) or more")


def require_protection(host: str, secrets: tuple[str, ...], needs: str, opted_in: bool = True) -> None:
    """Refuse to listen off loopback unless opted in and guarded by a secret (an API key, a password).

    The one rule `faceqa serve` and `faceqa app` share: faces are biometric data, and a
    listener reachable from other machines without a secret would hand them to anyone.
    """
    if any(not secret.strip() for secret in secrets):
        raise ValueError("keys and passwords must not be empty")
    if not is_loopback(host) and not (opted_in and secrets):
        raise ValueError(f"listening on {host} (not loopback) needs {needs}")


Origin = tuple[str, str, int]  # scheme, host (lower case, IPv6 without brackets), port


def origin(url: str) -> Origin:
    """The origin of an http(s) URL or allow-list entry, default port filled in; ValueError if it has none."""
    parts = urlsplit(url.strip())  # ValueError on a broken IPv6 literal
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url[:100]!r} is not an http(s) origin such as https://images.example.org or "
                         "http://10.0.0.5:8080")
    port = parts.port  # ValueError when not a number in 0-65535
    return scheme, parts.hostname.lower(), port if port is not None else (443 if scheme == "https" else 80)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
