"""A small asyncio HTTP/1.1 server engine for the local EAS simulator.

One event loop thread (``LoopThread``) runs every server of one LocalEAS.
Each server (``HTTPServer``) listens on its own 127.0.0.1 port. The parser
reads the request line, the headers and a body framed by Content-Length or
chunked transfer coding. It responds to ``Expect: 100-continue`` and keeps
connections alive unless the client sends ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import socket
import struct
import threading
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from easfast.testing._faults import Fault, FaultState

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bytes allowed for the request line plus headers; a longer head gets 431.
MAX_HEAD_SIZE = 256 * 1024
#: Default bytes allowed for a request body; a longer body gets 413.
DEFAULT_MAX_BODY_SIZE = 512 * 1024 * 1024
#: Seconds that start and stop wait for the loop thread before giving up.
LOOP_CALL_TIMEOUT = 10.0
#: Seconds a closing connection may take to send what is buffered.
CLOSE_TIMEOUT = 10.0
#: Bodies up to this size go out in the same write as the response head.
_COALESCE_LIMIT = 64 * 1024

_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header lines "name: value", joined by CRLF; a value has no CR or LF.
_HEADER_BLOCK = re.compile(
    r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*"
)
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_LINGER_ZERO = struct.pack("ii", 1, 0)
_DISCONNECT_ERRORS = (ConnectionError, asyncio.IncompleteReadError, TimeoutError)


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
        tokens = {
            token.strip().lower()
            for token in self.headers.get("connection", "").split(",")
        }
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
        """Return a response whose body is ``message`` and a newline, as UTF-8 text."""
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


class BadRequest(Exception):
    """The request cannot be parsed; the server responds ``status`` and closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LoopThread:
    """A daemon thread that runs one asyncio event loop until ``stop()``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_log_loop_exception)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            self.loop.run_until_complete(_cancel_remaining_tasks())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop from another thread and return its result."""
        if self.in_loop_thread():
            coroutine.close()
            raise RuntimeError(
                "cannot wait for the simulator's event loop from inside it; "
                "call this method from another thread"
            )
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(LOOP_CALL_TIMEOUT)

    def stop(self) -> None:
        if not self._thread.is_alive():
            if not self.loop.is_closed():
                self.loop.close()
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(LOOP_CALL_TIMEOUT)
        if self._thread.is_alive():  # defensive: only a wedged handler gets here
            log.error("simulator loop thread %s did not stop", self._thread.name)


async def _cancel_remaining_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Aborted transports close their sockets in callbacks on the next turns.
    for _ in range(3):
        await asyncio.sleep(0)


