"""Fetch a data source as a byte stream: HTTP(S) with retries, or ``file://``.

The body is never read whole here: the parser pulls it in chunks, so a large station file costs a
bounded amount of memory. A size limit guards against a runaway source; an HTML page where CSV or
JSON was expected (a login page, a proxy error) is recognised and said so.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import unquote, urlsplit

import requests

from .errors import SourceError
from .http import RetriesExhausted, RetryPolicy, send_with_retries

DEFAULT_MAX_BYTES = 2 * 1024**3
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)


@dataclass(frozen=True)
class SourceRequest:
    """What to fetch: the resolved URL and headers, plus how patiently.

    ``redacted_url`` is what logs and results show (secrets in the URL replaced by ``***``).
    """

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    redacted_url: str | None = None
    timeout: float | tuple[float, float] = (10.0, 300.0)
    retry: RetryPolicy = RetryPolicy()
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def shown_url(self) -> str:
        return self.redacted_url or self.url


class LimitedStream(io.RawIOBase):
    """Wraps a byte stream, failing once more than ``max_bytes`` were read from it."""

    def __init__(self, raw: BinaryIO, max_bytes: int, url: str) -> None:
        self._raw = raw
        self._left = max_bytes
        self._max = max_bytes
        self._url = url
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        self.bytes_read += n
        self._left -= n
        if self._left < 0:
            raise SourceError(
                f"{self._url}: the source is larger than the configured limit of "
                f"{self._max:,} bytes; raise max_source_bytes if this is expected",
                url=self._url,
            )
        buffer[:n] = data
        return n


@contextlib.contextmanager
def open_source(request: SourceRequest,
                session: requests.Session | None = None) -> Iterator[io.BufferedReader]:
    """Open the source and yield a buffered binary stream of its (decompressed) body."""
    scheme = urlsplit(request.url).scheme.lower()
    if scheme == "file":
        with _open_file(request) as stream:
            yield stream
        return
    if scheme not in ("http", "https"):
        raise SourceError(
            f"{request.shown_url}: unsupported URL scheme {scheme!r}; expected http, https or file",
            url=request.shown_url,
        )
    own_session = session is None
    session = session or requests.Session()
    try:
        try:
            response = send_with_retries(
                session, "GET", request.url, policy=request.retry, headers=dict(request.headers),
                timeout=request.timeout, stream=True, describe=f"source GET {request.shown_url}",
            )
        except RetriesExhausted as exc:
            raise SourceError(
                f"{request.shown_url}: the source could not be reached after "
                f"{request.retry.tries} tries ({type(exc.last).__name__})",
                url=request.shown_url,
            ) from None
        with response:
            if not 200 <= response.status_code < 300:
                head = response.raw.read(500, decode_content=True) or b""
                raise SourceError(
                    f"{request.shown_url}: the source answered HTTP {response.status_code} "
                    f"{response.reason}: {_describe_body(head)}",
                    url=request.shown_url, status=response.status_code,
                )
            response.raw.decode_content = True
            yield _body_stream(response.raw, request, response.headers.get("Content-Type", ""))
    finally:
        if own_session:
            session.close()


@contextlib.contextmanager
def _open_file(request: SourceRequest) -> Iterator[io.BufferedReader]:
    parts = urlsplit(request.url)
    path = Path(unquote(parts.path if not parts.netloc else f"//{parts.netloc}{parts.path}"))
    if not path.is_file():
        raise SourceError(f"{request.shown_url}: no such file {str(path)!r}", url=request.shown_url)
    with open(path, "rb") as handle:
        yield _body_stream(handle, request, "")


class _RawReader(io.RawIOBase):
    """Adapts any ``.read(n)`` object (an HTTP body closes itself once fully read) to raw IO."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if getattr(self._raw, "closed", False):
            return 0
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _body_stream(raw: BinaryIO, request: SourceRequest, content_type: str) -> io.BufferedReader:
    """Buffer, gunzip when the bytes are gzip (``.gz`` files), limit the size, refuse HTML."""
    buffered = io.BufferedReader(_RawReader(raw), 64 * 1024)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        buffered = io.BufferedReader(gzip.GzipFile(fileobj=buffered), 64 * 1024)  # type: ignore[arg-type]
    stream = io.BufferedReader(LimitedStream(buffered, request.max_bytes, request.shown_url),
                               1024 * 1024)
    _refuse_html(stream, request.shown_url, content_type)
    return stream


def _refuse_html(stream: io.BufferedReader, url: str, content_type: str) -> None:
    head = stream.peek(512)[:512]
    if "text/html" in content_type.lower() or _HTML_START.match(head):
        raise SourceError(
            f"{url}: the source answered with an HTML page where CSV or JSON data was expected "
            f"(often a login, error or maintenance page): {_describe_body(head)}",
            url=url,
        )


def _describe_body(head: bytes) -> str:
    """The first bytes of a body, readable in one log line (HTML tags stripped)."""
    text = head.decode("utf-8", errors="replace")
    if _HTML_START.match(head):
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = re.sub(r"<[^>]+>", " ", text)
        if title:
            text = f"title {title.group(1).strip()!r}; {text}"
    text = " ".join(text.split())
    return repr(text[:200]) if text else "(empty body)"
