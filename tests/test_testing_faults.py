"""Faults of simulated instances and of the gateway, seen by real clients."""

from __future__ import annotations

import collections
import http.client
import io
import socket
import threading

import pycurl
import pytest

from easfast.testing import Fault, string_response
from easfast.testing._faults import GARBAGE_BODY

PATH = "/api/predict/mnist"


def post(address: str, body: bytes = b"x", timeout: float = 10.0):
    """POST on a fresh connection; return (status, body, response headers)."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", PATH, body=body)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def curl_post(address: str, body: bytes = b"x", timeout_ms: int = 10_000):
    """POST with pycurl; return (status, body) or raise pycurl.error."""
    curl = pycurl.Curl()
    output = io.BytesIO()
    curl.setopt(pycurl.URL, f"http://{address}{PATH}")
    curl.setopt(pycurl.POSTFIELDS, body)
    curl.setopt(pycurl.WRITEDATA, output)
    curl.setopt(pycurl.TIMEOUT_MS, timeout_ms)
    try:
        curl.perform()
        return curl.getinfo(pycurl.RESPONSE_CODE), output.getvalue()
    finally:
        curl.close()


@pytest.fixture
def eas(local_eas):
    return local_eas(instances=3, weights=[5, 1, 1], processor="string")


class TestFaultValues:
    @pytest.mark.parametrize(
        ("build", "error", "message"),
        [
            (
                lambda: Fault.status(99),
                ValueError,
                "status code must be an int in 200..599",
            ),
            (
                lambda: Fault.status(503, times=0),
                ValueError,
                "times must be at least 1",
            ),
            (lambda: Fault.status(503, times=1.5), TypeError, "times must be an int"),
            (
                lambda: Fault.hang(-1),
                ValueError,
                "hang seconds must be a finite number",
            ),
            (
                lambda: Fault.hang(float("inf")),
                ValueError,
                "hang seconds must be a finite",
            ),
        ],
        ids=["code", "times-zero", "times-float", "negative-hang", "infinite-hang"],
    )
    def test_invalid_fault_raises(self, build, error, message):
        with pytest.raises(error, match=message):
            build()

    def test_instance_rejects_discovery_fault(self, eas):
        with pytest.raises(ValueError, match="cannot show a 'empty' fault"):
            eas.instances[0].set_fault(Fault.empty())

    def test_set_fault_rejects_other_types(self, eas):
        with pytest.raises(TypeError, match="expected a Fault or None"):
            eas.instances[0].set_fault("dead")


class TestStatusFault:
    def test_applies_to_the_next_n_requests(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.status(503, times=2))
        first = post(instance.address)
        second = post(instance.address)
        third = post(instance.address, b"abc")
        assert first[0] == 503
        assert b"simulated fault: status 503" in first[1]
        assert first[2]["Content-Type"].startswith("text/plain")
        assert second[0] == 503
        assert third[:2] == (200, b"cba")
        assert instance.fault is None
        assert instance.request_count == 3

    def test_lasts_until_cleared(self, eas):
        instance = eas.instances[1]
        instance.set_fault(Fault.status(500))
        statuses = [post(instance.address)[0] for _ in range(4)]
        instance.set_fault(None)
        assert statuses == [500] * 4
        assert post(instance.address)[0] == 200

    def test_other_instances_stay_healthy(self, eas):
        eas.instances[0].set_fault(Fault.status(503))
        assert post(eas.instances[1].address, b"ab")[:2] == (200, b"ba")


class TestHangFault:
    def test_client_with_short_timeout_times_out(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.hang(30))
        with pytest.raises(socket.timeout):
            post(instance.address, timeout=0.3)
        with pytest.raises(pycurl.error) as caught:
            curl_post(instance.address, timeout_ms=300)
        assert caught.value.args[0] == pycurl.E_OPERATION_TIMEDOUT
        assert instance.request_count == 2

    def test_long_timeout_gets_response(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.hang(0.2, times=1))
        assert post(instance.address, b"slow")[:2] == (200, b"wols")
        assert instance.fault is None


class TestResetFault:
    def test_http_client_sees_reset(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.reset())
        with pytest.raises(ConnectionResetError):
            post(instance.address)

    def test_curl_sees_receive_error(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.reset(times=1))
        with pytest.raises(pycurl.error) as caught:
            curl_post(instance.address)
        assert caught.value.args[0] == pycurl.E_RECV_ERROR
        assert curl_post(instance.address, b"ok") == (200, b"ko")


class TestGarbageFault:
    def test_responds_200_with_garbage(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.garbage(times=1))
        status, body, _ = post(instance.address, b"abc")
        assert status == 200
        assert body == GARBAGE_BODY
        assert body != string_response(b"abc")
        assert post(instance.address, b"abc")[1] == b"cba"

    def test_custom_body(self, eas):
        eas.instances[0].set_fault(Fault.garbage(b"\x00\x01"))
        assert post(eas.instances[0].address)[1] == b"\x00\x01"


class TestDeadFault:
    def test_connections_are_refused_then_served_on_same_port(self, eas):
        instance = eas.instances[2]
        port = instance.port
        instance.set_fault(Fault.dead())
        with pytest.raises(ConnectionRefusedError):
            post(instance.address)
        with pytest.raises(pycurl.error) as caught:
            curl_post(instance.address)
        assert caught.value.args[0] == pycurl.E_COULDNT_CONNECT
        assert instance.is_dead
        assert instance.connection_count == 0

        instance.set_fault(None)
        assert instance.port == port
        assert post(instance.address, b"up")[:2] == (200, b"pu")

    def test_open_connection_is_closed(self, eas):
        instance = eas.instances[0]
        host, port = instance.address.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST {PATH} HTTP/1.1\r\nContent-Length: 1\r\n\r\na".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
            instance.set_fault(Fault.dead())
            assert sock.recv(65536) == b""

    def test_dead_instance_stays_listed(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.dead())
        assert instance in eas.instances

    def test_dead_twice_then_healthy(self, eas):
        instance = eas.instances[0]
        instance.set_fault(Fault.dead())
        instance.set_fault(Fault.dead())
        instance.set_fault(Fault.status(503, times=1))
        assert post(instance.address)[0] == 503
        assert post(instance.address)[0] == 200


class TestFaultsUnderTraffic:
    def test_toggling_faults_while_requests_flow(self, eas):
        instance = eas.instances[0]
        outcomes: collections.Counter[object] = collections.Counter()
        stop = threading.Event()
        sent = 0

        def client() -> None:
            nonlocal sent
            conn = http.client.HTTPConnection(instance.address, timeout=10)
            for index in range(400):
                if stop.is_set():
                    break
                body = str(index).encode()
                conn.request("POST", PATH, body=body)
                response = conn.getresponse()
                data = response.read()
                sent += 1
                if response.status == 200:
                    outcomes["ok" if data == string_response(body) else "wrong"] += 1
                else:
                    outcomes[response.status] += 1
            conn.close()

        worker = threading.Thread(target=client)
        worker.start()
        try:
            for _ in range(100):
                instance.set_fault(Fault.status(503))
                instance.set_fault(Fault.status(429, times=1))
                instance.set_fault(None)
        finally:
            stop.set()
            worker.join(30)
        assert not worker.is_alive()
        assert set(outcomes) <= {"ok", 503, 429}
        assert outcomes["ok"] > 0
        assert instance.request_count == sent


class TestGateway:
    def test_balances_by_weight(self, eas):
        for index in range(70):
            assert post(eas.gateway_endpoint, str(index).encode())[0] == 200
        assert [instance.request_count for instance in eas.instances] == [50, 10, 10]
        assert eas.gateway.request_count == 70
        assert all(instance.connection_count == 0 for instance in eas.instances)

    def test_skips_dead_instance(self, eas):
        eas.instances[0].set_fault(Fault.dead())
        answered_by = {
            post(eas.gateway_endpoint)[2]["X-Easfast-Instance"] for _ in range(6)
        }
        assert answered_by == {eas.instances[1].address, eas.instances[2].address}

    def test_all_dead_gets_503(self, eas):
        for instance in eas.instances:
            instance.set_fault(Fault.dead())
        status, body, _ = post(eas.gateway_endpoint)
        assert status == 503
        assert b"no live instance of service 'mnist'" in body

    def test_instance_reset_becomes_502(self, eas):
        eas.set_weight(eas.instances[1], 0)
        eas.set_weight(eas.instances[2], 0)
        eas.instances[0].set_fault(Fault.reset())
        status, body, _ = post(eas.gateway_endpoint)
        assert status == 502
        assert eas.instances[0].address.encode() in body

    def test_instance_status_passes_through(self, eas):
        eas.set_weight(eas.instances[1], 0)
        eas.set_weight(eas.instances[2], 0)
        eas.instances[0].set_fault(Fault.status(507))
        assert post(eas.gateway_endpoint)[0] == 507

    def test_instance_hang_delays_gateway_response(self, eas):
        eas.set_weight(eas.instances[1], 0)
        eas.set_weight(eas.instances[2], 0)
        eas.instances[0].set_fault(Fault.hang(0.2, times=1))
        with pytest.raises(socket.timeout):
            post(eas.gateway_endpoint, timeout=0.05)
        eas.instances[0].set_fault(Fault.hang(0.1, times=1))
        assert post(eas.gateway_endpoint, b"ab")[:2] == (200, b"ba")

    def test_own_fault_comes_first(self, eas):
        eas.gateway.set_fault(Fault.status(502, times=1))
        assert post(eas.gateway_endpoint)[0] == 502
        assert sum(instance.request_count for instance in eas.instances) == 0
        assert post(eas.gateway_endpoint, b"ab")[:2] == (200, b"ba")

    def test_gateway_dead_refuses(self, eas):
        eas.gateway.set_fault(Fault.dead())
        with pytest.raises(ConnectionRefusedError):
            post(eas.gateway_endpoint)
        eas.gateway.set_fault(None)
        assert post(eas.gateway_endpoint)[0] == 200


class TestInstanceChanges:
    def test_removed_instance_refuses(self, eas):
        instance = eas.instances[1]
        eas.remove_instance(instance)
        assert instance not in eas.instances
        with pytest.raises(ConnectionRefusedError):
            post(instance.address)
        with pytest.raises(ValueError, match="is not an instance"):
            eas.remove_instance(instance)

    def test_added_instance_serves(self, eas):
        instance = eas.add_instance(weight=7)
        assert instance.weight == 7
        assert eas.instances[-1] is instance
        assert post(instance.address, b"new")[:2] == (200, b"wen")

    def test_set_fault_after_stop_raises(self, local_eas):
        eas = local_eas(instances=1, processor="string")
        instance = eas.instances[0]
        eas.stop()
        with pytest.raises(RuntimeError, match="is stopped"):
            instance.set_fault(Fault.dead())
