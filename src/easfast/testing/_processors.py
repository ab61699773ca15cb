"""The computation behind a simulated instance: the token check and the processors.

Processors turn a request body into a response body:

- ``"tf"``: a TensorFlow PredictRequest for the digit model. Signature
  ``"predict_images"`` (or empty), input ``"images"`` with N images of 784
  pixels (any int or float dtype, cast to float32), outputs ``"scores"``
  float32 [N, 10] and ``"classes"`` int64 [N]; ``output_filter`` picks
  outputs by name.
- ``"torch"``: a PyTorch PredictRequest for the same model. The images come
  in ``inputs[0]`` (returned in ``outputs[0]`` = scores and ``outputs[1]`` =
  classes) or in ``map_inputs["images"]`` (returned in
  ``map_outputs["scores"]`` and ``map_outputs["classes"]``);
  ``output_filter`` picks outputs by index.
- ``"string"``: the body's bytes in reverse order, see ``string_response``.

A body the processor cannot use gets 400 with a text body that names the
problem.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Union

import numpy as np

from easfast import _core
from easfast.exceptions import DecodeError, EncodeError
from easfast.testing._http import Request, Response
from easfast.testing.model import IMAGE_SIZE, DigitModel

log = logging.getLogger(__name__)

#: The signature name the "tf" processor serves, besides the empty name.
SIGNATURE_NAME = "predict_images"
#: Output names of the digit model, in the order of the torch outputs.
OUTPUT_NAMES = ("scores", "classes")

#: A processor: request body in, response body out. ValueError means 400.
ProcessorFunction = Callable[[bytes], bytes]
ProcessorSpec = Union[str, ProcessorFunction]


class InvalidRequest(ValueError):
    """The body is not a request the processor can process; the client gets 400."""


def string_response(body: bytes) -> bytes:
    """Return the "string" processor's response to ``body``: its bytes reversed."""
    return bytes(body[::-1])


def _decode_problem(schema: str, error: Exception) -> str:
    # The codec's messages usually name the message type already.
    message = str(error)
    if "PredictRequest" in message:
        return message
    return f"invalid {schema} PredictRequest: {message}"


