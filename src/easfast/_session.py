"""The configured runtime behind Client and PredictClient: send a body, retry.

A ``Session`` owns the route to the service (a fixed URL or the discovery
refresher and its selector), the handle pool, the retry policy and the
header set. ``call()`` sends one body and returns the response body.
``call_many()`` keeps many bodies in flight from one thread over a curl multi
handle. ``submit()`` hands a body to a background thread and returns a
``concurrent.futures.Future``.

One call, step by step: the body's headers (and token signature) are
computed once. Each attempt picks an instance not yet tried in this call
and not ejected (see ``easfast._health``), else an ejected one not yet
tried, else the one tried least recently (see ``DirectRoute.pick``), and
reports its outcome to the route. A 200 returns the body, or what the
call's ``parse`` function makes of it. A 4xx other than 429 raises
``HTTPStatusError`` at once. A retryable failure (see ``easfast.retry``), a ``DecodeError`` from
``parse`` included, moves on to the next attempt until the ``Retry``
policy is exhausted, which raises ``RetriesExhausted`` chained from the
last error.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Callable, TypeVar, Union, overload

from ._auth import auth_headers
from ._endpoints import DirectRoute, FixedRoute
from ._transport import (
    BodyLimit,
    HandlePool,
    HTTPRequest,
    HTTPResponse,
    MultiEngine,
)
from .discovery import Discovery
from .exceptions import (
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    PredictException,
    RetriesExhausted,
    TransportError,
)
from .retry import Retry

log = logging.getLogger(__name__)

# Bytes of an error response kept on HTTPStatusError.body and in messages.
_ERROR_BODY_LIMIT = 512

# Seconds close() waits for the dispatcher thread to end.
_STOP_JOIN_SECONDS = 2.0

Route = Union[FixedRoute, DirectRoute]
Outcome = Union[HTTPResponse, TransportError]
T = TypeVar("T")
# Turns a 200's body into the call's result; may raise DecodeError.
Parse = Callable[[bytes], Any]


class _Retry:
    # The type of RETRY.
    __slots__ = ()

    def __repr__(self) -> str:
        return "RETRY"


#: Returned by _Call.settle() when the call goes on with another attempt.
#: A sentinel, because a parse function may return None.
RETRY = _Retry()


class Session:
    """Sends request bodies to one service with retries (see the module)."""

    def __init__(
        self,
        *,
        service_name: str,
        route: Route,
        discovery: Discovery | None,
        retry: Retry,
        timeout_ms: int,
        connect_timeout_ms: int,
        max_connections: int,
        content_type: str,
        headers: Mapping[str, str],
        token: str | None,
        sign_resource: str | None,
        max_response_size: int | None = None,
    ) -> None:
        self.service_name = service_name
        self.route = route
        self.discovery = discovery
        self.retry = retry
        self.timeout_ms = timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.max_connections = max_connections
        self.content_type = content_type
        self.token = token or None
        self.sign_resource = sign_resource
        self.body_limit = None if max_response_size is None \
            else BodyLimit(max_response_size, "max_response_size")
        self.pool = HandlePool(max_connections, keep_headers=False,
                               body_limit=self.body_limit)
        self._static_headers = _header_lines(headers, content_type, self.token)
        self._local = threading.local()
        self._dispatcher: _Dispatcher | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.closed = False

    # -- helpers shared by the three ways to call --

    def _check_open(self) -> None:
        if self.closed:
            raise ClientClosedError(
                f"the client of service {self.service_name!r} is closed; "
                "create a new client (PredictClient: or call init() again)"
            )
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._dispatcher = None  # its thread did not survive fork
            if self.discovery is not None:
                self.discovery.restart_after_fork()

    def headers_for(self, body: bytes) -> tuple[str, ...]:
        """Return the header lines of a request carrying ``body``.

        Without a token every call gets the same tuple, which lets a curl
        handle keep the header list it already has.
        """
        if self.token is None:
            return self._static_headers
        return self._static_headers + tuple(auth_headers(
            self.token, body, self.content_type, self.sign_resource
        ))

    # -- one call in the calling thread --

    @overload
    def call(self, body: bytes) -> bytes: ...

    @overload
    def call(self, body: bytes, parse: Callable[[bytes], T]) -> T: ...

    def call(self, body: bytes, parse: Parse | None = None) -> Any:
        """Send ``body`` and return the response body of the first success.

        With ``parse``, return ``parse(response body)`` instead. A
        ``DecodeError`` from ``parse`` fails that attempt like a 5xx does,
        so the call is retried on another instance.
        """
        self._check_open()
        call = _Call(self, body, parse)
        pool = self.pool
        while True:
            request = call.next_request()
            try:
                outcome: Outcome = pool.perform(
                    request, self.timeout_ms, self.connect_timeout_ms
                )
            except TransportError as exc:
                outcome = exc
            result = call.settle(outcome)
            if result is not RETRY:
                return result
            call.retry.backoff()

    # -- many calls from one thread over the multi handle --

    def _engine(self) -> MultiEngine[int]:
        engine: MultiEngine[int] | None = getattr(self._local, "engine", None)
        if engine is None:
            engine = self.new_engine()
            self._local.engine = engine
        return engine

    def new_engine(self) -> MultiEngine[int]:
        """Return a multi engine with this session's transfer settings."""
        return MultiEngine(keep_headers=False, body_limit=self.body_limit)

    def call_many(
        self,
        bodies: Sequence[bytes],
        concurrency: int,
        parse: Parse | None = None,
    ) -> list[Any]:
        """Send every body, at most ``concurrency`` at a time, from this thread.

        Returns one item per body, in order: the response body (or what
        ``parse`` returns for it, as in ``call``), or the
        ``PredictException`` that ended that body's call.
        """
        self._check_open()
        results: list[Any] = [None] * len(bodies)
        waiting = deque(range(len(bodies)))
        flight = _Flight(self, self._engine(), concurrency)
        try:
            while waiting or flight.busy():
                flight.start_ready()
                while waiting and flight.has_room():
                    index = waiting.popleft()
                    flight.start(index, _Call(self, bodies[index], parse))
                for index, result in flight.step(1.0):
                    results[index] = result
        finally:
            if flight.busy():
                # Interrupted: drop the transfers so the engine starts clean.
                flight.engine.close()
                self._local.engine = None
            else:
                self._local.engine = flight.engine
        return results

    # -- calls handed to a background thread --

    @overload
    def submit(self, body: bytes) -> Future[bytes]: ...

    @overload
    def submit(self, body: bytes, parse: Callable[[bytes], T]) -> Future[T]: ...

    def submit(self, body: bytes, parse: Parse | None = None) -> Future[Any]:
        """Send ``body`` from the background dispatcher thread.

        ``parse`` runs in that thread and is as in ``call``.
        """
        self._check_open()
        dispatcher = self._dispatcher
        if dispatcher is None:
            with self._lock:
                dispatcher = self._dispatcher
                if dispatcher is None:
                    dispatcher = self._dispatcher = _Dispatcher(self)
        return dispatcher.submit(_Call(self, body, parse))

    def close(self) -> None:
        """Stop the refresher and the dispatcher and close every handle."""
        if self.closed:
            return
        self.closed = True
        if self.discovery is not None:
            self.discovery.stop()
        dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.stop()
        engine = getattr(self._local, "engine", None)
        if engine is not None:
            engine.close()
        self.pool.close()


