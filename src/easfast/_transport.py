"""HTTP over pycurl: an easy-handle pool, a multi engine, curl error mapping.

Threading contract: an easy handle is used by one thread at a time. The
``HandlePool`` hands a handle to the calling thread for one exchange and
takes it back afterwards, so a pool may be shared between threads. A
``MultiEngine`` belongs to the thread that created it. Every handle sets
``NOSIGNAL``, so libcurl never installs signal handlers, which is what makes
using it from several threads safe.

Keep-alive: each easy handle keeps its own connection cache of up to
``maxconnects`` connections, and the pool reuses the most recently returned
handle first, so a steady stream of calls runs over a few open connections.

Per request, a handle sets only what changes: the URL and the body always,
the header lines and the timeouts only when they differ from the last
request on that handle. Every other option is set once, when the handle is
created.

Fork safety: a pool or engine created in a parent process notices a changed
``os.getpid()`` and starts over with new handles. The parent's handles are
kept referenced and never closed in the child, because cleaning them up
could write to connections that belong to the parent.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Sequence
from typing import Generic, NamedTuple, TypeVar

import pycurl

from .exceptions import (
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    PredictException,
    RequestTimeout,
    TransportError,
)

log = logging.getLogger(__name__)

#: Connections one easy handle (or one multi handle) keeps open for reuse.
#: A handle cycles through the instances of a service, so this bounds the
#: number of instances it can stay connected to at the same time.
DEFAULT_MAXCONNECTS = 32

#: Connect timeout used when the caller gives none, in milliseconds.
DEFAULT_CONNECT_TIMEOUT_MS = 5000

# Request bodies up to this many bytes stay referenced by an idle handle
# until its next request; larger ones are released after each transfer.
_KEEP_BODY_MAX = 1 << 16

# Codes that pycurl 7.45 does not name; the values are libcurl's.
_E_WEIRD_SERVER_REPLY = 8
_E_HTTP2_STREAM = 92
_E_HTTP3 = 95
_E_QUIC_CONNECT_ERROR = 96

# libcurl codes meaning that the exchange with the server broke: the server
# refused, reset or dropped the connection, or sent nothing.
_CONNECT_ERROR_CODES = frozenset({
    pycurl.E_COULDNT_RESOLVE_PROXY,
    pycurl.E_COULDNT_RESOLVE_HOST,
    pycurl.E_COULDNT_CONNECT,
    pycurl.E_PARTIAL_FILE,
    pycurl.E_HTTP2,
    pycurl.E_SSL_CONNECT_ERROR,
    pycurl.E_INTERFACE_FAILED,
    pycurl.E_GOT_NOTHING,
    pycurl.E_SEND_ERROR,
    pycurl.E_RECV_ERROR,
    _E_HTTP2_STREAM,
    _E_HTTP3,
    _E_QUIC_CONNECT_ERROR,
})

# libcurl codes caused by the request, the client's settings or the build
# rather than by the server; sending the same request elsewhere cannot help.
# A body over the client's size limit (E_FILESIZE_EXCEEDED, or E_WRITE_ERROR
# from the counting write callback) would most likely be as large from any
# instance. E_UNSUPPORTED_PROTOCOL is not listed: see is_request_error().
CLIENT_SIDE_CURL_CODES = frozenset({
    pycurl.E_FILESIZE_EXCEEDED,
    pycurl.E_WRITE_ERROR,
    pycurl.E_FAILED_INIT,
    pycurl.E_URL_MALFORMAT,
    pycurl.E_NOT_BUILT_IN,
    pycurl.E_OUT_OF_MEMORY,
    pycurl.E_BAD_FUNCTION_ARGUMENT,
    pycurl.E_UNKNOWN_OPTION,
})

# libcurl enforces MAXFILESIZE_LARGE during a transfer since 8.4.0; older
# versions check only a Content-Length header, so with them a Python write
# callback counts the bytes of each body instead.
_COUNT_IN_WRITE = pycurl.version_info()[2] < 0x080400


class BodyLimit(NamedTuple):
    """The largest response body accepted, and the setting that sets it."""

    size: int
    setting: str


# Handles that a forked child inherited from its parent. They stay referenced
# so that the child never runs curl_easy_cleanup on the parent's connections.
_inherited_handles: list[object] = []


def is_request_error(error: Exception) -> bool:
    """Tell whether a ``TransportError`` was caused by the request itself.

    Such an error (a malformed URL, an option the libcurl build lacks)
    would fail on every instance, so it is not worth another attempt.
    """
    code = getattr(error, "curl_code", None)
    if code == pycurl.E_UNSUPPORTED_PROTOCOL:
        # libcurl uses this code both for a URL scheme it cannot handle,
        # 'Protocol "ftp" not supported', and for a reply that is not
        # HTTP/1.x, such as "Received HTTP/0.9 when not allowed".
        return str(getattr(error, "curl_message", "")).startswith("Protocol")
    return code in CLIENT_SIDE_CURL_CODES


def _is_invalid_reply(code: int, message: str) -> bool:
    if code == _E_WEIRD_SERVER_REPLY:
        return True
    return code == pycurl.E_UNSUPPORTED_PROTOCOL \
        and not message.startswith("Protocol")


def map_curl_error(code: int, message: str, url: str) -> TransportError:
    """Return the easfast exception for libcurl error ``code`` on ``url``.

    Timeouts become ``RequestTimeout``; refused, reset, dropped or empty
    connections become ``ConnectError``; anything else ``TransportError``.
    Each keeps ``curl_code``, ``curl_message`` and ``url``.
    """
    if code == pycurl.E_OPERATION_TIMEDOUT:
        cls: type[TransportError] = RequestTimeout
        text = f"request to {url} timed out: {message}"
    elif code in _CONNECT_ERROR_CODES:
        cls = ConnectError
        text = f"connection to {url} failed: {message} (curl error {code})"
    elif _is_invalid_reply(code, message):
        cls = TransportError
        text = (
            f"request to {url} failed: the server's reply is not valid "
            f"HTTP/1.x ({message}, curl error {code}); check that this "
            "address runs an EAS service instance and not another kind of "
            "server"
        )
    else:
        cls = TransportError
        text = f"request to {url} failed: {message} (curl error {code})"
    return cls(text, curl_code=code, curl_message=message, url=url)


class HTTPRequest:
    """One HTTP exchange to perform: ``body`` None means GET, else POST.

    ``headers`` is stored as a tuple. Requests that share one tuple object
    let a handle skip setting the same header lines again.
    """

    __slots__ = ("body", "headers", "url")

    def __init__(
        self, url: str, body: bytes | None, headers: Sequence[str] = ()
    ) -> None:
        self.url = url
        self.body = body
        self.headers = tuple(headers)

    def __repr__(self) -> str:
        method = "GET" if self.body is None else "POST"
        return f"HTTPRequest({method} {self.url})"


class HTTPResponse:
    """Status, raw header block and body of one completed exchange.

    ``raw_headers`` is empty when the pool or engine was created with
    ``keep_headers=False``. ``retry_after`` is the wait in seconds that a
    429 response's ``Retry-After`` header requests (libcurl parses both its
    seconds and its date form), and 0 for other statuses or without one.
    """

    __slots__ = ("body", "raw_headers", "retry_after", "status", "url")

    def __init__(
        self,
        status: int,
        body: bytes,
        raw_headers: bytes,
        url: str,
        retry_after: float = 0.0,
    ):
        self.status = status
        self.body = body
        self.raw_headers = raw_headers
        self.url = url
        self.retry_after = retry_after

    def header(self, name: str) -> str | None:
        """Return the last value of header ``name`` in the final response."""
        wanted = name.lower().encode("latin-1")
        value = None
        for line in self.raw_headers.split(b"\r\n"):
            if line.startswith(b"HTTP/"):
                value = None  # a new response block (after a 1xx) starts
                continue
            key, sep, rest = line.partition(b":")
            if sep and key.strip().lower() == wanted:
                value = rest.strip().decode("latin-1")
        return value

    def __repr__(self) -> str:
        return f"HTTPResponse({self.status}, {len(self.body)} bytes, {self.url})"


class _Easy:
    # One pycurl.Curl with its fixed options and reusable receive buffers.
    # The write callbacks are list.append, so receiving a chunk costs one C
    # call and no Python frame.

    __slots__ = ("body_limit", "chunks", "curl", "header_lines", "headers_set",
                 "received", "request", "timeouts_set")

    def __init__(
        self,
        maxconnects: int,
        abort_event: threading.Event | None = None,
        keep_headers: bool = True,
        body_limit: BodyLimit | None = None,
    ) -> None:
        self.chunks: list[bytes] = []
        self.header_lines: list[bytes] = []
        self.request: HTTPRequest | None = None
        self.body_limit = body_limit
        # Body bytes of the current transfer, counted only by _write_counted.
        self.received = 0
        # The header tuple and the timeouts last set on this handle.
        self.headers_set: tuple[str, ...] | None = None
        self.timeouts_set = (0, 0)
        self.curl = curl = pycurl.Curl()

        # Safety: no signals, HTTP only, no proxy from the environment.
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.PROXY, "")
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        # Latency: no Nagle delay on small request bodies.
        curl.setopt(pycurl.TCP_NODELAY, 1)
        # Keep-alive: cached connections, reused by later requests.
        curl.setopt(pycurl.MAXCONNECTS, maxconnects)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        # Receive: body chunks, and header lines if asked for, go straight
        # into lists. Without a header function libcurl drops the headers,
        # which saves a Python call per header line.
        curl.setopt(pycurl.WRITEFUNCTION, self.chunks.append)
        if keep_headers:
            curl.setopt(pycurl.HEADERFUNCTION, self.header_lines.append)
        if body_limit is not None:
            # The transfer fails with E_FILESIZE_EXCEEDED once the body
            # passes the limit, or at once for a larger Content-Length.
            curl.setopt(pycurl.MAXFILESIZE_LARGE, body_limit.size)
            if _COUNT_IN_WRITE:
                curl.setopt(pycurl.WRITEFUNCTION, self._write_counted)
        if abort_event is not None:
            # libcurl calls this about once a second and on every data
            # chunk; a non-zero return aborts the transfer.
            is_set = abort_event.is_set
            curl.setopt(pycurl.NOPROGRESS, 0)
            curl.setopt(pycurl.XFERINFOFUNCTION, lambda *_: 1 if is_set() else 0)

    def prepare(
        self, request: HTTPRequest, timeout_ms: int, connect_timeout_ms: int
    ) -> None:
        curl = self.curl
        self.request = request
        try:
            curl.setopt(pycurl.URL, request.url)
            timeouts = (timeout_ms, min(connect_timeout_ms, timeout_ms))
            if timeouts != self.timeouts_set:
                curl.setopt(pycurl.TIMEOUT_MS, timeouts[0])
                curl.setopt(pycurl.CONNECTTIMEOUT_MS, timeouts[1])
                self.timeouts_set = timeouts
            headers = request.headers
            if headers is not self.headers_set:
                # NOTE: skipping the same tuple object is safe because
                # tuples are immutable and headers_set keeps the old one
                # alive, so its id cannot be reused. A failed setopt leaves
                # request set, and the caller then closes this handle.
                # "Expect:" stops libcurl from sending "Expect:
                # 100-continue" with a large body and then waiting for
                # "100 Continue".
                curl.setopt(pycurl.HTTPHEADER, headers + ("Expect:",))
                self.headers_set = headers
            if request.body is None:
                curl.setopt(pycurl.HTTPGET, 1)
            else:
                # pycurl passes a bytes object to libcurl without copying
                # and sets POSTFIELDSIZE from its length, so NUL bytes
                # stay intact.
                curl.setopt(pycurl.POSTFIELDS, request.body)
        except (UnicodeError, TypeError, ValueError, pycurl.error) as exc:
            raise _prepare_error(request, exc) from exc

    def finish(self) -> HTTPResponse:
        """Collect the response of a completed transfer and reset buffers."""
        request = self.request
        assert request is not None
        curl = self.curl
        status = curl.getinfo(pycurl.RESPONSE_CODE)
        # CURLINFO_RETRY_AFTER (libcurl 7.66 and later) reads the header
        # even when no header callback keeps the header block.
        retry_after = curl.getinfo(pycurl.RETRY_AFTER) if status == 429 else 0
        body = b"".join(self.chunks)
        raw_headers = b"".join(self.header_lines)
        self.release()
        if status == 0:
            raise TransportError(
                f"request to {request.url} ended without an HTTP status "
                "line; check that this address runs an EAS service instance "
                "and not another kind of server",
                curl_code=0,
                curl_message="no HTTP status",
                url=request.url,
            )
        return HTTPResponse(status, body, raw_headers, request.url, retry_after)

    def fail(self, error: pycurl.error) -> TransportError:
        """Map a failed transfer's pycurl error and reset buffers."""
        code, message = _error_args(error)
        return self.fail_with(code, message)

    def fail_with(self, code: int, message: str) -> TransportError:
        """Map a failed transfer's libcurl code and message; reset buffers."""
        request = self.request
        assert request is not None
        received = self.received
        self.release()
        limit = self.body_limit
        if limit is not None and (
            code == pycurl.E_FILESIZE_EXCEEDED
            or (code == pycurl.E_WRITE_ERROR and received > limit.size)
        ):
            return TransportError(
                f"request to {request.url} failed: the response body is "
                f"larger than {limit.size} bytes, the limit set by "
                f"{limit.setting} (curl error {code}: {message})",
                curl_code=code,
                curl_message=f"the response body is larger than {limit.size} "
                             f"bytes ({limit.setting})",
                url=request.url,
                max_body_size=limit.size,
            )
        return map_curl_error(code, message, request.url)

    def _write_counted(self, chunk: bytes) -> int | None:
        # The write callback with a body limit on libcurl before 8.4.0:
        # returning 0 makes libcurl abort with E_WRITE_ERROR.
        self.received += len(chunk)
        limit = self.body_limit
        if limit is not None and self.received > limit.size:
            return 0
        self.chunks.append(chunk)
        return None

    def release(self) -> None:
        self.chunks.clear()
        self.header_lines.clear()
        self.received = 0
        request = self.request
        if request is not None and request.body is not None \
                and len(request.body) > _KEEP_BODY_MAX:
            # Drop libcurl's reference to a large request body; a small
            # one stays referenced until the next request replaces it.
            self.curl.setopt(pycurl.POSTFIELDS, b"")
        self.request = None


