"""A small asyncio HTTP/1.1 server engine for the local EAS simulator.

One event loop thread (``LoopThread``) runs every server of one LocalEAS.
Each server (``HTTPServer``) listens on its own 127.0.0.1 port and parses
requests in an ``asyncio.Protocol`` (``_Connection``), with no task per
connection: a handler returns its outcome at once, or a ``Deferred`` that
the connection resumes on a timer. The parser reads a body framed by
Content-Length or chunked transfer coding, responds to ``Expect:
100-continue`` and keeps connections alive unless the client sends
``Connection: close``; responses to pipelined requests go out in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from easfast.testing._faults import Fault, FaultState
from easfast.testing._http import (
    MAX_HEAD_SIZE,
    RESET,
    BadRequest,
    ChunkedBody,
    Deferred,
    Outcome,
    Request,
    Response,
    content_length,
    parse_head,
    wants_continue,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default bytes allowed for a request body; a longer body gets 413.
DEFAULT_MAX_BODY_SIZE = 512 * 1024 * 1024
#: Seconds that start and stop wait for the loop thread before giving up.
LOOP_CALL_TIMEOUT = 10.0
#: Seconds a connection drops input after an error response before it closes.
LINGER_SECONDS = 2.0
#: Bodies up to this size go out in the same write as the response head.
_COALESCE_LIMIT = 64 * 1024

_LINGER_ZERO = struct.pack("ii", 1, 0)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


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
    await _let_callbacks_run()


async def _let_callbacks_run() -> None:
    # An aborted transport closes its socket in a callback on a later turn.
    for _ in range(3):
        await asyncio.sleep(0)


def _log_loop_exception(
    loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    exception = context.get("exception")
    if isinstance(exception, ConnectionError):
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
        # again. Linux hands a port held by a bound socket to no port-0 bind
        # and no outgoing connection.
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


class _Connection(asyncio.Protocol):
    """One accepted connection: reads requests, writes responses in order."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # Head of a request whose body has not fully arrived yet.
        self._request: Request | None = None
        self._body_start = 0
        self._body_length: int | None = None
        self._chunked: ChunkedBody | None = None
        self._continue_wanted = False
        # A Deferred outcome is pending; later requests wait in the buffer.
        self._timer: asyncio.TimerHandle | None = None
        self._eof = False
        self._done = False
        # After an error response: input is discarded until the client closes.
        self._linger: asyncio.TimerHandle | None = None

    # asyncio.Protocol callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._connections.add(self)
        self._server.connection_count += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._server._connections.discard(self)
        self._cancel_timers()
        if exc is not None:
            log.debug("%s: connection lost: %r", self._server.label, exc)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # a lingering close discards what the client still sends
        self._buffer += data
        if self._timer is None:
            self._process()
        elif len(self._buffer) > MAX_HEAD_SIZE:
            # Stop reading until the pending response is out.
            self._transport_or_fail().pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        if self._linger is not None:
            self._close()
            return True
        if self._timer is None:
            self._process()
        return True  # keep the transport open until the pending response is out

    # Request handling.

    def _transport_or_fail(self) -> asyncio.Transport:
        assert self._transport is not None
        return self._transport

    def _process(self) -> None:
        while not self._done and self._timer is None:
            try:
                request = self._next_request()
            except BadRequest as exc:
                log.debug(
                    "%s: bad request, %d: %s", self._server.label, exc.status, exc
                )
                self._fail(exc)
                return
            if request is None:
                if self._eof:
                    if self._buffer.strip():
                        log.debug("%s: client closed mid-request", self._server.label)
                    self._close()
                return
            self._deliver(request, self._server.dispatch(request))

    def _next_request(self) -> Request | None:
        buffer = self._buffer
        if self._request is None:
            while buffer.startswith(b"\r\n"):
                del buffer[:2]  # blank lines before a request are allowed
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0 or head_end > MAX_HEAD_SIZE:
                if head_end > MAX_HEAD_SIZE or len(buffer) > MAX_HEAD_SIZE:
                    raise BadRequest(
                        431, f"request head longer than {MAX_HEAD_SIZE} bytes"
                    )
                return None
            request = parse_head(bytes(buffer[:head_end]))
            length = content_length(request, self._server.max_body_size)
            self._request = request
            self._body_start = head_end + 4
            self._body_length = length
            self._continue_wanted = wants_continue(request)
            if length is None:
                self._chunked = ChunkedBody(
                    self._body_start, self._server.max_body_size
                )

        request = self._request
        if self._chunked is not None:
            parsed = self._chunked.feed(buffer)
            if parsed is None:
                self._send_continue()
                return None
            body, end = parsed
        else:
            assert self._body_length is not None
            end = self._body_start + self._body_length
            if len(buffer) < end:
                self._send_continue()
                return None
            body = bytes(memoryview(buffer)[self._body_start : end])

        del buffer[:end]
        self._request = None
        self._chunked = None
        request.body = body
        return request

    def _send_continue(self) -> None:
        # Sent once, and only while the body is incomplete: a client that
        # sent the body already does not wait for it.
        if self._continue_wanted:
            self._continue_wanted = False
            self._transport_or_fail().write(_CONTINUE)

    def _deliver(self, request: Request, outcome: Outcome) -> None:
        if isinstance(outcome, Deferred):
            self._timer = self._loop.call_later(
                outcome.seconds, self._resume, request, outcome
            )
        elif outcome is RESET:
            self._reset()
        else:
            assert isinstance(outcome, Response)
            self._finish(outcome, request.keep_alive)

    def _resume(self, request: Request, deferred: Deferred) -> None:
        self._timer = None
        if self._done:
            return
        self._deliver(request, self._server.resume(deferred))
        if self._timer is None and not self._done:
            self._transport_or_fail().resume_reading()
            self._process()

    def _finish(self, response: Response, keep_alive: bool) -> None:
        transport = self._transport_or_fail()
        if transport.is_closing():
            self._done = True
            return
        head = response.head(keep_alive)
        if len(response.body) <= _COALESCE_LIMIT:
            transport.write(head + response.body)
        else:
            transport.write(head)
            transport.write(response.body)
        if not keep_alive:
            self._close()

    def _close(self) -> None:
        # close() sends what is buffered before the FIN.
        self._done = True
        self._cancel_timers()
        self._transport_or_fail().close()

    def _fail(self, error: BadRequest) -> None:
        """Send the error response, then close without resetting the client.

        The client may still be sending the request. Closing a socket with
        unread input sends RST, which can discard the response before the
        client reads it, so the connection shuts down its sending side and
        drops input until the client closes or LINGER_SECONDS pass.
        """
        transport = self._transport_or_fail()
        response = Response.text(error.status, str(error))
        transport.write(response.head(keep_alive=False) + response.body)
        self._done = True
        self._buffer.clear()
        if self._eof or not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self._linger = self._loop.call_later(LINGER_SECONDS, self._close)

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._linger):
            if timer is not None:
                timer.cancel()
        self._timer = None
        self._linger = None

    def _reset(self) -> None:
        """Close the connection so that the kernel sends RST instead of FIN."""
        self._done = True
        transport = self._transport_or_fail()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            except OSError:  # defensive: the peer closed first
                pass
        transport.abort()

    def abort(self) -> None:
        """Drop the connection at once, as a crashed server would (FIN, no reply)."""
        self._done = True
        self._cancel_timers()
        if self._transport is not None:
            self._transport.abort()


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
        self.max_body_size = max_body_size
        self._faults = FaultState(self.fault_kinds, self.role)
        self._server: asyncio.AbstractServer | None = None
        self._placeholder: socket.socket | None = None
        self._connections: set[_Connection] = set()
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
    def label(self) -> str:
        """Role and address, for messages and logs."""
        return f"{self.role} {self.address}"

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
            raise RuntimeError(f"the {self.label} is stopped")
        was_dead = self.is_dead
        now_dead = fault is not None and fault.kind == "dead"
        if now_dead and not was_dead:
            self._loop_thread.run(self._close_port())
        self._faults.set(fault)
        if was_dead and not now_dead:
            self._loop_thread.run(self._open(self._port))
        log.debug("%s: fault set to %r", self.label, fault)

    def reset_counts(self) -> None:
        """Set ``request_count`` and ``connection_count`` back to 0."""
        self.request_count = 0
        self.connection_count = 0

    # Request handling, on the loop thread.

    def handle(self, request: Request) -> Outcome:
        """Return the outcome for one request; subclasses implement it."""
        raise NotImplementedError

    def dispatch(self, request: Request) -> Outcome:
        try:
            return self.handle(request)
        except Exception as exc:  # defensive: a bug must not kill the loop thread
            log.exception("%s: handler failed", self.label)
            return Response.text(500, f"simulator error: {exc!r}")

    def resume(self, deferred: Deferred) -> Outcome:
        try:
            return deferred.resume()
        except Exception as exc:  # defensive: as in dispatch
            log.exception("%s: handler failed", self.label)
            return Response.text(500, f"simulator error: {exc!r}")

    def apply_fault(
        self, fault: Fault | None, respond: Callable[[], Outcome]
    ) -> Outcome:
        """Return what ``fault`` sends, or ``respond()`` when it sends nothing."""
        if fault is None:
            return respond()
        kind = fault.kind
        if kind == "hang":
            assert fault.seconds is not None
            return Deferred(fault.seconds, respond)
        if kind == "status":
            assert fault.code is not None
            return Response.text(
                fault.code, f"simulated fault: status {fault.code} from {self.label}"
            )
        if kind == "reset":
            return RESET
        if kind in ("garbage", "malformed"):
            assert fault.body is not None
            return Response(200, fault.body)
        return respond()

    # Coroutines that run on the loop thread.

    async def _open(self, port: int) -> None:
        sock = make_listener(port)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Connection(self), sock=sock
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
        for connection in list(self._connections):
            connection.abort()
        await _let_callbacks_run()
