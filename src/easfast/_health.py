"""Passive health checks: eject instances that stop responding, then probe them.

Every attempt of a direct-type call reports its outcome for the instance it
went to. An instance whose last ``eject_after`` attempts all failed with a
connection error or a timeout is ejected: picks skip it for ``eject_for``
seconds. When that cooldown ends, one attempt probes it. A success brings
it back and resets its cooldown. A failure ejects it again for twice as
long as the last time, up to ``eject_for_max``.

Only reachability counts. Any HTTP response, 5xx included, shows that the
instance is up, so it resets the failure count and ends an ejection. A 500
may be caused by the request itself, and a 503 means overload, where
ejecting the instance would move its load onto the others. The retry
policy already sends the next attempt of such a call elsewhere.

Ejection never makes a call fail by itself: when every instance is ejected,
picks fall back to the whole list (see ``DirectRoute.pick``).

The state of each instance is keyed by address and guarded by one lock
that is never held across I/O or logging. ``excluded()``, called on every
pick, reads a cached frozenset without the lock until the next cooldown or
probe lease ends. ``all_healthy`` is true while no instance has a failure
or an ejection on record, which lets picks and successes skip the tracker.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import Callable

from .exceptions import ConnectError, RequestTimeout

log = logging.getLogger(__name__)

#: Consecutive connection failures or timeouts that eject an instance.
DEFAULT_EJECT_AFTER = 2
#: Seconds the first ejection of an instance lasts.
DEFAULT_EJECT_FOR = 1.0
#: Maximum seconds of one ejection; each failed probe doubles the last one.
DEFAULT_EJECT_FOR_MAX = 30.0

_EMPTY: frozenset[str] = frozenset()


def is_unreachable(error: Exception) -> bool:
    """Tell whether ``error`` counts as a failure of the instance itself.

    Connection errors and timeouts count. A timeout waiting for a free
    connection in the client's own pool does not, because nothing was sent.
    """
    if not isinstance(error, (ConnectError, RequestTimeout)):
        return False
    return not getattr(error, "pool_exhausted", False)


class _InstanceState:
    # failures: consecutive connection failures while not ejected.
    # ejections: ejections since the last success; 0 means not ejected.
    # until: monotonic time at which the current cooldown ends.
    # probe_until: monotonic time at which a claimed probe's lease ends.

    __slots__ = ("ejections", "failures", "probe_until", "until")

    def __init__(self) -> None:
        self.failures = 0
        self.ejections = 0
        self.until = 0.0
        self.probe_until = 0.0


class HealthTracker:
    """Consecutive failures and ejections of the instances of one service.

    Parameters
    ----------
    service_name:
        Used in log records.
    eject_after:
        Consecutive connection failures or timeouts that eject an instance.
    eject_for:
        Seconds of the first ejection.
    eject_for_max:
        Maximum seconds of one ejection.
    probe_timeout:
        Seconds one attempt may take. A claimed probe whose outcome never
        arrives (its call was interrupted) lets another attempt probe the
        instance after this time plus the current cooldown.
    clock:
        Monotonic clock in seconds; tests inject one.
    """

    def __init__(
        self,
        service_name: str,
        *,
        eject_after: int = DEFAULT_EJECT_AFTER,
        eject_for: float = DEFAULT_EJECT_FOR,
        eject_for_max: float = DEFAULT_EJECT_FOR_MAX,
        probe_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_name = service_name
        self.eject_after = eject_after
        self.eject_for = float(eject_for)
        self.eject_for_max = max(float(eject_for_max), self.eject_for)
        self.probe_timeout = float(probe_timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _InstanceState] = {}
        #: True while no instance has a failure or an ejection on record, so
        #: nothing is excluded and every claim succeeds. Set with the lock.
        self.all_healthy = True
        self._members: frozenset[str] = _EMPTY
        # Addresses picks skip now, valid until the monotonic _recheck_at.
        self._excluded: frozenset[str] = _EMPTY
        self._recheck_at = math.inf

    # -- reading, on every pick --

    def excluded(self) -> frozenset[str]:
        """Return the addresses that picks must skip now.

        These are the instances in their cooldown and those whose probe is
        in flight. An instance whose cooldown has ended is not in the set
        until an attempt claims its probe.
        """
        excluded = self._excluded
        if not excluded:
            return excluded
        now = self._clock()
        if now < self._recheck_at:
            return excluded
        with self._lock:
            self._refresh(now)
            return self._excluded

    def claim(self, address: str, excluded: frozenset[str]) -> bool:
        """Record that a pick chose ``address``; return False to pick again.

        ``excluded`` is the set the pick avoided. An ejected instance picked
        outside that set is one whose cooldown ended: the first claim makes
        this attempt its probe, and later claims return False until the
        probe's outcome arrives. An instance picked from inside the set was
        chosen because every candidate was excluded, so the attempt goes
        ahead without being a probe.
        """
        state = self._states.get(address)
        if state is None or not state.ejections or address in excluded:
            return True
        now = self._clock()
        with self._lock:
            if now < state.until or now < state.probe_until:
                return False
            cooldown = self._cooldown(state.ejections)
            state.probe_until = now + self.probe_timeout + cooldown
            self._refresh(now)
        log.debug("service %s: probing ejected instance %s",
                  self.service_name, address)
        return True

    def ejected(self) -> list[str]:
        """Return the addresses of ejected instances, probed or not, sorted."""
        with self._lock:
            return sorted(address for address, state in self._states.items()
                          if state.ejections)

    # -- outcomes --

    def record_success(self, address: str) -> None:
        """Record an HTTP response (any status) from ``address``."""
        if address not in self._states:
            return
        with self._lock:
            state = self._states.pop(address, None)
            self.all_healthy = not self._states
            if state is None or not state.ejections:
                return
            self._refresh(self._clock())
        log.info("service %s: instance %s responds again and is back in the "
                 "rotation", self.service_name, address)

    def record_failure(self, address: str) -> None:
        """Record a connection failure or timeout of an attempt to ``address``."""
        now = self._clock()
        with self._lock:
            if address not in self._members:
                return  # the instance has left the list meanwhile
            state = self._states.get(address)
            if state is None:
                state = self._states[address] = _InstanceState()
                self.all_healthy = False
            if state.ejections:
                if now < state.until:
                    return  # an attempt started before the ejection
                # The probe failed (or a pick fell back to this instance).
                state.ejections += 1
                cooldown = self._cooldown(state.ejections)
                state.until = now + cooldown
                state.probe_until = 0.0
                self._refresh(now)
                ejected_again = True
            else:
                state.failures += 1
                if state.failures < self.eject_after:
                    return
                state.failures = 0
                state.ejections = 1
                cooldown = self.eject_for
                state.until = now + cooldown
                self._refresh(now)
                ejected_again = False
        if ejected_again:
            log.debug("service %s: probe of instance %s failed; ejected "
                      "again for %.3g s", self.service_name, address, cooldown)
        else:
            log.info("service %s: instance %s ejected for %.3g s after %d "
                     "connection failures or timeouts in a row",
                     self.service_name, address, cooldown, self.eject_after)

    def release(self, address: str) -> None:
        """Free the probe claimed on ``address`` after an inconclusive attempt.

        The attempt failed in a way that is not the instance's fault (see
        ``is_unreachable``), so the next pick may probe it.
        """
        state = self._states.get(address)
        if state is None or not state.probe_until:
            return
        with self._lock:
            state.probe_until = 0.0
            self._refresh(self._clock())

    # -- the instance list --

    def retain(self, addresses: Iterable[str]) -> None:
        """Set the listed instances and drop the state of all others."""
        members = frozenset(addresses)
        with self._lock:
            self._members = members
            dropped = [address for address in self._states
                       if address not in members]
            for address in dropped:
                del self._states[address]
            self.all_healthy = not self._states
            if dropped:
                self._refresh(self._clock())
        if dropped:
            log.debug("service %s: dropped the health state of %s, which "
                      "left the instance list", self.service_name,
                      ", ".join(dropped))

    # -- internals, with the lock held --

    def _cooldown(self, ejections: int) -> float:
        seconds = math.ldexp(self.eject_for, min(ejections - 1, 64))
        return min(seconds, self.eject_for_max)

    def _refresh(self, now: float) -> None:
        excluded = []
        recheck_at = math.inf
        for address, state in self._states.items():
            if not state.ejections:
                continue
            end = state.until if now < state.until else state.probe_until
            if now < end:
                excluded.append(address)
                recheck_at = min(recheck_at, end)
        self._excluded = frozenset(excluded) if excluded else _EMPTY
        self._recheck_at = recheck_at