def _prepare_error(request: HTTPRequest, error: Exception) -> PredictException:
    # A request that pycurl rejects before sending anything. Header values
    # stay out of the message, because Authorization carries the token.
    if isinstance(error, pycurl.error):
        code, message = _error_args(error)
        return map_curl_error(code, message, request.url)
    if not _is_sendable(request.url):
        return ConfigurationError(
            f"the request URL {request.url!r} contains non-ASCII or control "
            "characters; check the service name, endpoint and custom URL"
        )
    for line in request.headers:
        if not _is_sendable(line):
            name = line.partition(":")[0]
            return ConfigurationError(
                f"request header {name!r} (to {request.url}) contains "
                "non-ASCII characters, a line break or a NUL byte, which "
                "HTTP headers cannot carry; encode the value, for example "
                "as percent-encoded UTF-8"
            )
    return TransportError(
        f"cannot prepare the request to {request.url}: "
        f"{type(error).__name__}: {error}",
        url=request.url,
    )


def _is_sendable(text: str) -> bool:
    return text.isascii() and not any(ch in text for ch in "\0\r\n")


def _error_args(error: pycurl.error) -> tuple[int, str]:
    args = error.args
    code = args[0] if args and isinstance(args[0], int) else -1
    message = str(args[1]) if len(args) > 1 else str(error)
    return code, message


