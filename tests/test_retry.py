"""Tests of the Retry policy value object (no network)."""

from __future__ import annotations

import pickle

import pytest

from easfast import _transport
from easfast.exceptions import (
    ConfigurationError,
    ConnectError,
    DecodeError,
    HTTPStatusError,
    RequestTimeout,
    TransportError,
)
from easfast.retry import (
    DEFAULT_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    RequestHistory,
    Retry,
)


def _connect_error() -> ConnectError:
    return ConnectError("refused", curl_code=7, curl_message="refused", url="u")


def _status_error(code: int) -> HTTPStatusError:
    return HTTPStatusError(f"HTTP {code}", code, url="u", body=b"")


class TestFromValue:
    def test_none_gives_defaults(self) -> None:
        retry = Retry.from_value(None)
        assert retry.attempts == DEFAULT_ATTEMPTS
        assert retry.history == ()

    def test_int_is_attempts_in_total(self) -> None:
        assert Retry.from_value(3).attempts == 3

    def test_retry_passes_through(self) -> None:
        retry = Retry(2)
        assert Retry.from_value(retry) is retry

    @pytest.mark.parametrize("value", [0, -1, True, 2.5, "3"],
                             ids=["zero", "negative", "bool", "float", "str"])
    def test_invalid_values_rejected(self, value: object) -> None:
        with pytest.raises(ConfigurationError, match="retry|attempts"):
            Retry.from_value(value)  # type: ignore[arg-type]


class TestValidation:
    @pytest.mark.parametrize("kwargs", [
        {"backoff_factor": -1.0},
        {"backoff_max": float("nan")},
        {"backoff_jitter": "1"},
        {"connect": -1},
        {"status": 1.5},
    ], ids=["negative-factor", "nan-max", "str-jitter", "negative-connect",
            "float-status"])
    def test_bad_parameters_raise_configuration_error(self, kwargs: dict) -> None:
        with pytest.raises(ConfigurationError, match="Retry"):
            Retry(**kwargs)

    @pytest.mark.parametrize("name", [
        "backoff_factor", "backoff_max", "backoff_jitter",
    ])
    @pytest.mark.parametrize("value", [
        float("inf"), float("nan"), -float("inf"), 1e300, 3600.5, 10**5000,
    ], ids=["inf", "nan", "minus-inf", "huge", "over-max", "huge-int"])
    def test_backoff_out_of_range_rejected(self, name: str, value: float) -> None:
        with pytest.raises(ConfigurationError, match=name) as info:
            Retry(**{name: value})
        assert f"0..{MAX_BACKOFF_SECONDS:g}" in str(info.value)

    def test_backoff_range_ends_accepted(self) -> None:
        Retry(backoff_factor=0, backoff_max=0, backoff_jitter=0)
        Retry(backoff_factor=MAX_BACKOFF_SECONDS,
              backoff_max=MAX_BACKOFF_SECONDS,
              backoff_jitter=MAX_BACKOFF_SECONDS)


class TestClassification:
    @pytest.mark.parametrize("error, expected", [
        (_connect_error(), True),
        (RequestTimeout("slow", curl_code=28, curl_message="t", url="u"), True),
        (TransportError("weird", curl_code=8, curl_message="w", url="u"), True),
        (TransportError("bad url", curl_code=3, curl_message="m", url="u"), False),
        (TransportError("0.9", curl_code=1, url="u",
                        curl_message="Received HTTP/0.9 when not allowed"), True),
        (TransportError("scheme", curl_code=1, url="u",
                        curl_message='Protocol "ftp" not supported'), False),
        (TransportError("no status", curl_code=0, curl_message="no HTTP status",
                        url="u"), True),
        (_status_error(500), True),
        (_status_error(503), True),
        (_status_error(400), False),
        (_status_error(401), False),
        (_status_error(404), False),
        (DecodeError("garbage"), True),
        (ValueError("other"), False),
    ], ids=["connect", "timeout", "weird-reply", "malformed-url", "http09",
            "unsupported-scheme", "status-0", "500", "503",
            "400", "401", "404", "decode", "other"])
    def test_is_retryable(self, error: Exception, expected: bool) -> None:
        assert Retry().is_retryable(error) is expected

    def test_4xx_other_than_429_never_retried(self) -> None:
        retry = Retry(status_forcelist={404, 429, 503})
        assert not retry.is_retryable(_status_error(404))
        assert retry.is_retryable(_status_error(429))
        assert retry.is_retryable(_status_error(503))
        assert not retry.is_retryable(_status_error(500))

    def test_429_retried_by_default(self) -> None:
        assert Retry().is_retryable(_status_error(429))

    def test_429_not_retried_when_unlisted(self) -> None:
        assert not Retry(status_forcelist={503}).is_retryable(_status_error(429))

    @pytest.mark.parametrize("code", [301, 302, 304, 201, 999])
    def test_other_statuses_not_retried(self, code: int) -> None:
        assert not Retry().is_retryable(_status_error(code))

    def test_client_side_codes_are_not_connect_codes(self) -> None:
        for code in _transport.CLIENT_SIDE_CURL_CODES:
            error = _transport.map_curl_error(code, "m", "u")
            assert type(error) is TransportError


