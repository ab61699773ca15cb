"""Tests of the compiled endpoint, snapshot and smooth WRR selector."""

from __future__ import annotations

import collections
import pickle
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import easfast._core as core
from easfast.exceptions import NoEndpointsError, PredictException
from reference import ReferenceRoundRobin


def snapshot(*weights: int) -> core.EndpointSnapshot:
    return core.EndpointSnapshot(
        [core.Endpoint(chr(ord("A") + i), 8000, w) for i, w in enumerate(weights)]
    )


def picks(selector: core.SmoothWeightedRoundRobin, n: int, **kw: object) -> str:
    return "".join(selector.pick(**kw).host for _ in range(n))


def test_core_is_compiled_extension():
    assert core.__file__.endswith((".so", ".pyd"))


class TestEndpoint:
    def test_address_joins_host_and_port(self):
        assert core.Endpoint("10.0.0.1", 8080, 3).address == "10.0.0.1:8080"

    def test_ipv6_host_gets_brackets(self):
        assert core.Endpoint("::1", 8080).address == "[::1]:8080"

    def test_default_weight_is_100(self):
        assert core.Endpoint("h", 1).weight == 100

    @pytest.mark.parametrize(
        "args, match",
        [
            (("", 80, 1), "host must be a non-empty str"),
            ((None, 80, 1), "host must be a non-empty str"),
            (("h", 0, 1), "port 0 is outside 1..65535"),
            (("h", 65536, 1), "port 65536 is outside"),
            (("h", "80", 1), "port must be an int"),
            (("h", True, 1), "port must be an int"),
            (("h", 80, -1), "weight -1 for h:80 is outside"),
            (("h", 80, 1.5), "weight must be an int"),
            (("h", 80, 2**40), "is outside"),
        ],
        ids=["empty-host", "none-host", "port-0", "port-65536", "port-str",
             "port-bool", "negative-weight", "float-weight", "huge-weight"],
    )
    def test_invalid_fields_raise(self, args, match):
        with pytest.raises(ValueError, match=match):
            core.Endpoint(*args)

    def test_equal_endpoints_hash_equal(self):
        a, b = core.Endpoint("h", 1, 2), core.Endpoint("h", 1, 2)
        assert a == b
        assert hash(a) == hash(b)
        assert a != core.Endpoint("h", 1, 3)

    def test_pickles(self):
        ep = core.Endpoint("h", 1, 2)
        assert pickle.loads(pickle.dumps(ep)) == ep

    def test_is_immutable(self):
        with pytest.raises(AttributeError):
            core.Endpoint("h", 1).port = 2


class TestEndpointSnapshot:
    def test_empty_list_raises(self):
        with pytest.raises(NoEndpointsError, match="empty"):
            core.EndpointSnapshot([])

    def test_all_zero_weights_raise(self):
        with pytest.raises(NoEndpointsError, match="every endpoint has weight 0"):
            snapshot(0, 0)

    def test_no_endpoints_error_is_predict_exception(self):
        with pytest.raises(PredictException):
            snapshot()

    def test_duplicate_addresses_merge_weights(self):
        snap = core.EndpointSnapshot(
            [core.Endpoint("h", 1, 2), core.Endpoint("h", 1, 3)]
        )
        assert len(snap) == 1
        assert snap.endpoints[0].weight == 5
        assert snap.total_weight == 5

    def test_rejects_non_endpoint_items(self):
        with pytest.raises(TypeError, match="takes Endpoint objects"):
            core.EndpointSnapshot([("h", 1, 2)])

    def test_from_tuples(self):
        snap = core.EndpointSnapshot.from_tuples([("h", 1, 2), ("g", 2, 0)])
        assert [ep.address for ep in snap] == ["h:1", "g:2"]

    def test_equality_ignores_order(self):
        a = core.EndpointSnapshot.from_tuples([("h", 1, 2), ("g", 2, 1)])
        b = core.EndpointSnapshot.from_tuples([("g", 2, 1), ("h", 1, 2)])
        assert a == b