class HandlePool:
    """Easy handles lent to one thread at a time, at most ``max_handles``.

    A thread that finds every handle lent out waits for one, at most for the
    request's timeout, and then gets ``RequestTimeout``. Setting
    ``abort_event`` aborts the transfers in progress within about a second.
    With ``keep_headers=False`` responses come without their header block.
    With ``body_limit``, a response body larger than its size aborts the
    transfer with a ``TransportError`` that names the limit.
    """

    def __init__(
        self,
        max_handles: int,
        *,
        maxconnects: int = DEFAULT_MAXCONNECTS,
        abort_event: threading.Event | None = None,
        keep_headers: bool = True,
        body_limit: BodyLimit | None = None,
    ) -> None:
        if max_handles < 1:
            raise ValueError(f"max_handles must be at least 1, got {max_handles}")
        self.max_handles = max_handles
        self.maxconnects = maxconnects
        self.abort_event = abort_event
        self.keep_headers = keep_headers
        self.body_limit = body_limit
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._idle: list[_Easy] = []
        # Handles in existence, idle or lent, and threads waiting for one.
        # Both change only with _cond held.
        self._count = 0
        self._waiters = 0
        self._cond = threading.Condition(threading.Lock())

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            log.debug("pid changed to %d; dropping inherited curl handles",
                      os.getpid())
            _inherited_handles.extend(self._idle)
            self._reset()

    def perform(
        self,
        request: HTTPRequest,
        timeout_ms: int,
        connect_timeout_ms: int = DEFAULT_CONNECT_TIMEOUT_MS,
    ) -> HTTPResponse:
        """Send ``request`` on a pooled handle and return the response.

        Raises ``TransportError`` (or its subclasses ``ConnectError`` and
        ``RequestTimeout``) when no HTTP response arrives.
        """
        if self._closed:
            raise ClientClosedError(
                f"cannot send to {request.url}: the connection pool is closed"
            )
        self._check_fork()
        # NOTE: list.pop and list.append are atomic, so taking an idle
        # handle and giving it back need no lock. Only creating a handle
        # and waiting for one take _cond.
        try:
            easy = self._idle.pop()
        except IndexError:
            easy = self._wait_for_handle(request, timeout_ms)
        try:
            easy.prepare(request, timeout_ms, connect_timeout_ms)
            try:
                # TODO: perform() blocks in C, so Ctrl-C during a synchronous
                # call takes effect only when the attempt ends or times out.
                # predict_many and submit poll, so they react between polls.
                easy.curl.perform()
            except pycurl.error as exc:
                raise easy.fail(exc) from None
            return easy.finish()
        finally:
            if self._closed or easy.request is not None:
                # Closed meanwhile, or prepare() itself failed.
                self._discard(easy)
            else:
                self._idle.append(easy)
                # A waiter counts itself before it looks at _idle, so it
                # either finds this handle or is woken here.
                if self._waiters:
                    with self._cond:
                        self._cond.notify()

    def _wait_for_handle(self, request: HTTPRequest, timeout_ms: int) -> _Easy:
        # Take a handle given back meanwhile, create one while fewer than
        # max_handles exist, or wait for one until the timeout.
        deadline = time.monotonic() + timeout_ms / 1000.0
        with self._cond:
            self._waiters += 1
            try:
                while True:
                    try:
                        return self._idle.pop()
                    except IndexError:
                        pass
                    if self._count < self.max_handles:
                        self._count += 1
                        break
                    # Every give-back notifies, so a wait that times out
                    # means no handle came back in time.
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        raise RequestTimeout(
                            f"no free connection for {request.url} after "
                            f"waiting {timeout_ms} ms: all {self.max_handles} "
                            "are in use; raise the maximum connection count",
                            curl_code=pycurl.E_OPERATION_TIMEDOUT,
                            curl_message="connection pool exhausted",
                            url=request.url,
                            pool_exhausted=True,
                        )
            finally:
                self._waiters -= 1
        try:
            return _Easy(self.maxconnects, self.abort_event, self.keep_headers,
                         self.body_limit)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _discard(self, easy: _Easy) -> None:
        easy.curl.close()
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def close(self) -> None:
        """Close idle handles now and lent ones when they come back."""
        self._closed = True
        if self._pid != os.getpid():
            _inherited_handles.extend(self._idle)
        else:
            for easy in self._idle:
                easy.curl.close()
        self._idle = []


