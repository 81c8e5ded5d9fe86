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
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import requests
import urllib3.exceptions

from hydroserver_provider.errors import SourceError
from hydroserver_provider.retries import RetriesExhausted, RetryPolicy, send_with_retries
from hydroserver_provider.sources import DEFAULT_MAX_BYTES


class _Readable(Protocol):
    """What a body is read from: an HTTP response's raw stream, a file, a buffered stream."""

    def read(self, n: int = ..., /) -> bytes: ...


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


# What reading a body can raise once the answer has started: the connection broke or stalled,
# or the bytes are not the gzip they claim to be.
_BROKEN_BODY = (urllib3.exceptions.HTTPError, requests.RequestException, OSError, EOFError,
                zlib.error)


def _broken_body(url: str, bytes_read: int, exc: BaseException) -> SourceError:
    """The error for a body that could not be read to its end (never quoting urllib3's text,
    which may carry the URL with its query)."""
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, requests.Timeout, TimeoutError)):
        reason = "the source stopped sending data (read timeout)"
    elif isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        reason = f"the body is not valid gzip data ({exc})"
    elif isinstance(exc, urllib3.exceptions.ProtocolError):
        cause = exc.args[1] if len(exc.args) > 1 else exc
        reason = f"the connection closed before the end of the body ({cause!r})"
    else:
        reason = f"the read failed ({type(exc).__name__})"
    return SourceError(f"{url}: reading the source failed after {bytes_read:,} bytes: {reason}; "
                       "nothing was loaded", url=url)


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
                    f"{response.reason}: {_describe_body(head, _hidden_values(request))}",
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


class _SourceReader(io.RawIOBase):
    """Adapts any ``.read(n)`` object (an HTTP body closes itself once fully read) to raw IO.

    A connection that breaks or stalls part-way through the body, or bytes that are not the gzip
    they claim to be, become a ``SourceError`` naming the source instead of a bare urllib3 or
    zlib exception. With ``max_bytes``, reading more than that many bytes fails too.
    """

    def __init__(self, raw: _Readable, url: str, max_bytes: int | None = None) -> None:
        self._raw = raw
        self._url = url
        self._max = max_bytes
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # buffer: the memoryview BufferedReader passes
        if getattr(self._raw, "closed", False):
            return 0
        try:
            data = self._raw.read(len(buffer))
        except _BROKEN_BODY as exc:
            raise _broken_body(self._url, self.bytes_read, exc) from None
        n = len(data)
        self.bytes_read += n
        if self._max is not None and self.bytes_read > self._max:
            raise SourceError(
                f"{self._url}: the source is larger than the configured limit of "
                f"{self._max:,} bytes; raise max_source_bytes if this is expected",
                url=self._url,
            )
        buffer[:n] = data
        return n


def _body_stream(raw: _Readable, request: SourceRequest, content_type: str) -> io.BufferedReader:
    """Buffer, gunzip when the bytes are gzip (``.gz`` files), limit the size, refuse HTML."""
    buffered: io.BufferedReader = io.BufferedReader(_SourceReader(raw, request.shown_url),
                                                    64 * 1024)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        buffered = io.BufferedReader(gzip.GzipFile(fileobj=buffered), 64 * 1024)
    # The limit counts the bytes after decompression: a small gzip can hold a runaway body.
    stream: io.BufferedReader = io.BufferedReader(
        _SourceReader(buffered, request.shown_url, request.max_bytes), 1024 * 1024)
    _refuse_html(stream, request.shown_url, content_type, _hidden_values(request))
    return stream


def _refuse_html(stream: io.BufferedReader, url: str, content_type: str,
                 hidden: Sequence[str]) -> None:
    head = stream.peek(512)[:512]
    if "text/html" in content_type.lower() or _HTML_START.match(head):
        raise SourceError(
            f"{url}: the source answered with an HTML page where CSV or JSON data was expected "
            f"(often a login, error or maintenance page): {_describe_body(head, hidden)}",
            url=url,
        )


def _hidden_values(request: SourceRequest) -> list[str]:
    """The header values and what the shown URL hides (query or path secrets, a password).

    An error page may echo them back ("token abc123 is not valid"); they must not reach the
    error text. The hidden parts are found by matching the shown URL, ``***`` as wildcards,
    against the real one.
    """
    hidden = [value for _, value in request.headers if value]
    shown = request.redacted_url
    if shown and shown != request.url and "***" in shown:
        pattern = "(.+?)".join(re.escape(part) for part in shown.split("***"))
        match = re.fullmatch(pattern, request.url, re.DOTALL)
        if match:
            hidden += [v for group in match.groups() for v in (group, unquote(group))]
    return sorted({v for v in hidden if len(v) >= 4}, key=len, reverse=True)


def _describe_body(head: bytes, hidden: Sequence[str] = ()) -> str:
    """The first bytes of a body, readable in one log line (HTML tags stripped), with the
    ``hidden`` values (secrets the server may echo) replaced by ``***``."""
    text = head.decode("utf-8", errors="replace")
    if _HTML_START.match(head):
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = re.sub(r"<[^>]+>", " ", text)
        if title:
            text = f"title {title.group(1).strip()!r}; {text}"
    text = " ".join(text.split())
    for value in hidden:
        text = text.replace(value, "***")
        for size in range(len(value) - 1, 3, -1):  # a secret cut off at the end of what was read
            if text.endswith(value[:size]):
                text = text[:-size] + "***"
                break
    return repr(text[:200]) if text else "(empty body)"
