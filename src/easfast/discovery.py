"""Instance discovery for the direct endpoint type.

``Discovery.start()`` fetches the instance list once, within ``init_timeout``
seconds in total, retrying until then, and raises ``DiscoveryError`` if no
usable list arrived. A daemon thread then refreshes the list every
``refresh_interval`` seconds (plus or minus ``refresh_jitter``, a fraction)
and swaps each new list into the selector.

A refresh that fails, times out or returns an empty or invalid list changes
nothing: requests keep going to the last good list. The first failure after
a success is logged at WARNING, repeated failures at DEBUG, and the recovery
at INFO, so a discovery outage costs one warning rather than one every few
seconds. A change of the instance set is logged at INFO.

Validation is all or nothing: one bad item (``ip`` not an IPv4 address, an
IPv6 address with or without brackets, or a DNS host name of ASCII letters,
digits, hyphens and dots; ``port`` not an int in 1..65535; ``weight`` not an
int >= 0; booleans rejected) rejects the whole list, because a list that is
half understood may be missing the instances that matter. So does a list
that the selector cannot take, such as one address listed twice with
weights whose sum is over the selector's maximum, a body over
``MAX_BODY_SIZE`` bytes, or JSON nested deeper than the parser allows.

Timing settings are finite numbers of seconds within ``SECONDS_RANGES``,
both ends included: ``init_timeout`` and ``poll_timeout`` 0.001..600,
``refresh_interval`` 0.05..3600. ``refresh_jitter`` is a fraction in
0..0.5, so a refresh never follows the previous one sooner than half the
interval. Other values raise ``ConfigurationError``.

Two URL forms exist. ``servicediscovery`` is
``/api/v1/servicediscovery/upstreams/<service>``, called by the official
SDK, which appends ``?internal=true`` when ``NAMESPACE`` and ``POD_NAME`` are
both set; ``exported`` is ``/exported/apis/eas.alibaba-inc.k8s.io/v1/
upstreams/<service>``. ``auto`` tries the first and falls back to the second
when the first returns 404, then keeps using the form that worked.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import re
import reprlib
import threading
import time
from collections.abc import Mapping
from typing import Any

from ._core import Endpoint, EndpointSnapshot, SmoothWeightedRoundRobin
from ._endpoints import split_endpoint
from ._transport import BodyLimit, HandlePool, HTTPRequest
from .exceptions import (
    ConfigurationError,
    DiscoveryError,
    NoEndpointsError,
    TransportError,
)

log = logging.getLogger(__name__)

URL_FORM_AUTO = "auto"
URL_FORM_SERVICEDISCOVERY = "servicediscovery"
URL_FORM_EXPORTED = "exported"
_URL_FORMS = (URL_FORM_SERVICEDISCOVERY, URL_FORM_EXPORTED)

#: Seconds between two refreshes of the instance list (the official SDK's 3 s).
DEFAULT_REFRESH_INTERVAL = 3.0
#: Fraction of the interval by which each wait varies at random.
DEFAULT_REFRESH_JITTER = 0.1
#: Seconds that ``start()`` may spend getting the first list.
DEFAULT_INIT_TIMEOUT = 5.0
#: Seconds one request to the discovery URL may take.
DEFAULT_POLL_TIMEOUT = 2.0

#: Largest discovery response body accepted, in bytes (16 MiB).
MAX_BODY_SIZE = 16 * 1024 * 1024
#: Accepted range of each timing setting, in seconds, both ends included.
SECONDS_RANGES: Mapping[str, tuple[float, float]] = {
    "init_timeout": (0.001, 600.0),
    "poll_timeout": (0.001, 600.0),
    "refresh_interval": (0.05, 3600.0),
}
#: Largest ``refresh_jitter``, a fraction of the refresh interval.
MAX_REFRESH_JITTER = 0.5

# Maximum pause between two attempts of the first sync, in seconds.
_INIT_RETRY_PAUSE_MAX = 1.0
# Shortest request worth sending, in seconds; libcurl counts in whole ms.
_MIN_REQUEST_TIMEOUT = 0.001
# A DNS host name (RFC 1123): dot-separated labels of 1..63 ASCII letters,
# digits and hyphens, none starting or ending with a hyphen, and an
# optional final dot.
_HOST_NAME = re.compile(
    r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?"
)
_HOST_NAME_MAX = 253
# Short reprs of JSON values for messages: bounded in length and depth.
_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


def _new_pool(stop: threading.Event) -> HandlePool:
    # Handles for discovery requests: setting ``stop`` aborts a transfer in
    # progress, and a body over MAX_BODY_SIZE aborts the transfer.
    return HandlePool(2, maxconnects=2, abort_event=stop,
                      body_limit=BodyLimit(MAX_BODY_SIZE, "MAX_BODY_SIZE of "
                                           "easfast.discovery (16 MiB)"))


def discovery_urls(
    endpoint: str,
    service_name: str,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """Return the discovery URL of ``service_name`` in each form, by form name.

    ``endpoint`` may carry ``http://`` or ``https://`` (the default is
    http); the service part of the URL is ``service_name`` up to the first
    ``/``.
    """
    scheme, host_port = split_endpoint(endpoint, "discovery endpoint")
    service = service_name.split("/", 1)[0]
    internal = "NAMESPACE" in environ and "POD_NAME" in environ
    query = "?internal=true" if internal else ""
    base = f"{scheme}://{host_port}"
    return {
        URL_FORM_SERVICEDISCOVERY:
            f"{base}/api/v1/servicediscovery/upstreams/{service}{query}",
        URL_FORM_EXPORTED:
            f"{base}/exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/{service}",
    }


def parse_instance_list(body: bytes, url: str) -> EndpointSnapshot:
    """Validate a discovery response body and return its instances.

    Raises ``DiscoveryError`` naming ``url`` and the first problem found.
    """
    # The transport already aborts a larger body (see _new_pool); this check
    # covers bodies that come from elsewhere.
    if len(body) > MAX_BODY_SIZE:
        raise _invalid(url, f"the body is {len(body)} bytes, over the limit "
                       f"of {MAX_BODY_SIZE} bytes (16 MiB)")
    try:
        document = json.loads(body)
    except RecursionError:
        raise _invalid(url, "the body is JSON nested too deeply to parse") \
            from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid(url, f"the body is not JSON ({exc})") from None
    endpoints = document.get("endpoints") if isinstance(document, dict) else None
    items = endpoints.get("items") if isinstance(endpoints, dict) else None
    if not isinstance(items, list):
        raise _invalid(url, 'expected {"endpoints": {"items": [...]}}, got '
                       + _preview(body))
    if not items:
        raise _invalid(url, "the instance list is empty")

    parsed = [_parse_item(item, index, url) for index, item in enumerate(items)]
    try:
        return EndpointSnapshot(parsed)
    except (NoEndpointsError, ValueError, TypeError) as exc:
        raise _invalid(url, _snapshot_problem(parsed, exc)) from None


def _snapshot_problem(parsed: list[Endpoint], exc: Exception) -> str:
    # The snapshot merges repeated addresses by adding their weights, so a
    # sum can be out of range although every item alone is valid.
    counts: dict[str, int] = {}
    for endpoint in parsed:
        counts[endpoint.address] = counts.get(endpoint.address, 0) + 1
    repeated = [address for address, count in counts.items() if count > 1]
    if not repeated or isinstance(exc, NoEndpointsError):
        return str(exc)
    return (f"{exc}; {', '.join(repeated)} is listed more than once and "
            "its weights are added")


def _parse_item(item: Any, index: int, url: str) -> Endpoint:
    if not isinstance(item, dict):
        raise _invalid(url, f"item {index} is not an object: "
                       f"{_short_repr.repr(item)}")
    ip, port, weight = item.get("ip"), item.get("port"), item.get("weight")
    host = _url_host(ip)
    if host is None:
        raise _invalid(url, f"item {index} has an invalid ip "
                       f"{_short_repr.repr(ip)}; expected an IPv4 or IPv6 "
                       "address or a DNS host name")
    if isinstance(port, bool) or not isinstance(port, int) \
            or not 1 <= port <= 65535:
        raise _invalid(url, f"item {index} ({ip}) has an invalid port "
                       f"{_short_repr.repr(port)}; expected an int in 1..65535")
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise _invalid(url, f"item {index} ({ip}:{port}) has an invalid weight "
                       f"{_short_repr.repr(weight)}; expected an int >= 0")
    try:
        return Endpoint(host, port, weight)
    except ValueError as exc:
        raise _invalid(url, f"item {index}: {exc}") from None


def _url_host(ip: object) -> str | None:
    """Return ``ip`` as the host of an instance URL, or None if it is invalid.

    Valid are an IPv4 address, an IPv6 address without a zone id, and a DNS
    host name. Brackets around an IPv6 address are dropped.
    """
    if not isinstance(ip, str):
        return None
    bracketed = ip.startswith("[") and ip.endswith("]")
    text = ip[1:-1] if bracketed else ip
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None:
        if bracketed and address.version != 6:
            return None  # brackets only enclose IPv6 addresses
        if "%" in text:
            return None  # a zone id would need escaping in the URL
        return text
    if bracketed or len(ip.rstrip(".")) > _HOST_NAME_MAX:
        return None
    if not _HOST_NAME.fullmatch(ip):
        return None
    # A name whose last label is all digits would be read as an IPv4
    # address in a shorthand form, such as 127.1.
    if ip.rstrip(".").rsplit(".", 1)[-1].isdigit():
        return None
    return ip


def _invalid(url: str, reason: str) -> DiscoveryError:
    return DiscoveryError(
        f"discovery at {url} returned an unusable instance list: {reason}",
        url=url,
    )


def _preview(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return repr(text) + ("..." if len(body) > limit else "")


class Discovery:
    """Keeps the instance list of one service current in a selector.

    Parameters
    ----------
    endpoint:
        The discovery server, ``host[:port]`` with optional ``http://``.
    service_name:
        The service; only the part before the first ``/`` is looked up.
    url_form:
        ``"auto"``, ``"servicediscovery"`` or ``"exported"`` (see the module).
    init_timeout:
        Seconds ``start()`` may spend getting the first list.
    poll_timeout:
        Seconds one request to the discovery URL may take.
    refresh_interval, refresh_jitter:
        Seconds between refreshes, varied by up to this fraction.

    Raises ``ConfigurationError`` when a setting is outside its range (see
    the module documentation).
    """

    def __init__(
        self,
        endpoint: str,
        service_name: str,
        *,
        url_form: str = URL_FORM_AUTO,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        refresh_jitter: float = DEFAULT_REFRESH_JITTER,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        if url_form not in (URL_FORM_AUTO, *_URL_FORMS):
            raise ConfigurationError(
                f"unknown discovery URL form {url_form!r}; use 'auto', "
                "'servicediscovery' or 'exported'"
            )

        for name, value in (("init_timeout", init_timeout),
                            ("poll_timeout", poll_timeout),
                            ("refresh_interval", refresh_interval)):
            low, high = SECONDS_RANGES[name]
            if not _is_number(value) or not low <= value <= high:
                raise ConfigurationError(
                    f"discovery {name} must be a number of seconds in "
                    f"{low:g}..{high:g}, got {_format_setting(value)}"
                )
        if not _is_number(refresh_jitter) \
                or not 0 <= refresh_jitter <= MAX_REFRESH_JITTER:
            raise ConfigurationError(
                f"discovery refresh_jitter must be a fraction in "
                f"0..{MAX_REFRESH_JITTER:g}, got {_format_setting(refresh_jitter)}"
            )

        self.service_name = service_name
        self.urls = discovery_urls(endpoint, service_name, environ)
        self.init_timeout = float(init_timeout)
        self.poll_timeout = float(poll_timeout)
        self.refresh_interval = float(refresh_interval)
        self.refresh_jitter = float(refresh_jitter)
        # The form in use: fixed by the caller, or learnt by "auto".
        self._form: str | None = None if url_form == URL_FORM_AUTO else url_form
        self._stop = threading.Event()
        self._pool = _new_pool(self._stop)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._failures = 0
        self.selector: SmoothWeightedRoundRobin | None = None

    @property
    def url(self) -> str:
        """The discovery URL in use, or the first one tried."""
        return self.urls[self._form or URL_FORM_SERVICEDISCOVERY]

    @property
    def snapshot(self) -> EndpointSnapshot | None:
        """The instance list requests currently go to."""
        return None if self.selector is None else self.selector.snapshot

    def fetch(
        self, timeout: float, deadline: float | None = None
    ) -> EndpointSnapshot:
        """Request the instance list once; raise ``DiscoveryError`` on failure.

        Each request to a URL form may take ``timeout`` seconds. With a
        ``deadline`` (a ``time.monotonic()`` value), no request runs past it,
        the fallback to the second form included.
        """
        forms = (self._form,) if self._form else _URL_FORMS
        error: DiscoveryError | None = None
        for form in forms:
            url = self.urls[form]
            request_timeout = timeout
            if deadline is not None:
                request_timeout = min(timeout, deadline - time.monotonic())
                if request_timeout < _MIN_REQUEST_TIMEOUT:
                    raise DiscoveryError(
                        f"discovery at {url} was not tried: no time was left "
                        "before the deadline",
                        url=url,
                    ) from error
            timeout_ms = max(1, int(request_timeout * 1000))
            request = HTTPRequest(url, None, ["Accept: application/json"])
            try:
                response = self._pool.perform(request, timeout_ms, timeout_ms)
            except TransportError as exc:
                reason = getattr(exc, "curl_message", None) or str(exc)
                raise DiscoveryError(
                    f"discovery at {url} failed: {reason}", url=url
                ) from exc
            if response.status == 404 and self._form is None:
                error = DiscoveryError(
                    f"discovery at {url} returned HTTP 404", url=url, code=404
                )
                continue
            if response.status != 200:
                raise DiscoveryError(
                    f"discovery at {url} returned HTTP {response.status}: "
                    f"{_preview(response.body)}",
                    url=url,
                )
            snapshot = parse_instance_list(response.body, url)
            if self._form is None:
                log.debug("discovery for %s uses the %s URL form",
                          self.service_name, form)
                self._form = form
            return snapshot
        assert error is not None
        raise DiscoveryError(
            f"discovery for service {self.service_name!r} returned HTTP 404 at "
            f"both {' and '.join(self.urls.values())}; check the service name "
            "and the discovery endpoint",
            url=self.url,
        ) from error

    def start(self) -> SmoothWeightedRoundRobin:
        """Fetch the first list within ``init_timeout``, then start refreshing.

        Returns the selector that the refresher keeps updating.
        """
        snapshot = self._first_sync()
        log.info("service %s: %d instances: %s", self.service_name,
                 len(snapshot), _describe(snapshot))
        self.selector = SmoothWeightedRoundRobin(snapshot)
        self._start_thread()
        return self.selector

    def _first_sync(self) -> EndpointSnapshot:
        started = time.monotonic()
        deadline = started + self.init_timeout
        pause = 0.1
        attempts = 0
        last: DiscoveryError | None = None
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            try:
                return self.fetch(self.poll_timeout, deadline)
            except DiscoveryError as exc:
                last = exc
                log.debug("discovery for %s, attempt %d: %s",
                          self.service_name, attempts, exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._stop.wait(min(pause, remaining))
            pause = min(pause * 2, _INIT_RETRY_PAUSE_MAX)
        reason = str(last) if last is not None else "the client was closed"
        raise DiscoveryError(
            f"no usable instance list for service {self.service_name!r} from "
            f"{self.url} within {self.init_timeout:g} s ({attempts} attempts); "
            f"last error: {reason}. Check the endpoint and the service name, "
            "or allow more time with the discovery init timeout",
            url=self.url,
        ) from last

    def _start_thread(self) -> None:
        self._pid = os.getpid()
        thread = threading.Thread(
            target=self._run,
            args=(self._stop,),
            name=f"easfast-discovery-{self.service_name}",
            daemon=True,
        )
        self._thread = thread
        thread.start()

    def restart_after_fork(self) -> None:
        """Start a new refresher in a forked child; threads do not survive fork."""
        if self._pid == os.getpid() or self._stop.is_set():
            return
        self._stop = threading.Event()
        self._pool = _new_pool(self._stop)
        self._start_thread()

    @property
    def is_alive(self) -> bool:
        """Whether the refresher thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def _next_delay(self) -> float:
        spread = self.refresh_interval * self.refresh_jitter
        return self.refresh_interval + random.uniform(-spread, spread)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._next_delay()):
            try:
                snapshot = self.fetch(self.poll_timeout)
            except DiscoveryError as exc:
                if not stop.is_set():
                    self._note_failure(str(exc))
                continue
            except Exception as exc:  # log it and keep refreshing
                if stop.is_set():
                    return
                log.debug("discovery refresh raised", exc_info=True)
                self._note_failure(f"{type(exc).__name__}: {exc}")
                continue
            self._apply(snapshot)

    def _note_failure(self, reason: str) -> None:
        self._failures += 1
        kept = self.snapshot
        count = 0 if kept is None else len(kept)
        if self._failures == 1:
            log.warning(
                "discovery refresh for %s failed (%s); serving the last %d "
                "instances until it recovers",
                self.service_name, reason, count,
            )
        else:
            log.debug("discovery refresh for %s failed again (%d in a row): %s",
                      self.service_name, self._failures, reason)

    def _apply(self, snapshot: EndpointSnapshot) -> None:
        if self._failures:
            log.info("discovery refresh for %s recovered after %d failures",
                     self.service_name, self._failures)
            self._failures = 0
        selector = self.selector
        if selector is None:
            return
        old = selector.snapshot
        if snapshot == old:
            return
        selector.update(snapshot)
        log.info("service %s: instances changed: %s; now %d instances: %s",
                 self.service_name, _diff(old, snapshot), len(snapshot),
                 _describe(snapshot))

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the refresher and wait up to ``timeout`` seconds for it to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() \
                and self._pid == os.getpid():
            thread.join(timeout)
        self._pool.close()


def _is_number(value: object) -> bool:
    # Range checks then reject NaN and the infinities.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format_setting(value: object) -> str:
    # repr() of an int over 4300 digits raises ValueError under the default
    # sys.int_info.default_max_str_digits of current Python releases.
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    return _short_repr.repr(value)


def _describe(snapshot: EndpointSnapshot) -> str:
    return ", ".join(f"{ep.address} (weight {ep.weight})" for ep in snapshot)


def _diff(old: EndpointSnapshot, new: EndpointSnapshot) -> str:
    before = {ep.address: ep.weight for ep in old}
    after = {ep.address: ep.weight for ep in new}
    parts = []
    added = [a for a in after if a not in before]
    removed = [a for a in before if a not in after]
    reweighted = [f"{a} {before[a]}->{after[a]}" for a in after
                  if a in before and before[a] != after[a]]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    if reweighted:
        parts.append("weight " + ", ".join(reweighted))
    return "; ".join(parts) or "reordered"