def _log_loop_exception(
    loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    exception = context.get("exception")
    if isinstance(exception, _DISCONNECT_ERRORS):
        log.debug("simulator connection error: %s", exception)
        return
    loop.default_exception_handler(context)


def make_listener(port: int) -> socket.socket:
    """Return a non-blocking socket listening on 127.0.0.1:``port``."""
    sock = _bound_socket(port)
    try:
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _bound_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # NOTE: SO_REUSEPORT lets a bound, non-listening socket keep the port
        # while the server is dead, so that it can listen on the same port
        # again. Linux never hands out a port held this way to a port-0 bind.
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Close the connection so that the kernel sends RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        except OSError:  # defensive: the peer closed first
            pass
    writer.transport.abort()


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body_size: int
) -> Request | None:
    """Read one request; return None when the client closed between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError:
        raise BadRequest(
            431, f"request head longer than {MAX_HEAD_SIZE} bytes"
        ) from None

    request = _parse_head(head.lstrip(b"\r\n"))
    request.body = await _read_body(request, reader, writer, max_body_size)
    return request


def _parse_head(head: bytes) -> Request:
    text = head[:-4].decode("latin-1")
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
    return header_block[:100]  # defensive: a bare CR or LF inside a line


async def _read_body(
    request: Request,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    max_body_size: int,
) -> bytes:
    headers = request.headers
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if "content-length" in headers:
            raise BadRequest(
                400, "request has both Transfer-Encoding and Content-Length"
            )
        if coding.strip().lower() != "chunked":
            raise BadRequest(501, f"Transfer-Encoding {coding!r} is not supported")
        _send_continue(request, writer)
        return await _read_chunked(reader, max_body_size)

    length_text = headers.get("content-length")
    if length_text is None:
        return b""
    if not length_text.isdigit():
        raise BadRequest(400, f"invalid Content-Length {length_text[:40]!r}")
    length = int(length_text)
    if length > max_body_size:
        raise BadRequest(413, f"request body of {length} bytes exceeds {max_body_size}")
    if length == 0:
        return b""
    _send_continue(request, writer)
    return await reader.readexactly(length)


def _send_continue(request: Request, writer: asyncio.StreamWriter) -> None:
    expect = request.headers.get("expect")
    if expect is None:
        return
    if expect.strip().lower() != "100-continue" or request.version != "HTTP/1.1":
        raise BadRequest(417, f"Expect {expect!r} is not supported")
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


async def _read_chunked(reader: asyncio.StreamReader, max_body_size: int) -> bytes:
    chunks = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line[:-2].split(b";", 1)[0].strip()
        if not _HEX_SIZE.fullmatch(size_text):
            raise BadRequest(400, f"invalid chunk size {size_text[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > max_body_size:
            raise BadRequest(413, f"chunked request body exceeds {max_body_size} bytes")
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest(400, "chunk data is not followed by CRLF")

    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailer fields are read and ignored
    return b"".join(chunks)


class HTTPServer:
    """One listening port on the shared loop, with counters and a fault.

    Subclasses implement ``handle``. Counters are written only by the loop
    thread; other threads may read them at any time.
    """

    #: Kinds of Fault this server accepts.
    fault_kinds: frozenset[str] = frozenset()
    #: Name used in messages and logs.
    role = "server"

    def __init__(self, loop_thread: LoopThread, max_body_size: int) -> None:
        self._loop_thread = loop_thread
        self._max_body_size = max_body_size
        self._faults = FaultState(self.fault_kinds, self.role)
        self._server: asyncio.AbstractServer | None = None
        self._placeholder: socket.socket | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._port = 0
        self._closed = False
        #: HTTP requests counted by the subclass (see its docstring).
        self.request_count = 0
        #: TCP connections accepted.
        self.connection_count = 0

    # Properties and the thread-safe public API.

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self._port}"

    @property
    def fault(self) -> Fault | None:
        """The fault set now, or None once it is cleared or used up."""
        return self._faults.current

    @property
    def is_dead(self) -> bool:
        """True while a ``dead``/``down`` fault keeps the port closed."""
        fault = self._faults.current
        return fault is not None and fault.kind == "dead"

    def set_fault(self, fault: Fault | None) -> None:
        """Show ``fault`` from the next request on; None makes the server healthy.

        It is safe to call while requests are in flight. A ``dead`` fault has
        closed the port and every open connection when this returns.
        """
        self._faults.check(fault)
        if self._closed:
            raise RuntimeError(f"the {self.role} at {self.address} is stopped")
        was_dead = self.is_dead
        now_dead = fault is not None and fault.kind == "dead"
        if now_dead and not was_dead:
            self._loop_thread.run(self._close_port())
        self._faults.set(fault)
        if was_dead and not now_dead:
            self._loop_thread.run(self._open(self._port))
        log.debug("%s %s: fault set to %r", self.role, self.address, fault)

    def reset_counts(self) -> None:
        """Set ``request_count`` and ``connection_count`` back to 0."""
        self.request_count = 0
        self.connection_count = 0

    # Coroutines that run on the loop thread.

    async def _open(self, port: int) -> None:
        sock = make_listener(port)
        try:
            self._server = await asyncio.start_server(
                self._serve_connection, sock=sock, limit=MAX_HEAD_SIZE
            )
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    async def _close_port(self) -> None:
        # Hold the port with a bound socket that does not listen: connecting
        # to it is refused, and no other socket can take the port meanwhile.
        if self._placeholder is None:
            self._placeholder = _bound_socket(self._port)
        await self._stop_serving()

    async def _shutdown(self) -> None:
        self._closed = True
        await self._stop_serving()
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    async def _stop_serving(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks = list(self._connections)
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.connection_count += 1
        try:
            await self._serve_requests(reader, writer)
        except BadRequest as exc:
            log.debug(
                "%s %s: bad request, %d: %s", self.role, self.address, exc.status, exc
            )
            await _send_error(writer, exc)
        except _DISCONNECT_ERRORS as exc:
            # The client went away mid-request, which tests do on purpose.
            log.debug("%s %s: client disconnected: %r", self.role, self.address, exc)
        except asyncio.CancelledError:
            pass  # the port was closed or the simulator stopped
        except Exception:  # defensive: a bug must not kill the loop thread
            log.exception("%s %s: unexpected error", self.role, self.address)
        finally:
            await _close_writer(writer)
            del self._connections[task]

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        transport = writer.transport
        while True:
            request = await read_request(reader, writer, self._max_body_size)
            if request is None:
                return
            try:
                outcome = await self.handle(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("%s %s: handler failed", self.role, self.address)
                outcome = Response.text(500, f"simulator error: {exc!r}")
            if outcome is RESET:
                reset_connection(writer)
                return
            assert isinstance(outcome, Response)
            if transport.is_closing():
                return

            keep_alive = request.keep_alive
            body = outcome.body
            if len(body) <= _COALESCE_LIMIT:
                writer.write(outcome.head(keep_alive) + body)
            else:
                writer.write(outcome.head(keep_alive))
                writer.write(body)
            await writer.drain()
            if not keep_alive:
                writer.close()
                return

    def handle(self, request: Request) -> Awaitable[Response | _Reset]:
        raise NotImplementedError

    async def apply_fault(self, fault: Fault) -> Response | _Reset | None:
        """Return what ``fault`` sends instead of the response, or None to respond as usual."""
        kind = fault.kind
        if kind == "hang":
            assert fault.seconds is not None
            await asyncio.sleep(fault.seconds)
            return None
        if kind == "status":
            assert fault.code is not None
            return Response.text(
                fault.code,
                f"simulated fault: status {fault.code} from {self.role} {self.address}",
            )
        if kind == "reset":
            return RESET
        if kind in ("garbage", "malformed"):
            assert fault.body is not None
            return Response(200, fault.body)
        return None


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    # close() sends what is still buffered before the FIN, so wait for it,
    # but abort a client that does not read its response.
    if not writer.transport.is_closing():
        writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except (asyncio.CancelledError, asyncio.TimeoutError, OSError):
        writer.transport.abort()


async def _send_error(writer: asyncio.StreamWriter, error: BadRequest) -> None:
    response = Response.text(error.status, str(error))
    try:
        writer.write(response.head(keep_alive=False) + response.body)
        await writer.drain()
    except _DISCONNECT_ERRORS:
        pass
