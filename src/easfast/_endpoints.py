"""Endpoint types and the URL each request goes to.

Three ways to reach a service:

* gateway (``ENDPOINT_TYPE_DEFAULT``): every request goes to
  ``http(s)://<endpoint>/api/predict/<service>`` and the gateway balances.
  Inside an EAS cluster (``NAMESPACE`` set) with no endpoint, the endpoint is
  ``<service with _ replaced by ->.<NAMESPACE>:8080``.
* direct (``ENDPOINT_TYPE_DIRECT``): a discovery URL lists the instances and
  each request goes straight to one, ``http://<ip>:<port>/api/predict/<service>``.
* custom URL: one full URL, used as is.
"""

from __future__ import annotations

import os
import string
from collections.abc import Collection, Mapping

from ._core import Endpoint, EndpointSnapshot, SmoothWeightedRoundRobin
from ._health import HealthTracker, is_unreachable
from .exceptions import ConfigurationError

ENDPOINT_TYPE_DEFAULT = "DEFAULT"
ENDPOINT_TYPE_DIRECT = "DIRECT"
# Accepted by name for compatibility, but rejected by set_endpoint_type().
ENDPOINT_TYPE_VIPSERVER = "VIPSERVER"

GATEWAY = "gateway"
DIRECT = "direct"

_TYPE_ALIASES = {
    "": GATEWAY,
    "default": GATEWAY,
    "gateway": GATEWAY,
    "direct": DIRECT,
}


def parse_endpoint_type(value: object) -> str:
    """Return ``"gateway"`` or ``"direct"`` for an endpoint type name.

    Accepts the official SDK's constants (``"DEFAULT"``, ``"DIRECT"``) and
    the lowercase names; raises ``ConfigurationError`` for anything else.
    """
    if not isinstance(value, str):
        raise ConfigurationError(
            f"endpoint type must be a str such as ENDPOINT_TYPE_DIRECT, got {value!r}"
        )
    kind = _TYPE_ALIASES.get(value.lower())
    if kind is not None:
        return kind
    if value.upper() == ENDPOINT_TYPE_VIPSERVER:
        raise ConfigurationError(
            "endpoint type VIPSERVER is not supported by easfast; use "
            "ENDPOINT_TYPE_DIRECT with the discovery endpoint, or "
            "ENDPOINT_TYPE_DEFAULT with the gateway endpoint"
        )
    raise ConfigurationError(
        f"unknown endpoint type {value!r}; use ENDPOINT_TYPE_DEFAULT "
        "(gateway) or ENDPOINT_TYPE_DIRECT (direct connection)"
    )


# Characters of EAS service names (letters, digits, "_", "-" and "."), plus
# "/" for a service group's member such as "bert/v2".
_SERVICE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-./")


def check_service_name(service_name: object) -> str:
    """Return ``service_name`` if it can go into a URL path, else raise.

    Accepted: ASCII letters, digits, ``_``, ``-``, ``.`` and ``/``, in
    ``/``-separated parts that are neither empty nor ``.`` or ``..``.
    """
    if not isinstance(service_name, str) or not service_name.strip():
        raise ConfigurationError(
            f"service name must be a non-empty str, got {service_name!r}"
        )
    for ch in service_name:
        if ch not in _SERVICE_NAME_CHARS:
            raise ConfigurationError(
                f"invalid service name {service_name!r}: character {ch!r} "
                f"(U+{ord(ch):04X}) is not allowed; service names contain "
                "only ASCII letters, digits, '_', '-', '.' and '/'"
            )
    if any(part in ("", ".", "..") for part in service_name.split("/")):
        raise ConfigurationError(
            f"invalid service name {service_name!r}: it must not start or "
            "end with '/' or contain '//', '/./' or '/../'"
        )
    return service_name


def _has_unsafe_chars(text: str) -> bool:
    return any(ch.isspace() or ch in "?#" or ord(ch) < 32 for ch in text)