class TestSmoothWeightedRoundRobin:
    def test_weights_5_1_1_interleave(self):
        assert picks(core.SmoothWeightedRoundRobin(snapshot(5, 1, 1)), 7) == "AABACAA"

    def test_each_cycle_gives_exact_shares(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(3, 2, 7, 1))
        for _ in range(5):
            counts = collections.Counter(picks(selector, 13))
            assert counts == {"A": 3, "B": 2, "C": 7, "D": 1}

    def test_weight_zero_never_picked(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(0, 1, 0, 2))
        assert set(picks(selector, 30)) == {"B", "D"}

    def test_empty_list_raises_at_construction(self):
        with pytest.raises(NoEndpointsError):
            core.SmoothWeightedRoundRobin([])

    def test_all_zero_update_raises_and_keeps_old_list(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(1, 1))
        with pytest.raises(NoEndpointsError):
            selector.update(snapshot(0, 0))
        assert set(picks(selector, 4)) == {"A", "B"}

    def test_exclude_skips_tried_addresses(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(5, 1, 1))
        assert set(picks(selector, 10, exclude={"A:8000"})) == {"B", "C"}

    def test_exclude_of_everything_falls_back_to_all(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(1, 1))
        got = picks(selector, 4, exclude={"A:8000", "B:8000"})
        assert set(got) == {"A", "B"}

    def test_exclude_does_not_pick_weight_zero(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(1, 0))
        assert picks(selector, 3, exclude={"A:8000"}) == "AAA"

    def test_update_keeps_running_weight_of_survivors(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(5, 1, 1))
        first = picks(selector, 3)
        selector.update(snapshot(5, 1, 1))
        # An unchanged list continues the cycle instead of restarting it.
        assert first + picks(selector, 4) == "AABACAA"

    def test_update_to_new_list_drops_old_endpoints(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(1, 1))
        selector.update(core.EndpointSnapshot.from_tuples([("Z", 1, 1)]))
        assert picks(selector, 3) == "ZZZ"
        assert [ep.host for ep in selector.snapshot] == ["Z"]

    def test_accepts_plain_endpoint_list(self):
        selector = core.SmoothWeightedRoundRobin([core.Endpoint("A", 1, 1)])
        assert selector.pick().address == "A:1"

    def test_concurrent_picks_and_updates_stay_consistent(self):
        selector = core.SmoothWeightedRoundRobin(snapshot(2, 1))
        errors: list[BaseException] = []
        stop = threading.Event()

        def updater() -> None:
            for i in range(2000):
                selector.update(snapshot(2, 1) if i % 2 else snapshot(1, 3, 1))
            stop.set()

        def picker() -> None:
            try:
                while not stop.is_set():
                    assert selector.pick().host in "ABC"
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=picker) for _ in range(3)]
        threads.append(threading.Thread(target=updater))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors
        assert stop.is_set()


weights_lists = st.lists(st.integers(0, 20), min_size=1, max_size=8).filter(any)


@settings(max_examples=200, deadline=None)
@given(
    weights=weights_lists,
    excludes=st.lists(st.sets(st.integers(0, 7)), max_size=40),
)
def test_matches_reference_implementation(weights, excludes):
    items = [(f"h{i}:1", w) for i, w in enumerate(weights)]
    reference = ReferenceRoundRobin(items)
    selector = core.SmoothWeightedRoundRobin(
        core.EndpointSnapshot.from_tuples([(f"h{i}", 1, w) for i, w in enumerate(weights)])
    )
    for exclude in excludes:
        addresses = {f"h{i}:1" for i in exclude}
        assert selector.pick(exclude=addresses).address == reference.pick(addresses)


@settings(max_examples=100, deadline=None)
@given(before=weights_lists, after=weights_lists, warmup=st.integers(0, 30))
def test_update_matches_reference(before, after, warmup):
    def tuples(ws):
        return [(f"h{i}", 1, w) for i, w in enumerate(ws)]

    reference = ReferenceRoundRobin([(f"h{i}:1", w) for i, w in enumerate(before)])
    selector = core.SmoothWeightedRoundRobin(core.EndpointSnapshot.from_tuples(tuples(before)))
    for _ in range(warmup):
        assert selector.pick().address == reference.pick()
    selector.update(core.EndpointSnapshot.from_tuples(tuples(after)))
    reference.update([(f"h{i}:1", w) for i, w in enumerate(after)])
    for _ in range(sum(after) * 2):
        assert selector.pick().address == reference.pick()