def _header_lines(
    headers: Mapping[str, str], content_type: str, token: str | None
) -> tuple[str, ...]:
    # The user's headers, then Content-Type. With a token, Date and
    # Authorization are computed per call and a user's value would clash.
    computed = {"content-type", "content-length", "expect"}
    if token is not None:
        computed |= {"date", "authorization", "content-md5"}
    lines = [f"{name}: {value}" for name, value in headers.items()
             if name.lower() not in computed]
    lines.append(f"Content-Type: {content_type}")
    return tuple(lines)


class _Call:
    # The state of one call across its attempts.

    __slots__ = (
        "address",
        "body",
        "headers",
        "parse",
        "request",
        "retry",
        "session",
        "tried",
    )

    def __init__(
        self, session: Session, body: bytes, parse: Parse | None = None
    ) -> None:
        self.session = session
        self.body = body
        self.parse = parse
        self.headers = session.headers_for(body)
        self.retry = session.retry
        # Addresses tried so far, least recently tried first (see
        # DirectRoute.pick); the values are unused.
        self.tried: dict[str, None] = {}
        self.address = ""
        self.request: HTTPRequest | None = None

    def next_request(self) -> HTTPRequest:
        """Pick the instance of the next attempt and return its request."""
        address, url = self.session.route.pick(self.tried)
        self.address = address
        tried = self.tried
        if address in tried:
            del tried[address]  # move it to the end: tried most recently
        tried[address] = None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("service %s: attempt %d to %s", self.session.service_name,
                      len(self.retry.history) + 1, address)
        request = self.request
        if request is None or request.url != url:
            request = self.request = HTTPRequest(url, self.body, self.headers)
        return request

    def settle(self, outcome: Outcome) -> Any:
        """Return the result of a success, RETRY to retry, or raise the error."""
        route = self.session.route
        error: PredictException
        if isinstance(outcome, HTTPResponse):
            route.record_response(self.address)
            if outcome.status == 200:
                parse = self.parse
                if parse is None:
                    return outcome.body
                try:
                    return parse(outcome.body)
                except DecodeError as exc:
                    error = _decode_error(self.session.service_name, outcome, exc)
            else:
                error = _status_error(self.session.service_name, outcome)
        else:
            route.record_error(self.address, outcome)
            error = outcome
        retry = self.retry.increment(error, self.address)
        self.retry = retry
        if not retry.is_retryable(error):
            raise error
        if retry.is_exhausted():
            raise _exhausted(self.session.service_name, retry, error) from error
        log.debug("service %s: attempt %d to %s failed (%s); retrying in %.3f s",
                  self.session.service_name, len(retry.history), self.address,
                  error, retry.get_backoff_time())
        return RETRY


