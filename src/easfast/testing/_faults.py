"""Faults that a simulated instance, gateway or discovery server can show."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

#: Body of ``Fault.garbage()``: its first byte is a protobuf tag of wire type
#: 7, which no protobuf decoder accepts, and it is not a string response either.
GARBAGE_BODY = b"\x0f\xff\xfe this is not a protobuf message: Fault.garbage()"
#: Body of ``Fault.malformed()``: JSON cut off in the middle of the list.
MALFORMED_BODY = b'{"correlative": [], "endpoints": {"items": [{"ip": "127.0.0.1", "po'

#: Kinds that a predict server (an instance or the gateway) accepts.
PREDICT_KINDS = frozenset({"status", "hang", "reset", "garbage", "dead"})
#: Kinds that the discovery server accepts.
DISCOVERY_KINDS = frozenset({"status", "hang", "reset", "dead", "empty", "malformed"})


@dataclass(frozen=True)
class Fault:
    """One way for a simulated server to fail; build it with a class method.

    ``times`` is how many requests the fault applies to before the server is
    healthy again; None keeps it until ``set_fault(None)``. Only ``dead`` and
    ``down`` take no ``times``: they last until cleared.
    """

    kind: str
    code: int | None = None
    seconds: float | None = None
    body: bytes | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.times is not None:
            if isinstance(self.times, bool) or not isinstance(self.times, int):
                raise TypeError(f"times must be an int or None, got {self.times!r}")
            if self.times < 1:
                raise ValueError(
                    f"times must be at least 1, got {self.times}; "
                    "use None to keep the fault until it is cleared"
                )

    @classmethod
    def status(cls, code: int, times: int | None = None) -> Fault:
        """Respond to each request with HTTP status ``code`` and a text body."""
        if (
            isinstance(code, bool)
            or not isinstance(code, int)
            or not 200 <= code <= 599
        ):
            raise ValueError(f"status code must be an int in 200..599, got {code!r}")
        return cls("status", code=code, times=times)

    @classmethod
    def hang(cls, seconds: float, times: int | None = None) -> Fault:
        """Read each request, send nothing for ``seconds``, then respond as usual.

        A client whose timeout is shorter than ``seconds`` times out; one
        whose timeout is longer sees a slow success.
        """
        if (
            not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ValueError(
                f"hang seconds must be a finite number >= 0, got {seconds!r}"
            )
        return cls("hang", seconds=float(seconds), times=times)

    @classmethod
    def reset(cls, times: int | None = None) -> Fault:
        """Read each request, then close the connection with a TCP RST."""
        return cls("reset", times=times)

    @classmethod
    def garbage(cls, body: bytes = GARBAGE_BODY, times: int | None = None) -> Fault:
        """Respond 200 with ``body``, which is no valid response message."""
        return cls("garbage", body=bytes(body), times=times)

    @classmethod
    def dead(cls) -> Fault:
        """Close the listening socket, so that connections are refused.

        Open connections are closed too. The port stays reserved and the
        server listens on it again when the fault is cleared.
        """
        return cls("dead")

    @classmethod
    def down(cls) -> Fault:
        """Close the port like ``dead()``; the usual name for a discovery fault."""
        return cls("dead")

    @classmethod
    def empty(cls, times: int | None = None) -> Fault:
        """Discovery only: respond 200 with an instance list that has no items."""
        return cls("empty", times=times)

    @classmethod
    def malformed(cls, body: bytes = MALFORMED_BODY, times: int | None = None) -> Fault:
        """Discovery only: respond 200 with ``body``, by default truncated JSON."""
        return cls("malformed", body=bytes(body), times=times)


class FaultState:
    """The fault a server currently shows, shared between threads."""

    def __init__(self, allowed: frozenset[str], owner: str) -> None:
        self._allowed = allowed
        self._owner = owner
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._remaining: int | None = None

    @property
    def current(self) -> Fault | None:
        return self._fault

    def check(self, fault: Fault | None) -> None:
        """Raise TypeError or ValueError when this server cannot show ``fault``."""
        if fault is None:
            return
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault or None, got {type(fault).__name__}")
        if fault.kind not in self._allowed:
            raise ValueError(
                f"the {self._owner} cannot show a {fault.kind!r} fault; "
                f"it supports {', '.join(sorted(self._allowed))}"
            )

    def set(self, fault: Fault | None) -> None:
        self.check(fault)
        with self._lock:
            self._fault = fault
            self._remaining = None if fault is None else fault.times

    def take(self) -> Fault | None:
        """Return the fault for the next request and count it against ``times``."""
        with self._lock:
            fault = self._fault
            if fault is None or fault.kind == "dead":
                return None
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._fault = None
                    self._remaining = None
            return fault
