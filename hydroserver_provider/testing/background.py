"""Running a stdlib HTTP server on a background thread, for the local stand-ins.

Subclasses set ``self._server`` (a ``ThreadingHTTPServer``) in ``__init__``; this gives them
``start``/``stop`` and the context manager. A short poll interval keeps ``stop`` quick, so tests
that start a server each do not wait half a second per test.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import TypeVar

Self = TypeVar("Self", bound="BackgroundHTTPServer")


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