def _decode_error(
    service_name: str, response: HTTPResponse, error: DecodeError
) -> DecodeError:
    # The decoder's message, plus where the body came from.
    mapped = DecodeError(
        f"service {service_name!r} returned HTTP 200 at {response.url} with "
        f"a body of {len(response.body)} bytes that is not a valid response: "
        f"{error}",
        url=response.url,
    )
    mapped.__cause__ = error
    return mapped


def _status_error(service_name: str, response: HTTPResponse) -> HTTPStatusError:
    text = response.body[:_ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
    if len(response.body) > _ERROR_BODY_LIMIT:
        text += "..."
    context: dict[str, float] = {}
    status = response.status
    if status == 429:
        advice = "too many requests: the instance is overloaded"
        if response.retry_after:
            advice += f"; Retry-After: {response.retry_after} s"
            context["retry_after"] = response.retry_after
    elif 400 <= status < 500:
        advice = "fix the request; it is not retried"
    elif 500 <= status < 600:
        advice = "the instance failed"
    elif 300 <= status < 400:
        advice = ("a redirect, which easfast does not follow; check the "
                  "endpoint and the custom URL")
    else:
        advice = ("not a status an EAS service returns; check that this "
                  "address runs an EAS service instance")
    return HTTPStatusError(
        f"service {service_name!r} returned HTTP {status} at "
        f"{response.url} ({advice}): {text or '<empty body>'}",
        status,
        url=response.url,
        body=response.body[:_ERROR_BODY_LIMIT],
        **context,
    )


def _exhausted(
    service_name: str, retry: Retry, last: PredictException
) -> RetriesExhausted:
    attempts = [(item.address, item.error) for item in retry.history]
    instances = list(dict.fromkeys(address for address, _ in attempts))
    code = last.code if isinstance(last, HTTPStatusError) else 500
    return RetriesExhausted(
        f"all {len(attempts)} attempts to call service {service_name!r} failed; "
        f"instances tried: {', '.join(instances)}; last error: {last}",
        code,
        service=service_name,
        instances=instances,
        attempts=attempts,
        last_error=last,
    )


class _Flight:
    # Calls in flight over one multi engine, at most ``limit`` transfers at
    # a time. A failed attempt starts its retry at once or, after a backoff,
    # from a heap of (ready time, key). Every call started ends in exactly
    # one (key, response body or PredictException) pair from step().

    def __init__(
        self, session: Session, engine: MultiEngine[int], limit: float
    ) -> None:
        self.session = session
        self.engine = engine
        self.limit = limit
        self.calls: dict[int, _Call] = {}
        self._delayed: list[tuple[float, int]] = []
        self._done: list[tuple[int, Any]] = []

    def busy(self) -> bool:
        """Tell whether a call started here has not been returned by step()."""
        return bool(self.calls or self._done)

    def has_room(self) -> bool:
        """Tell whether one more transfer may start now."""
        return len(self.engine) < self.limit

    def start(self, key: int, call: _Call) -> None:
        """Start the first attempt of ``call``, tagged with ``key``."""
        self.calls[key] = call
        self._attempt(key, call)

    def start_ready(self) -> None:
        """Start the retries whose backoff has ended, while there is room."""
        delayed = self._delayed
        if not delayed:
            return
        now = time.monotonic()
        while delayed and delayed[0][0] <= now and self.has_room():
            key = heapq.heappop(delayed)[1]
            self._attempt(key, self.calls[key])

    def step(
        self, timeout: float, wake_fd: int | None = None
    ) -> list[tuple[int, Any]]:
        """Drive the transfers for up to ``timeout`` s; return the calls ended."""
        delayed = self._delayed
        if self._done:
            timeout = 0.0  # calls that failed to start are ready to return
        elif delayed:
            timeout = min(timeout, max(0.0, delayed[0][0] - time.monotonic()))
        try:
            outcomes = self.engine.wait(timeout, wake_fd)
        except Exception as exc:  # noqa: BLE001 - the thread must go on
            self._fail_transfers(exc)
            outcomes = []
        for key, outcome in outcomes:
            call = self.calls[key]
            try:
                result = call.settle(outcome)
            except Exception as exc:  # noqa: BLE001 - PredictException or a bug
                self._finish(key, _as_predict_exception(exc, call))
                continue
            if result is not RETRY:
                self._finish(key, result)
                continue
            delay = call.retry.get_backoff_time()
            if delay > 0 or not self.has_room():
                heapq.heappush(delayed, (time.monotonic() + delay, key))
            else:
                self._attempt(key, call)
        self.start_ready()
        done, self._done = self._done, []
        return done

    def abort(self) -> list[int]:
        """Drop every call started here, close the engine; return their keys."""
        keys = list(self.calls)
        self.calls.clear()
        self._delayed.clear()
        self._done.clear()
        self.engine.close()
        return keys

    def _attempt(self, key: int, call: _Call) -> None:
        session = self.session
        try:
            request = call.next_request()
            self.engine.add(request, key, session.timeout_ms,
                            session.connect_timeout_ms)
        except Exception as exc:  # noqa: BLE001 - PredictException or a bug
            self._finish(key, _as_predict_exception(exc, call))

    def _finish(self, key: int, result: Any) -> None:
        del self.calls[key]
        self._done.append((key, result))

    def _fail_transfers(self, error: Exception) -> None:
        # The multi engine itself failed: end the calls whose transfers it
        # held and continue on a new engine.
        log.error("service %s: the curl multi engine failed; failing its "
                  "%d transfers", self.session.service_name, len(self.engine),
                  exc_info=error)
        waiting = {key for _, key in self._delayed}
        for key, call in list(self.calls.items()):
            if key not in waiting:
                self._finish(key, _as_predict_exception(error, call))
        try:
            self.engine.close()
        except Exception:  # already failed; the next one is new
            log.debug("closing the failed multi engine failed", exc_info=True)
        self.engine = self.session.new_engine()


def _as_predict_exception(error: Exception, call: _Call) -> PredictException:
    # Any exception that ends one call, as the PredictException it raises.
    if isinstance(error, PredictException):
        return error
    request = call.request
    where = request.url if request is not None else \
        f"service {call.session.service_name!r}"
    log.warning("service %s: unexpected %s while sending to %s",
                call.session.service_name, type(error).__name__, where,
                exc_info=error)
    mapped = TransportError(
        f"sending the request to {where} failed with an unexpected "
        f"{type(error).__name__}: {error}. This is a bug in easfast; please "
        "report it with the traceback of __cause__",
        url=where,
    )
    mapped.__cause__ = error
    return mapped


class _Dispatcher:
    # A daemon thread that runs submitted calls over its own multi engine,
    # at most max_connections transfers at a time. Submitters append to a
    # deque and write one byte to a socket pair, which wakes the thread out
    # of its select(). stop() fails the queued calls itself, so closing
    # does not wait for the thread to work through the queue.

    def __init__(self, session: Session) -> None:
        self.session = session
        self._queue: deque[tuple[_Call, Future[Any]]] = deque()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run,
            name=f"easfast-dispatch-{session.service_name}",
            daemon=True,
        )
        self._thread.start()

    def submit(self, call: _Call) -> Future[Any]:
        future: Future[Any] = Future()
        if self._stopping:
            raise ClientClosedError(
                f"the client of service {self.session.service_name!r} is closed"
            )
        self._queue.append((call, future))
        if self._stopping:
            # stop() ran between the check and the append, and may have
            # drained the queue already.
            self._fail_queued()
        else:
            self._wake()
        return future

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the buffer is full, so the thread wakes up anyway

    def stop(self) -> None:
        """Fail the queued calls, then end the thread, which aborts the rest."""
        self._stopping = True
        self._fail_queued()
        self._wake()
        if self._thread is not threading.current_thread():
            # The thread exits at its next wake-up, within milliseconds
            # unless a done-callback of a future blocks it.
            self._thread.join(_STOP_JOIN_SECONDS)

    def _fail_queued(self) -> None:
        # popleft is atomic, so stop(), submit() and the thread may race
        # here and each queued call is still taken exactly once.
        name = self.session.service_name
        while True:
            try:
                _, future = self._queue.popleft()
            except IndexError:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(ClientClosedError(
                    f"the client of service {name!r} was closed before this "
                    "call started"
                ))

    def _run(self) -> None:
        session = self.session
        flight = _Flight(session, session.new_engine(),
                         session.max_connections)
        futures: dict[int, Future[Any]] = {}
        counter = itertools.count()
        wake_fd = self._wake_read.fileno()
        try:
            while not self._stopping:
                flight.start_ready()
                while self._queue and flight.has_room():
                    call, future = self._queue.popleft()
                    if future.set_running_or_notify_cancel():
                        key = next(counter)
                        futures[key] = future
                        flight.start(key, call)
                for key, result in flight.step(1.0, wake_fd):
                    future = futures.pop(key)
                    if isinstance(result, PredictException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                self._drain_wake()
        except BaseException:
            # Only a bug in this loop gets here; the finally block below
            # fails every pending future, so no caller waits forever.
            log.exception("dispatcher of service %s stopped",
                          session.service_name)
            raise
        finally:
            self._stopping = True
            for key in flight.abort():
                futures.pop(key).set_exception(ClientClosedError(
                    f"the client of service {session.service_name!r} was "
                    "closed before this call finished"
                ))
            self._fail_queued()
            self._wake_read.close()
            self._wake_write.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