T = TypeVar("T")


class MultiEngine(Generic[T]):
    """Many transfers in flight from one thread over a curl multi handle.

    ``add()`` starts a transfer tagged with any value; ``wait()`` drives the
    transfers and returns ``(tag, HTTPResponse or TransportError)`` for each
    one that ended. Every transfer added ends in exactly one such pair.
    ``keep_headers`` and ``body_limit`` are as in ``HandlePool``.
    """

    def __init__(
        self,
        *,
        maxconnects: int = DEFAULT_MAXCONNECTS,
        keep_headers: bool = True,
        body_limit: BodyLimit | None = None,
    ) -> None:
        self.maxconnects = maxconnects
        self.keep_headers = keep_headers
        self.body_limit = body_limit
        self._pid = os.getpid()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_MAXCONNECTS, maxconnects)
        self._idle: list[_Easy] = []
        self._active: dict[int, tuple[_Easy, T]] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._active)

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            log.debug("pid changed to %d; rebuilding the curl multi handle",
                      os.getpid())
            _inherited_handles.append(self._multi)
            _inherited_handles.extend(self._idle)
            _inherited_handles.extend(easy for easy, _ in self._active.values())
            self._pid = os.getpid()
            self._multi = pycurl.CurlMulti()
            self._multi.setopt(pycurl.M_MAXCONNECTS, self.maxconnects)
            self._idle = []
            self._active = {}

    def add(
        self,
        request: HTTPRequest,
        tag: T,
        timeout_ms: int,
        connect_timeout_ms: int = DEFAULT_CONNECT_TIMEOUT_MS,
    ) -> None:
        """Start sending ``request``; ``wait()`` later returns it with ``tag``."""
        if self._closed:
            raise ClientClosedError(
                f"cannot send to {request.url}: the multi engine is closed"
            )
        self._check_fork()
        easy = self._idle.pop() if self._idle else _Easy(
            self.maxconnects, keep_headers=self.keep_headers,
            body_limit=self.body_limit)
        try:
            easy.prepare(request, timeout_ms, connect_timeout_ms)
            self._multi.add_handle(easy.curl)
        except BaseException:
            easy.curl.close()
            raise
        self._active[id(easy.curl)] = (easy, tag)

    def wait(
        self, timeout: float, wake_fd: int | None = None
    ) -> list[tuple[T, HTTPResponse | TransportError]]:
        """Drive the transfers for up to ``timeout`` seconds.

        Returns as soon as at least one transfer ended, or when ``wake_fd``
        becomes readable, or when ``timeout`` passed; the list may be empty.
        """
        self._check_fork()
        self._drive()
        done = self._collect()
        if done:
            return done
        self._sleep(timeout, wake_fd)
        self._drive()
        return self._collect()

    def _drive(self) -> None:
        while True:
            status, _ = self._multi.perform()
            if status != pycurl.E_CALL_MULTI_PERFORM:
                return

    def _sleep(self, timeout: float, wake_fd: int | None) -> None:
        curl_timeout_ms = self._multi.timeout()
        if curl_timeout_ms >= 0:
            timeout = min(timeout, curl_timeout_ms / 1000.0)
        readers, writers, errors = self._multi.fdset()
        if wake_fd is not None:
            readers = [*readers, wake_fd]
        if readers or writers or errors:
            select.select(readers, writers, errors, max(timeout, 0.0))
        elif self._active:
            # libcurl has no socket to wait on yet (for example while it
            # resolves a name in its resolver thread); poll briefly.
            time.sleep(min(max(timeout, 0.0), 0.005))
        else:
            time.sleep(max(timeout, 0.0))

    def _collect(self) -> list[tuple[T, HTTPResponse | TransportError]]:
        done: list[tuple[T, HTTPResponse | TransportError]] = []
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                easy, tag = self._remove(curl)
                outcome: HTTPResponse | TransportError
                try:
                    outcome = easy.finish()
                except TransportError as exc:
                    outcome = exc
                done.append((tag, outcome))
                self._idle.append(easy)
            for curl, code, message in failed:
                easy, tag = self._remove(curl)
                done.append((tag, easy.fail_with(code, message)))
                self._idle.append(easy)
            if not queued:
                return done

    def _remove(self, curl: pycurl.Curl) -> tuple[_Easy, T]:
        self._multi.remove_handle(curl)
        return self._active.pop(id(curl))

    def close(self) -> None:
        """Abort transfers still in flight and close every handle."""
        self._closed = True
        if self._pid != os.getpid():
            return
        for easy, _ in self._active.values():
            self._multi.remove_handle(easy.curl)
            easy.curl.close()
        for easy in self._idle:
            easy.curl.close()
        self._active = {}
        self._idle = []
        self._multi.close()
