"""The retry policy of one call: an immutable value object.

A ``Retry`` sets how many attempts a call may make in total, which failures
are worth another attempt, and how long to wait before it. ``increment()``
records one failed attempt and returns a new ``Retry``. The original is never
changed, so one policy can be shared by every call of a client.

What is retried by default:

* ``ConnectError`` (refused, reset, dropped, empty reply) and
  ``RequestTimeout``: the instance may be dying or being replaced, so the
  next attempt goes to another instance.
* Other ``TransportError``, a reply that is not valid HTTP included, except
  those caused by the request itself, such as a malformed URL
  (``easfast._transport.is_request_error``).
* ``HTTPStatusError`` with a 5xx status, or 429 (Too Many Requests, which
  EAS instances return under overload). The wait before the next attempt
  is at least what a 429's ``Retry-After`` header requests, capped at
  ``backoff_max``.
* ``DecodeError`` of a 200 response whose body is not a usable response
  (not a valid message of the request's schema, or one without outputs):
  the instance that sent it is treated as failed, as for a 5xx.

Never retried: other 4xx statuses (the request is wrong and would fail
anywhere), other statuses outside 500..599 (such as a 3xx redirect, which
is not followed), and errors raised before anything was sent.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Collection
from typing import Any, Callable, NamedTuple, Union

from ._transport import is_request_error
from .exceptions import (
    ConfigurationError,
    ConnectError,
    DecodeError,
    HTTPStatusError,
    RequestTimeout,
    TransportError,
)

#: Attempts per call, as in the official SDK's ``set_retry_count`` default.
DEFAULT_ATTEMPTS = 5

#: Maximum backoff between two attempts, in seconds.
DEFAULT_BACKOFF_MAX = 10.0

#: HTTP status of "Too Many Requests", the only 4xx that may be retried.
TOO_MANY_REQUESTS = 429

#: HTTP statuses retried when ``status_forcelist`` is not given.
DEFAULT_STATUS_FORCELIST = frozenset(range(500, 600)) | {TOO_MANY_REQUESTS}

#: Largest accepted ``backoff_factor``, ``backoff_max`` and ``backoff_jitter``,
#: in seconds (one hour).
MAX_BACKOFF_SECONDS = 3600.0

# Largest exponent of the backoff doubling. 2**64 times any accepted factor
# is far above MAX_BACKOFF_SECONDS, yet far below the float maximum.
_MAX_DOUBLINGS = 64


class RequestHistory(NamedTuple):
    """One failed attempt: the instance address and the error it raised."""

    address: str
    error: Exception


RetryValue = Union["Retry", int, None]


class Retry:
    """How many attempts a call makes and which failures it retries.

    Parameters
    ----------
    attempts:
        Attempts in total, the first one included (``1`` means no retry).
    connect, read, status:
        Optional caps on how many retries may follow a connection error, a
        timeout or a retryable status; ``None`` leaves only ``attempts``.
    backoff_factor:
        Seconds; the n-th retry (n >= 2) waits ``backoff_factor * 2**(n-2)``.
        The first retry waits only for a 429's ``Retry-After`` (see
        ``respect_retry_after``), because it goes to another instance.
    backoff_max:
        Upper bound of one wait, in seconds.
    backoff_jitter:
        Up to this many seconds, drawn uniformly, are added to each wait.
        The three backoff settings are finite seconds in
        0..``MAX_BACKOFF_SECONDS``; others raise ``ConfigurationError``.
    status_forcelist:
        HTTP statuses to retry; 5xx and 429 when ``None``. 4xx statuses
        other than 429 are never retried, even when listed.
    respect_retry_after:
        Wait at least as long as a 429 response's ``Retry-After`` header
        requests before the next attempt (capped at ``backoff_max``).
    sleep:
        Function used to wait, ``time.sleep`` by default (tests inject one).
    history:
        Failed attempts so far; set by ``increment()``.
    """

    def __init__(
        self,
        attempts: int = DEFAULT_ATTEMPTS,
        *,
        connect: int | None = None,
        read: int | None = None,
        status: int | None = None,
        backoff_factor: float = 0.0,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        backoff_jitter: float = 0.0,
        status_forcelist: Collection[int] | None = None,
        respect_retry_after: bool = True,
        sleep: Callable[[float], Any] = time.sleep,
        history: tuple[RequestHistory, ...] = (),
    ) -> None:
        _check_count("attempts", attempts, minimum=1)
        for name, value in (("connect", connect), ("read", read),
                            ("status", status)):
            if value is not None:
                _check_count(name, value, minimum=0)
        for name, seconds in (("backoff_factor", backoff_factor),
                              ("backoff_max", backoff_max),
                              ("backoff_jitter", backoff_jitter)):
            _check_seconds(name, seconds)
        self.attempts = attempts
        self.connect = connect
        self.read = read
        self.status = status
        self.backoff_factor = float(backoff_factor)
        self.backoff_max = float(backoff_max)
        self.backoff_jitter = float(backoff_jitter)
        self.status_forcelist = frozenset(
            DEFAULT_STATUS_FORCELIST if status_forcelist is None
            else status_forcelist
        )
        self.respect_retry_after = bool(respect_retry_after)
        self.sleep = sleep
        self.history = tuple(history)

    @classmethod
    def from_value(cls, value: RetryValue) -> Retry:
        """Turn an int (attempts in total), None (defaults) or Retry into a Retry."""
        if isinstance(value, Retry):
            return value
        if value is None:
            return cls()
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(
                f"retry must be a Retry, an int count of attempts or None, "
                f"got {value!r}"
            )
        return cls(value)

    def new(self, **changes: Any) -> Retry:
        """Return a copy with the given parameters changed."""
        params: dict[str, Any] = {
            "attempts": self.attempts,
            "connect": self.connect,
            "read": self.read,
            "status": self.status,
            "backoff_factor": self.backoff_factor,
            "backoff_max": self.backoff_max,
            "backoff_jitter": self.backoff_jitter,
            "status_forcelist": self.status_forcelist,
            "respect_retry_after": self.respect_retry_after,
            "sleep": self.sleep,
            "history": self.history,
        }
        params.update(changes)
        return type(self)(**params)

    # -- classification --

    def is_retryable(self, error: Exception) -> bool:
        """Tell whether ``error`` is a failure that another attempt may fix."""
        if isinstance(error, HTTPStatusError):
            code = error.code
            if code not in self.status_forcelist:
                return False
            return code == TOO_MANY_REQUESTS or not 400 <= code < 500
        if isinstance(error, (ConnectError, RequestTimeout, DecodeError)):
            return True
        if isinstance(error, TransportError):
            return not is_request_error(error)
        return False

    # -- state --

    @property
    def remaining(self) -> int:
        """Attempts still allowed."""
        return max(self.attempts - len(self.history), 0)

    def increment(self, error: Exception, address: str) -> Retry:
        """Return a new Retry with the failed attempt on ``address`` recorded."""
        return self.new(history=self.history + (RequestHistory(address, error),))

    def is_exhausted(self) -> bool:
        """Tell whether the recorded failures leave no further attempt."""
        if self.remaining == 0:
            return True
        if not self.history:
            return False
        kind = _failure_kind(self.history[-1].error)
        budget = {"connect": self.connect, "read": self.read,
                  "status": self.status}.get(kind)
        if budget is None:
            return False
        used = sum(1 for item in self.history
                   if _failure_kind(item.error) == kind)
        return used > budget

    def should_retry(self, error: Exception) -> bool:
        """Tell whether a call that just failed with ``error`` goes on.

        ``self`` must already include ``error`` (call ``increment()`` first).
        """
        return self.is_retryable(error) and not self.is_exhausted()

    def get_backoff_time(self) -> float:
        """Return the wait in seconds before the next attempt.

        Zero after the first failure; then ``backoff_factor * 2**(n-2)`` after
        the n-th, plus up to ``backoff_jitter``, capped at ``backoff_max``.
        After a 429 with a ``Retry-After`` header, at least the wait that the
        header requests, capped at ``backoff_max`` too.
        """
        history = self.history
        failures = len(history)
        delay = 0.0
        if failures > 1 and self.backoff_factor:
            doublings = min(failures - 2, _MAX_DOUBLINGS)
            delay = min(math.ldexp(self.backoff_factor, doublings),
                        self.backoff_max)
            if self.backoff_jitter:
                delay += random.uniform(0, self.backoff_jitter)
            delay = min(delay, self.backoff_max)
        if failures and self.respect_retry_after:
            asked = getattr(history[-1].error, "retry_after", 0)
            if asked:
                delay = max(delay, min(float(asked), self.backoff_max))
        return delay

    def backoff(self) -> float:
        """Wait before the next attempt with the injected sleep; return the delay."""
        delay = self.get_backoff_time()
        if delay > 0:
            self.sleep(delay)
        return delay

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(attempts={self.attempts}, "
            f"remaining={self.remaining}, connect={self.connect}, "
            f"read={self.read}, status={self.status}, "
            f"backoff_factor={self.backoff_factor}, "
            f"backoff_max={self.backoff_max}, "
            f"backoff_jitter={self.backoff_jitter})"
        )


def _failure_kind(error: Exception) -> str:
    if isinstance(error, HTTPStatusError):
        return "status"
    if isinstance(error, RequestTimeout):
        return "read"
    if isinstance(error, ConnectError):
        return "connect"
    return "other"


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"Retry {name} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigurationError(
            f"Retry {name} must be at least {minimum}, got {value}"
        )


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"Retry {name} must be a number of seconds, got {value!r}"
        )
    if not 0 <= value <= MAX_BACKOFF_SECONDS:  # also rejects NaN
        raise ConfigurationError(
            f"Retry {name} must be a number of seconds in "
            f"0..{MAX_BACKOFF_SECONDS:g}, got {_format_number(value)}"
        )


def _format_number(value: float) -> str:
    # str() of an int over 4300 digits raises ValueError under the default
    # sys.int_info.default_max_str_digits of current Python releases.
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    return repr(value)
