"""Typed use of the public API; mypy --strict must accept this file.

It is never run by pytest (no test_ prefix); it exists for the type checker.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

import easfast
from easfast import (
    ENDPOINT_TYPE_DIRECT,
    Client,
    PredictClient,
    PredictException,
    Retry,
    StringRequest,
    StringResponse,
    TFRequest,
    TFResponse,
    TorchRequest,
    TorchResponse,
)
from easfast.requests import TensorValues


def compat_client(endpoint: str) -> list[int]:
    client = PredictClient(endpoint, "mnist")
    client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.set_token("token")
    client.set_timeout(500)
    client.set_retry_count(3)
    client.set_max_connection_count(8)
    client.set_content_type("application/octet-stream")
    client.add_extra_headers({"X-Trace": "1"})
    client.init()

    request = TFRequest("predict_images")
    request.add_feed("images", [1, 784], TFRequest.DT_FLOAT, [0.0] * 784)
    request.add_fetch("scores")
    response: TFResponse = client.predict(request)
    values: TensorValues = response.get_values("scores")
    as_list: list[float] = list(values)
    flat: np.ndarray = np.asarray(values)
    first_value: float = values[0]
    shape: list[int] = response.get_tensor_shape("scores")
    scores: np.ndarray = response["scores"]

    torch = TorchRequest()
    torch.add_feed(0, [1, 784], TorchRequest.DT_FLOAT, np.zeros(784, np.float32))
    torch.add_feed_map("images", [1, 784], TorchRequest.DT_FLOAT, [0.0] * 784)
    torch.add_fetch(0)
    torch_response: TorchResponse = client.predict(torch)
    first: TensorValues = torch_response.get_values(0)
    named: TensorValues = torch_response.get_values_map("scores")

    text: StringResponse = client.predict(StringRequest("hello"))
    data: bytes = text.response_data
    client.destroy()
    del values, as_list, flat, first_value, scores, first, named, data
    return shape


def new_client(endpoint: str) -> dict[str, np.ndarray]:
    retry = Retry(3, backoff_factor=0.05, backoff_jitter=0.01)
    with Client("mnist", endpoint=endpoint, timeout=0.5, retry=retry,
                eject_after=3, eject_for=0.5) as client:
        images = np.zeros((2, 784), dtype=np.float32)
        outputs = client.predict({"images": images}, outputs=["scores"])
        raw: bytes = client.predict_raw(b"\0")
        many: list[object] = client.predict_many([{"images": images}] * 3)
        future: Future[dict[str, np.ndarray]] = client.submit({"images": images})
        raw_future: Future[bytes] = client.submit_raw(b"body")
        endpoints: list[str] = client.endpoints
        ejected: list[str] = client.ejected_endpoints
        del raw, many, future, raw_future, endpoints, ejected
        return outputs


def handle_errors(endpoint: str) -> int:
    try:
        new_client(endpoint)
    except easfast.RetriesExhausted as exc:
        return exc.code
    except PredictException as exc:
        return exc.code
    return 0


version: str = easfast.__version__
