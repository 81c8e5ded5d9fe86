"""Running a stdlib HTTP server on a background thread, for the local stand-ins.

Subclasses set ``self._server`` (a ``ThreadingHTTPServer``) in ``__init__``; this gives them
``start``/``stop`` and the context manager. A short poll interval keeps ``stop`` quick, so tests
that start a server each do not wait half a second per test.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

Self = TypeVar("Self", bound="BackgroundHTTPServer")


class QuietHandler(BaseHTTPRequestHandler):
    """The stand-ins' request handler base: keep-alive, answers sent at once, no access log."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY, Nagle and the client's
    # delayed ACK hold every answer back ~40 ms
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


class BackgroundHTTPServer:
    _server: ThreadingHTTPServer
    _thread: threading.Thread | None = None
    thread_name = "local-http-server"

    def start(self: Self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name=self.thread_name
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self: Self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
