"""A program written for eas_prediction 0.36, with only its import changed.

The functions below follow the SDK's documented usage, written the way its
users write it. The tests run them against the local simulator and check
the outputs against the model evaluated here.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

# The only change from the original program is this import line, which read
# "from eas_prediction import ...".
from easfast import (
    ENDPOINT_TYPE_DIRECT,
    PredictClient,
    PredictException,
    StringRequest,
    TFRequest,
    TorchRequest,
)
from easfast.testing import DigitModel, Fault, LocalEAS, string_response

EASFactory = Callable[..., LocalEAS]


def tf_program(endpoint: str, service: str, token: str, image: list) -> tuple:
    client = PredictClient(endpoint, service)
    client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.set_token(token)
    client.set_timeout(3000)
    client.set_retry_count(3)
    client.set_max_connection_count(10)
    client.init()

    req = TFRequest("predict_images")
    req.add_feed("images", [1, 784], TFRequest.DT_FLOAT, image)
    req.add_fetch("scores")
    req.add_fetch("classes")
    resp = client.predict(req)
    scores = list(resp.get_values("scores"))
    shape = resp.get_tensor_shape("scores")
    label = resp.get_values("classes")[0]
    client.destroy()
    return scores, shape, label


def torch_program(endpoint: str, service: str, image: list,
                  snappy: bool = False) -> tuple:
    client = PredictClient(endpoint, service)
    client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.init()

    req = TorchRequest(snappy)
    req.add_feed(0, [1, 784], TorchRequest.DT_FLOAT, image)
    resp = client.predict(req)
    scores = resp.get_values(0)
    shape = resp.get_tensor_shape(0)
    label = resp.get_values(1)[0]
    client.destroy()
    return list(scores), shape, label


def tf_json_program(endpoint: str, service: str, images: list) -> str:
    client = PredictClient(endpoint, service)
    client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.init()

    req = TFRequest("predict_images")
    req.add_feed("images", [len(images), 784], TFRequest.DT_FLOAT, images)
    resp = client.predict(req)
    result = json.dumps({
        "classes": list(resp.get_values("classes")),
        "scores": list(resp.get_values("scores")),
        "first_score": resp.get_values("scores")[0],
        "shape": resp.get_tensor_shape("scores"),
    })
    client.destroy()
    return result


def torch_json_program(endpoint: str, service: str, images: list) -> str:
    client = PredictClient(endpoint, service)
    client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.init()

    req = TorchRequest()
    req.add_feed(0, [len(images), 784], TorchRequest.DT_FLOAT, images)
    resp = client.predict(req)
    result = json.dumps({
        "labels": list(resp.get_values(1)),
        "top_scores": resp.get_values(0)[:3],
    })
    client.destroy()
    return result


def string_program(gateway: str, service: str, text: str) -> bytes:
    client = PredictClient(gateway, service)
    client.init()
    resp = client.predict(StringRequest(text))
    client.destroy()
    return resp.response_data


def error_program(gateway: str, service: str) -> tuple:
    client = PredictClient(gateway, service)
    client.init()
    try:
        client.predict(StringRequest("[{}]"))
        result = None
    except PredictException as e:
        result = (e.code, str(e.message))
    client.destroy()
    return result


def test_tf_program(local_eas: EASFactory, digits: tuple,
                    digit_model: DigitModel) -> None:
    eas = local_eas(instances=3, weights=[5, 1, 1], processor="tf",
                    token="mnist-token")
    image = digits[0][0]
    scores, shape, label = tf_program(eas.endpoint, eas.service_name,
                                      "mnist-token", image.tolist())
    expected_scores, expected_classes = digit_model.predict(image[None, :])
    np.testing.assert_allclose(scores, expected_scores[0], rtol=1e-5)
    assert shape == [1, 10]
    assert label == expected_classes[0]


def test_torch_program(local_eas: EASFactory, digits: tuple,
                       digit_model: DigitModel) -> None:
    eas = local_eas(instances=2, processor="torch")
    image = digits[0][3]
    scores, shape, label = torch_program(eas.endpoint, eas.service_name,
                                         image.tolist())
    expected_scores, expected_classes = digit_model.predict(image[None, :])
    np.testing.assert_allclose(scores, expected_scores[0], rtol=1e-5)
    assert shape == [1, 10]
    assert label == expected_classes[0]


def test_torch_program_with_snappy_body(local_eas: EASFactory, digits: tuple,
                                       digit_model: DigitModel) -> None:
    eas = local_eas(instances=2, processor="torch")
    image = digits[0][5]
    scores, shape, label = torch_program(eas.endpoint, eas.service_name,
                                         image.tolist(), snappy=True)
    expected_scores, expected_classes = digit_model.predict(image[None, :])
    np.testing.assert_allclose(scores, expected_scores[0], rtol=1e-5)
    assert shape == [1, 10]
    assert label == expected_classes[0]


def test_tf_json_program(local_eas: EASFactory, digits: tuple,
                         digit_model: DigitModel) -> None:
    eas = local_eas(instances=2, processor="tf")
    images = digits[0][:3]
    text = tf_json_program(eas.endpoint, eas.service_name, images.tolist())
    document = json.loads(text)
    expected_scores, expected_classes = digit_model.predict(images)
    assert document["classes"] == expected_classes.tolist()
    np.testing.assert_allclose(document["scores"], expected_scores.reshape(-1),
                               rtol=1e-5)
    assert document["first_score"] == document["scores"][0]
    assert document["shape"] == [3, 10]


def test_torch_json_program(local_eas: EASFactory, digits: tuple,
                            digit_model: DigitModel) -> None:
    eas = local_eas(instances=2, processor="torch")
    images = digits[0][3:5]
    text = torch_json_program(eas.endpoint, eas.service_name, images.tolist())
    document = json.loads(text)
    expected_scores, expected_classes = digit_model.predict(images)
    assert document["labels"] == expected_classes.tolist()
    np.testing.assert_allclose(document["top_scores"], expected_scores[0, :3],
                               rtol=1e-5)


def test_string_program(local_eas: EASFactory) -> None:
    eas = local_eas(instances=2, processor="string")
    data = string_program(eas.gateway_endpoint, eas.service_name, "hello")
    assert data == string_response(b"hello")


def test_error_program_sees_code_and_message(local_eas: EASFactory) -> None:
    eas = local_eas(instances=1, processor="string")
    eas.gateway.set_fault(Fault.status(400))
    code, message = error_program(eas.gateway_endpoint, eas.service_name)
    assert code == 400
    assert "simulated fault" in message
