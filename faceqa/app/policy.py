"""Who may call, and which image URLs become bytes: the server's security policy in one place.

Faces are biometric data, so the defaults refuse: every remote URL unless its host is
on the operator's allow-list (and then with a size cap, a time limit and redirects
re-checked hop by hop), and every `file:` URL or bare path always. Image bytes stay
in memory; nothing here writes or logs them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
from urllib.parse import urljoin, urlsplit

import httpx

from .config import ServerConfig
from .errors import APIError

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)
_REDIRECTS = {301, 302, 303, 307, 308}


def check_api_key(authorization: str | None, keys: tuple[str, ...]) -> None:
    """Bearer-token check against every configured key in constant time (no early exit on a match)."""
    if not keys:
        return
    if not authorization:
        raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key",
                       headers={"WWW-Authenticate": "Bearer"})
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(401, "the Authorization header must be 'Bearer <key>'", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})
    given = token.strip().encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not matched:
        raise APIError(401, "invalid API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def decode_data_url(url: str) -> bytes:
    """The bytes of a `data:image/...;base64,` URL; ValueError says what is wrong with it."""
    header = _DATA_URL.match(url)
    if header is None:
        raise ValueError("malformed data: URL (expected data:image/<type>;base64,<data>)")
    mime = (header["mime"] or "").lower()
    if not mime.startswith("image/"):
        raise ValueError(f"data: URL has media type {mime or 'text/plain'!r}, not an image")
    if not header["b64"]:
        raise ValueError("data: URL images must be base64-encoded (';base64,')")
    try:
        data = base64.b64decode(url[header.end():], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("data: URL is not valid base64") from None
    if not data:
        raise ValueError("data: URL holds no image data")
    return data


class ImageFetcher:
    """Turns an `image_url.url` into image bytes, or refuses it with a 4xx saying why."""

    def __init__(self, config: ServerConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.allowed = frozenset(host.lower().strip() for host in config.allow_remote_hosts)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def fetch(self, url: str, param: str) -> bytes:
        scheme = urlsplit(url).scheme.lower() if ":" in url else ""
        if scheme == "data":
            try:
                return decode_data_url(url)
            except ValueError as error:
                raise APIError(400, str(error), param=param, code="invalid_image") from None
        if scheme in ("http", "https"):
            return await self._remote(url, param)
        if scheme == "file":
            raise APIError(400, "file: URLs are refused; send the image as a data: URL", param=param,
                           code="image_url_forbidden")
        raise APIError(400, "image_url must be a data:image/...;base64 URL"
                       + (" or an http(s) URL of an allowed host" if self.allowed else "")
                       + "; local paths and other schemes are refused", param=param, code="invalid_image_url")

    def _check_host(self, url: str, param: str, redirected: bool) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        via = "redirect to " if redirected else ""
        if parts.scheme.lower() not in ("http", "https"):
            raise APIError(400, f"{via}a non-http(s) URL is refused", param=param, code="image_url_forbidden")
        if not self.allowed:
            raise APIError(400, "remote image URLs are disabled on this server; send the image as a data: URL",
                           param=param, code="image_url_forbidden")
        if host not in self.allowed:
            raise APIError(400, f"{via}host {host!r} is not on this server's allow-list for image URLs",
                           param=param, code="image_url_forbidden")

    async def _remote(self, url: str, param: str) -> bytes:
        self._check_host(url, param, redirected=False)
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=self._transport,
                                             timeout=self.config.remote_timeout)
        try:
            async with asyncio.timeout(self.config.remote_timeout):
                for _ in range(self.config.remote_max_redirects + 1):
                    async with self._client.stream("GET", url) as response:
                        if response.status_code in _REDIRECTS and "location" in response.headers:
                            url = urljoin(str(response.url), response.headers["location"])
                            self._check_host(url, param, redirected=True)
                            continue
                        if response.status_code != 200:
                            raise APIError(400, f"fetching the image URL gave HTTP {response.status_code}",
                                           param=param, code="image_url_unreachable")
                        return await self._read_capped(response, param)
                raise APIError(400, f"image URL redirected more than {self.config.remote_max_redirects} times",
                               param=param, code="image_url_unreachable")
        except TimeoutError:
            raise APIError(400, f"fetching the image URL took over {self.config.remote_timeout:g} s", param=param,
                           code="image_url_timeout") from None
        except httpx.HTTPError as error:
            raise APIError(400, f"could not fetch the image URL ({type(error).__name__})", param=param,
                           code="image_url_unreachable") from None

    async def _read_capped(self, response: httpx.Response, param: str) -> bytes:
        cap = self.config.remote_max_bytes
        too_large = APIError(400, f"the image at the URL is larger than {cap:,} bytes", param=param,
                             code="image_too_large")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)