class TestIncrement:
    def test_increment_returns_new_object(self) -> None:
        retry = Retry(3)
        error = _connect_error()
        after = retry.increment(error, "10.0.0.1:80")
        assert retry.history == ()
        assert after.history == (RequestHistory("10.0.0.1:80", error),)
        assert after is not retry

    def test_attempts_count_every_failure(self) -> None:
        retry = Retry(3)
        for remaining in (2, 1):
            retry = retry.increment(_connect_error(), "a")
            assert retry.remaining == remaining
            assert not retry.is_exhausted()
        retry = retry.increment(_connect_error(), "a")
        assert retry.remaining == 0
        assert retry.is_exhausted()
        assert not retry.should_retry(_connect_error())

    def test_single_attempt_never_retries(self) -> None:
        retry = Retry(1).increment(_connect_error(), "a")
        assert retry.is_exhausted()

    def test_connect_budget_limits_connect_retries_only(self) -> None:
        retry = Retry(10, connect=1)
        retry = retry.increment(_connect_error(), "a")
        assert retry.should_retry(_connect_error())
        retry = retry.increment(_status_error(503), "b")
        assert retry.should_retry(_status_error(503))
        retry = retry.increment(_connect_error(), "c")
        assert retry.is_exhausted()

    def test_status_budget_zero_stops_at_first_5xx(self) -> None:
        retry = Retry(5, status=0).increment(_status_error(502), "a")
        assert retry.is_exhausted()

    def test_new_keeps_unchanged_fields(self) -> None:
        retry = Retry(4, backoff_factor=0.5, status_forcelist={500})
        copy = retry.new(attempts=2)
        assert copy.attempts == 2
        assert copy.backoff_factor == 0.5
        assert copy.status_forcelist == frozenset({500})


class TestBackoff:
    def test_no_backoff_by_default(self) -> None:
        slept: list[float] = []
        retry = Retry(5, sleep=slept.append)
        for _ in range(4):
            retry = retry.increment(_connect_error(), "a")
            assert retry.backoff() == 0.0
        assert slept == []

    def test_first_retry_never_waits(self) -> None:
        retry = Retry(5, backoff_factor=1.0, backoff_jitter=1.0)
        retry = retry.increment(_connect_error(), "a")
        assert retry.get_backoff_time() == 0.0

    def test_exponential_backoff_with_cap(self) -> None:
        slept: list[float] = []
        retry = Retry(8, backoff_factor=0.1, backoff_max=0.5, sleep=slept.append)
        for _ in range(6):
            retry = retry.increment(_connect_error(), "a")
            retry.backoff()
        assert slept == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])

    def test_jitter_stays_within_bounds(self) -> None:
        retry = Retry(5, backoff_factor=0.1, backoff_jitter=0.05)
        retry = retry.increment(_connect_error(), "a").increment(
            _connect_error(), "b")
        for _ in range(50):
            assert 0.1 <= retry.get_backoff_time() <= 0.15

    def test_many_failures_do_not_overflow(self) -> None:
        retry = Retry(2000, backoff_factor=1.0, backoff_max=3.0)
        retry = retry.new(history=tuple(
            RequestHistory("a", _connect_error()) for _ in range(1500)))
        assert retry.get_backoff_time() == 3.0

    def test_largest_settings_stay_capped(self) -> None:
        slept: list[float] = []
        retry = Retry(200, backoff_factor=MAX_BACKOFF_SECONDS,
                      backoff_max=MAX_BACKOFF_SECONDS,
                      backoff_jitter=MAX_BACKOFF_SECONDS, sleep=slept.append)
        for _ in range(150):
            retry = retry.increment(_connect_error(), "a")
            retry.backoff()
        assert len(slept) == 149
        assert max(slept) == MAX_BACKOFF_SECONDS


class TestRetryAfter:
    def _after_429(self, retry: Retry, seconds: float) -> Retry:
        error = HTTPStatusError("HTTP 429", 429, url="u", body=b"",
                                retry_after=seconds)
        return retry.increment(error, "a")

    def test_first_retry_waits_as_asked(self) -> None:
        assert self._after_429(Retry(), 3).get_backoff_time() == 3.0

    def test_wait_capped_at_backoff_max(self) -> None:
        retry = self._after_429(Retry(backoff_max=2.0), 60)
        assert retry.get_backoff_time() == 2.0

    def test_longer_backoff_wins(self) -> None:
        retry = Retry(backoff_factor=4.0, backoff_max=10.0)
        retry = retry.increment(_connect_error(), "a")
        assert self._after_429(retry, 1).get_backoff_time() == 4.0

    def test_ignored_when_not_respected(self) -> None:
        retry = self._after_429(Retry(respect_retry_after=False), 3)
        assert retry.get_backoff_time() == 0.0

    def test_only_the_last_failure_counts(self) -> None:
        retry = self._after_429(Retry(), 3).increment(_connect_error(), "b")
        assert retry.get_backoff_time() == 0.0

    def test_new_keeps_the_setting(self) -> None:
        assert Retry(respect_retry_after=False).new().respect_retry_after is False


def test_repr_shows_remaining_attempts() -> None:
    retry = Retry(3).increment(_connect_error(), "a")
    assert repr(retry).startswith("Retry(attempts=3, remaining=2,")


def test_history_errors_survive_pickling() -> None:
    error = _connect_error()
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is ConnectError
    assert restored.curl_code == 7
