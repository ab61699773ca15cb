"""Tests of Client and PredictClient against the local EAS simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from canned_server import CannedServer

import easfast
from easfast import (
    ENDPOINT_TYPE_DEFAULT,
    ENDPOINT_TYPE_DIRECT,
    Client,
    PredictClient,
    Retry,
    StringRequest,
    TFRequest,
)
from easfast._auth import auth_headers, http_date
from easfast._endpoints import custom_url, gateway_url
from easfast.exceptions import (
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    DecodeError,
    EncodeError,
    HTTPStatusError,
    OutputNotFoundError,
    PredictException,
    RequestTimeout,
    RetriesExhausted,
    TransportError,
)
from easfast.testing import DigitModel, Fault, LocalEAS, string_response

EASFactory = Callable[..., LocalEAS]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_predict_client() -> Iterator[Callable[..., PredictClient]]:
    """Return a factory of initialised direct-type PredictClients."""
    made: list[PredictClient] = []

    def make(eas: LocalEAS, token: str | None = None) -> PredictClient:
        client = PredictClient(eas.endpoint, eas.service_name)
        client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
        if token is not None:
            client.set_token(token)
        client.init()
        made.append(client)
        return client

    yield make
    for client in made:
        client.destroy()


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    # Poll with a bounded wait; the caller asserts on the result.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _total_requests(eas: LocalEAS) -> int:
    return sum(instance.request_count for instance in eas.instances)


class _RouteFailingOnce:
    """A route whose first pick raises RuntimeError, as a bug in it would."""

    def __init__(self, route: Any) -> None:
        self.route = route
        self.failed = False

    def pick(self, exclude: Any = None) -> tuple[str, str]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("simulated bug in pick")
        result: tuple[str, str] = self.route.pick(exclude)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.route, name)


def _add_unsendable_header(client: Client) -> tuple[str, ...]:
    # Bypass the configuration checks, so that the transport meets a header
    # line that curl cannot send. Returns the original header lines.
    session = client._session
    original = session._static_headers
    session._static_headers = original + ("X-User: Jos\u00e9",)
    return original


class TestDirectChannel:
    def test_weighted_distribution_5_1_1(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, weights=[5, 1, 1], processor="string")
        client = make_client(eas)
        for i in range(70):
            assert client.predict_raw(b"%d" % i) == string_response(b"%d" % i)
        counts = [instance.request_count for instance in eas.instances]
        assert counts == [50, 10, 10]

    def test_dead_instance_in_list_costs_no_request(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        eas.advertise([("127.0.0.1", _closed_port(), 100)])
        client = make_client(eas)
        assert len(client.endpoints) == 3
        for i in range(30):
            assert client.predict_raw(b"x%d" % i) == string_response(b"x%d" % i)
        assert _total_requests(eas) == 30

    def test_instance_going_dead_is_retried_elsewhere(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas)
        eas.instances[0].set_fault(Fault.dead())
        for _ in range(12):
            assert client.predict_raw(b"abc") == b"cba"
        assert eas.instances[0].request_count == 0

    def test_503_retried_on_another_instance(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, weights=[1, 1], processor="string")
        client = make_client(eas)
        failing, healthy = eas.instances
        failing.set_fault(Fault.status(503))
        for _ in range(6):
            assert client.predict_raw(b"ab") == b"ba"
        assert failing.request_count == 3  # every other call starts there
        assert healthy.request_count == 6

    def test_429_retried_on_another_instance(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        eas.instances[0].set_fault(Fault.status(429))
        client = make_client(eas)
        for i in range(6):
            body = b"t%d" % i
            assert client.predict_raw(body) == string_response(body)
        assert eas.instances[0].request_count >= 2

    def test_429_retry_after_honoured_and_capped(self) -> None:
        reply = (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n"
                 b"Content-Length: 4\r\n\r\nbusy")
        slept: list[float] = []
        with CannedServer(reply) as canned:
            url = f"http://{canned.address}/api/predict/s"
            client = Client("s", custom_url=url,
                            retry=Retry(3, sleep=slept.append))
            capped = Client("s", custom_url=url, retry=Retry(
                2, backoff_max=0.5, sleep=slept.append))
            with client, capped:
                with pytest.raises(RetriesExhausted) as caught:
                    client.predict_raw(b"x")
                with pytest.raises(RetriesExhausted):
                    capped.predict_raw(b"x")
        assert slept == [2.0, 2.0, 0.5]
        assert caught.value.code == 429
        assert "Retry-After: 2 s" in str(caught.value)
        assert canned.request_count == 5

    @pytest.mark.parametrize("code, advice", [
        (302, "redirect"),
        (404, "fix the request"),
        (299, "not a status an EAS service returns"),
    ])
    def test_unretried_status_message(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        code: int, advice: str,
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        for instance in eas.instances:
            instance.set_fault(Fault.status(code))
        client = make_client(eas)
        with pytest.raises(HTTPStatusError, match=advice) as caught:
            client.predict_raw(b"x")
        assert caught.value.code == code
        assert "the instance failed" not in str(caught.value)
        assert _total_requests(eas) == 1

    def test_retry_skips_instances_already_tried(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        # Weights 5:1 make the round robin pick the heavy instance twice in
        # a row, so only the exclusion of tried instances saves each call.
        eas = local_eas(instances=2, weights=[5, 1], processor="string")
        client = make_client(eas, retry=2)
        heavy, light = eas.instances
        heavy.set_fault(Fault.status(503))
        for _ in range(6):
            assert client.predict_raw(b"ab") == b"ba"
        assert light.request_count == 6

    def test_4xx_raised_without_retry(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        for instance in eas.instances:
            instance.set_fault(Fault.status(400))
        client = make_client(eas)
        with pytest.raises(HTTPStatusError, match="HTTP 400") as info:
            client.predict_raw(b"x")
        assert info.value.code == 400
        assert "simulated fault" in info.value.message  # the server's text
        assert _total_requests(eas) == 1

    def test_retries_exhausted_names_service_and_instances(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        for instance in eas.instances:
            instance.set_fault(Fault.status(503))
        client = make_client(eas, retry=4)
        with pytest.raises(RetriesExhausted) as info:
            client.predict_raw(b"x")
        error = info.value
        addresses = {instance.address for instance in eas.instances}
        assert error.code == 503
        assert "'mnist'" in error.message
        assert "all 4 attempts" in error.message
        assert set(error.instances) == addresses
        assert all(address in error.message for address in addresses)
        assert len(error.attempts) == 4
        assert [a for a, _ in error.attempts[:3]] == error.instances
        assert isinstance(error.__cause__, HTTPStatusError)
        assert error.__cause__.code == 503
        assert "HTTP 503" in error.message
        assert _total_requests(eas) == 4

    def test_retries_exhausted_after_connect_errors_has_code_500(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas, retry=2)
        for instance in eas.instances:
            instance.set_fault(Fault.dead())
        with pytest.raises(RetriesExhausted) as info:
            client.predict_raw(b"x")
        assert info.value.code == 500
        assert isinstance(info.value.__cause__, ConnectError)

    def test_hang_times_out_then_succeeds_elsewhere(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, weights=[1, 1], processor="string")
        client = make_client(eas, timeout=0.3)
        hanging = eas.instances[0]
        hanging.set_fault(Fault.hang(seconds=3.0))
        for _ in range(2):
            assert client.predict_raw(b"ok") == b"ko"
        assert hanging.request_count == 1

    def test_hang_with_one_attempt_raises_request_timeout(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, timeout=0.3, retry=1)
        eas.instances[0].set_fault(Fault.hang(seconds=3.0))
        with pytest.raises(RetriesExhausted) as info:
            client.predict_raw(b"x")
        timeout = info.value.__cause__
        assert isinstance(timeout, RequestTimeout)
        assert timeout.url.endswith("/api/predict/mnist")
        assert timeout.curl_code == 28

    def test_reset_is_retried_elsewhere(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, weights=[1, 1], processor="string")
        client = make_client(eas)
        eas.instances[0].set_fault(Fault.reset())
        for _ in range(4):
            assert client.predict_raw(b"xy") == b"yx"
        assert eas.instances[0].request_count == 2

    def test_reset_everywhere_ends_in_connect_error(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, retry=2)
        eas.instances[0].set_fault(Fault.reset())
        with pytest.raises(RetriesExhausted) as info:
            client.predict_raw(b"x")
        assert isinstance(info.value.__cause__, ConnectError)
        assert eas.instances[0].request_count == 2

    @pytest.mark.parametrize("reply", [
        b"\x0a\x05hello",
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.0\r\n",
    ], ids=["http09", "bad-status-line", "not-http"])
    def test_non_http_reply_retried_elsewhere(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        reply: bytes,
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        with CannedServer(reply) as canned:
            eas.advertise([("127.0.0.1", canned.port, 100)])
            client = make_client(eas)
            for i in range(6):
                body = b"n%d" % i
                assert client.predict_raw(body) == string_response(body)
            assert canned.request_count >= 1

    def test_non_http_reply_everywhere_says_what_to_check(
        self, make_client: Callable[..., Client], local_eas: EASFactory,
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.instances[0].set_fault(Fault.dead())
        with CannedServer(b"SSH-2.0-OpenSSH_9.0\r\n") as canned:
            eas.advertise([("127.0.0.1", canned.port, 100)])
            client = make_client(eas, retry=2, eject_after=None)
            with pytest.raises(RetriesExhausted) as caught:
                client.predict_raw(b"x")
        errors = [error for address, error in caught.value.attempts
                  if address == canned.address]
        assert len(errors) == 1
        assert type(errors[0]) is TransportError
        assert "not valid HTTP/1.x" in str(errors[0])
        assert "runs an EAS service instance" in str(errors[0])

    def test_garbage_body_retried_elsewhere(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray], digit_model: DigitModel,
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        garbled, healthy = eas.instances
        garbled.set_fault(Fault.garbage())
        client = make_client(eas)
        images = digits[0][:1]
        _, classes = digit_model.predict(images)
        for _ in range(4):
            result = client.predict({"images": images})
            np.testing.assert_array_equal(result["classes"], classes)
        assert garbled.request_count >= 2
        assert healthy.request_count == 4

    def test_garbage_everywhere_exhausts_retries(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        for instance in eas.instances:
            instance.set_fault(Fault.garbage())
        client = make_client(eas, retry=3)
        with pytest.raises(RetriesExhausted) as caught:
            client.predict({"images": digits[0][:1]})
        error = caught.value
        assert isinstance(error.__cause__, DecodeError)
        assert isinstance(error.last_error, DecodeError)
        assert "HTTP 200" in str(error.last_error)
        assert eas.instances[0].address in str(error.last_error) \
            or eas.instances[1].address in str(error.last_error)
        assert _total_requests(eas) == 3

    def test_empty_200_retried_elsewhere(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        empty, healthy = eas.instances
        empty.set_fault(Fault.garbage(body=b""))
        client = make_client(eas)
        for _ in range(4):
            result = client.predict({"images": digits[0][:1]},
                                    outputs=["scores"])
            assert result["scores"].shape == (1, 10)
        assert empty.request_count >= 2
        assert healthy.request_count == 4

    def test_empty_200_everywhere_raises_no_outputs(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=1, processor="tf")
        eas.instances[0].set_fault(Fault.garbage(body=b""))
        client = make_client(eas, retry=2)
        with pytest.raises(RetriesExhausted) as caught:
            client.predict({"images": digits[0][:1]})
        assert isinstance(caught.value.__cause__, DecodeError)
        assert "no outputs" in str(caught.value.__cause__)

    def test_missing_requested_output_not_retried(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        only_classes = easfast._core.encode_tf_response(
            {"classes": np.array([3], dtype=np.int64)})
        for instance in eas.instances:
            instance.set_fault(Fault.garbage(body=only_classes))
        client = make_client(eas)
        with pytest.raises(OutputNotFoundError, match="'scores'") as caught:
            client.predict({"images": digits[0][:1]}, outputs=["scores"])
        assert caught.value.name == "scores"
        assert caught.value.available == ["classes"]
        assert "'classes'" in str(caught.value)
        assert _total_requests(eas) == 1
        future = client.submit({"images": digits[0][:1]}, outputs=["scores"])
        assert isinstance(future.exception(timeout=10), OutputNotFoundError)

    def test_empty_200_retried_by_predict_client(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        eas.instances[0].set_fault(Fault.garbage(body=b""))
        client = make_predict_client(eas)
        for _ in range(4):
            request = TFRequest("predict_images")
            request.add_feed("images", [1, 784], TFRequest.DT_FLOAT,
                             digits[0][0])
            assert client.predict(request).get_tensor_shape("scores") == [1, 10]

    def test_garbage_body_retried_in_many_and_submit(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        eas.instances[0].set_fault(Fault.garbage())
        client = make_client(eas)
        inputs = [{"images": digits[0][i:i + 1]} for i in range(6)]
        many = client.predict_many(inputs, concurrency=3)
        assert all(set(result) == {"scores", "classes"} for result in many)
        futures = [client.submit(item) for item in inputs]
        for future in futures:
            assert set(future.result(timeout=10)) == {"scores", "classes"}

    def test_garbage_body_retried_by_predict_client(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        eas.instances[0].set_fault(Fault.garbage())
        client = make_predict_client(eas)
        for _ in range(4):
            request = TFRequest("predict_images")
            request.add_feed("images", [1, 784], TFRequest.DT_FLOAT,
                             digits[0][0])
            response = client.predict(request)
            assert response.get_tensor_shape("scores") == [1, 10]

    def test_keep_alive_reuses_connections(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas)
        for _ in range(100):
            client.predict_raw(b"k")
        for instance in eas.instances:
            assert instance.request_count == 50
            assert instance.connection_count == 1

    def test_threads_share_one_client(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, max_connections=4)

        def work(i: int) -> bool:
            body = b"thread-%d" % i
            return client.predict_raw(body) == string_response(body)

        with ThreadPoolExecutor(8) as executor:
            results = list(executor.map(work, range(200)))
        assert all(results)
        assert _total_requests(eas) == 200
        connections = sum(inst.connection_count for inst in eas.instances)
        assert connections <= 4 * 3


class TestListChanges:
    def test_new_instance_gets_traffic(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        added = eas.add_instance(weight=100)
        assert _wait_until(lambda: len(client.endpoints) == 2)
        for _ in range(4):
            client.predict_raw(b"z")
        assert added.request_count == 2

    def test_removed_instance_gets_no_traffic(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas)
        gone = eas.instances[1]
        eas.remove_instance(gone)
        assert _wait_until(lambda: len(client.endpoints) == 1)
        assert client.endpoints == [eas.instances[0].address]
        count = gone.request_count
        for _ in range(10):
            client.predict_raw(b"q")
        assert gone.request_count == count

    def test_discovery_down_keeps_serving(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas)
        eas.discovery.set_fault(Fault.down())
        discovery = client._session.discovery
        assert discovery is not None
        assert _wait_until(lambda: discovery._failures >= 3)
        for _ in range(10):
            assert client.predict_raw(b"up") == b"pu"
        assert len(client.endpoints) == 2


class TestToken:
    def test_signed_request_accepted(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
    ) -> None:
        eas = local_eas(instances=1, processor="string", token="s3cret")
        client = make_predict_client(eas, token="s3cret")
        assert client.predict(StringRequest(b"tok")).response_data == b"kot"

    def test_wrong_token_raises_401_without_retry(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
    ) -> None:
        eas = local_eas(instances=2, processor="string", token="s3cret")
        client = make_predict_client(eas, token="wrong")
        with pytest.raises(HTTPStatusError) as info:
            client.predict(StringRequest(b"tok"))
        assert info.value.code == 401
        assert "signature" in info.value.message
        assert _total_requests(eas) == 1

    def test_missing_token_raises_401(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string", token="s3cret")
        client = make_client(eas)
        with pytest.raises(HTTPStatusError, match="Authorization") as info:
            client.predict_raw(b"x")
        assert info.value.code == 401

    @pytest.mark.parametrize("token, kind", [
        ("s3cret\n", "a line break"),
        ("s3\r\nX-Injected: yes", "a line break"),
        ("s3cret\t", "a control character"),
        ("s3\x00cret", "a control character"),
        ("s3\x7fcret", "a control character"),
    ], ids=["lf", "crlf", "tab", "nul", "del"])
    def test_control_character_in_token_rejected(
        self, token: str, kind: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=kind) as info:
            Client("svc", custom_url="http://127.0.0.1:1/x", token=token)
        assert "s3" not in str(info.value)
        client = PredictClient("127.0.0.1:1", "svc")
        with pytest.raises(ConfigurationError, match=kind) as info:
            client.set_token(token)
        assert "s3" not in str(info.value)

    def test_token_set_directly_checked_at_init(self) -> None:
        client = PredictClient("127.0.0.1:1", "svc")
        client.token = "s3cret\n"
        with pytest.raises(ConfigurationError, match="line break") as info:
            client.init()
        assert "s3cret" not in str(info.value)

    def test_surrogate_in_token_rejected(self) -> None:
        with pytest.raises(ConfigurationError, match="surrogate"):
            Client("svc", custom_url="http://127.0.0.1:1/x", token="s3\udcff")

    def test_gateway_signed_request_accepted(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=2, processor="string", token="gw")
        client = PredictClient(eas.gateway_endpoint, eas.service_name)
        client.set_token("gw")
        client.init()
        try:
            for _ in range(4):
                assert client.predict(StringRequest("ab")).response_data == b"ba"
        finally:
            client.destroy()
        assert eas.gateway.request_count == 4

    def test_custom_url_sends_raw_token(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string", token="raw")
        client = PredictClient(custom_url=eas.predict_url)
        client.set_service_name(eas.service_name)
        client.set_token("raw")
        client.init()
        try:
            assert client.predict(StringRequest("cu")).response_data == b"uc"
        finally:
            client.destroy()

    def test_signature_matches_hmac_sha1(self) -> None:
        lines = auth_headers("key", b"body", "text/plain", "/api/predict/s",
                             timestamp=0)
        md5 = hashlib.md5(b"body").hexdigest()
        date = "Thu, 01 Jan 1970 00:00:00 GMT"
        text = f"POST\n{md5}\ntext/plain\n{date}\n/api/predict/s"
        digest = hmac.new(b"key", text.encode(), hashlib.sha1).digest()
        assert lines == [
            f"Date: {date}",
            f"Content-MD5: {md5}",
            "Authorization: EAS " + base64.b64encode(digest).decode(),
        ]

    def test_signature_keyed_per_token(self) -> None:
        # Keyed HMACs are cached per token; alternating tokens must not mix.
        for token in ("first", "second", "first"):
            line = auth_headers(token, b"b", "t", "/r", timestamp=0)[2]
            date = "Thu, 01 Jan 1970 00:00:00 GMT"
            text = f"POST\n{hashlib.md5(b'b').hexdigest()}\nt\n{date}\n/r"
            digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
            assert line == "Authorization: EAS " + base64.b64encode(digest).decode()

    def test_date_is_utc(self) -> None:
        assert http_date(1_700_000_000) == "Tue, 14 Nov 2023 22:13:20 GMT"

    def test_date_changes_with_the_second(self) -> None:
        # The formatted date is cached per second; it must never go stale.
        assert http_date(1_700_000_000.9) == "Tue, 14 Nov 2023 22:13:20 GMT"
        assert http_date(1_700_000_001) == "Tue, 14 Nov 2023 22:13:21 GMT"
        assert http_date(1_700_000_000) == "Tue, 14 Nov 2023 22:13:20 GMT"
        assert http_date(-1) == "Wed, 31 Dec 1969 23:59:59 GMT"


class TestGatewayAndCustomURL:
    def test_gateway_client(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=2, processor="string")
        with Client(eas.service_name, endpoint="http://" + eas.gateway_endpoint,
                    endpoint_type="gateway") as client:
            assert client.predict_raw(b"gw") == b"wg"
            assert client.endpoints == [eas.predict_url]

    def test_gateway_url_forms(self) -> None:
        assert gateway_url("h:80", "s", environ={}) == "http://h:80/api/predict/s"
        assert gateway_url("https://h/", "a/b", environ={}) == (
            "https://h/api/predict/a/b")

    def test_gateway_inside_eas_uses_namespace(self) -> None:
        url = gateway_url("", "my_service", environ={"NAMESPACE": "ns"})
        assert url == "http://my-service.ns:8080/api/predict/my_service"

    def test_gateway_without_endpoint_or_namespace_rejected(self) -> None:
        with pytest.raises(ConfigurationError, match="NAMESPACE"):
            gateway_url("", "s", environ={})

    def test_custom_url_gets_scheme(self) -> None:
        assert custom_url("h:1/p") == "http://h:1/p"
        assert custom_url("https://h/p?x=1") == "https://h/p?x=1"


class TestBodies:
    def test_nul_bytes_intact(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_predict_client(eas)
        body = b"\0a\0\0b\0" + bytes(range(256))
        response = client.predict(StringRequest(body))
        assert response.response_data == string_response(body)

    def test_large_body_round_trip(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        body = bytes(range(256)) * 8192  # 2 MiB
        assert client.predict_raw(body) == string_response(body)

    def test_str_body_is_utf8(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_predict_client(eas)
        response = client.predict(StringRequest("é€"))
        assert response.response_data == string_response("é€".encode())

    def test_response_over_max_response_size_not_retried(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas, max_response_size=1000)
        assert client.predict_raw(b"s" * 1000) == b"s" * 1000
        with pytest.raises(TransportError, match="max_response_size") as info:
            client.predict_raw(b"b" * 1001)
        assert "larger than 1000 bytes" in str(info.value)
        assert _total_requests(eas) == 2
        many = client.predict_raw_many([b"b" * 2000, b"ok"],
                                       return_exceptions=True)
        assert isinstance(many[0], TransportError)
        assert many[1] == b"ko"
        error = client.submit_raw(b"b" * 2000).exception(timeout=10)
        assert isinstance(error, TransportError)
        assert "max_response_size" in str(error)

    def test_max_response_size_none_removes_the_limit(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, max_response_size=None)
        body = b"n" * (2 << 20)
        assert client.predict_raw(body) == body

    def test_unsendable_header_in_predict(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        _add_unsendable_header(client)
        with pytest.raises(ConfigurationError, match="X-User"):
            client.predict_raw(b"a")


class TestPredictMany:
    def test_results_in_order(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, weights=[5, 1, 1], processor="string")
        client = make_client(eas)
        bodies = [b"item-%03d" % i for i in range(60)]
        results = client.predict_raw_many(bodies, concurrency=8)
        assert results == [string_response(body) for body in bodies]
        assert _total_requests(eas) == 60

    def test_dead_instance_retried_in_flight(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        eas.advertise([("127.0.0.1", _closed_port(), 100)])
        client = make_client(eas)
        eas.instances[0].set_fault(Fault.status(503, times=5))
        bodies = [b"%d" % i for i in range(40)]
        results = client.predict_raw_many(bodies, concurrency=6)
        assert results == [string_response(body) for body in bodies]

    def test_per_item_failure_returned(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        eas.instances[0].set_fault(Fault.status(400, times=1))
        bodies = [b"%d" % i for i in range(10)]
        results = client.predict_raw_many(bodies, concurrency=4,
                                          return_exceptions=True)
        failed = [r for r in results if isinstance(r, PredictException)]
        assert len(failed) == 1
        assert isinstance(failed[0], HTTPStatusError)
        assert failed[0].code == 400
        for body, result in zip(bodies, results):
            if not isinstance(result, PredictException):
                assert result == string_response(body)

    def test_per_item_failure_raised_by_default(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        eas.instances[0].set_fault(Fault.status(400, times=1))
        with pytest.raises(HTTPStatusError):
            client.predict_raw_many([b"a", b"b", b"c"], concurrency=2)
        assert eas.instances[0].request_count == 3  # every item ran

    def test_timeouts_in_flight_retried(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, weights=[1, 1], processor="string")
        client = make_client(eas, timeout=0.3)
        eas.instances[0].set_fault(Fault.hang(seconds=3.0, times=2))
        results = client.predict_raw_many([b"ab"] * 6, concurrency=6)
        assert results == [b"ba"] * 6

    def test_unexpected_error_stays_with_its_item(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        client._session.route = _RouteFailingOnce(client._session.route)
        bodies = [b"%d" % i for i in range(6)]
        results = client.predict_raw_many(bodies, concurrency=2,
                                          return_exceptions=True)
        assert isinstance(results[0], TransportError)
        assert "unexpected RuntimeError" in str(results[0])
        assert isinstance(results[0].__cause__, RuntimeError)
        assert results[1:] == [string_response(body) for body in bodies[1:]]

    def test_unsendable_header_returned_per_item(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        original = _add_unsendable_header(client)
        results = client.predict_raw_many([b"a", b"b"], return_exceptions=True)
        assert all(isinstance(r, ConfigurationError) for r in results)
        assert "X-User" in str(results[0])
        client._session._static_headers = original
        assert client.predict_raw_many([b"ab"]) == [b"ba"]

    def test_encode_error_returned_per_item(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=1, processor="tf")
        client = make_client(eas)
        good = {"images": digits[0][:1]}
        bad = {"images": np.array([object()])}
        results = client.predict_many([good, bad, good], return_exceptions=True)
        assert isinstance(results[1], EncodeError)
        assert set(results[0]) == {"scores", "classes"}
        assert set(results[2]) == {"scores", "classes"}
        assert eas.instances[0].request_count == 2

    def test_tensor_inputs(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray], digit_model: DigitModel,
    ) -> None:
        eas = local_eas(instances=2, processor="tf")
        client = make_client(eas)
        images = digits[0][:12]
        batches = [{"images": images[i:i + 3]} for i in range(0, 12, 3)]
        results = client.predict_many(batches, outputs=["classes"])
        _, expected = digit_model.predict(images)
        got = np.concatenate([r["classes"] for r in results])
        np.testing.assert_array_equal(got, expected)
        assert all(set(r) == {"classes"} for r in results)


class TestSubmit:
    def test_future_result(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas)
        futures = [client.submit_raw(b"f%d" % i) for i in range(20)]
        assert [f.result(timeout=10) for f in futures] == [
            string_response(b"f%d" % i) for i in range(20)]

    def test_future_exception(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        eas.instances[0].set_fault(Fault.status(404))
        future = client.submit_raw(b"x")
        error = future.exception(timeout=10)
        assert isinstance(error, HTTPStatusError)
        assert error.code == 404

    def test_close_fails_pending_futures(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, timeout=5.0)
        eas.instances[0].set_fault(Fault.hang(seconds=5.0))
        future = client.submit_raw(b"x")
        assert _wait_until(lambda: eas.instances[0].request_count == 1)
        client.close()
        assert isinstance(future.exception(timeout=10), ClientClosedError)

    def test_in_flight_capped_at_max_connections(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, max_connections=3, timeout=5.0)
        instance = eas.instances[0]
        instance.set_fault(Fault.hang(seconds=1.0, times=3))
        futures = [client.submit_raw(b"c%d" % i) for i in range(30)]
        assert _wait_until(lambda: instance.request_count >= 3)
        time.sleep(0.3)  # room for more requests to arrive if uncapped
        assert instance.request_count == 3
        results = [future.result(timeout=20) for future in futures]
        assert results == [string_response(b"c%d" % i) for i in range(30)]

    def test_close_fails_queued_futures_at_once(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, max_connections=2, timeout=5.0)
        instance = eas.instances[0]
        instance.set_fault(Fault.hang(seconds=5.0))
        futures = [client.submit_raw(b"q") for _ in range(500)]
        assert _wait_until(lambda: instance.request_count >= 2)
        client.close()
        assert all(future.done() for future in futures)
        errors = [future.exception(timeout=0) for future in futures]
        assert all(isinstance(error, ClientClosedError) for error in errors)
        assert instance.request_count == 2

    def test_submit_racing_close_never_hangs(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, max_connections=2)
        futures: list[Any] = []

        def submit_until_closed() -> None:
            for _ in range(5000):
                try:
                    futures.append(client.submit_raw(b"r"))
                except ClientClosedError:
                    return

        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(submit_until_closed) for _ in range(4)]
            assert _wait_until(lambda: len(futures) >= 200)
            client.close()
            for task in running:
                task.result(timeout=30)
        assert _wait_until(lambda: all(f.done() for f in futures), timeout=10)
        for future in futures:
            error = future.exception(timeout=0)
            assert error is None or isinstance(error, ClientClosedError)

    def test_dispatcher_survives_unexpected_error(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        client._session.route = _RouteFailingOnce(client._session.route)
        error = client.submit_raw(b"a").exception(timeout=10)
        assert isinstance(error, TransportError)
        assert isinstance(error.__cause__, RuntimeError)
        assert client.submit_raw(b"ab").result(timeout=10) == b"ba"

    def test_dispatcher_survives_unsendable_header(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        original = _add_unsendable_header(client)
        error = client.submit_raw(b"a").exception(timeout=10)
        assert isinstance(error, ConfigurationError)
        assert "X-User" in str(error)
        assert "Jos" not in str(error)
        client._session._static_headers = original
        assert client.submit_raw(b"ab").result(timeout=10) == b"ba"
        assert not client.closed

    def test_submit_tensor(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray], digit_model: DigitModel,
    ) -> None:
        eas = local_eas(instances=1, processor="tf")
        client = make_client(eas)
        images = digits[0][:4]
        result = client.submit({"images": images}).result(timeout=10)
        scores, classes = digit_model.predict(images)
        np.testing.assert_array_equal(result["classes"], classes)
        np.testing.assert_allclose(result["scores"], scores, rtol=1e-5)


class TestFork:
    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_child_predicts_and_refreshes(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas)
        assert client.predict_raw(b"parent") == b"tnerap"
        discovery = client._session.discovery
        assert discovery is not None

        pid = os.fork()
        if pid == 0:  # child: exit 0 only if both checks hold
            status = 1
            try:
                ok = client.predict_raw(b"child") == b"dlihc"
                if ok and discovery.is_alive:
                    status = 0
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.predict_raw(b"again") == b"niaga"


class TestLifecycle:
    def test_predict_after_close_raises(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        client.close()
        with pytest.raises(ClientClosedError, match="closed"):
            client.predict_raw(b"x")

    def test_context_manager_closes(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        with Client(eas.service_name, endpoint=eas.endpoint) as client:
            assert client.predict_raw(b"cm") == b"mc"
        assert client.closed

    def test_destroy_stops_refresher(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_predict_client(eas)
        session = client._session
        assert session is not None and session.discovery is not None
        discovery = session.discovery
        assert discovery.is_alive
        client.destroy()
        assert not discovery.is_alive
        with pytest.raises(ClientClosedError, match="init"):
            client.predict(StringRequest(b"x"))

    def test_init_twice_replaces_state(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_predict_client(eas)
        first = client._session
        assert first is not None and first.discovery is not None
        client.init()
        assert first.closed
        assert not first.discovery.is_alive
        assert client.predict(StringRequest(b"ab")).response_data == b"ba"


class TestConfiguration:
    @pytest.mark.parametrize("kwargs, match", [
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"retry": 0}, "attempts"),
        ({"max_connections": 0}, "max_connections"),
        ({"endpoint_type": "VIPSERVER"}, "not supported"),
        ({"endpoint_type": "fast"}, "unknown endpoint type"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, "line break"),
        ({"headers": {"Bad Name": "1"}}, "invalid header name"),
        ({"token": 123}, "token"),
        ({"endpoint_type": "direct", "endpoint": None}, "discovery endpoint"),
        ({"headers": {"X-A": "Jos\u00e9"}}, "header 'X-A' has the character U"),
        ({"headers": {"X-A": "a\x01b"}}, "header 'X-A' has the character U"),
        ({"headers": {"X-\u00fc": "a"}}, "invalid header name"),
        ({"headers": {"X(A)": "a"}}, "invalid header name"),
        ({"content_type": "application/\u00fc"}, "content type"),
        ({"content_type": 5}, "content type must be a str"),
        ({"headers": {"Content-Type": "text/\u00fc"}}, "'Content-Type'"),
        ({"custom_url": "http://127.0.0.1:1/x", "token": "t\u00fc"},
         "non-ASCII characters, but with a custom URL"),
        ({"endpoint": "m\u00fcnchen.example:80"}, "xn--"),
        ({"custom_url": "http://127.0.0.1:1/m\u00fc"}, "percent-encode"),
        ({"timeout": 1e300}, r"timeout must be .* in \(0, 86400\]"),
        ({"timeout": 86400.5}, "up to 24 hours"),
        ({"timeout": 10**400}, "an int of 1329 bits"),
        ({"timeout": float("nan")}, "timeout"),
        ({"connect_timeout": 1e300}, "connect_timeout must be"),
        ({"eject_for": 10**400}, "eject_for must be"),
        ({"eject_for_max": float("inf")}, "eject_for_max must be"),
        ({"max_response_size": 0}, "max_response_size must be"),
        ({"max_response_size": 1.5}, "max_response_size must be"),
    ], ids=["negative-timeout", "zero-timeout", "inf-timeout",
            "zero-connect-timeout", "zero-retry", "zero-connections",
            "vipserver", "unknown-type", "header-injection", "header-name",
            "token-type", "direct-without-endpoint", "header-value-unicode",
            "header-value-control", "header-name-unicode",
            "header-name-separator", "content-type-unicode",
            "content-type-type", "content-type-header-unicode",
            "custom-url-token-unicode", "endpoint-unicode",
            "custom-url-unicode", "huge-timeout", "day-plus-timeout",
            "huge-int-timeout", "nan-timeout", "huge-connect-timeout",
            "huge-int-eject-for", "inf-eject-for-max", "zero-response-size",
            "float-response-size"])
    def test_invalid_setting_rejected(self, kwargs: dict, match: str) -> None:
        options: dict[str, Any] = {"endpoint": "127.0.0.1:1"}
        options.update(kwargs)
        with pytest.raises(ConfigurationError, match=match):
            Client("mnist", **options)

    @pytest.mark.parametrize("name", [
        "", "  ", "/abs", "a b", "a?b", "m\u00fcnist", "\u043c\u043e\u0434",
        "a//b", "a/", "a/../b", "./a", "a%2f", "a:b",
    ], ids=["empty", "blank", "leading-slash", "space", "query", "umlaut",
            "cyrillic", "empty-part", "trailing-slash", "dot-dot", "dot",
            "percent", "colon"])
    def test_invalid_service_name_rejected(self, name: str) -> None:
        with pytest.raises(ConfigurationError, match="service name"):
            Client(name, endpoint="127.0.0.1:1")
        with pytest.raises(ConfigurationError, match="service name"):
            PredictClient("127.0.0.1:1", name).init()

    def test_service_name_error_names_the_character(self) -> None:
        with pytest.raises(ConfigurationError, match=r"'\u00fc' \(U\+00FC\)"):
            Client("m\u00fcnist", endpoint="127.0.0.1:1")

    @pytest.mark.parametrize("name", ["mnist", "bert/v2", "my_svc-1.0", "A9"])
    def test_valid_service_names_accepted(self, name: str) -> None:
        client = Client(name, endpoint="127.0.0.1:1", endpoint_type="gateway")
        assert client.endpoints == [f"http://127.0.0.1:1/api/predict/{name}"]
        client.close()

    def test_header_value_not_echoed(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            Client("mnist", endpoint="127.0.0.1:1",
                   headers={"X-Key": "s3cr\u00e9t"})
        assert "s3cr" not in str(info.value)

    def test_predict_client_content_type_checked(self) -> None:
        client = PredictClient("127.0.0.1:1", "mnist")
        with pytest.raises(ConfigurationError, match="content type"):
            client.set_content_type("application/\u00fc")
        with pytest.raises(ConfigurationError, match="invalid header name"):
            client.add_extra_headers({"X-\u00fc": "a"})

    def test_predict_client_setters_validate(self) -> None:
        client = PredictClient("127.0.0.1:1", "mnist")
        with pytest.raises(ConfigurationError, match="VIPSERVER"):
            client.set_endpoint_type(easfast.ENDPOINT_TYPE_VIPSERVER)
        with pytest.raises(ConfigurationError, match="retry count"):
            client.set_retry_count(0)
        with pytest.raises(ConfigurationError, match="milliseconds"):
            client.set_timeout(-5)
        with pytest.raises(ConfigurationError, match="max connection count"):
            client.set_max_connection_count(0)
        with pytest.raises(ConfigurationError, match="headers"):
            client.add_extra_headers(["X-A: 1"])  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="service name"):
            PredictClient("127.0.0.1:1", "").init()

    @pytest.mark.parametrize("kwargs, match", [
        ({"endpoint": 5}, "endpoint must be a str"),
        ({"custom_url": 5}, "custom_url must be a str"),
    ], ids=["endpoint-int", "custom-url-int"])
    def test_non_str_address_rejected(self, kwargs: dict, match: str) -> None:
        with pytest.raises(ConfigurationError, match=match):
            Client("mnist", **kwargs)

    @pytest.mark.parametrize("kwargs, match", [
        ({"discovery_interval": float("inf")},
         r"discovery_interval must be a number of seconds in 0\.05\.\.3600, got inf"),
        ({"discovery_interval": 0.01}, "discovery_interval must be"),
        ({"discovery_poll_timeout": 601}, r"discovery_poll_timeout .* 0\.001\.\.600"),
        ({"discovery_init_timeout": 0}, r"discovery_init_timeout .* 0\.001\.\.600"),
        ({"discovery_init_timeout": "5"}, "discovery_init_timeout must be"),
        ({"discovery_interval": 10**400}, "an int of 1329 bits"),
        ({"discovery_url_form": "v2"}, "discovery_url_form must be 'auto'"),
    ], ids=["inf-interval", "short-interval", "long-poll", "zero-init",
            "str-init", "huge-int-interval", "unknown-form"])
    def test_discovery_settings_named_as_arguments(
        self, kwargs: dict, match: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=match):
            Client("mnist", endpoint="127.0.0.1:1", **kwargs)

    @pytest.mark.parametrize("milliseconds", [1e300, 86_400_001, 10**400],
                             ids=["huge", "day-plus", "huge-int"])
    def test_set_timeout_bounded_to_a_day(self, milliseconds: float) -> None:
        client = PredictClient("127.0.0.1:1", "mnist")
        with pytest.raises(ConfigurationError, match="1..86400000"):
            client.set_timeout(milliseconds)

    def test_longest_timeouts_accepted(self) -> None:
        client = Client("mnist", endpoint="127.0.0.1:1",
                        endpoint_type="gateway", timeout=86400)
        client.close()
        predict_client = PredictClient("127.0.0.1:1", "mnist")
        predict_client.set_timeout(86_400_000)
        predict_client.init()
        predict_client.destroy()

    def test_set_endpoint_checks_type(self) -> None:
        client = PredictClient("", "mnist")
        with pytest.raises(ConfigurationError, match="endpoint must be a str"):
            client.set_endpoint(5)  # type: ignore[arg-type]

    def test_set_log_level_checks_name(self) -> None:
        client = PredictClient()
        with pytest.raises(ConfigurationError, match="'verbose'"):
            client.set_log_level("verbose")
        with pytest.raises(ConfigurationError, match="log level"):
            client.set_log_level(None)  # type: ignore[arg-type]
        logger = logging.getLogger("easfast")
        level = logger.level
        try:
            client.set_log_level("debug")
            assert logger.level == logging.DEBUG
            client.set_log_level(logging.WARNING)
            assert logger.level == logging.WARNING
        finally:
            logger.setLevel(level)

    @pytest.mark.parametrize("name, value, match", [
        ("timeout", "x", "milliseconds"),
        ("timeout", 0, "milliseconds"),
        ("max_connection_count", 0, "max connection count"),
        ("retry_count", "3", "retry count"),
        ("endpoint_name", 5, "endpoint must be a str"),
        ("custom_url", 5, "custom_url must be a str"),
        ("content_type", "text/\u00fc", "content type"),
        ("headers", {"X-\u00fc": "a"}, "invalid header name"),
        ("endpoint_type", "fast", "unknown endpoint type"),
    ])
    def test_attributes_set_directly_checked_at_init(
        self, name: str, value: object, match: str
    ) -> None:
        client = PredictClient("127.0.0.1:1", "mnist")
        setattr(client, name, value)
        with pytest.raises(ConfigurationError, match=match):
            client.init()

    def test_predict_before_init_raises(self) -> None:
        client = PredictClient("127.0.0.1:1", "mnist")
        with pytest.raises(ClientClosedError, match="init"):
            client.predict(StringRequest(b"x"))

    def test_default_endpoint_type_is_gateway(self) -> None:
        client = PredictClient("127.0.0.1:1", "mnist")
        assert client.endpoint_type == ENDPOINT_TYPE_DEFAULT
        client.init()  # a gateway needs no network at init
        client.destroy()


class TestArgumentErrors:
    def test_outputs_str_rejected(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=1, processor="tf")
        client = make_client(eas)
        with pytest.raises(EncodeError, match="list of output names.*'scores'"):
            client.predict({"images": digits[0][:1]},
                           outputs="scores")  # type: ignore[arg-type]
        assert eas.instances[0].request_count == 0

    @pytest.mark.parametrize("inputs", [None, {"images": np.zeros(1)}, 5],
                             ids=["none", "dict", "int"])
    def test_predict_many_needs_a_list(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        inputs: Any,
    ) -> None:
        eas = local_eas(instances=1, processor="tf")
        client = make_client(eas)
        with pytest.raises(EncodeError, match="list with one item per request"):
            client.predict_many(inputs)
        with pytest.raises(EncodeError, match="list with one item per request"):
            client.predict_raw_many(inputs)

    def test_predict_raw_many_rejects_one_body(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas)
        with pytest.raises(EncodeError, match="got bytes"):
            client.predict_raw_many(b"abc")

    def test_predict_client_needs_a_request(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_predict_client(eas)
        with pytest.raises(EncodeError, match="request object.*got dict"):
            client.predict({"images": 1})  # type: ignore[arg-type]
        assert eas.instances[0].request_count == 0


class TestCompatRequests:
    def test_tf_request_through_predict_client(
        self, local_eas: EASFactory,
        make_predict_client: Callable[..., PredictClient],
        digits: tuple[np.ndarray, np.ndarray], digit_model: DigitModel,
    ) -> None:
        eas = local_eas(instances=3, weights=[5, 1, 1], processor="tf")
        client = make_predict_client(eas)
        images = digits[0][:2]
        request = TFRequest("predict_images")
        request.add_feed("images", [2, 784], TFRequest.DT_FLOAT, images)
        response = client.predict(request)
        scores, classes = digit_model.predict(images)
        np.testing.assert_array_equal(response.get_values("classes"), classes)
        assert response.get_tensor_shape("scores") == [2, 10]
        np.testing.assert_allclose(response["scores"], scores, rtol=1e-5)


class TestConvert:
    def test_float16_rejected_without_convert(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        eas = local_eas(instances=1)
        client = make_client(eas)
        images = digits[0][:2].astype(np.float16)
        with pytest.raises(easfast.EncodeError, match="float16.*convert=True"):
            client.predict({"images": images})
        assert _total_requests(eas) == 0

    def test_float16_sent_as_float32_with_convert(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        digits: tuple[np.ndarray, np.ndarray], digit_model: DigitModel,
    ) -> None:
        eas = local_eas(instances=1)
        client = make_client(eas)
        images = digits[0][:3].astype(np.float16)
        expected, classes = digit_model.predict(images.astype(np.float32))
        out = client.predict({"images": images}, convert=True)
        np.testing.assert_allclose(out["scores"], expected, rtol=1e-5, atol=1e-6)
        assert out["classes"].tolist() == classes.tolist()
        many = client.predict_many([{"images": images}], convert=True)
        assert many[0]["classes"].tolist() == classes.tolist()
        future = client.submit({"images": images}, convert=True)
        assert future.result(timeout=10)["classes"].tolist() == classes.tolist()


class TestCustomURL:
    def test_predict_client_needs_no_service_name(
        self, local_eas: EASFactory
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = PredictClient(custom_url=eas.predict_url)
        client.init()
        try:
            response = client.predict(StringRequest(b"abc"))
        finally:
            client.destroy()
        assert response.response_data == b"cba"

    def test_client_needs_no_service_name(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        with Client(custom_url=eas.predict_url) as client:
            assert client.predict_raw(b"xyz") == b"zyx"

    def test_client_without_url_or_name_raises(self) -> None:
        with pytest.raises(ConfigurationError, match="service name must be"):
            Client(endpoint="127.0.0.1:1")


class TestEagerChecks:
    @pytest.mark.parametrize(
        "kwargs, match",
        [({"endpoint": "é.example"}, "is not ASCII"),
         ({"service_name": "mn ist"}, "character ' '"),
         ({"custom_url": "http://h/é"}, "is not ASCII")],
        ids=["endpoint", "service-name", "custom-url"],
    )
    def test_predict_client_constructor_checks(
        self, kwargs: dict[str, str], match: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=match):
            PredictClient(**kwargs)

    def test_set_endpoint_checks_at_once(self) -> None:
        client = PredictClient()
        with pytest.raises(ConfigurationError, match="is not ASCII"):
            client.set_endpoint("é.example")
