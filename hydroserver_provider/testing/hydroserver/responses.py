"""Answers: the success and error bodies, status pages and pagination headers of the real server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

DJANGO_500 = (
    b'<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n'
    b"<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
)


THROTTLED_DETAIL = "Request was throttled. Expected available in 1 second."


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class HttpError(Exception):
    """An answer other than success: a JSON ``{"detail": ...}`` unless ``body`` is given."""

    def __init__(
        self,
        status: int,
        detail: Any = None,
        *,
        body: bytes | None = None,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {detail!r}")
        self.status = status
        self.detail = detail
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class ServerError(HttpError):
    """A crash the real server answers with Django's plain 500 page."""

    def __init__(self, reason: str) -> None:
        super().__init__(500, reason, body=DJANGO_500, content_type="text/html; charset=utf-8")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: dict[str, str] | None = None


DROP = object()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json_bytes(body), "application/json; charset=utf-8", headers)


def error_response(exc: HttpError) -> Response:
    if exc.body is not None:
        return Response(exc.status, exc.body, exc.content_type, exc.headers)
    return Response(exc.status, json_bytes({"detail": exc.detail}), exc.content_type, exc.headers)


def fault_response(status: int, retry_after: float | None) -> Response:
    headers = (
        {"Retry-After": str(int(retry_after) if float(retry_after).is_integer() else retry_after)}
        if retry_after is not None
        else {}
    )
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status == 429:
        return throttled_response(headers)
    if status == 500:
        return Response(500, DJANGO_500, "text/html; charset=utf-8", headers)
    if status >= 500:  # what a reverse proxy in front of Django answers
        body = (
            f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {phrase}</h1></center>\r\n</body>\r\n</html>\r\n"
        ).encode()
        return Response(status, body, "text/html", headers)
    return Response(status, json_bytes({"detail": phrase}), headers=headers)


def paginate_headers(count: int, page: int, page_size: int) -> dict[str, str]:
    headers = {"X-Total-Count": str(count), "X-Page-Size": str(page_size)}
    if page_size > 0:
        headers["X-Page"] = str(page)
        headers["X-Total-Pages"] = str((count + page_size - 1) // page_size)
    return headers


def page_slice(rows: list, page: int, page_size: int) -> list:
    return rows[(page - 1) * page_size : page * page_size]


def throttled_response(headers: dict[str, str] | None = None) -> Response:
    """The real throttle's 429 (``Retry-After: 1`` unless other headers are given)."""
    return Response(
        429,
        json_bytes({"detail": THROTTLED_DETAIL}),
        headers={"Retry-After": "1"} if headers is None else headers,
    )
