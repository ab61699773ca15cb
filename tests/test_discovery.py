"""Tests of instance discovery: URL forms, validation, first sync, refresher."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import pytest
from canned_server import CannedServer

import easfast
from easfast.discovery import (
    MAX_BODY_SIZE,
    URL_FORM_EXPORTED,
    URL_FORM_SERVICEDISCOVERY,
    Discovery,
    discovery_urls,
    parse_instance_list,
)
from easfast.exceptions import ConfigurationError, DiscoveryError
from easfast.testing import Fault, LocalEAS

URL = "http://127.0.0.1:1/api/v1/servicediscovery/upstreams/s"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _document(*items: object) -> bytes:
    return json.dumps({"correlative": [], "endpoints": {"items": list(items)}}).encode()


def _item(ip: object = "10.0.0.1", port: object = 8080, weight: object = 100) -> dict:
    return {"app": "s", "ip": ip, "port": port, "weight": weight}


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    # Poll with a bounded wait; the caller asserts on the result.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def make_discovery() -> Iterator[Callable[..., Discovery]]:
    """Return a factory of Discovery objects that are stopped at teardown."""
    made: list[Discovery] = []

    def make(eas: LocalEAS, **kwargs: object) -> Discovery:
        options: dict = {"init_timeout": 2.0, "poll_timeout": 0.5,
                         "refresh_interval": 0.05}
        options.update(kwargs)
        discovery = Discovery(eas.endpoint, eas.service_name, **options)
        made.append(discovery)
        return discovery

    yield make
    for discovery in made:
        discovery.stop()


class TestDiscoveryURLs:
    def test_both_forms_without_scheme(self) -> None:
        urls = discovery_urls("10.0.0.1:80", "mnist", environ={})
        assert urls[URL_FORM_SERVICEDISCOVERY] == (
            "http://10.0.0.1:80/api/v1/servicediscovery/upstreams/mnist")
        assert urls[URL_FORM_EXPORTED] == (
            "http://10.0.0.1:80/exported/apis/eas.alibaba-inc.k8s.io/v1/"
            "upstreams/mnist")

    @pytest.mark.parametrize("endpoint, base", [
        ("http://h:80", "http://h:80"),
        ("HTTP://h:80/", "http://h:80"),
        ("https://h", "https://h"),
        (" h:1 ", "http://h:1"),
    ], ids=["http", "upper-and-slash", "https", "spaces"])
    def test_endpoint_scheme_forms(self, endpoint: str, base: str) -> None:
        urls = discovery_urls(endpoint, "s", environ={})
        assert urls[URL_FORM_SERVICEDISCOVERY].startswith(base + "/api/")

    def test_service_is_name_before_first_slash(self) -> None:
        urls = discovery_urls("h", "bert/v2", environ={})
        assert urls[URL_FORM_SERVICEDISCOVERY].endswith("/upstreams/bert")
        assert urls[URL_FORM_EXPORTED].endswith("/upstreams/bert")

    def test_internal_query_needs_namespace_and_pod_name(self) -> None:
        both = {"NAMESPACE": "ns", "POD_NAME": "pod-1"}
        urls = discovery_urls("h", "s", environ=both)
        assert urls[URL_FORM_SERVICEDISCOVERY].endswith("/upstreams/s?internal=true")
        assert "?" not in urls[URL_FORM_EXPORTED]
        only_namespace = discovery_urls("h", "s", environ={"NAMESPACE": "ns"})
        assert "?" not in only_namespace[URL_FORM_SERVICEDISCOVERY]

    @pytest.mark.parametrize("endpoint", ["", "http://", "h/path", "h x"],
                             ids=["empty", "scheme-only", "path", "space"])
    def test_invalid_endpoint_rejected(self, endpoint: str) -> None:
        with pytest.raises(ConfigurationError, match="discovery endpoint"):
            discovery_urls(endpoint, "s", environ={})


class TestParseInstanceList:
    def test_valid_list(self) -> None:
        snapshot = parse_instance_list(
            _document(_item(), _item("10.0.0.2", 9000, 0)), URL)
        assert [(ep.address, ep.weight) for ep in snapshot] == [
            ("10.0.0.1:8080", 100), ("10.0.0.2:9000", 0)]

    @pytest.mark.parametrize("body, reason", [
        (b'{"endpoints": {"items": [', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "expected"),
        (b'{"endpoints": {}}', "expected"),
        (b'{"endpoints": {"items": {}}}', "expected"),
        (_document(), "empty"),
        (_document("10.0.0.1:80"), "not an object"),
        (_document(_item(ip="")), "invalid ip"),
        (_document(_item(ip=None)), "invalid ip"),
        (_document(_item(ip="10.0.0.1/x")), "invalid ip"),
        (_document(_item(port=0)), "invalid port"),
        (_document(_item(port=65536)), "invalid port"),
        (_document(_item(port="80")), "invalid port"),
        (_document(_item(port=True)), "invalid port"),
        (_document(_item(weight=-1)), "invalid weight"),
        (_document(_item(weight=False)), "invalid weight"),
        (_document(_item(weight=1.5)), "invalid weight"),
        (_document({"ip": "10.0.0.1", "port": 80}), "invalid weight"),
        (_document(_item(weight=0)), "weight 0"),
        (_document(_item(weight=2**40)), "outside"),
    ], ids=["truncated", "not-utf8", "list", "no-items", "items-object",
            "empty", "item-str", "ip-empty", "ip-none", "ip-slash", "port-0",
            "port-65536", "port-str", "port-bool", "weight-negative",
            "weight-bool", "weight-float", "weight-missing", "all-zero",
            "weight-huge"])
    def test_invalid_list_raises_naming_url(self, body: bytes, reason: str) -> None:
        with pytest.raises(DiscoveryError, match=reason) as info:
            parse_instance_list(body, URL)
        assert info.value.url == URL
        assert URL in str(info.value)

    def test_one_bad_item_rejects_whole_list(self) -> None:
        body = _document(_item(), _item("10.0.0.2", port=-5))
        with pytest.raises(DiscoveryError, match="item 1"):
            parse_instance_list(body, URL)

    @pytest.mark.parametrize("ip", [
        "h\u00fcst", "127.0.0.1\x00", "::zz", " 10.0.0.1", "10.0.0.1\n",
        "10.0.0.1 ", "10.0.0.1:80", "[10.0.0.1]", "fe80::1%eth0", "127.1",
        "-host", "host-", "a..b", "a" * 64, "a." * 127 + "b",
        "\uff11.2.3.4", "[::1", "user@host",
    ], ids=["non-ascii", "nul", "bad-ipv6", "leading-space", "newline",
            "trailing-space", "with-port", "bracketed-ipv4", "zone-id",
            "short-ipv4", "hyphen-start", "hyphen-end", "empty-label",
            "label-64", "name-255", "fullwidth-digit", "open-bracket", "at"])
    def test_invalid_ip_rejects_whole_list(self, ip: str) -> None:
        body = _document(_item(), _item(ip=ip))
        with pytest.raises(DiscoveryError, match="item 1 has an invalid ip"):
            parse_instance_list(body, URL)

    @pytest.mark.parametrize("ip, host, address", [
        ("10.0.0.1", "10.0.0.1", "10.0.0.1:8080"),
        ("::1", "::1", "[::1]:8080"),
        ("[fd00::1]", "fd00::1", "[fd00::1]:8080"),
        ("node-1.svc.cluster.local", "node-1.svc.cluster.local",
         "node-1.svc.cluster.local:8080"),
        ("localhost.", "localhost.", "localhost.:8080"),
    ], ids=["ipv4", "ipv6", "bracketed-ipv6", "host-name", "final-dot"])
    def test_valid_ip_forms(self, ip: str, host: str, address: str) -> None:
        (endpoint,) = parse_instance_list(_document(_item(ip=ip)), URL)
        assert endpoint.host == host
        assert endpoint.address == address

    def test_repeated_address_weight_sum_over_max(self) -> None:
        # Each weight alone is valid; the snapshot adds them.
        body = _document(_item(weight=2**31), _item(weight=2**31))
        with pytest.raises(DiscoveryError, match="listed more than once") as info:
            parse_instance_list(body, URL)
        assert "10.0.0.1:8080" in str(info.value)
        assert info.value.url == URL

    def test_deeply_nested_json(self) -> None:
        body = b'{"endpoints": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        with pytest.raises(DiscoveryError, match="nested too deeply") as info:
            parse_instance_list(body, URL)
        assert info.value.url == URL

    def test_body_over_size_limit(self) -> None:
        body = _document(_item()) + b" " * MAX_BODY_SIZE
        with pytest.raises(DiscoveryError, match="over the limit"):
            parse_instance_list(body, URL)

    def test_nested_item_message_is_bounded(self) -> None:
        body = _document([[[[[[[[[["x" * 10_000]]]]]]]]]])
        with pytest.raises(DiscoveryError, match="not an object") as info:
            parse_instance_list(body, URL)
        assert len(str(info.value)) < 500


INF = float("inf")
NAN = float("nan")


class TestConfiguration:
    @pytest.mark.parametrize("kwargs, match", [
        ({"url_form": "other"}, "URL form"),
        ({"init_timeout": 0}, "init_timeout"),
        ({"poll_timeout": -1.0}, "poll_timeout"),
        ({"refresh_interval": NAN}, "refresh_interval"),
        ({"refresh_jitter": 1.0}, "refresh_jitter"),
    ], ids=["form", "init-zero", "poll-negative", "interval-nan", "jitter-one"])
    def test_invalid_options_rejected(self, kwargs: dict, match: str) -> None:
        with pytest.raises(ConfigurationError, match=match):
            Discovery("127.0.0.1:1", "s", **kwargs)

    @pytest.mark.parametrize("name, value, accepted", [
        ("refresh_interval", INF, "0.05..3600"),
        ("refresh_interval", 1e300, "0.05..3600"),
        ("refresh_interval", 3601, "0.05..3600"),
        ("refresh_interval", 0.01, "0.05..3600"),
        ("refresh_interval", -INF, "0.05..3600"),
        ("poll_timeout", INF, "0.001..600"),
        ("poll_timeout", 1e300, "0.001..600"),
        ("poll_timeout", NAN, "0.001..600"),
        ("poll_timeout", 0.0001, "0.001..600"),
        ("init_timeout", INF, "0.001..600"),
        ("init_timeout", 10**400, "0.001..600"),
        ("init_timeout", 10**5000, "0.001..600"),
        ("init_timeout", True, "0.001..600"),
        ("init_timeout", "5", "0.001..600"),
        ("refresh_jitter", INF, "0..0.5"),
        ("refresh_jitter", NAN, "0..0.5"),
        ("refresh_jitter", 0.9, "0..0.5"),
        ("refresh_jitter", -0.1, "0..0.5"),
    ], ids=["interval-inf", "interval-huge", "interval-over", "interval-tiny",
            "interval-minus-inf", "poll-inf", "poll-huge", "poll-nan",
            "poll-tiny", "init-inf", "init-huge-int", "init-5000-digits",
            "init-bool", "init-str",
            "jitter-inf", "jitter-nan", "jitter-over", "jitter-negative"])
    def test_out_of_range_names_range(
        self, name: str, value: object, accepted: str,
    ) -> None:
        with pytest.raises(ConfigurationError, match=name) as info:
            Discovery("127.0.0.1:1", "s", **{name: value})
        assert accepted in str(info.value)

    @pytest.mark.parametrize("kwargs", [
        {"refresh_interval": 0.05, "poll_timeout": 0.001, "init_timeout": 0.001},
        {"refresh_interval": 3600, "poll_timeout": 600, "init_timeout": 600},
        {"refresh_jitter": 0.0},
        {"refresh_jitter": 0.5},
    ], ids=["lowest", "highest", "no-jitter", "max-jitter"])
    def test_range_ends_accepted(self, kwargs: dict) -> None:
        discovery = Discovery("127.0.0.1:1", "s", **kwargs)
        discovery.stop()

    @pytest.mark.parametrize("option, value", [
        ("discovery_interval", INF),
        ("discovery_interval", 1e300),
        ("discovery_poll_timeout", INF),
        ("discovery_init_timeout", NAN),
    ], ids=["interval-inf", "interval-huge", "poll-inf", "init-nan"])
    def test_client_rejects_before_contacting_discovery(
        self, local_eas: Callable[..., LocalEAS], option: str, value: float,
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        with pytest.raises(ConfigurationError, match="must be a number"):
            easfast.Client("mnist", endpoint=eas.endpoint, **{option: value})
        assert eas.discovery.request_count == 0


class TestFirstSync:
    def test_start_returns_selector_with_instances(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=2, weights=[3, 1], processor="string")
        discovery = make_discovery(eas)
        selector = discovery.start()
        expected = {(inst.address, inst.weight) for inst in eas.instances}
        assert {(ep.address, ep.weight) for ep in selector.snapshot} == expected
        assert discovery.url.endswith("/api/v1/servicediscovery/upstreams/mnist")

    def test_forced_exported_form_is_used(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        discovery = make_discovery(eas, url_form=URL_FORM_EXPORTED)
        discovery.start()
        assert eas.discovery.last_target == (
            "/exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/mnist")

    def test_auto_falls_back_to_exported_form_on_404(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        discovery = make_discovery(eas)
        # Point the first form at an instance, which returns 404 there.
        discovery.urls[URL_FORM_SERVICEDISCOVERY] = (
            f"http://{eas.instances[0].address}/api/v1/servicediscovery/"
            "upstreams/mnist")
        selector = discovery.start()
        assert len(selector.snapshot) == 1
        assert discovery.url == discovery.urls[URL_FORM_EXPORTED]
        assert eas.instances[0].request_count == 0  # 404s are not predicts
        count = eas.discovery.request_count
        assert _wait_until(lambda: eas.discovery.request_count >= count + 2)
        assert eas.discovery.last_target == (
            "/exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/mnist")

    def test_both_forms_404_names_both_urls(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        # An instance returns 404 on every path but its predict path.
        discovery = Discovery(eas.instances[0].address, "mnist",
                              init_timeout=0.5, poll_timeout=0.3)
        try:
            with pytest.raises(DiscoveryError, match="404 at both") as info:
                discovery.start()
        finally:
            discovery.stop()
        assert "servicediscovery" in str(info.value)
        assert "exported" in str(info.value)

    @pytest.mark.parametrize("fault, reason", [
        (Fault.down(), "connect"),
        (Fault.empty(), "empty"),
        (Fault.malformed(), "not JSON"),
        (Fault.hang(seconds=5.0), "timed out"),
        (Fault.status(500), "HTTP 500"),
    ], ids=["down", "empty", "malformed", "hang", "500"])
    def test_fault_at_init_raises_discovery_error(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery], fault: Fault, reason: str,
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.discovery.set_fault(fault)
        discovery = make_discovery(eas, init_timeout=0.6, poll_timeout=0.25)
        with pytest.raises(DiscoveryError, match=reason) as info:
            discovery.start()
        error = info.value
        assert error.url == discovery.url
        assert discovery.url in str(error)
        assert "within 0.6 s" in str(error)
        assert isinstance(error.__cause__, DiscoveryError)
        assert not discovery.is_alive

    @pytest.mark.parametrize("items, reason", [
        ([("127.0.0.1", 0, 2**31), ("127.0.0.1", 0, 2**31)],
         "listed more than once"),
        ([("127.0.0.1", 0, 100), ("h\u00fcst", 0, 100)], "invalid ip"),
        ([("127.0.0.1", 0, 100), ("127.0.0.1\x00", 0, 100)], "invalid ip"),
        ([("127.0.0.1", 0, 100), ("::zz", 0, 100)], "invalid ip"),
    ], ids=["weight-sum", "non-ascii-ip", "nul-ip", "bad-ipv6"])
    def test_unusable_list_at_init_raises_discovery_error(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
        items: list[tuple[str, int, int]], reason: str,
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        port = eas.instances[0].port
        body = _document(*(_item(ip, port, weight) for ip, _, weight in items))
        eas.discovery.set_fault(Fault.malformed(body))
        discovery = make_discovery(eas, init_timeout=0.5, poll_timeout=0.25)
        with pytest.raises(DiscoveryError, match=reason) as info:
            discovery.start()
        assert discovery.url in str(info.value)
        assert not discovery.is_alive

    def test_deeply_nested_json_at_init(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        body = b'{"endpoints": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        eas.discovery.set_fault(Fault.malformed(body))
        discovery = make_discovery(eas, init_timeout=0.5, poll_timeout=0.25)
        with pytest.raises(DiscoveryError, match="nested too deeply"):
            discovery.start()

    @pytest.mark.parametrize("first_service, delay", [
        ("mnist", 30.0),
        ("nosuch", 0.8),
    ], ids=["hang", "404-then-slow"])
    def test_init_stays_within_init_timeout(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
        first_service: str, delay: float,
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        # Every discovery response comes `delay` seconds late. Asking the
        # first form for an unknown service makes it return 404, so the
        # client falls back to the second form with part of its time used.
        eas.discovery.set_fault(Fault.hang(seconds=delay))
        discovery = make_discovery(eas, init_timeout=1.0, poll_timeout=10.0)
        discovery.urls[URL_FORM_SERVICEDISCOVERY] = (
            f"http://{eas.discovery.address}/api/v1/servicediscovery/"
            f"upstreams/{first_service}")
        started = time.monotonic()
        with pytest.raises(DiscoveryError, match="within 1 s"):
            discovery.start()
        # A generous bound, to show that the call is bounded, not fast.
        assert time.monotonic() - started < 1.0 + 1.0

    def test_init_retries_until_discovery_recovers(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.discovery.set_fault(Fault.status(503, times=2))
        discovery = make_discovery(eas, init_timeout=5.0)
        selector = discovery.start()
        assert len(selector.snapshot) == 1
        assert eas.discovery.request_count == 3


class TestRefresher:
    @pytest.mark.parametrize("fault", [
        Fault.down(), Fault.empty(), Fault.malformed(),
        Fault.hang(seconds=5.0), Fault.status(500),
    ], ids=["down", "empty", "malformed", "hang", "500"])
    def test_fault_after_first_sync_keeps_last_list(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
        caplog: pytest.LogCaptureFixture, fault: Fault,
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        discovery = make_discovery(eas, poll_timeout=0.2)
        selector = discovery.start()
        first = selector.snapshot
        caplog.set_level(logging.DEBUG, logger="easfast.discovery")

        eas.discovery.set_fault(fault)
        assert _wait_until(lambda: discovery._failures >= 3)
        assert selector.snapshot == first
        assert len(selector.snapshot) == 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "serving the last 2 instances" in warnings[0].getMessage()

        eas.discovery.set_fault(None)
        assert _wait_until(lambda: discovery._failures == 0)
        infos = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.INFO]
        assert any("recovered" in message for message in infos)

    def test_invalid_ip_after_first_sync_keeps_last_list(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        discovery = make_discovery(eas)
        selector = discovery.start()
        first = selector.snapshot
        body = _document(_item("127.0.0.1", eas.instances[0].port),
                         _item("h\u00fcst", eas.instances[0].port))
        eas.discovery.set_fault(Fault.malformed(body))
        assert _wait_until(lambda: discovery._failures >= 2)
        assert selector.snapshot == first
        assert discovery.is_alive

    def test_added_instance_is_picked_up(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="easfast.discovery")
        eas = local_eas(instances=1, processor="string")
        selector = make_discovery(eas).start()
        added = eas.add_instance(weight=7)
        assert _wait_until(lambda: len(selector.snapshot) == 2)
        weights = {ep.address: ep.weight for ep in selector.snapshot}
        assert weights[added.address] == 7
        assert any("added " + added.address in r.getMessage()
                   for r in caplog.records)

    def test_removed_instance_is_dropped(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        selector = make_discovery(eas).start()
        gone = eas.instances[1]
        eas.remove_instance(gone)
        assert _wait_until(lambda: len(selector.snapshot) == 1)
        assert gone.address not in {ep.address for ep in selector.snapshot}

    def test_weight_change_is_picked_up(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        selector = make_discovery(eas).start()
        target = eas.instances[0]
        eas.set_weight(target, 3)

        def weight_of_target() -> int:
            return {ep.address: ep.weight
                    for ep in selector.snapshot}[target.address]

        assert _wait_until(lambda: weight_of_target() == 3)

    def test_stop_ends_thread(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        discovery = make_discovery(eas)
        discovery.start()
        assert discovery.is_alive
        discovery.stop()
        assert not discovery.is_alive
        count = eas.discovery.request_count
        time.sleep(0.3)  # several refresh intervals
        assert eas.discovery.request_count == count

    def test_stop_aborts_hanging_poll(
        self, local_eas: Callable[..., LocalEAS],
        make_discovery: Callable[..., Discovery],
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        discovery = make_discovery(eas, poll_timeout=30.0)
        discovery.start()
        count = eas.discovery.request_count
        eas.discovery.set_fault(Fault.hang(seconds=30.0))
        # Wait until the refresher sits inside a poll that would last 30 s.
        assert _wait_until(lambda: eas.discovery.request_count > count)
        discovery.stop(timeout=10.0)
        assert not discovery.is_alive


def test_process_without_destroy_exits(local_eas: Callable[..., LocalEAS]) -> None:
    eas = local_eas(instances=1, processor="string")
    script = textwrap.dedent(f"""
        import easfast
        client = easfast.PredictClient({eas.endpoint!r}, "mnist")
        client.set_endpoint_type(easfast.ENDPOINT_TYPE_DIRECT)
        client.init()
        print(client.predict(easfast.StringRequest(b"abc")).response_data)
    """)
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout.strip() == b"b'cba'"


class TestBodyLimit:
    @pytest.mark.parametrize("framing", ["length", "close"])
    def test_body_over_max_body_size_aborted(self, framing: str) -> None:
        # The transfer stops at the limit: with Content-Length before any
        # body byte, otherwise once MAX_BODY_SIZE bytes have arrived.
        if framing == "length":
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (
                MAX_BODY_SIZE + 1)
            reply = head + b"{"
        else:
            reply = (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                     + b" " * (MAX_BODY_SIZE + 1))
        with CannedServer(reply) as server, \
                pytest.raises(DiscoveryError, match="MAX_BODY_SIZE") as info:
            easfast.Client("svc", endpoint=server.address,
                           discovery_init_timeout=0.3,
                           discovery_url_form="servicediscovery")
        assert f"larger than {MAX_BODY_SIZE} bytes" in str(info.value)
