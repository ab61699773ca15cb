"""HTTP/1.1 messages for the simulator: requests, responses and their parsing.

Parsing works on the connection's receive buffer and does no I/O: the
connection calls it again when more bytes arrive.
"""

from __future__ import annotations

import http
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

#: Bytes allowed for the request line plus headers; a longer head gets 431.
MAX_HEAD_SIZE = 256 * 1024
#: Bytes allowed for one chunk-size line or trailer line of a chunked body.
MAX_LINE_SIZE = 8 * 1024

_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header lines "name: value", joined by CRLF; a value has no CR or LF.
_HEADER_BLOCK = re.compile(
    r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*"
)
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""
    path: str = field(init=False)
    query: str = field(init=False)

    def __post_init__(self) -> None:
        self.path, _, self.query = self.target.partition("?")

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "")
        tokens = {token.strip().lower() for token in connection.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass
class Response:
    """One HTTP response."""

    status: int
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(
        cls, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        """Return a response whose body is ``message`` and a newline, as UTF-8."""
        body = (message + "\n").encode("utf-8")
        return cls(status, body, "text/plain; charset=utf-8", headers or {})

    def head(self, keep_alive: bool) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Reset:
    def __repr__(self) -> str:
        return "RESET"


#: Handler result that closes the connection with a TCP RST instead of a response.
RESET = _Reset()


@dataclass
class Deferred:
    """Handler result: wait ``seconds``, then call ``resume`` for the outcome."""

    seconds: float
    resume: Callable[[], Outcome]


#: A handler's result for one request.
Outcome = Union[Response, _Reset, Deferred]


class BadRequest(Exception):
    """The request cannot be parsed; the server responds ``status`` and closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers, ``head`` without the blank line."""
    text = head.decode("latin-1")
    request_line, _, header_block = text.partition("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise BadRequest(400, f"invalid request line {request_line[:100]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(
            505, f"HTTP version {version!r} is not supported; use HTTP/1.1"
        )

    headers: dict[str, str] = {}
    if not header_block:
        return Request(method, target, version, headers)
    if not _HEADER_BLOCK.fullmatch(header_block):
        raise BadRequest(400, f"invalid header line {_first_bad_line(header_block)!r}")
    for line in header_block.split("\r\n"):
        name, _, value = line.partition(":")
        key = name.lower()
        value = value.strip(" \t")
        if key not in headers:
            headers[key] = value
        elif key == "content-length":
            if headers[key] != value:
                raise BadRequest(400, "conflicting Content-Length headers")
        else:
            headers[key] += ", " + value
    return Request(method, target, version, headers)


def _first_bad_line(header_block: str) -> str:
    for line in header_block.split("\r\n"):
        if not _HEADER_BLOCK.fullmatch(line):
            return line[:100]
    return header_block[:100]  # defensive: every line matched alone


def content_length(request: Request, max_body_size: int) -> int | None:
    """Return the body's length, or None for a chunked body.

    Raises BadRequest for framing this server does not accept.
    """
    headers = request.headers
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if "content-length" in headers:
            raise BadRequest(
                400, "request has both Transfer-Encoding and Content-Length"
            )
        if coding.strip().lower() != "chunked":
            raise BadRequest(501, f"Transfer-Encoding {coding!r} is not supported")
        return None

    length_text = headers.get("content-length")
    if length_text is None:
        return 0
    if not length_text.isdigit():
        raise BadRequest(400, f"invalid Content-Length {length_text[:40]!r}")
    length = int(length_text)
    if length > max_body_size:
        raise BadRequest(413, f"request body of {length} bytes exceeds {max_body_size}")
    return length


def wants_continue(request: Request) -> bool:
    """Return True when the client waits for ``100 Continue`` before the body."""
    expect = request.headers.get("expect")
    if expect is None:
        return False
    if expect.strip().lower() != "100-continue" or request.version != "HTTP/1.1":
        raise BadRequest(417, f"Expect {expect!r} is not supported")
    return True


class ChunkedBody:
    """Incremental reader of a chunked body that starts at ``offset`` in a buffer."""

    def __init__(self, offset: int, max_body_size: int) -> None:
        self.offset = offset
        self._max_body_size = max_body_size
        self._chunks: list[bytes] = []
        self._total = 0
        self._in_trailers = False

    def feed(self, buffer: bytearray) -> tuple[bytes, int] | None:
        """Return ``(body, end offset)`` once the body is complete, else None."""
        while True:
            line_end = buffer.find(b"\r\n", self.offset)
            if line_end < 0:
                if len(buffer) - self.offset > MAX_LINE_SIZE:
                    raise BadRequest(400, "chunk-size or trailer line is too long")
                return None
            line = bytes(buffer[self.offset : line_end])
            if self._in_trailers:
                self.offset = line_end + 2
                if not line:
                    return b"".join(self._chunks), self.offset
                continue  # trailer fields are read and ignored

            size_text = line.split(b";", 1)[0].strip()
            if not _HEX_SIZE.fullmatch(size_text):
                raise BadRequest(400, f"invalid chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                self.offset = line_end + 2
                self._in_trailers = True
                continue
            if self._total + size > self._max_body_size:
                raise BadRequest(
                    413, f"chunked request body exceeds {self._max_body_size} bytes"
                )

            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                return None  # the size line is parsed again when more arrives
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise BadRequest(400, "chunk data is not followed by CRLF")
            self._chunks.append(bytes(buffer[line_end + 2 : data_end]))
            self._total += size
            self.offset = data_end + 2
