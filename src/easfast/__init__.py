"""easfast: a fast, failure-tolerant client for PAI-EAS model services.

``PredictClient`` and the request classes keep the official
``eas_prediction`` SDK's names, so ``from easfast import PredictClient``
replaces ``from eas_prediction import PredictClient``. ``Client`` is the
keyword-argument form with numpy inputs and outputs.
"""

import logging as _logging

from .client import (
    ENDPOINT_TYPE_DEFAULT,
    ENDPOINT_TYPE_DIRECT,
    ENDPOINT_TYPE_VIPSERVER,
    Client,
    PredictClient,
)
from .exceptions import (
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    DecodeError,
    DiscoveryError,
    EasfastWarning,
    EncodeError,
    HTTPStatusError,
    NoEndpointsError,
    OutputNotFoundError,
    PredictException,
    RequestTimeout,
    RetriesExhausted,
    TransportError,
)
from .requests import (
    Request,
    Response,
    StringRequest,
    StringResponse,
    TFRequest,
    TensorValues,
    TFResponse,
    TorchRequest,
    TorchResponse,
)
from .retry import Retry

__version__ = "0.1.0"

__all__ = [
    "ENDPOINT_TYPE_DEFAULT",
    "ENDPOINT_TYPE_DIRECT",
    "ENDPOINT_TYPE_VIPSERVER",
    "Client",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "DecodeError",
    "DiscoveryError",
    "EasfastWarning",
    "EncodeError",
    "HTTPStatusError",
    "NoEndpointsError",
    "OutputNotFoundError",
    "PredictClient",
    "PredictException",
    "Request",
    "RequestTimeout",
    "Response",
    "RetriesExhausted",
    "Retry",
    "StringRequest",
    "StringResponse",
    "TFRequest",
    "TFResponse",
    "TensorValues",
    "TorchRequest",
    "TorchResponse",
    "TransportError",
    "__version__",
]

_logging.getLogger(__name__).addHandler(_logging.NullHandler())
