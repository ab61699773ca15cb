"""Every exception easfast raises, in one tree rooted at PredictException.

``PredictException`` keeps the ``code`` and ``message`` attributes of the
official SDK's class of the same name, so ``except PredictException`` code
written for ``eas_prediction`` keeps working. ``code`` is the HTTP status
when the server sent one, 400 for input the caller must fix, and 500 for
failures on the client side or the network, as in the official SDK.
"""

from __future__ import annotations

from typing import Any


class PredictException(Exception):
    """Base class of every error raised by easfast."""

    #: Value of ``code`` when a subclass is built without one.
    default_code = 500

    def __init__(self, message: str, code: int | None = None, **context: Any):
        if isinstance(message, int) and isinstance(code, str):
            # The official SDK's order, PredictException(code, message).
            message, code = code, message
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code
        self._context = context
        for key, value in context.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Extra attributes travel as keyword arguments, so errors survive
        # pickling across multiprocessing workers.
        return (_rebuild, (type(self), self.message, self.code, self._context))


def _rebuild(cls: type, message: str, code: int, context: dict[str, Any]) -> Any:
    return cls(message, code, **context)


class ConfigurationError(PredictException, ValueError):
    """A client setting is invalid, for example an unknown endpoint type."""

    default_code = 400


class EncodeError(PredictException, ValueError):
    """A request cannot be encoded: a bad dtype, shape or value."""

    default_code = 400


class DecodeError(PredictException, ValueError):
    """A response or request body is not a valid message of its schema."""


class NoEndpointsError(PredictException):
    """The instance list is empty or every weight is zero."""

    default_code = 503


class DiscoveryError(PredictException):
    """The discovery URL gave no usable instance list; ``url`` names it."""


class TransportError(PredictException):
    """libcurl could not complete the exchange with ``url``.

    ``curl_code`` and ``curl_message`` carry libcurl's error code and text.
    """


class ConnectError(TransportError, ConnectionError):
    """The connection to the instance failed, was refused or was reset."""


class RequestTimeout(TransportError, TimeoutError):
    """The attempt did not finish within the client's timeout."""


class HTTPStatusError(PredictException):
    """The server responded with a status other than 200.

    ``code`` is the HTTP status, ``url`` the URL called and ``body`` the
    first bytes of the response body.
    """


class RetriesExhausted(PredictException):
    """Every attempt of one call failed.

    ``attempts`` lists ``(address, error)`` pairs in the order tried; the
    last error is also chained as ``__cause__``.
    """


class ClientClosedError(PredictException):
    """The client was used after ``destroy()`` or ``close()``."""

    default_code = 400


class EasfastWarning(UserWarning):
    """Misconfiguration that works but that the caller should fix."""


class OutputNotFoundError(PredictException, KeyError):
    """A response has no output of the requested name or index.

    ``name`` is the key asked for and ``available`` lists the outputs the
    response has. Being a ``KeyError`` too, it lets ``response.get(name)``
    and ``name in response`` work as on a dict.
    """

    default_code = 400
