"""Tests of the pycurl transport: error mapping, pool, multi engine."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import pycurl
import pytest
from canned_server import CannedServer

from easfast import _transport
from easfast._transport import (
    BodyLimit,
    HandlePool,
    HTTPRequest,
    HTTPResponse,
    MultiEngine,
    is_request_error,
    map_curl_error,
)
from easfast.exceptions import (
    ClientClosedError,
    ConnectError,
    RequestTimeout,
    TransportError,
)
from easfast.testing import INSTANCE_HEADER, Fault, LocalEAS, string_response


def _closed_port() -> int:
    # Bind port 0, read the port back and close it: connections are refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestMapCurlError:
    @pytest.mark.parametrize("code, cls", [
        (pycurl.E_OPERATION_TIMEDOUT, RequestTimeout),
        (pycurl.E_COULDNT_CONNECT, ConnectError),
        (pycurl.E_COULDNT_RESOLVE_HOST, ConnectError),
        (pycurl.E_GOT_NOTHING, ConnectError),
        (pycurl.E_SEND_ERROR, ConnectError),
        (pycurl.E_RECV_ERROR, ConnectError),
        (pycurl.E_PARTIAL_FILE, ConnectError),
        (8, TransportError),  # weird server reply
        (pycurl.E_URL_MALFORMAT, TransportError),
    ], ids=["timeout", "refused", "resolve", "empty-reply", "send", "recv",
            "partial", "weird-reply", "malformed-url"])
    def test_code_maps_to_class(self, code: int, cls: type) -> None:
        error = map_curl_error(code, "curl text", "http://127.0.0.1:1/x")
        assert type(error) is cls
        assert error.curl_code == code
        assert error.curl_message == "curl text"
        assert error.url == "http://127.0.0.1:1/x"
        assert "http://127.0.0.1:1/x" in str(error)
        assert error.code == 500

    @pytest.mark.parametrize("code, message", [
        (pycurl.E_UNSUPPORTED_PROTOCOL, "Received HTTP/0.9 when not allowed"),
        (pycurl.E_UNSUPPORTED_PROTOCOL,
         "Unsupported HTTP/1 subversion in response"),
        (8, "Weird server reply"),
    ], ids=["http09", "bad-status-line", "weird-reply"])
    def test_invalid_reply_names_the_server(self, code: int, message: str) -> None:
        error = map_curl_error(code, message, "http://127.0.0.1:1/x")
        assert type(error) is TransportError
        assert message in str(error)
        assert "not valid HTTP/1.x" in str(error)
        assert "runs an EAS service instance" in str(error)
        assert not is_request_error(error)

    def test_unsupported_scheme_is_request_error(self) -> None:
        error = map_curl_error(pycurl.E_UNSUPPORTED_PROTOCOL,
                               'Protocol "ftp" not supported', "ftp://h/")
        assert is_request_error(error)
        assert "not valid HTTP" not in str(error)

    def test_timeout_is_builtin_timeout_error(self) -> None:
        error = map_curl_error(pycurl.E_OPERATION_TIMEDOUT, "slow", "u")
        assert isinstance(error, TimeoutError)

    def test_connect_error_is_builtin_connection_error(self) -> None:
        error = map_curl_error(pycurl.E_COULDNT_CONNECT, "refused", "u")
        assert isinstance(error, ConnectionError)


class TestHTTPResponseHeader:
    def test_header_lookup_is_case_insensitive(self) -> None:
        raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\n"
        response = HTTPResponse(200, b"", raw, "u")
        assert response.header("content-type") == "text/plain"
        assert response.header("X-A") == "1"
        assert response.header("missing") is None

    def test_header_of_final_response_after_100_continue(self) -> None:
        raw = (b"HTTP/1.1 100 Continue\r\nX-A: early\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nX-B: late\r\n\r\n")
        response = HTTPResponse(200, b"", raw, "u")
        assert response.header("X-A") is None
        assert response.header("X-B") == "late"


class TestHandlePoolWithoutServer:
    def test_refused_connection_raises_connect_error(self) -> None:
        pool = HandlePool(2)
        url = f"http://127.0.0.1:{_closed_port()}/api/predict/s"
        with pytest.raises(ConnectError) as info:
            pool.perform(HTTPRequest(url, b"x"), 2000)
        assert info.value.curl_code == pycurl.E_COULDNT_CONNECT
        assert info.value.url == url
        pool.close()

    def test_handle_reused_after_error(self) -> None:
        pool = HandlePool(1)
        url = f"http://127.0.0.1:{_closed_port()}/"
        for _ in range(3):
            with pytest.raises(ConnectError):
                pool.perform(HTTPRequest(url, None), 2000)
        assert len(pool._idle) == 1
        pool.close()

    def test_discarded_handle_frees_its_slot(self) -> None:
        pool = HandlePool(1)
        bad = HTTPRequest("http://127.0.0.1:1/", b"", ["X-A: 1\0"])
        with pytest.raises((ValueError, TypeError)):
            pool.perform(bad, 100)
        url = f"http://127.0.0.1:{_closed_port()}/"
        # The only slot is free again, so this fails to connect instead of
        # waiting for a handle.
        with pytest.raises(ConnectError):
            pool.perform(HTTPRequest(url, None), 2000)
        pool.close()

    def test_closed_pool_rejects_requests(self) -> None:
        pool = HandlePool(1)
        pool.close()
        with pytest.raises(ClientClosedError, match="closed"):
            pool.perform(HTTPRequest("http://127.0.0.1:1/", None), 100)

    def test_header_with_nul_byte_is_rejected_before_sending(self) -> None:
        pool = HandlePool(1)
        request = HTTPRequest("http://127.0.0.1:1/", b"", ["X-A: 1\0"])
        with pytest.raises((ValueError, TypeError)):
            pool.perform(request, 100)
        assert pool._idle == []  # the half-prepared handle was discarded
        pool.close()

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_child_does_not_reuse_parent_handles(self) -> None:
        pool = HandlePool(2)
        url = f"http://127.0.0.1:{_closed_port()}/"
        with pytest.raises(ConnectError):
            pool.perform(HTTPRequest(url, None), 2000)
        parent_handle = pool._idle[0]

        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report whether it reused the parent's handle
            status = 1
            try:
                try:
                    pool.perform(HTTPRequest(url, None), 2000)
                except ConnectError:
                    pass
                reused = any(easy is parent_handle for easy in pool._idle)
                os.write(write_fd, b"reused" if reused else b"fresh")
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        answer = os.read(read_fd, 16)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert answer == b"fresh"
        assert pool._idle == [parent_handle]
        pool.close()


class TestMultiEngineWithoutServer:
    def test_every_transfer_ends_with_its_tag(self) -> None:
        engine: MultiEngine[int] = MultiEngine()
        port = _closed_port()
        for tag in range(5):
            engine.add(HTTPRequest(f"http://127.0.0.1:{port}/{tag}", b"x"),
                       tag, 2000)
        outcomes: dict[int, object] = {}
        for _ in range(100):  # bounded: each wait lasts at most 0.5 s
            for tag, outcome in engine.wait(0.5):
                outcomes[tag] = outcome
            if not len(engine):
                break
        assert sorted(outcomes) == [0, 1, 2, 3, 4]
        for tag, outcome in outcomes.items():
            assert isinstance(outcome, ConnectError)
            assert outcome.url.endswith(f"/{tag}")
        engine.close()

    def test_closed_engine_rejects_requests(self) -> None:
        engine: MultiEngine[int] = MultiEngine()
        engine.close()
        with pytest.raises(ClientClosedError):
            engine.add(HTTPRequest("http://127.0.0.1:1/", None), 0, 100)


# ------------------------------------------------- against the simulator --

EASFactory = Callable[..., LocalEAS]


def _predict_url(eas: LocalEAS, index: int = 0) -> str:
    return f"http://{eas.instances[index].address}/api/predict/{eas.service_name}"


class TestHandlePoolWithServer:
    def test_body_and_status_returned(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        pool = HandlePool(2)
        response = pool.perform(HTTPRequest(_predict_url(eas), b"a\0b"), 2000)
        assert response.status == 200
        assert response.body == string_response(b"a\0b")
        assert response.header(INSTANCE_HEADER) == eas.instances[0].address
        pool.close()

    def test_without_headers_body_and_status_returned(
        self, local_eas: EASFactory
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        pool = HandlePool(1, keep_headers=False)
        response = pool.perform(HTTPRequest(_predict_url(eas), b"ab"), 2000)
        assert response.status == 200
        assert response.body == string_response(b"ab")
        assert response.raw_headers == b""
        assert response.header(INSTANCE_HEADER) is None
        pool.close()

    def test_reused_handle_sends_new_headers(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string", token="secret")
        pool = HandlePool(1)
        url = _predict_url(eas)
        statuses = [
            pool.perform(HTTPRequest(url, b"x", headers), 2000).status
            for headers in ([], ["Authorization: secret"], [])
        ]
        assert statuses == [401, 200, 401]
        assert eas.instances[0].connection_count == 1
        pool.close()

    def test_reused_handle_applies_new_timeout(
        self, local_eas: EASFactory
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        pool = HandlePool(1)
        url = _predict_url(eas)
        assert pool.perform(HTTPRequest(url, b"x"), 10000).status == 200
        eas.instances[0].set_fault(Fault.hang(seconds=3.0))
        # With the first request's 10 s still set, the hang would end in a
        # slow 200 instead of a timeout.
        with pytest.raises(RequestTimeout):
            pool.perform(HTTPRequest(url, b"x"), 200)
        pool.close()

    def test_error_status_is_a_response(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.status(503))
        pool = HandlePool(1)
        response = pool.perform(HTTPRequest(_predict_url(eas), b"x"), 2000)
        assert response.status == 503
        assert b"simulated fault" in response.body
        pool.close()

    def test_connection_kept_alive(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        pool = HandlePool(4)
        for _ in range(20):
            pool.perform(HTTPRequest(_predict_url(eas), b"k"), 2000)
        assert eas.instances[0].request_count == 20
        assert eas.instances[0].connection_count == 1
        pool.close()

    def test_hang_raises_request_timeout(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.hang(seconds=3.0))
        pool = HandlePool(1)
        with pytest.raises(RequestTimeout) as info:
            pool.perform(HTTPRequest(_predict_url(eas), b"x"), 200)
        assert info.value.curl_code == pycurl.E_OPERATION_TIMEDOUT
        assert info.value.url == _predict_url(eas)
        pool.close()

    def test_reset_raises_connect_error(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.reset())
        pool = HandlePool(1)
        with pytest.raises(ConnectError) as info:
            pool.perform(HTTPRequest(_predict_url(eas), b"x"), 2000)
        assert info.value.curl_code in (pycurl.E_RECV_ERROR,
                                        pycurl.E_GOT_NOTHING)
        pool.close()

    def test_exhausted_pool_times_out(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.hang(seconds=2.0, times=1))
        pool = HandlePool(1)
        holder = threading.Thread(
            target=lambda: pool.perform(HTTPRequest(_predict_url(eas), b"h"), 5000))
        holder.start()
        try:
            deadline = time.monotonic() + 10
            while eas.instances[0].request_count == 0 \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(RequestTimeout, match="no free connection"):
                pool.perform(HTTPRequest(_predict_url(eas), b"x"), 100)
        finally:
            holder.join(10)
            pool.close()

    def test_waiter_gets_handle_given_back(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.hang(seconds=0.5, times=1))
        pool = HandlePool(1)
        outcomes: list[object] = []

        def hold() -> None:
            try:
                outcomes.append(
                    pool.perform(HTTPRequest(_predict_url(eas), b"h"), 5000))
            except TransportError as exc:
                outcomes.append(exc)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            deadline = time.monotonic() + 10
            while eas.instances[0].request_count == 0 \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            response = pool.perform(HTTPRequest(_predict_url(eas), b"w"), 8000)
        finally:
            holder.join(10)
            pool.close()
        assert response.body == string_response(b"w")
        assert len(outcomes) == 1
        assert isinstance(outcomes[0], HTTPResponse)
        # The waiter reused the holder's handle and its connection instead
        # of opening a second handle past max_handles.
        assert eas.instances[0].connection_count == 1

    def test_abort_event_stops_transfer(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.hang(seconds=30.0))
        abort = threading.Event()
        pool = HandlePool(1, abort_event=abort)
        timer = threading.Timer(0.2, abort.set)
        timer.start()
        with pytest.raises(TransportError) as info:
            pool.perform(HTTPRequest(_predict_url(eas), b"x"), 20000)
        assert info.value.curl_code == pycurl.E_ABORTED_BY_CALLBACK
        timer.join()
        pool.close()


class TestMultiEngineWithServer:
    def test_mixed_outcomes_keep_their_tags(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=2, processor="string")
        eas.instances[1].set_fault(Fault.status(500))
        engine: MultiEngine[str] = MultiEngine()
        engine.add(HTTPRequest(_predict_url(eas, 0), b"ok"), "ok", 2000)
        engine.add(HTTPRequest(_predict_url(eas, 1), b"5xx"), "5xx", 2000)
        dead = f"http://127.0.0.1:{_closed_port()}/"
        engine.add(HTTPRequest(dead, b"x"), "dead", 2000)
        outcomes: dict[str, object] = {}
        for _ in range(100):
            for tag, outcome in engine.wait(0.5):
                outcomes[tag] = outcome
            if not len(engine):
                break
        ok, error_status, dead_outcome = (outcomes["ok"], outcomes["5xx"],
                                          outcomes["dead"])
        assert isinstance(ok, HTTPResponse) and ok.body == b"ko"
        assert isinstance(error_status, HTTPResponse)
        assert error_status.status == 500
        assert isinstance(dead_outcome, ConnectError)
        engine.close()

    def test_connections_reused_across_rounds(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        engine: MultiEngine[int] = MultiEngine()
        for round_number in range(5):
            for tag in range(4):
                engine.add(HTTPRequest(_predict_url(eas), b"r"), tag, 2000)
            finished = 0
            for _ in range(100):
                finished += len(engine.wait(0.5))
                if finished == 4:
                    break
            assert finished == 4, round_number
        assert eas.instances[0].request_count == 20
        assert eas.instances[0].connection_count <= 4
        engine.close()


def _reply_200(body: bytes, framing: str) -> bytes:
    # A 200 response carrying ``body`` framed by Content-Length, by chunks,
    # or by closing the connection.
    if framing == "length":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    if framing == "chunked":
        chunks = b"".join(b"%x\r\n" % len(body[i:i + 1000]) + body[i:i + 1000]
                          + b"\r\n" for i in range(0, len(body), 1000))
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunks + b"0\r\n\r\n")
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body


FRAMINGS = ["length", "chunked", "close"]
LIMIT = BodyLimit(5000, "the test's limit")


class TestBodyLimit:
    @pytest.mark.parametrize("framing", FRAMINGS)
    def test_pool_aborts_larger_body(self, framing: str) -> None:
        with CannedServer(_reply_200(b"x" * 20000, framing)) as server:
            pool = HandlePool(1, body_limit=LIMIT)
            with pytest.raises(TransportError) as info:
                pool.perform(HTTPRequest(f"http://{server.address}/", b""), 5000)
            pool.close()
        error = info.value
        assert "larger than 5000 bytes" in str(error)
        assert "the test's limit" in str(error)
        assert error.max_body_size == 5000
        assert is_request_error(error)

    @pytest.mark.parametrize("framing", FRAMINGS)
    def test_body_at_the_limit_accepted(self, framing: str) -> None:
        with CannedServer(_reply_200(b"y" * 5000, framing)) as server:
            pool = HandlePool(1, body_limit=LIMIT)
            response = pool.perform(
                HTTPRequest(f"http://{server.address}/", b""), 5000)
            pool.close()
        assert response.body == b"y" * 5000

    @pytest.mark.parametrize("framing", FRAMINGS)
    def test_counting_write_callback_aborts(
        self, framing: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The path taken with libcurl before 8.4.0, which enforces the
        # limit only against Content-Length.
        monkeypatch.setattr(_transport, "_COUNT_IN_WRITE", True)
        with CannedServer(_reply_200(b"x" * 20000, framing)) as server:
            pool = HandlePool(1, body_limit=LIMIT)
            url = f"http://{server.address}/"
            with pytest.raises(TransportError, match="larger than 5000 bytes"):
                pool.perform(HTTPRequest(url, b""), 5000)
            pool.close()

    def test_counting_write_callback_keeps_small_bodies(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_transport, "_COUNT_IN_WRITE", True)
        with CannedServer(_reply_200(b"z" * 4000, "chunked")) as server:
            pool = HandlePool(1, body_limit=LIMIT)
            url = f"http://{server.address}/"
            for _ in range(3):
                assert pool.perform(HTTPRequest(url, b""), 5000).body == b"z" * 4000
            pool.close()

    def test_engine_aborts_larger_body(self) -> None:
        with CannedServer(_reply_200(b"x" * 20000, "chunked")) as server:
            engine: MultiEngine[str] = MultiEngine(body_limit=LIMIT)
            engine.add(HTTPRequest(f"http://{server.address}/", b""), "big", 5000)
            outcomes = []
            for _ in range(100):
                outcomes += engine.wait(0.5)
                if not len(engine):
                    break
            engine.close()
        assert len(outcomes) == 1
        tag, outcome = outcomes[0]
        assert tag == "big"
        assert isinstance(outcome, TransportError)
        assert "larger than 5000 bytes" in str(outcome)