def _check_ascii(text: str, what: str, advice: str) -> None:
    for ch in text:
        if not ch.isascii():
            raise ConfigurationError(
                f"invalid {what} {text!r}: character {ch!r} (U+{ord(ch):04X}) "
                f"is not ASCII; {advice}"
            )


def split_endpoint(endpoint: str, what: str = "endpoint") -> tuple[str, str]:
    """Split ``[http(s)://]host[:port][/]`` into ``(scheme, host[:port])``."""
    text = endpoint.strip()
    scheme = "http"
    lowered = text.lower()
    for prefix in ("http://", "https://"):
        if lowered.startswith(prefix):
            scheme = prefix[:-3]
            text = text[len(prefix):]
            break
    text = text.rstrip("/")
    if not text or "/" in text or _has_unsafe_chars(text):
        raise ConfigurationError(
            f"invalid {what} {endpoint!r}: expected host[:port], optionally "
            "with http:// or https://, such as 'eas.example.com:8080'"
        )
    _check_ascii(endpoint, what, "write an internationalised host name in "
                 "its ASCII (xn--) form")
    return scheme, text


def predict_path(service_name: str) -> str:
    """Return the request path ``/api/predict/<service>``."""
    return f"/api/predict/{service_name}"


def gateway_url(
    endpoint: str | None,
    service_name: str,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """Return the gateway URL of ``service_name``."""
    if not endpoint:
        namespace = environ.get("NAMESPACE")
        if not namespace:
            raise ConfigurationError(
                f"no endpoint given for service {service_name!r}: set the "
                "endpoint (for example 'xxx.cn-shanghai.pai-eas.aliyuncs.com') "
                "unless running inside EAS, where NAMESPACE is set"
            )
        host = service_name.replace("_", "-")
        endpoint = f"{host}.{namespace}:8080"
    scheme, host_port = split_endpoint(endpoint)
    return f"{scheme}://{host_port}{predict_path(service_name)}"


def custom_url(url: str) -> str:
    """Return the custom URL to call, with ``http://`` added if it has no scheme."""
    text = url.strip()
    if not text or _has_unsafe_chars(text.replace("?", "").replace("#", "")):
        raise ConfigurationError(
            f"invalid custom URL {url!r}: expected a full URL such as "
            "'http://host:port/path'"
        )
    _check_ascii(url, "custom URL", "percent-encode the path and write the "
                 "host name in its ASCII (xn--) form")
    if not text.lower().startswith(("http://", "https://")):
        text = "http://" + text
    return text


class FixedRoute:
    """Every attempt goes to one URL (gateway or custom URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.address = url

    def pick(self, exclude: Collection[str] | None = None) -> tuple[str, str]:
        """Return ``(address, url)`` of the next attempt."""
        return self.address, self.url

    def record_response(self, address: str) -> None:
        """Do nothing: with one URL there is no other instance to prefer."""

    def record_error(self, address: str, error: Exception) -> None:
        """Do nothing: with one URL there is no other instance to prefer."""

    def ejected(self) -> list[str]:
        """Return an empty list: a fixed URL is never ejected."""
        return []


_NONE_EJECTED: frozenset[str] = frozenset()

# Maximum picks of one attempt. A pick is repeated when another thread has
# just claimed the probe of the instance picked. The last pick is used anyway.
_MAX_PICKS = 3


class DirectRoute:
    """Attempts go to instances picked by the smooth weighted round robin.

    With a ``HealthTracker``, picks skip ejected instances (see
    ``easfast._health``) and every attempt's outcome updates it.
    """

    def __init__(
        self,
        selector: SmoothWeightedRoundRobin,
        path: str,
        health: HealthTracker | None = None,
    ) -> None:
        self.selector = selector
        self.path = path
        self.health = health
        self._urls: dict[str, str] = {}
        self._snapshot: EndpointSnapshot | None = None
        if health is not None:
            self._track(selector.snapshot, health)

    def url_of(self, endpoint: Endpoint) -> str:
        """Return the predict URL of ``endpoint``."""
        address = endpoint.address
        url = self._urls.get(address)
        if url is None:
            if len(self._urls) > 4096:
                self._urls.clear()  # instances come and go; stay bounded
            url = self._urls[address] = f"http://{address}{self.path}"
        return url

    def pick(self, exclude: Collection[str] | None = None) -> tuple[str, str]:
        """Return ``(address, url)`` of the next attempt.

        ``exclude`` contains the addresses this call already tried, least
        recently tried first when it is ordered (a dict or a list). The
        order of preference is: an instance not yet tried and not ejected,
        then an ejected one not yet tried (the attempt probes it), then
        the instance tried least recently, live ones before ejected ones.
        So a call returns to an instance only after it has tried every
        instance in the list, and ejections alone never make it fail.
        """
        tried = exclude or ()
        health = self.health
        if health is None:
            if tried:
                endpoint = self._pick_avoiding(
                    self.selector.snapshot, tried, _NONE_EJECTED)
            else:
                endpoint = self.selector.pick()
        else:
            endpoint = self._pick_healthy(tried, health)
        return endpoint.address, self.url_of(endpoint)

    def _pick_healthy(
        self, tried: Collection[str], health: HealthTracker
    ) -> Endpoint:
        snapshot = self.selector.snapshot
        if snapshot is not self._snapshot:
            self._track(snapshot, health)
        if health.all_healthy and not tried:
            # Nothing is excluded and no probe is claimed, so this is the
            # plain pick that the loop below would make.
            return self.selector.pick()
        for _ in range(_MAX_PICKS):
            ejected = health.excluded()
            endpoint = self._pick_avoiding(snapshot, tried, ejected)
            if health.claim(endpoint.address, ejected):
                break
        return endpoint

    def _pick_avoiding(
        self,
        snapshot: EndpointSnapshot,
        tried: Collection[str],
        ejected: frozenset[str],
    ) -> Endpoint:
        # The slow path, taken after a failure: compute the candidates
        # first, so that the selector's running weights advance only over
        # the instances the attempt may go to.
        selector = self.selector
        if not tried and not ejected:
            return selector.pick()
        untried = [ep.address for ep in snapshot
                   if ep.weight and ep.address not in tried]
        if not untried:
            return _least_recently_tried(snapshot, tried, ejected)
        if ejected and any(address not in ejected for address in untried):
            return selector.pick(ejected.union(tried))
        # Every untried instance is ejected (or none is): probe one of them.
        return selector.pick(tried)

    def _track(self, snapshot: EndpointSnapshot, health: HealthTracker) -> None:
        self._snapshot = snapshot
        health.retain(ep.address for ep in snapshot)

    def record_response(self, address: str) -> None:
        """Record that ``address`` sent an HTTP response, whatever its status."""
        health = self.health
        if health is not None and not health.all_healthy:
            health.record_success(address)

    def record_error(self, address: str, error: Exception) -> None:
        """Record that an attempt to ``address`` got no HTTP response."""
        health = self.health
        if health is None:
            return
        if is_unreachable(error):
            health.record_failure(address)
        else:
            health.release(address)

    def ejected(self) -> list[str]:
        """Return the addresses of the instances ejected now, sorted."""
        return [] if self.health is None else self.health.ejected()


def _least_recently_tried(
    snapshot: EndpointSnapshot,
    tried: Collection[str],
    ejected: frozenset[str],
) -> Endpoint:
    # Every instance of the list has been tried by this call. Take the one
    # tried longest ago, preferring one that is not ejected. ``tried`` is
    # iterated in its own order, oldest first for the dict that _Call keeps.
    weighted = {ep.address: ep for ep in snapshot if ep.weight}
    fallback: Endpoint | None = None
    for address in tried:
        endpoint = weighted.get(address)
        if endpoint is None:
            continue
        if address not in ejected:
            return endpoint
        if fallback is None:
            fallback = endpoint
    if fallback is None:
        # Unreachable for a valid snapshot, because EndpointSnapshot rejects
        # lists without a positive weight. It stays so a pick never fails.
        return next(iter(weighted.values()))
    return fallback
