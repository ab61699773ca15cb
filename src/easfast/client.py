"""The public clients: ``Client`` (numpy in, numpy out) and ``PredictClient``.

``PredictClient`` has the official ``eas_prediction`` SDK's names and
behaviour, so code written for it runs with only its import changed.
``Client`` is the keyword-argument form with numpy dictionaries, raw bytes,
many requests in flight from one thread, and futures.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import _core
from ._endpoints import (
    DIRECT,
    ENDPOINT_TYPE_DEFAULT,
    ENDPOINT_TYPE_DIRECT,
    ENDPOINT_TYPE_VIPSERVER,
    DirectRoute,
    FixedRoute,
    check_service_name,
    gateway_url,
    parse_endpoint_type,
    predict_path,
    split_endpoint,
)
from ._endpoints import (
    custom_url as normalize_custom_url,
)
from ._health import (
    DEFAULT_EJECT_AFTER,
    DEFAULT_EJECT_FOR,
    DEFAULT_EJECT_FOR_MAX,
    HealthTracker,
)
from ._session import Session
from .discovery import (
    DEFAULT_INIT_TIMEOUT,
    DEFAULT_POLL_TIMEOUT,
    DEFAULT_REFRESH_INTERVAL,
    DEFAULT_REFRESH_JITTER,
    URL_FORM_AUTO,
    URL_FORM_EXPORTED,
    URL_FORM_SERVICEDISCOVERY,
    Discovery,
)
from .discovery import SECONDS_RANGES as DISCOVERY_SECONDS_RANGES
from .exceptions import (
    ClientClosedError,
    ConfigurationError,
    DecodeError,
    EncodeError,
    OutputNotFoundError,
    PredictException,
)
from .requests import Request
from .retry import DEFAULT_ATTEMPTS, Retry, RetryValue, _format_number

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "ENDPOINT_TYPE_DEFAULT",
    "ENDPOINT_TYPE_DIRECT",
    "ENDPOINT_TYPE_VIPSERVER",
    "Client",
    "PredictClient",
]

log = logging.getLogger(__name__)

#: Timeout of one attempt, in milliseconds (the official SDK's default).
DEFAULT_TIMEOUT_MS = 5000
#: Largest accepted timeout and connect timeout, in seconds (24 hours).
MAX_TIMEOUT = 24 * 3600.0
#: Largest response body accepted unless the caller sets another, in bytes
#: (1 GiB); a protobuf message can be at most 2 GiB.
DEFAULT_MAX_RESPONSE_SIZE = 1 << 30
#: Connections (curl easy handles) a client may use at the same time.
DEFAULT_MAX_CONNECTIONS = 100
#: Content type of request bodies unless the caller sets one.
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: Requests ``predict_many`` keeps in flight at the same time by default.
DEFAULT_CONCURRENCY = 16


# --------------------------------------------------------------- checking --


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _positive_seconds(name: str, value: object) -> float:
    # Also the range of ejection times: longer than a day means "forever"
    # in practice, and bounding it keeps every later sum finite.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{name} must be a number of seconds, got {value!r}"
        )
    if not 0 < value <= MAX_TIMEOUT:  # also rejects NaN
        raise ConfigurationError(
            f"{name} must be a number of seconds in (0, {MAX_TIMEOUT:g}] "
            f"(up to 24 hours), got {_format_number(value)}"
        )
    return float(value)


def _discovery_options(
    init_timeout: object, interval: object, poll_timeout: object,
    url_form: object,
) -> dict[str, Any]:
    # Check the discovery settings with the names of Client's arguments;
    # Discovery checks them again, with its own names.
    for name, key, value in (
        ("discovery_init_timeout", "init_timeout", init_timeout),
        ("discovery_interval", "refresh_interval", interval),
        ("discovery_poll_timeout", "poll_timeout", poll_timeout),
    ):
        low, high = DISCOVERY_SECONDS_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not low <= value <= high:  # also rejects NaN
            shown = _format_number(value) if isinstance(value, (int, float)) \
                else repr(value)
            raise ConfigurationError(
                f"{name} must be a number of seconds in {low:g}..{high:g}, "
                f"got {shown}"
            )
    if url_form not in (URL_FORM_AUTO, URL_FORM_SERVICEDISCOVERY,
                        URL_FORM_EXPORTED):
        raise ConfigurationError(
            f"discovery_url_form must be {URL_FORM_AUTO!r}, "
            f"{URL_FORM_SERVICEDISCOVERY!r} or {URL_FORM_EXPORTED!r}, got "
            f"{url_form!r}"
        )
    return {
        "init_timeout": init_timeout,
        "refresh_interval": interval,
        "refresh_jitter": DEFAULT_REFRESH_JITTER,
        "poll_timeout": poll_timeout,
        "url_form": url_form,
    }


def _ejection_options(
    eject_after: object, eject_for: object, eject_for_max: object
) -> dict[str, Any] | None:
    # Check the ejection settings. None means that ejection is off.
    if eject_after is None:
        return None
    after = _positive_int("eject_after", eject_after)
    base = _positive_seconds("eject_for", eject_for)
    if eject_for_max is None:
        return {"eject_after": after, "eject_for": base,
                "eject_for_max": max(base, DEFAULT_EJECT_FOR_MAX)}
    cap = _positive_seconds("eject_for_max", eject_for_max)
    if cap < base:
        raise ConfigurationError(
            f"eject_for_max ({cap:g} s) must be at least eject_for ({base:g} s)"
        )
    return {"eject_after": after, "eject_for": base, "eject_for_max": cap}


def _timeout_ms(name: str, seconds: float) -> int:
    milliseconds = round(seconds * 1000)
    if milliseconds < 1:
        raise ConfigurationError(
            f"{name} of {seconds!r} s is below curl's 1 ms resolution"
        )
    return milliseconds


def _optional_str(name: str, value: object, example: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(
            f"{name} must be a str such as {example!r}, got "
            f"{type(value).__name__} {value!r}"
        )
    return value


def _check_target(
    endpoint: object,
    service_name: object,
    custom_url: object,
    require_service: bool = True,
) -> str:
    """Check the endpoint, service name and custom URL; return the service name.

    A custom URL is used as is, so the service name may then be empty, as
    the official SDK allows. ``require_service=False`` also accepts an empty
    name, for a ``PredictClient`` whose name is set before ``init()``.
    """
    endpoint = _optional_str("endpoint", endpoint, "eas.example.com:8080")
    url = _optional_str("custom_url", custom_url, "http://host:port/path")
    if endpoint:
        split_endpoint(endpoint)
    if url:
        normalize_custom_url(url)
        if not service_name:
            return ""
    if not require_service and service_name == "":
        return ""
    return check_service_name(service_name)


def _timeout_milliseconds(value: object) -> float:
    # The PredictClient timeout, in milliseconds as in the official SDK.
    maximum = MAX_TIMEOUT * 1000
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 1 <= value <= maximum:  # also rejects NaN
        shown = _format_number(value) if isinstance(value, (int, float)) \
            else repr(value)
        raise ConfigurationError(
            f"timeout must be a number of milliseconds in 1..{maximum:.0f} "
            f"(up to 24 hours), got {shown}"
        )
    return value


def _max_response_size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value < 2**63:
        shown = _format_number(value) if isinstance(value, int) else repr(value)
        raise ConfigurationError(
            "max_response_size must be None (no limit) or an int of bytes in "
            f"1..{2**63 - 1}, got {shown}"
        )
    return value


def _log_level(level: object) -> int | str:
    # Levels that logging.Logger.setLevel accepts: an int, or the name of a
    # standard level such as "DEBUG".
    if isinstance(level, bool):
        pass
    elif isinstance(level, int):
        return level
    elif isinstance(level, str) and isinstance(
            logging.getLevelName(level.upper()), int):
        return level.upper()
    raise ConfigurationError(
        f"log level must be an int or one of DEBUG, INFO, WARNING, ERROR and "
        f"CRITICAL, got {level!r}"
    )


def _output_names(outputs: object) -> list[str]:
    if isinstance(outputs, (str, bytes)) or not isinstance(outputs, Iterable):
        raise EncodeError(
            f"outputs must be a list of output names such as ['scores'], got "
            f"{type(outputs).__name__} {outputs!r}"
        )
    return list(outputs)


def _request_list(items: object, what: str, example: str) -> None:
    # A predict_many argument: a sequence of requests, not one request.
    if items is None or isinstance(items, (Mapping, str, bytes, bytearray)) \
            or not isinstance(items, Iterable):
        raise EncodeError(
            f"{what} must be a list with one item per request, such as "
            f"{example}, got {type(items).__name__}; send a single request "
            "with predict()"
        )


def _check_token(token: object) -> str:
    # Messages never show the token, which is a secret.
    if not isinstance(token, str):
        raise ConfigurationError(f"token must be a str, got {type(token).__name__}")
    for ch in token:
        if ord(ch) < 32 or ord(ch) == 127:
            line_break = ch in "\r\n"
            kind = "a line break" if line_break else "a control character"
            hint = (" (a token read from a file often ends with a newline)"
                    if line_break else "")
            raise ConfigurationError(
                f"the token contains {kind} (U+{ord(ch):04X}), which no EAS "
                f"token has; remove it{hint}. The token is not shown here"
            )
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            "the token contains a lone surrogate, which cannot be encoded as "
            "UTF-8; pass the token as read from the console. The token is "
            "not shown here"
        ) from None
    return token


# Characters of an HTTP header name (the "token" of RFC 9110, section 5.6.2).
_HEADER_NAME_CHARS = frozenset(string.ascii_letters + string.digits
                               + "!#$%&'*+-.^_`|~")


def _header_map(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"headers must be a dict of str to str, got {type(headers).__name__}"
        )
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigurationError(
                f"header {name!r}: names and values must be str, got "
                f"{type(name).__name__} and {type(value).__name__}"
            )
        if not name or any(ch not in _HEADER_NAME_CHARS for ch in name):
            raise ConfigurationError(
                f"invalid header name {name!r}: header names contain only "
                "ASCII letters, digits and !#$%&'*+-.^_`|~"
            )
        _check_header_value(f"header {name!r}", value)
        checked[name] = value
    return checked


def _check_header_value(what: str, value: str) -> None:
    # Values may be secrets (an Authorization header), so messages show
    # only the offending character.
    for ch in value:
        if ch in "\r\n\0":
            raise ConfigurationError(
                f"{what} has a line break or NUL (U+{ord(ch):04X}) in its value"
            )
        if not ch.isascii() or (ord(ch) < 32 and ch != "\t") or ord(ch) == 127:
            raise ConfigurationError(
                f"{what} has the character U+{ord(ch):04X} in its value, "
                "which HTTP headers cannot carry: values must be printable "
                "ASCII, so percent-encode other text"
            )


def _check_content_type(content_type: object) -> str:
    if not isinstance(content_type, str):
        raise ConfigurationError(
            f"content type must be a str, got {type(content_type).__name__}"
        )
    _check_header_value(f"content type {content_type!r}", content_type)
    return content_type


def _build_session(
    *,
    service_name: str,
    endpoint: str | None,
    endpoint_type: str,
    custom_url: str | None,
    token: str | None,
    timeout_ms: int,
    connect_timeout_ms: int,
    retry: Retry,
    max_connections: int,
    content_type: str | None,
    headers: Mapping[str, str],
    discovery_options: Mapping[str, Any],
    ejection: Mapping[str, Any] | None,
    max_response_size: int | None = DEFAULT_MAX_RESPONSE_SIZE,
) -> Session:
    # Resolve the route, run the first discovery sync if needed, and build
    # the session. Raises ConfigurationError or DiscoveryError.
    discovery: Discovery | None = None
    route: FixedRoute | DirectRoute
    sign_resource: str | None = predict_path(service_name)
    if custom_url:
        if token is not None and not token.isascii():
            raise ConfigurationError(
                "the token contains non-ASCII characters, but with a custom "
                "URL it is sent as is in the Authorization header, which "
                "must be ASCII. The token is not shown here"
            )
        route = FixedRoute(normalize_custom_url(custom_url))
        sign_resource = None
    elif endpoint_type == DIRECT:
        if not endpoint:
            raise ConfigurationError(
                f"the direct endpoint type needs the discovery endpoint of "
                f"service {service_name!r}, such as "
                "'1234567890.vpc.cn-shanghai.pai-eas.aliyuncs.com'"
            )
        discovery = Discovery(endpoint, service_name, **discovery_options)
        selector = discovery.start()
        health = None
        if ejection is not None:
            health = HealthTracker(
                service_name, probe_timeout=timeout_ms / 1000, **ejection
            )
        route = DirectRoute(selector, predict_path(service_name), health)
    else:
        route = FixedRoute(gateway_url(endpoint, service_name))

    if not content_type:
        content_type = next(
            (value for name, value in headers.items()
             if name.lower() == "content-type"),
            DEFAULT_CONTENT_TYPE,
        )
    return Session(
        service_name=service_name,
        route=route,
        discovery=discovery,
        retry=retry,
        timeout_ms=timeout_ms,
        connect_timeout_ms=connect_timeout_ms,
        max_connections=max_connections,
        content_type=content_type,
        headers=headers,
        token=token,
        sign_resource=sign_resource,
        max_response_size=max_response_size,
    )


def _decode_outputs(body: bytes) -> dict[str, np.ndarray]:
    # decode_tf_response returns a new dict, so no copy is needed.
    outputs: dict[str, np.ndarray] = _core.decode_tf_response(body)
    if not outputs:
        raise DecodeError(
            "the response has no outputs, which a TensorFlow model never "
            "returns; check that the service runs the TensorFlow processor"
        )
    return outputs


def _output_parser(
    wanted: Sequence[str] | None,
) -> Callable[[bytes], dict[str, np.ndarray]]:
    # The parse function of Client.predict: decode, then check that every
    # output asked for came back.
    if not wanted:
        return _decode_outputs
    names = list(wanted)

    def parse(body: bytes) -> dict[str, np.ndarray]:
        outputs = _decode_outputs(body)
        missing = [name for name in names if name not in outputs]
        if missing:
            listed = ", ".join(repr(name) for name in outputs)
            raise OutputNotFoundError(
                f"the response has no output {', '.join(map(repr, missing))} "
                f"of the ones requested; it has: {listed}",
                name=missing[0],
                available=list(outputs),
            )
        return outputs

    return parse


def _as_body(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise ConfigurationError(
        f"the request body must be bytes or str, got {type(data).__name__}"
    )


# ------------------------------------------------------------------ Client --


class Client:
    """A client of one EAS service: numpy in, numpy out, retries built in.

    Parameters
    ----------
    service_name:
        The service to call, such as ``"mnist"`` or ``"bert/v2"``.
    endpoint:
        ``"direct"``: the discovery endpoint (``host[:port]``, optional
        ``http://``). ``"gateway"``: the gateway, ``http(s)://host[:port]``;
        inside EAS it may be omitted when ``NAMESPACE`` is set.
    endpoint_type:
        ``"direct"`` (default; requests go straight to instances picked by
        smooth weighted round robin) or ``"gateway"``. The official SDK's
        ``ENDPOINT_TYPE_DIRECT`` and ``ENDPOINT_TYPE_DEFAULT`` work too.
    custom_url:
        One full URL used as is for every request (no discovery).
    token:
        The service token; requests are signed with it.
    timeout:
        Seconds one attempt may take (a call may make several attempts),
        more than 0 and up to ``MAX_TIMEOUT`` (24 hours).
    connect_timeout:
        Seconds to establish a connection; at most ``timeout``.
    retry:
        A ``Retry`` or the number of attempts in total (default 5).
    max_connections:
        Connections used at the same time by threads calling ``predict``.
    content_type, headers:
        The request ``Content-Type`` and extra request headers.
    max_response_size:
        Largest response body accepted, in bytes (default 1 GiB); a larger
        one aborts the transfer with ``TransportError``, which is not
        retried. ``None`` removes the limit.
    discovery_init_timeout:
        Seconds the constructor may spend getting the first instance list,
        0.001 to 600 (default 5).
    discovery_interval:
        Seconds between two refreshes of the instance list, 0.05 to 3600
        (default 3); each wait varies by up to 10% at random.
    discovery_poll_timeout:
        Seconds one discovery request may take, 0.001 to 600 (default 2).
    discovery_url_form:
        The discovery URL form: ``"auto"`` (default; tries the official
        SDK's form and, if it returns 404, the documented one),
        ``"servicediscovery"`` or ``"exported"``.
    signature_name:
        The TensorFlow signature ``predict`` calls ("" for the default).
    eject_after, eject_for, eject_for_max:
        Passive health of the direct type. An instance whose last
        ``eject_after`` attempts failed with a connection error or a timeout
        is skipped for ``eject_for`` seconds, and then one request probes
        it. Each failed probe doubles the wait, up to ``eject_for_max``
        seconds (default 30, or ``eject_for`` if longer). Any HTTP response,
        5xx included, brings the instance back. When every instance is
        ejected, requests go to them anyway. ``eject_after=None`` turns
        ejection off. Both times are at most 24 hours.

    Threading: one client may be shared by many threads. Each thread that
    calls ``predict`` or ``predict_raw`` borrows its own curl easy handle
    from a pool of ``max_connections`` for the length of one attempt and
    gives it back, with its open connections, for reuse. ``predict_many``
    runs over a curl multi handle owned by the calling thread, and
    ``submit`` over one owned by a background thread. Every handle sets
    ``NOSIGNAL``, so libcurl never uses signals. After ``os.fork()`` the
    child opens new handles and restarts the discovery refresher.

    Raises ``ConfigurationError`` for an invalid setting and, for the direct
    type, ``DiscoveryError`` if no instance list arrives in time.
    """

    def __init__(
        self,
        service_name: str = "",
        *,
        endpoint: str | None = None,
        endpoint_type: str = "direct",
        custom_url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_MS / 1000,
        connect_timeout: float | None = None,
        retry: RetryValue = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        discovery_init_timeout: float = DEFAULT_INIT_TIMEOUT,
        discovery_interval: float = DEFAULT_REFRESH_INTERVAL,
        discovery_poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        discovery_url_form: str = URL_FORM_AUTO,
        signature_name: str = "",
        eject_after: int | None = DEFAULT_EJECT_AFTER,
        eject_for: float = DEFAULT_EJECT_FOR,
        eject_for_max: float | None = None,
        max_response_size: int | None = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        self.service_name = _check_target(endpoint, service_name, custom_url)
        timeout_s = _positive_seconds("timeout", timeout)
        connect_s = timeout_s if connect_timeout is None \
            else _positive_seconds("connect_timeout", connect_timeout)
        if token is not None:
            _check_token(token)
        if content_type is not None:
            _check_content_type(content_type)
        self.signature_name = signature_name
        self._session = _build_session(
            service_name=service_name,
            endpoint=endpoint,
            endpoint_type=parse_endpoint_type(endpoint_type),
            custom_url=custom_url,
            token=token,
            timeout_ms=_timeout_ms("timeout", timeout_s),
            connect_timeout_ms=_timeout_ms("connect_timeout", min(connect_s, timeout_s)),
            retry=Retry.from_value(retry),
            max_connections=_positive_int("max_connections", max_connections),
            content_type=content_type,
            headers=_header_map(headers),
            discovery_options=_discovery_options(
                discovery_init_timeout, discovery_interval,
                discovery_poll_timeout, discovery_url_form,
            ),
            ejection=_ejection_options(eject_after, eject_for, eject_for_max),
            max_response_size=_max_response_size(max_response_size),
        )

    # -- calls --

    def predict_raw(self, body: bytes) -> bytes:
        """Send ``body`` as is and return the response body."""
        return self._session.call(_as_body(body))

    def _encode(
        self,
        inputs: Mapping[str, Any],
        outputs: Sequence[str] | None,
        convert: bool,
    ) -> bytes:
        if type(inputs) is not dict and not isinstance(inputs, Mapping):
            raise ConfigurationError(
                "inputs must be a dict of input name to numpy array, got "
                f"{type(inputs).__name__}"
            )
        names = _output_names(outputs) if outputs is not None else []
        return bytes(_core.encode_tf_request(
            self.signature_name, inputs, names, convert=convert))

    def predict(
        self,
        inputs: Mapping[str, Any],
        outputs: Sequence[str] | None = None,
        *,
        convert: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run the TensorFlow model on ``inputs`` and return its outputs.

        ``inputs`` maps input names to numpy arrays (or ``(DT_code, array)``
        pairs); ``outputs`` limits the outputs returned. Float outputs are
        read-only views on the response body.

        Without ``convert``, dtypes the wire format cannot carry raise
        ``EncodeError``. ``convert=True`` casts them first: float16 and
        bfloat16 to float32, uint32 to int64, and uint64 to int64 when every
        value fits.

        A 200 whose body does not decode, or decodes to no outputs at all,
        counts as a failed attempt and is retried on another instance; when
        every attempt fails that way, ``RetriesExhausted`` is raised,
        chained from the ``DecodeError``. An output named in ``outputs``
        that the response lacks raises ``OutputNotFoundError``.
        """
        body = self._encode(inputs, outputs, convert)
        return self._session.call(body, _output_parser(outputs))

    def predict_many(
        self,
        inputs: Sequence[Mapping[str, Any]],
        outputs: Sequence[str] | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        return_exceptions: bool = False,
        convert: bool = False,
    ) -> list[Any]:
        """Run ``predict`` on every item, ``concurrency`` at a time, from this thread.

        Returns the outputs in the order of ``inputs``. A failed item raises
        its ``PredictException`` after every other item has finished, unless
        ``return_exceptions`` is true, in which case the exception takes the
        item's place in the list. That includes an item that fails to
        encode, which is then not sent. ``convert`` is as in ``predict``.
        """
        _request_list(inputs, "inputs", "[{'images': array}]")
        encoded: list[bytes | PredictException] = []
        for item in inputs:
            try:
                encoded.append(self._encode(item, outputs, convert))
            except PredictException as exc:
                if not return_exceptions:
                    raise
                encoded.append(exc)
        bodies = [body for body in encoded if isinstance(body, bytes)]
        sent = iter(self._many(bodies, concurrency, _output_parser(outputs)))
        results = [next(sent) if isinstance(body, bytes) else body
                   for body in encoded]
        return _finish_many(results, return_exceptions)

    def predict_raw_many(
        self,
        bodies: Sequence[bytes],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Send every body, ``concurrency`` at a time; see ``predict_many``."""
        _request_list(bodies, "bodies", "[b'...', b'...']")
        results = self._many([_as_body(b) for b in bodies], concurrency)
        return _finish_many(results, return_exceptions)

    def _many(
        self,
        bodies: list[bytes],
        concurrency: int,
        parse: Callable[[bytes], Any] | None = None,
    ) -> list[Any]:
        _positive_int("concurrency", concurrency)
        return self._session.call_many(bodies, concurrency, parse)

    def submit(
        self,
        inputs: Mapping[str, Any],
        outputs: Sequence[str] | None = None,
        *,
        convert: bool = False,
    ) -> Future[dict[str, np.ndarray]]:
        """Start ``predict`` in the background; return a future of its outputs.

        The response is decoded in the background thread.
        """
        body = self._encode(inputs, outputs, convert)
        return self._session.submit(body, _output_parser(outputs))

    def submit_raw(self, body: bytes) -> Future[bytes]:
        """Start ``predict_raw`` in the background; return a future of the body."""
        return self._session.submit(_as_body(body))

    # -- state --

    @property
    def endpoints(self) -> list[str]:
        """Addresses requests go to: the current instances, or the fixed URL."""
        route = self._session.route
        if isinstance(route, DirectRoute):
            return [ep.address for ep in route.selector.snapshot]
        return [route.url]

    @property
    def ejected_endpoints(self) -> list[str]:
        """Addresses of the instances ejected now for not responding, sorted."""
        return self._session.route.ejected()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._session.closed

    def close(self) -> None:
        """Stop the discovery refresher and close every connection."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.endpoints)} endpoints"
        return f"Client({self.service_name!r}, {state})"


def _finish_many(results: list[Any], return_exceptions: bool) -> list[Any]:
    if not return_exceptions:
        for result in results:
            if isinstance(result, PredictException):
                raise result
    return results


# ----------------------------------------------------------- PredictClient --


class PredictClient:
    """The official SDK's client: configure with setters, then ``init()``.

    Create it as ``PredictClient(endpoint, service_name, custom_url='')``
    and call any of ``set_endpoint_type``, ``set_token``, ``set_timeout``
    (milliseconds), ``set_retry_count`` (attempts in total),
    ``set_max_connection_count``, ``set_content_type`` and
    ``add_extra_headers``. Then call ``init()``. For the direct type it
    fetches the instance list (``DiscoveryError`` if none arrives within
    5 s) and starts refreshing it every 3 s. ``predict(req)`` sends
    ``req.to_string()`` and returns ``req.parse_response(body)``; a
    ``DecodeError`` from ``parse_response`` fails that attempt, which is
    then retried on another instance.
    ``destroy()`` stops the refresher and closes the connections.

    Differences from ``eas_prediction`` 0.36:

    * settings are checked when set (``ConfigurationError``);
    * 5xx responses, and 200 responses whose body does not decode, are
      retried on another instance;
    * direct-type instances that stop responding are ejected for a while,
      with the defaults of ``Client``;
    * ``Date`` is sent in UTC;
    * ``ENDPOINT_TYPE_VIPSERVER`` is rejected;
    * ``set_log_level`` sets the level of the ``easfast`` logger, which has
      no handler of its own (configure ``logging`` to see its records).

    The threading contract is the one of ``Client``.
    """

    def __init__(
        self, endpoint: str = "", service_name: str = "", custom_url: str = ""
    ) -> None:
        _check_target(endpoint, service_name, custom_url, require_service=False)
        self.endpoint_name = endpoint
        self.service_name = service_name
        self.custom_url = custom_url
        self.endpoint_type = ENDPOINT_TYPE_DEFAULT
        self.token = ""
        self.timeout: float = DEFAULT_TIMEOUT_MS
        self.retry_count = DEFAULT_ATTEMPTS
        self.max_connection_count = DEFAULT_MAX_CONNECTIONS
        self.content_type = ""
        self.headers: dict[str, str] = {}
        self._session: Session | None = None

    # -- settings --

    def set_endpoint(self, endpoint: str) -> None:
        """Set the gateway or discovery endpoint."""
        endpoint = _optional_str("endpoint", endpoint, "eas.example.com:8080") or ""
        if endpoint:
            split_endpoint(endpoint)
        self.endpoint_name = endpoint

    def set_service_name(self, service_name: str) -> None:
        """Set the service to call."""
        self.service_name = check_service_name(service_name)

    def set_endpoint_type(self, endpoint_type: str) -> None:
        """Set ``ENDPOINT_TYPE_DEFAULT`` (gateway) or ``ENDPOINT_TYPE_DIRECT``."""
        parse_endpoint_type(endpoint_type)
        self.endpoint_type = endpoint_type

    def set_token(self, token: str) -> None:
        """Set the service token used to sign requests."""
        self.token = _check_token(token)

    def set_content_type(self, content_type: str) -> None:
        """Set the request ``Content-Type``."""
        self.content_type = _check_content_type(content_type)

    def set_log_level(self, log_level: int | str) -> None:
        """Set the level of the ``easfast`` logger (all clients share it)."""
        logging.getLogger("easfast").setLevel(_log_level(log_level))

    def set_retry_count(self, count: int) -> None:
        """Set the number of attempts per call, the first one included."""
        self.retry_count = _positive_int("retry count", count)

    def set_max_connection_count(self, count: int) -> None:
        """Set how many connections may be used at the same time."""
        self.max_connection_count = _positive_int("max connection count", count)

    def set_timeout(self, timeout: float) -> None:
        """Set the timeout of one attempt, in milliseconds (1 to 24 hours)."""
        self.timeout = _timeout_milliseconds(timeout)

    def add_extra_headers(self, headers: dict[str, str]) -> None:
        """Add headers sent with every request."""
        self.headers.update(_header_map(headers))

    # -- lifecycle --

    def init(self) -> None:
        """Apply the settings; for the direct type, fetch the instance list.

        May be called again after changing settings; the previous state is
        closed first. Raises ``ConfigurationError`` or ``DiscoveryError``.
        Settings assigned to the attributes directly are checked here as
        the setters would check them.
        """
        service_name = _check_target(
            self.endpoint_name, self.service_name, self.custom_url)
        endpoint = self.endpoint_name
        custom_url = self.custom_url
        token = _check_token(self.token) if self.token else None
        timeout_ms = _timeout_milliseconds(self.timeout)
        retry = Retry(_positive_int("retry count", self.retry_count))
        max_connections = _positive_int("max connection count",
                                        self.max_connection_count)
        content_type = _check_content_type(self.content_type) \
            if self.content_type else None
        headers = _header_map(self.headers)
        previous, self._session = self._session, None
        if previous is not None:
            previous.close()
        self._session = _build_session(
            service_name=service_name,
            endpoint=endpoint or None,
            endpoint_type=parse_endpoint_type(self.endpoint_type),
            custom_url=custom_url or None,
            token=token,
            timeout_ms=int(timeout_ms),
            connect_timeout_ms=int(timeout_ms),
            retry=retry,
            max_connections=max_connections,
            content_type=content_type,
            headers=headers,
            discovery_options={
                "init_timeout": DEFAULT_INIT_TIMEOUT,
                "refresh_interval": DEFAULT_REFRESH_INTERVAL,
                "refresh_jitter": DEFAULT_REFRESH_JITTER,
                "poll_timeout": DEFAULT_POLL_TIMEOUT,
                "url_form": URL_FORM_AUTO,
            },
            ejection={
                "eject_after": DEFAULT_EJECT_AFTER,
                "eject_for": DEFAULT_EJECT_FOR,
                "eject_for_max": DEFAULT_EJECT_FOR_MAX,
            },
        )

    def predict(self, req: Request) -> Any:
        """Send ``req`` and return ``req.parse_response(response body)``."""
        session = self._session
        if session is None:
            raise ClientClosedError(
                "PredictClient.predict() called before init() or after "
                "destroy(); call init() first"
            )
        try:
            to_string = req.to_string
            parse = req.parse_response
        except AttributeError:
            raise EncodeError(
                "predict() takes a request object such as TFRequest, "
                f"TorchRequest or StringRequest, got {type(req).__name__}"
            ) from None
        return session.call(_as_body(to_string()), parse)

    def destroy(self) -> None:
        """Stop the discovery refresher and close every connection."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