def _image_batch(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind not in "iuf":
        raise InvalidRequest(
            f"{where} has dtype {array.dtype}; send pixels as float32 (or any int or float dtype)"
        )
    if array.ndim < 2 or array.size != array.shape[0] * IMAGE_SIZE:
        raise InvalidRequest(
            f"{where} has shape {list(array.shape)}; "
            f"send N images of {IMAGE_SIZE} pixels as [N, {IMAGE_SIZE}]"
        )
    return array


class TFProcessor:
    """Runs TensorFlow PredictRequests with the digit model."""

    name = "tf"

    def __init__(self, model: DigitModel) -> None:
        self._model = model

    def __call__(self, body: bytes) -> bytes:
        try:
            signature_name, inputs, output_filter = _core.decode_tf_request(body)
        except (DecodeError, EncodeError) as exc:
            raise InvalidRequest(_decode_problem("TensorFlow", exc)) from None

        if signature_name not in ("", SIGNATURE_NAME):
            raise InvalidRequest(
                f"unknown signature_name {signature_name!r}; this model serves {SIGNATURE_NAME!r}"
            )
        unknown = sorted(set(inputs) - {"images"})
        if unknown:
            raise InvalidRequest(
                f"unknown inputs {unknown}; this model takes only 'images'"
            )
        if "images" not in inputs:
            raise InvalidRequest(
                "missing input 'images'; send float32 [N, 784] pixels in 0..1"
            )

        scores, classes = self._model.predict(
            _image_batch(inputs["images"], "input 'images'")
        )
        outputs = {"scores": scores, "classes": classes}
        if output_filter:
            missing = [name for name in output_filter if name not in outputs]
            if missing:
                raise InvalidRequest(
                    f"unknown output_filter names {missing}; this model has {list(OUTPUT_NAMES)}"
                )
            outputs = {name: outputs[name] for name in output_filter}
        return bytes(_core.encode_tf_response(outputs))


def _snappy_decompress(body: bytes) -> bytes | None:
    """Return ``body`` decompressed as a raw snappy block, or None."""
    try:
        import cramjam
    except ImportError:
        return None
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception:  # noqa: BLE001 - cramjam raises its own error types
        return None


class TorchProcessor:
    """Runs PyTorch PredictRequests with the digit model."""

    name = "torch"

    def __init__(self, model: DigitModel) -> None:
        self._model = model

    def __call__(self, body: bytes) -> bytes:
        try:
            inputs, map_inputs, output_filter, _debug_level = (
                _core.decode_torch_request(body)
            )
        except (DecodeError, EncodeError) as exc:
            # TorchRequest(flag=True) sends a raw snappy block with no header
            # to say so, as the official SDK does; try that before rejecting.
            unpacked = _snappy_decompress(body)
            if unpacked is None:
                raise InvalidRequest(_decode_problem("PyTorch", exc)) from None
            try:
                inputs, map_inputs, output_filter, _debug_level = (
                    _core.decode_torch_request(unpacked)
                )
            except (DecodeError, EncodeError):
                raise InvalidRequest(_decode_problem("PyTorch", exc)) from None

        if inputs and map_inputs:
            raise InvalidRequest(
                "send the images in inputs[0] or in map_inputs, not both"
            )
        if len(inputs) > 1:
            raise InvalidRequest(
                f"got {len(inputs)} inputs; this model takes one, inputs[0]"
            )
        unknown = sorted(set(map_inputs) - {"images"})
        if unknown:
            raise InvalidRequest(
                f"unknown map_inputs {unknown}; this model takes only 'images'"
            )
        if inputs:
            images = _image_batch(inputs[0], "inputs[0]")
        elif "images" in map_inputs:
            images = _image_batch(map_inputs["images"], "map_inputs['images']")
        else:
            raise InvalidRequest(
                "missing input; send float32 [N, 784] pixels in inputs[0] or map_inputs['images']"
            )

        outputs = list(self._model.predict(images))
        indexes = list(output_filter) or list(range(len(outputs)))
        bad = [index for index in indexes if not 0 <= index < len(outputs)]
        if bad:
            raise InvalidRequest(
                f"output_filter indexes {bad} out of range; this model has outputs 0 "
                f"({OUTPUT_NAMES[0]}) and 1 ({OUTPUT_NAMES[1]})"
            )
        if inputs:
            return bytes(_core.encode_torch_response([outputs[i] for i in indexes]))
        named = {OUTPUT_NAMES[i]: outputs[i] for i in indexes}
        return bytes(_core.encode_torch_response([], named))


def make_processor(spec: ProcessorSpec) -> ProcessorFunction:
    """Return the processor function for ``spec``: a name or a callable."""
    if callable(spec):
        return spec
    if spec == "tf":
        return TFProcessor(DigitModel())
    if spec == "torch":
        return TorchProcessor(DigitModel())
    if spec == "string":
        return string_response
    raise ValueError(
        f"unknown processor {spec!r}; use 'tf', 'torch', 'string' or a callable"
    )


def eas_signature(token: str, request: Request, content_md5: str) -> str:
    """Return the ``Authorization`` value the EAS SDKs send for ``request``.

    The signed text is five lines: the method, the Content-MD5 header, the
    Content-Type header, the Date header and the request path.
    """
    headers = request.headers
    text = "\n".join(
        (
            request.method,
            content_md5,
            headers.get("content-type", ""),
            headers.get("date", ""),
            request.path,
        )
    )
    digest = hmac.new(token.encode("utf-8"), text.strip().encode("utf-8"), hashlib.sha1)
    return "EAS " + base64.b64encode(digest.digest()).decode("ascii")


def check_token(token: str, request: Request) -> str | None:
    """Return why ``request`` is not authorised by ``token``, or None if it is.

    The request passes with the raw token in ``Authorization`` or with an
    EAS signature over a Content-MD5 that matches the body. The Date header
    is signed but not compared with the clock, because the official SDK
    sends local time labelled GMT.
    """
    authorization = request.headers.get("authorization")
    if authorization is None:
        return (
            "missing Authorization header; this service requires a token, "
            "sent as is or as an EAS signature"
        )
    if hmac.compare_digest(authorization.encode("utf-8"), token.encode("utf-8")):
        return None
    if not authorization.startswith("EAS "):
        return "invalid token in the Authorization header; send the service's token"

    content_md5 = request.headers.get("content-md5")
    if content_md5 is None:
        return "missing Content-MD5 header; an EAS signature signs the body's MD5"
    body_md5 = hashlib.md5(request.body).hexdigest()
    if content_md5.lower() != body_md5:
        return f"Content-MD5 {content_md5!r} does not match the body's MD5 {body_md5}"
    expected = eas_signature(token, request, content_md5)
    if not hmac.compare_digest(authorization.encode("utf-8"), expected.encode("utf-8")):
        return (
            "invalid EAS signature in the Authorization header; sign the method, "
            "Content-MD5, Content-Type, Date and path with the service's token"
        )
    return None


class Predictor:
    """Checks the token, then runs the processor on one predict request."""

    def __init__(
        self, service_name: str, processor: ProcessorSpec, token: str | None
    ) -> None:
        self.service_name = service_name
        self.predict_path = f"/api/predict/{service_name}"
        self.processor_name = processor if isinstance(processor, str) else "custom"
        self._process = make_processor(processor)
        self._token = token or None

    def route(self, request: Request) -> Response | None:
        """Return the error for a request that is no predict call, else None."""
        if request.path != self.predict_path:
            return Response.text(
                404,
                f"no route for {request.path!r}; predict calls go to {self.predict_path}",
            )
        if request.method != "POST":
            return Response.text(
                405,
                f"method {request.method} not allowed on {self.predict_path}; use POST",
                headers={"Allow": "POST"},
            )
        return None

    def predict(self, request: Request) -> Response:
        if self._token is not None:
            problem = check_token(self._token, request)
            if problem is not None:
                return Response.text(401, problem)
        try:
            body = self._process(request.body)
        except InvalidRequest as exc:
            return Response.text(400, str(exc))
        except ValueError as exc:
            if self.processor_name != "custom":
                raise
            return Response.text(400, str(exc))
        return Response(200, body)
