"""A local web source to ingest from: serves fixed bodies or generated station data on 127.0.0.1.

Tests and the demo register routes (a body, or a function of the query string) and can make a
route fail a few times (503, 429, 404, an HTML error page), drop the connection (before answering
or part-way through the body) or answer late, to prove retries and error messages. A body may be
an iterable of byte blocks, sent chunked as it is generated, so a test can serve a source far
larger than its own memory.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from hydroserver_provider.testing.background import BackgroundHTTPServer, QuietHandler

Body = bytes | str | Iterable[bytes]
Handler = Callable[[dict[str, str]], Body | tuple[int, Body]]


@dataclass(frozen=True)
class _Fault:
    """What the next request of a route gets instead of (or on top of) its normal answer."""

    status: int | None = None  # an error answer with ``body``/``headers``
    body: Body = ""
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None  # close the connection after this many body bytes
    delay: float = 0.0  # seconds to wait before answering


@dataclass
class _Route:
    body: Body | Handler
    content_type: str
    gzip: bool = False
    failures: deque = field(default_factory=deque)  # _Fault, used one per request


@dataclass(frozen=True)
class SourceRequestRecord:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class LocalSourceServer(BackgroundHTTPServer):
    """``with LocalSourceServer() as src: src.add("/a.csv", "t,v\\n..."); src.url + "/a.csv"``."""

    thread_name = "local-source-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[str, _Route] = {}
        self.requests: list[SourceRequestRecord] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an IPv4/IPv6 server's address is (host, port, ...)
        return f"http://{host}:{port}"

    def add(
        self,
        path: str,
        body: Body | Handler,
        content_type: str = "text/csv",
        *,
        gzip_body: bool = False,
    ) -> str:
        """Serve ``body`` (or ``body(query)``) at ``path``; returns the full URL."""
        with self._lock:
            self._routes[path] = _Route(body, content_type, gzip_body)
        return self.url + path

    def fail_next(
        self,
        path: str,
        times: int = 1,
        status: int = 503,
        body: Body = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``times`` requests of ``path`` answer ``status`` with ``body``."""
        self._queue(path, times, _Fault(status=status, body=body, headers=dict(headers or {})))

    def drop_next(self, path: str, times: int = 1, after_bytes: int = 0) -> None:
        """The next ``times`` requests of ``path`` lose their connection.

        ``after_bytes=0``: closed before any answer. More: the normal answer starts (status,
        headers with the full ``Content-Length``) and the connection closes after that many bytes
        of the body, as when a proxy or the network cuts a download short.
        """
        self._queue(path, times, _Fault(drop_after=after_bytes))

    def slow_next(self, path: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` requests of ``path`` get their normal answer ``seconds`` late."""
        self._queue(path, times, _Fault(delay=seconds))

    def _queue(self, path: str, times: int, fault: _Fault) -> None:
        with self._lock:
            self._routes[path].failures.extend([fault] * times)

    def requests_to(self, path: str) -> list[SourceRequestRecord]:
        return [r for r in self.requests if r.path == path]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class SourceHandler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.requests.append(
                        SourceRequestRecord(parts.path, query, dict(self.headers.items()))
                    )
                    route = server._routes.get(parts.path)
                    fault = route.failures.popleft() if route and route.failures else None
                if route is None:
                    return self._answer(
                        404,
                        "text/html",
                        "<html><title>404 Not Found</title><body>Not Found</body></html>",
                    )
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.status is not None:
                    html = str(fault.body).lstrip().startswith("<")
                    return self._answer(
                        fault.status,
                        "text/html" if html else "text/plain",
                        fault.body,
                        fault.headers,
                    )
                if fault and fault.drop_after == 0:
                    self.close_connection = True
                    return
                status, body = 200, route.body
                if callable(body):
                    answer = body(query)
                    status, body = answer if isinstance(answer, tuple) else (200, answer)
                self._answer(
                    status,
                    route.content_type,
                    body,
                    gzip_body=route.gzip,
                    drop_after=fault.drop_after if fault else None,
                )

            def _answer(
                self,
                status: int,
                content_type: str,
                body: Body,
                headers: dict[str, str] | None = None,
                gzip_body: bool = False,
                drop_after: int | None = None,
            ) -> None:
                if not isinstance(body, (bytes, str)):
                    return self._stream(status, content_type, body)
                data = body.encode("utf-8") if isinstance(body, str) else body
                if gzip_body:
                    data = gzip.compress(data)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                if gzip_body:
                    self.send_header("Content-Encoding", "gzip")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if drop_after is not None:
                    self.wfile.write(data[:drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def _stream(self, status: int, content_type: str, blocks: Iterable[bytes]) -> None:
                """Send generated blocks with chunked transfer encoding, never holding them all."""
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for block in blocks:
                        if isinstance(block, str):
                            block = block.encode("utf-8")
                        if block:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client stopped reading (e.g. a size limit): fine
                    self.close_connection = True

        return SourceHandler
