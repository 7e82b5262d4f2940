"""Who may call, and which image URLs become bytes: the server's security policy in one place.

Faces are biometric data, so the defaults refuse: every remote URL unless its origin
(scheme, host and port) is on the operator's allow-list (and then with a size cap, a time
limit and every redirect hop checked against the same list), and every `file:` URL or bare
path always. A failed fetch says only that it failed, never the upstream status or error,
so the server cannot be used to probe what answers where. Image bytes stay in memory;
nothing here writes or logs them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
from urllib.parse import urljoin

import httpx

from .config import ServerConfig, origin
from .errors import APIError

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)
_DATA_HEADER_CHARS = 256  # media type and parameters; the header is looked for only this far in
_REDIRECTS = {301, 302, 303, 307, 308}
MAX_URL_CHARS = 8_192  # an http(s) image URL; longer ones are refused before they are parsed


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
    header = _DATA_URL.match(url, 0, url.find(",", 0, _DATA_HEADER_CHARS) + 1)
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
        self.allowed = frozenset(origin(entry) for entry in config.allow_remote_origins)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def fetch(self, url: str, param: str) -> bytes:
        scheme = url.partition(":")[0].lower() if ":" in url else ""
        if scheme == "data":
            try:
                return await asyncio.to_thread(decode_data_url, url)  # up to the body limit of base64
            except ValueError as error:
                raise APIError(400, str(error), param=param, code="invalid_image") from None
        if scheme in ("http", "https"):
            if len(url) > MAX_URL_CHARS:
                raise APIError(400, f"image URLs are limited to {MAX_URL_CHARS:,} characters", param=param,
                               code="invalid_image_url")
            return await self._remote(url, param)
        if scheme == "file":
            raise APIError(400, "file: URLs are refused; send the image as a data: URL", param=param,
                           code="image_url_forbidden")
        raise APIError(400, "image_url must be a data:image/...;base64 URL"
                       + (" or an http(s) URL of an allowed origin" if self.allowed else "")
                       + "; local paths and other schemes are refused", param=param, code="invalid_image_url")

    def _check(self, url: str, param: str, redirected: bool) -> httpx.URL:
        """The URL, parsed as it will be requested, if its origin is allowed; each redirect hop comes here."""
        via = "redirect to " if redirected else ""
        if not self.allowed:
            raise APIError(400, "remote image URLs are disabled on this server; send the image as a data: URL",
                           param=param, code="image_url_forbidden")
        try:
            parsed = httpx.URL(url)
            where = origin(str(parsed))
        except (httpx.InvalidURL, ValueError):
            scheme = url.partition(":")[0].lower()
            if scheme not in ("http", "https"):
                raise APIError(400, f"{via}a non-http(s) URL is refused", param=param,
                               code="image_url_forbidden") from None
            raise APIError(400, f"{via}a malformed URL is refused", param=param, code="invalid_image_url") from None
        if where not in self.allowed:
            scheme, host, port = where
            raise APIError(400, f"{via}{scheme}://{host}:{port} is not on this server's allow-list for image URLs",
                           param=param, code="image_url_forbidden")
        return parsed

    async def _remote(self, url: str, param: str) -> bytes:
        target = self._check(url, param, redirected=False)
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=self._transport,
                                             timeout=self.config.remote_timeout)
        unreachable = APIError(400, "the image URL could not be fetched", param=param, code="image_url_unreachable")
        try:
            async with asyncio.timeout(self.config.remote_timeout):
                for _ in range(self.config.remote_max_redirects + 1):
                    async with self._client.stream("GET", target) as response:
                        if response.status_code in _REDIRECTS and "location" in response.headers:
                            location = urljoin(str(response.url), response.headers["location"])
                            target = self._check(location, param, redirected=True)
                            continue
                        if response.status_code != 200:
                            raise unreachable
                        return await self._read_capped(response, param)
                raise APIError(400, f"image URL redirected more than {self.config.remote_max_redirects} times",
                               param=param, code="image_url_unreachable")
        except TimeoutError:
            raise APIError(400, f"fetching the image URL took over {self.config.remote_timeout:g} s", param=param,
                           code="image_url_timeout") from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError):
            # httpx raises InvalidURL (not an HTTPError) for a Location it cannot parse, even when not following it.
            raise unreachable from None

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
