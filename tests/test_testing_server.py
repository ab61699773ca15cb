"""The simulator's HTTP engine and life cycle, driven by plain sockets."""

from __future__ import annotations

import http.client
import io
import logging
import os
import socket
import threading

import pycurl
import pytest

from easfast.testing import Fault, LocalEAS, string_response

PATH = "/api/predict/mnist"


def post(address: str, body: bytes = b"", path: str = PATH, **headers: str):
    """POST on a fresh connection; return (status, body, response headers)."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def raw_exchange(address: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new socket and return every byte until the server closes."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def is_refused(address: str) -> bool:
    host, port = address.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class TestLifeCycle:
    def test_stop_leaves_no_thread(self):
        before = set(threading.enumerate())
        for _ in range(5):
            with LocalEAS(instances=3, processor="string") as eas:
                assert post(eas.instances[0].address, b"ab")[0] == 200
        assert set(threading.enumerate()) == before

    @pytest.mark.skipif(
        not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd"
    )
    def test_stop_leaves_no_socket(self):
        with LocalEAS(instances=1, processor="string"):
            pass  # warm imports and lazily created objects
        before = open_fd_count()
        for _ in range(5):
            with LocalEAS(instances=3, processor="string") as eas:
                eas.instances[1].set_fault(Fault.dead())
                assert post(eas.instances[0].address, b"ab")[0] == 200
        assert open_fd_count() == before

    def test_stop_closes_every_port(self):
        eas = LocalEAS(instances=2, processor="string").start()
        addresses = [eas.endpoint, eas.gateway_endpoint] + [
            i.address for i in eas.instances
        ]
        eas.stop()
        for address in addresses:
            assert is_refused(address), address

    def test_stop_ends_a_hanging_request(self, local_eas):
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.hang(60))
        request = (
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab".encode()
        )
        received: list[bytes] = []
        client = threading.Thread(
            target=lambda: received.append(
                raw_exchange(eas.instances[0].address, request)
            )
        )
        client.start()
        while eas.instances[0].request_count == 0 and client.is_alive():
            threading.Event().wait(0.01)
        eas.stop()
        client.join(15)
        assert not client.is_alive()
        # The client read until the server closed: no response, and no timeout.
        assert received == [b""]

    def test_stop_twice_is_harmless(self):
        eas = LocalEAS(processor="string").start()
        eas.stop()
        eas.stop()

    def test_start_twice_raises(self, local_eas):
        eas = local_eas(processor="string")
        with pytest.raises(RuntimeError, match="already started"):
            eas.start()

    def test_addresses_before_start_raise(self):
        eas = LocalEAS(processor="string")
        with pytest.raises(RuntimeError, match="not started"):
            _ = eas.endpoint

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"instances": 2, "weights": [1]}, "got 1 weights for 2 instances"),
            ({"instances": 1, "weights": [-1]}, "each weight must be an int >= 0"),
            ({"instances": -1}, "instances must be an int >= 0"),
            ({"service_name": "a b"}, "invalid service name"),
            ({"service_name": "/lead"}, "invalid service name"),
            ({"processor": "onnx"}, "unknown processor 'onnx'"),
        ],
        ids=[
            "weight-count",
            "negative-weight",
            "negative-instances",
            "space",
            "slash",
            "processor",
        ],
    )
    def test_invalid_argument_raises(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            LocalEAS(**kwargs)

    def test_zero_instances_serve_an_empty_list(self, local_eas):
        eas = local_eas(instances=0, processor="string")
        assert eas.instances == []
        status, body, _ = post(eas.gateway_endpoint, b"x")
        assert status == 503
        assert b"no live instance" in body


class TestHTTP:
    @pytest.fixture
    def eas(self, local_eas):
        return local_eas(instances=1, processor="string")

    def test_keep_alive_reuses_one_connection(self, eas):
        instance = eas.instances[0]
        conn = http.client.HTTPConnection(instance.address, timeout=10)
        for body in (b"one", b"two", b"three"):
            conn.request("POST", PATH, body=body)
            response = conn.getresponse()
            assert response.read() == string_response(body)
        conn.close()
        assert instance.connection_count == 1
        assert instance.request_count == 3

    def test_connection_close_is_honoured(self, eas):
        request = (
            f"POST {PATH} HTTP/1.1\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"
        )
        response = raw_exchange(eas.instances[0].address, request.encode())
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nConnection: close\r\n" in response
        assert response.endswith(b"\r\n\r\ncba")

    def test_http10_closes_after_response(self, eas):
        request = f"POST {PATH} HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"
        response = raw_exchange(eas.instances[0].address, request.encode())
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"cba")

    def test_pipelined_requests_respond_in_order(self, eas):
        one = f"POST {PATH} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        two = (
            f"POST {PATH} HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\nxy"
        )
        response = raw_exchange(eas.instances[0].address, (one + two).encode())
        assert response.count(b"HTTP/1.1 200 OK") == 2
        assert response.index(b"cba") < response.index(b"yx")

    def test_expect_100_continue_gets_continue(self, eas):
        host, port = eas.instances[0].address.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = f"POST {PATH} HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
            sock.sendall(head.encode())
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"wxyz")
            response = sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"zyxw")

    def test_chunked_body_is_read(self, eas):
        request = (
            f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n"
        )
        response = raw_exchange(eas.instances[0].address, request.encode())
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"gfedcba")

    def test_request_arriving_byte_by_byte(self, eas):
        request = (
            f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        ).encode()
        host, port = eas.instances[0].address.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for index in range(len(request)):
                sock.sendall(request[index : index + 1])
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"edcba")

    def test_expect_100_continue_with_chunked_body(self, eas):
        host, port = eas.instances[0].address.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = (
                f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                "Expect: 100-continue\r\n\r\n"
            )
            sock.sendall(head.encode())
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"3\r\nxyz\r\n0\r\n\r\n")
            response = sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"zyx")

    def test_pipelined_request_waits_for_hanging_one(self, eas):
        eas.instances[0].set_fault(Fault.hang(0.2, times=1))
        one = f"POST {PATH} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        two = (
            f"POST {PATH} HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\nxy"
        )
        response = raw_exchange(eas.instances[0].address, (one + two).encode())
        assert response.count(b"HTTP/1.1 200 OK") == 2
        assert response.index(b"cba") < response.index(b"yx")

    def test_disconnect_during_hang_logs_no_error(self, eas, caplog):
        instance = eas.instances[0]
        instance.set_fault(Fault.hang(0.2, times=1))
        host, port = instance.address.split(":")
        request = f"POST {PATH} HTTP/1.1\r\nContent-Length: 1\r\n\r\na"
        with caplog.at_level(logging.DEBUG, logger="easfast.testing"):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(request.encode())
                while instance.request_count == 0:
                    threading.Event().wait(0.01)
            # The hang ends after the client left; the server still responds.
            threading.Event().wait(0.3)
            assert post(instance.address, b"ok")[1] == b"ko"
        assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []

    def test_large_body_through_pycurl(self, eas):
        # libcurl sends "Expect: 100-continue" for bodies this large.
        body = os.urandom(3 << 20)
        curl = pycurl.Curl()
        output = io.BytesIO()
        curl.setopt(pycurl.URL, f"http://{eas.instances[0].address}{PATH}")
        curl.setopt(pycurl.POSTFIELDS, body)
        curl.setopt(pycurl.WRITEDATA, output)
        curl.setopt(pycurl.TIMEOUT, 20)
        try:
            curl.perform()
            status = curl.getinfo(pycurl.RESPONSE_CODE)
        finally:
            curl.close()
        assert status == 200
        assert output.getvalue() == string_response(body)

    @pytest.mark.parametrize(
        ("request_text", "status", "message"),
        [
            ("GARBAGE\r\n\r\n", 400, b"invalid request line"),
            (f"POST {PATH} HTTP/2.0\r\n\r\n", 505, b"HTTP version"),
            (
                f"POST {PATH} HTTP/1.1\r\nBad Header\r\n\r\n",
                400,
                b"invalid header line",
            ),
            (
                f"POST {PATH} HTTP/1.1\r\nContent-Length: x1\r\n\r\n",
                400,
                b"Content-Length",
            ),
            (
                f"POST {PATH} HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
                b"conflicting Content-Length",
            ),
            (
                f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                501,
                b"Transfer-Encoding 'gzip'",
            ),
            (
                f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
                b"both Transfer-Encoding and Content-Length",
            ),
            (
                f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
                b"invalid chunk size",
            ),
            (
                f"POST {PATH} HTTP/1.1\r\nContent-Length: 1\r\nExpect: magic\r\n\r\n",
                417,
                b"Expect 'magic'",
            ),
            (
                f"POST {PATH} HTTP/1.1\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx",
                417,
                b"Expect 'magic'",
            ),
        ],
        ids=[
            "request-line",
            "version",
            "header-line",
            "length-text",
            "length-conflict",
            "coding",
            "coding-and-length",
            "chunk-size",
            "expect",
            "expect-with-body",
        ],
    )
    def test_bad_request_gets_error_and_close(self, eas, request_text, status, message):
        response = raw_exchange(eas.instances[0].address, request_text.encode())
        assert response.startswith(f"HTTP/1.1 {status} ".encode())
        assert b"\r\nConnection: close\r\n" in response
        assert message in response

    def test_body_over_limit_gets_413(self, local_eas):
        eas = local_eas(instances=1, processor="string", max_body_size=10)
        request = f"POST {PATH} HTTP/1.1\r\nContent-Length: 11\r\n\r\n"
        response = raw_exchange(eas.instances[0].address, request.encode())
        assert response.startswith(b"HTTP/1.1 413 ")
        assert b"exceeds 10" in response

    def test_head_over_limit_gets_431(self, eas):
        request = f"POST {PATH} HTTP/1.1\r\nX-Big: {'a' * 300_000}\r\n\r\n"
        response = raw_exchange(eas.instances[0].address, request.encode())
        assert response.startswith(b"HTTP/1.1 431 ")

    def test_error_response_survives_unread_body(self, local_eas):
        # The server rejects the body as soon as it reads the head. Closing
        # with the body still arriving would reset the connection, and the
        # client would get an error instead of the 413 response.
        eas = local_eas(instances=1, processor="string", max_body_size=10)
        host, port = eas.instances[0].address.split(":")
        body = b"b" * 4_000_000
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = f"POST {PATH} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode() + body)
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 413 ")
        assert b"exceeds 10" in response

    def test_unknown_path_gets_404(self, eas):
        status, body, _ = post(
            eas.instances[0].address, b"x", path="/api/predict/other"
        )
        assert status == 404
        assert b"/api/predict/mnist" in body
        assert eas.instances[0].request_count == 0

    def test_get_on_predict_path_gets_405(self, eas):
        conn = http.client.HTTPConnection(eas.instances[0].address, timeout=10)
        conn.request("GET", PATH)
        response = conn.getresponse()
        assert response.status == 405
        assert response.getheader("Allow") == "POST"
        conn.close()

    def test_disconnect_mid_body_logs_no_error(self, eas, caplog):
        instance = eas.instances[0]
        host, port = instance.address.split(":")
        head = f"POST {PATH} HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789"
        with caplog.at_level(logging.DEBUG, logger="easfast.testing"):
            for _ in range(5):
                with socket.create_connection((host, int(port)), timeout=10) as sock:
                    sock.sendall(head.encode())
            # The server still responds, and it logged nothing above DEBUG.
            assert post(instance.address, b"ok")[1] == b"ko"
        assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []
        assert instance.connection_count == 6

    def test_response_names_the_instance(self, eas):
        _, _, headers = post(eas.instances[0].address, b"x")
        assert headers["X-Easfast-Instance"] == eas.instances[0].address
