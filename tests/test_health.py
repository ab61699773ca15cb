"""Tests of passive health: ejecting instances that stop responding."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

import pytest

from easfast import Client, PredictClient, StringRequest
from easfast._core import Endpoint, SmoothWeightedRoundRobin
from easfast._endpoints import DirectRoute
from easfast._health import HealthTracker, is_unreachable
from easfast.exceptions import (
    ConfigurationError,
    ConnectError,
    HTTPStatusError,
    PredictException,
    RequestTimeout,
    RetriesExhausted,
    TransportError,
)
from easfast.testing import Fault, LocalEAS, string_response

EASFactory = Callable[..., LocalEAS]

A, B, C = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _tracker(clock: FakeClock, **kwargs: Any) -> HealthTracker:
    options: dict[str, Any] = {"eject_after": 2, "eject_for": 1.0,
                               "eject_for_max": 30.0, "probe_timeout": 5.0}
    options.update(kwargs)
    tracker = HealthTracker("svc", clock=clock, **options)
    tracker.retain([A, B, C])
    return tracker


def _route(clock: FakeClock, weights: tuple[int, ...] = (1, 1, 1),
           **kwargs: Any) -> DirectRoute:
    endpoints = [Endpoint(f"10.0.0.{i + 1}", 80, weight)
                 for i, weight in enumerate(weights)]
    selector = SmoothWeightedRoundRobin(endpoints)
    return DirectRoute(selector, "/api/predict/svc", _tracker(clock, **kwargs))


def _picks(route: DirectRoute, count: int,
           tried: Collection[str] | None = None) -> list[str]:
    return [route.pick(tried)[0] for _ in range(count)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# ----------------------------------------------------------- the tracker --


class TestHealthTracker:
    def test_ejects_after_consecutive_failures(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock, eject_after=3)
        tracker.record_failure(A)
        tracker.record_failure(A)
        assert tracker.excluded() == frozenset()
        tracker.record_failure(A)
        assert tracker.excluded() == {A}
        assert tracker.ejected() == [A]

    def test_response_resets_failure_count(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        for _ in range(5):
            tracker.record_failure(A)
            tracker.record_success(A)
        assert tracker.excluded() == frozenset()
        assert tracker.ejected() == []

    def test_cooldown_ends_then_one_probe(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        tracker.record_failure(A)
        tracker.record_failure(A)
        clock.advance(0.999)
        assert tracker.excluded() == {A}
        clock.advance(0.002)
        excluded = tracker.excluded()
        assert excluded == frozenset()
        assert tracker.claim(A, excluded) is True
        assert tracker.claim(A, excluded) is False  # a second probe waits
        assert tracker.excluded() == {A}

    def test_probe_success_brings_instance_back(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        tracker.record_failure(A)
        tracker.record_failure(A)
        clock.advance(1.0)
        assert tracker.claim(A, tracker.excluded())
        tracker.record_success(A)
        assert tracker.excluded() == frozenset()
        assert tracker.ejected() == []
        # The failure count starts again from zero.
        tracker.record_failure(A)
        assert tracker.ejected() == []

    def test_cooldown_doubles_up_to_the_cap(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock, eject_for=1.0, eject_for_max=5.0)
        tracker.record_failure(A)
        tracker.record_failure(A)
        cooldowns = []
        for _ in range(5):
            started = clock.now
            while tracker.excluded():
                clock.advance(0.25)
            cooldowns.append(clock.now - started)
            assert tracker.claim(A, tracker.excluded())
            tracker.record_failure(A)  # the probe fails
        assert cooldowns == [1.0, 2.0, 4.0, 5.0, 5.0]

    def test_success_resets_the_cooldown(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        tracker.record_failure(A)
        tracker.record_failure(A)
        clock.advance(1.0)
        tracker.claim(A, tracker.excluded())
        tracker.record_failure(A)  # ejected again, for 2 s
        clock.advance(2.0)
        tracker.claim(A, tracker.excluded())
        tracker.record_success(A)
        tracker.record_failure(A)
        tracker.record_failure(A)
        clock.advance(0.999)
        assert tracker.excluded() == {A}
        clock.advance(0.002)
        assert tracker.excluded() == frozenset()

    def test_failure_during_cooldown_does_not_extend_it(self) -> None:
        # Attempts that started before the ejection end during the cooldown.
        clock = FakeClock()
        tracker = _tracker(clock)
        tracker.record_failure(A)
        tracker.record_failure(A)
        clock.advance(0.5)
        tracker.record_failure(A)
        clock.advance(0.5)
        assert tracker.excluded() == frozenset()

    def test_lost_probe_freed_after_lease(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock, probe_timeout=5.0)
        tracker.record_failure(A)
        tracker.record_failure(A)
        clock.advance(1.0)
        assert tracker.claim(A, tracker.excluded())
        clock.advance(5.999)  # attempt timeout plus the 1 s cooldown
        assert tracker.excluded() == {A}
        clock.advance(0.002)
        assert tracker.excluded() == frozenset()
        assert tracker.claim(A, frozenset())

    def test_release_frees_the_probe(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        tracker.record_failure(A)
        tracker.record_failure(A)
        clock.advance(1.0)
        assert tracker.claim(A, tracker.excluded())
        tracker.release(A)
        assert tracker.excluded() == frozenset()
        assert tracker.claim(A, frozenset())

    def test_claim_inside_excluded_is_no_probe(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        tracker.record_failure(A)
        tracker.record_failure(A)
        excluded = tracker.excluded()
        assert tracker.claim(A, excluded) is True
        assert tracker.claim(A, excluded) is True

    def test_retain_drops_departed_instances(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        tracker.record_failure(A)
        tracker.record_failure(A)
        tracker.record_failure(B)
        tracker.retain([B, C])
        assert tracker.excluded() == frozenset()
        assert tracker.ejected() == []
        tracker.record_failure(A)  # a late outcome of the departed instance
        tracker.record_failure(A)
        assert tracker.ejected() == []
        tracker.record_failure(B)  # B keeps its first failure
        assert tracker.ejected() == [B]

    def test_all_healthy_follows_records(self) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        assert tracker.all_healthy is True
        tracker.record_failure(A)
        assert tracker.all_healthy is False
        tracker.record_success(A)
        assert tracker.all_healthy is True
        tracker.record_failure(B)
        tracker.record_failure(B)
        assert tracker.all_healthy is False
        tracker.retain([A, C])  # B leaves the list with its ejection
        assert tracker.all_healthy is True

    def test_transitions_logged_once_at_info(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        clock = FakeClock()
        tracker = _tracker(clock)
        caplog.set_level(logging.DEBUG, logger="easfast")
        for _ in range(2):
            tracker.record_failure(A)
        for _ in range(3):  # three failed probes
            clock.advance(30.0)
            tracker.claim(A, tracker.excluded())
            tracker.record_failure(A)
        clock.advance(30.0)
        tracker.claim(A, tracker.excluded())
        tracker.record_success(A)
        tracker.record_success(A)
        info = [r.getMessage() for r in caplog.records
                if r.levelno == logging.INFO]
        assert len(info) == 2
        assert f"instance {A} ejected for 1 s" in info[0]
        assert f"instance {A} responds again" in info[1]


class TestIsUnreachable:
    def test_connect_error_and_timeout_count(self) -> None:
        assert is_unreachable(ConnectError("refused", curl_code=7))
        assert is_unreachable(RequestTimeout("timed out", curl_code=28))

    def test_pool_exhaustion_does_not_count(self) -> None:
        error = RequestTimeout("no free connection", curl_code=28,
                               pool_exhausted=True)
        assert not is_unreachable(error)

    def test_status_and_other_errors_do_not_count(self) -> None:
        assert not is_unreachable(HTTPStatusError("HTTP 503", 503))
        assert not is_unreachable(TransportError("bad URL", curl_code=3))


# ------------------------------------------------------------- the route --


class TestDirectRoutePick:
    def test_ejected_instance_skipped(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        route.record_error(A, ConnectError("refused"))
        route.record_error(A, ConnectError("refused"))
        assert A not in _picks(route, 30)

    def test_status_errors_never_eject(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        for _ in range(10):
            route.record_error(A, HTTPStatusError("HTTP 503", 503))
            route.record_response(A)
        assert route.ejected() == []
        assert _picks(route, 30).count(A) == 10

    def test_probe_after_cooldown_goes_to_one_pick(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        route.record_error(A, ConnectError("refused"))
        route.record_error(A, ConnectError("refused"))
        clock.advance(1.0)
        assert _picks(route, 30).count(A) == 1

    def test_every_instance_ejected_still_picks(self) -> None:
        clock = FakeClock()
        route = _route(clock, weights=(1, 1))
        for address in (A, B):
            route.record_error(address, ConnectError("refused"))
            route.record_error(address, ConnectError("refused"))
        assert sorted(_picks(route, 4)) == [A, A, B, B]

    def test_all_ejected_prefers_untried(self) -> None:
        clock = FakeClock()
        route = _route(clock, weights=(1, 1))
        for address in (A, B):
            route.record_error(address, ConnectError("refused"))
            route.record_error(address, ConnectError("refused"))
        assert _picks(route, 4, tried={A}) == [B] * 4

    def test_untried_ejected_preferred_to_tried(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        route.record_error(A, ConnectError("refused"))
        route.record_error(A, ConnectError("refused"))
        assert _picks(route, 3, tried={B: None, C: None}) == [A, A, A]

    def test_untried_live_preferred_to_untried_ejected(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        route.record_error(A, ConnectError("refused"))
        route.record_error(A, ConnectError("refused"))
        assert _picks(route, 3, tried={B: None}) == [C, C, C]

    def test_all_tried_takes_least_recently_tried(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        route.record_error(A, HTTPStatusError("HTTP 503", 503))
        assert _picks(route, 2, tried={C: None, A: None, B: None}) == [C, C]
        assert _picks(route, 2, tried={B: None, C: None, A: None}) == [B, B]

    def test_all_tried_prefers_live_to_ejected(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        route.record_error(A, ConnectError("refused"))
        route.record_error(A, ConnectError("refused"))
        assert _picks(route, 2, tried={A: None, B: None, C: None}) == [B, B]

    def test_all_tried_and_ejected_takes_least_recently_tried(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        for address in (A, B, C):
            route.record_error(address, ConnectError("refused"))
            route.record_error(address, ConnectError("refused"))
        assert _picks(route, 2, tried={B: None, A: None, C: None}) == [B, B]

    def test_without_health_all_tried_takes_least_recently_tried(self) -> None:
        endpoints = [Endpoint(f"10.0.0.{i + 1}", 80) for i in range(3)]
        route = DirectRoute(SmoothWeightedRoundRobin(endpoints), "/p")
        assert _picks(route, 2, tried={A: None, B: None}) == [C, C]
        assert _picks(route, 2, tried={B: None, A: None, C: None}) == [B, B]

    def test_weight_zero_never_counts_as_live(self) -> None:
        clock = FakeClock()
        route = _route(clock, weights=(1, 0))
        route.record_error(A, ConnectError("refused"))
        route.record_error(A, ConnectError("refused"))
        assert _picks(route, 3) == [A, A, A]

    def test_list_change_drops_state(self) -> None:
        clock = FakeClock()
        route = _route(clock)
        route.record_error(A, ConnectError("refused"))
        route.record_error(A, ConnectError("refused"))
        route.selector.update([Endpoint("10.0.0.2", 80), Endpoint("10.0.0.3", 80)])
        route.pick()
        assert route.ejected() == []
        route.selector.update([Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80)])
        assert sorted(_picks(route, 4)) == [A, A, B, B]


# ------------------------------------------------------ with the simulator --


class TestEjection:
    def test_reset_instance_gets_two_requests(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, eject_for=60.0)
        failing = eas.instances[0]
        failing.set_fault(Fault.reset())
        for i in range(200):
            body = b"r%d" % i
            assert client.predict_raw(body) == string_response(body)
        assert failing.request_count == 2
        assert client.ejected_endpoints == [failing.address]

    def test_dead_address_fails_bounded_calls(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        # With one attempt per call, each attempt to the dead address is a
        # failed call, so the failures count the attempts it received.
        eas = local_eas(instances=2, processor="string")
        dead = f"127.0.0.1:{_closed_port()}"
        eas.advertise([("127.0.0.1", int(dead.split(":")[1]), 100)])
        client = make_client(eas, retry=1, eject_for=60.0)
        assert len(client.endpoints) == 3
        failures: list[Any] = []
        for i in range(200):
            try:
                client.predict_raw(b"d%d" % i)
            except RetriesExhausted as exc:
                failures.append(exc)
        assert len(failures) == 2
        assert all(exc.instances == [dead] for exc in failures)
        assert client.ejected_endpoints == [dead]

    def test_hanging_instance_ejected_after_timeouts(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas, timeout=0.2, eject_for=60.0)
        hanging = eas.instances[0]
        hanging.set_fault(Fault.hang(seconds=2.0))
        for _ in range(20):
            assert client.predict_raw(b"h") == b"h"
        assert hanging.request_count == 2

    def test_healed_instance_gets_traffic_again(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, eject_for=0.2)
        healing = eas.instances[0]
        healing.set_fault(Fault.reset())
        for _ in range(10):
            client.predict_raw(b"a")
        assert client.ejected_endpoints == [healing.address]
        healing.set_fault(None)

        def back() -> bool:
            client.predict_raw(b"b")
            return not client.ejected_endpoints

        assert _wait_until(back)
        count = healing.request_count
        for _ in range(30):
            client.predict_raw(b"c")
        assert healing.request_count - count >= 8  # about a third of 30

    def test_503_does_not_eject(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, eject_for=60.0)
        overloaded = eas.instances[0]
        overloaded.set_fault(Fault.status(503))
        for _ in range(60):
            assert client.predict_raw(b"o") == b"o"
        assert client.ejected_endpoints == []
        assert overloaded.request_count >= 15

    def test_503_retry_goes_to_ejected_untried(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, retry=3, eject_for=60.0)
        first, second, overloaded = eas.instances
        first.set_fault(Fault.dead())
        second.set_fault(Fault.dead())
        expected = sorted([first.address, second.address])
        for _ in range(20):
            client.predict_raw(b"e")
            if client.ejected_endpoints == expected:
                break
        assert client.ejected_endpoints == expected
        first.set_fault(None)
        second.set_fault(None)
        overloaded.set_fault(Fault.status(503))
        for i in range(5):
            body = b"p%d" % i
            assert client.predict_raw(body) == string_response(body)

    def test_only_instance_ejected_still_called(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=1, processor="string")
        client = make_client(eas, retry=1, eject_for=60.0)
        only = eas.instances[0]
        only.set_fault(Fault.reset(times=2))
        for _ in range(2):
            with pytest.raises(RetriesExhausted):
                client.predict_raw(b"x")
        assert client.ejected_endpoints == [only.address]
        assert client.predict_raw(b"xy") == b"yx"
        assert client.ejected_endpoints == []

    def test_removed_instance_state_dropped(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, eject_for=60.0)
        gone = eas.instances[0]
        gone.set_fault(Fault.reset())
        for _ in range(10):
            client.predict_raw(b"g")
        assert client.ejected_endpoints == [gone.address]
        eas.remove_instance(gone)
        assert _wait_until(lambda: len(client.endpoints) == 2)
        client.predict_raw(b"g")
        assert client.ejected_endpoints == []

    def test_disabled_with_none(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, eject_after=None)
        failing = eas.instances[0]
        failing.set_fault(Fault.reset())
        for _ in range(30):
            client.predict_raw(b"n")
        assert client.ejected_endpoints == []
        assert failing.request_count >= 8

    def test_many_in_flight_ejects(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, eject_for=60.0)
        failing = eas.instances[0]
        failing.set_fault(Fault.reset())
        bodies = [b"m%d" % i for i in range(150)]
        results = client.predict_raw_many(bodies, concurrency=4)
        assert results == [string_response(body) for body in bodies]
        # At most the attempts started before the first two failures.
        assert failing.request_count <= 2 + 4
        assert client.ejected_endpoints == [failing.address]

    def test_submit_ejects(
        self, local_eas: EASFactory, make_client: Callable[..., Client]
    ) -> None:
        eas = local_eas(instances=3, processor="string")
        client = make_client(eas, eject_for=60.0)
        failing = eas.instances[0]
        failing.set_fault(Fault.reset())
        for i in range(60):
            body = b"s%d" % i
            assert client.submit_raw(body).result(10) == string_response(body)
        assert failing.request_count == 2

    def test_ejection_logged_once(
        self, local_eas: EASFactory, make_client: Callable[..., Client],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="easfast._health")
        eas = local_eas(instances=2, processor="string")
        client = make_client(eas, eject_for=60.0)
        failing = eas.instances[0]
        failing.set_fault(Fault.reset())
        for _ in range(50):
            client.predict_raw(b"l")
        messages = [r.getMessage() for r in caplog.records
                    if r.name == "easfast._health"]
        assert len(messages) == 1
        assert failing.address in messages[0]
        assert "ejected for 60 s" in messages[0]

    def test_predict_client_ejects_by_default(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=3, processor="string")
        failing = eas.instances[0]
        failing.set_fault(Fault.reset())
        client = PredictClient(eas.endpoint, eas.service_name)
        client.set_endpoint_type("DIRECT")
        client.init()
        try:
            for _ in range(100):
                assert client.predict(StringRequest(b"pc")).response_data == b"cp"
        finally:
            client.destroy()
        # Two failures, then one probe per cooldown (1 s, 2 s, 4 s) that the
        # calls outlast. Without ejection the count would be 33.
        assert failing.request_count <= 6

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"eject_after": 0}, "eject_after must be an int >= 1"),
            ({"eject_after": 1.5}, "eject_after must be an int >= 1"),
            ({"eject_for": 0}, r"eject_for must be a number of seconds in \(0, "),
            ({"eject_for_max": -1.0}, r"eject_for_max must be a number of seconds in \(0, "),
            ({"eject_for": 5.0, "eject_for_max": 1.0},
             r"eject_for_max \(1 s\) must be at least eject_for \(5 s\)"),
        ],
        ids=["after-zero", "after-float", "for-zero", "max-negative",
             "max-below-for"],
    )
    def test_invalid_options_rejected(
        self, kwargs: dict[str, Any], match: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=match):
            Client("svc", endpoint="127.0.0.1:1", **kwargs)

    def test_gateway_has_no_ejection(self, local_eas: EASFactory) -> None:
        eas = local_eas(instances=1, processor="string")
        eas.gateway.set_fault(Fault.reset())
        with Client(eas.service_name, endpoint=eas.gateway_endpoint,
                    endpoint_type="gateway", retry=1) as client:
            for _ in range(3):
                with pytest.raises(PredictException):
                    client.predict_raw(b"x")
            assert client.ejected_endpoints == []
