"""The HTTP plumbing: a threading server that passes each request to the app, writes its answer."""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from hydroserver_provider.testing.background import QuietHandler
from hydroserver_provider.testing.hydroserver.responses import DROP, Response

logger = logging.getLogger("hydroserver_provider.testing")

#: ``app(method, raw_path, lower-cased headers, body, client ip)`` -> a Response, or DROP to hang up
App = Callable[[str, str, dict[str, str], bytes, str], Any]


class Handler(QuietHandler):
    server_version = "HydroServer-Local/1.11.2"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    def version_string(self) -> str:
        return self.server_version

    def _dispatch(self) -> None:
        app: App = self.server.app  # type: ignore[attr-defined]
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        result = app(self.command, self.path, headers, body, self.client_address[0])
        if result is DROP:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        assert isinstance(result, Response)
        self.send_response(result.status)
        if result.content_type and result.body:
            self.send_header("Content-Type", result.content_type)
        for name, value in (result.headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if result.body and self.command != "HEAD":
            self.wfile.write(result.body)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        logger.debug("connection error from %s", client_address, exc_info=True)
