"""End-to-end calls against the local simulator: easfast beside eas_prediction.

Both clients call the same ``LocalEAS`` service (three instances, direct
connection) in the same run, so their medians can be compared as a ratio.
Every call builds its request from a numpy image and reads the scores back,
as an application would. The simulator's own cost (a Python asyncio server
running the model) is part of every number, so these ratios understate the
difference in client-side cost.
"""

from __future__ import annotations

import numpy as np
import pytest

import easfast
from easfast.testing import DigitModel, LocalEAS, load_digits, string_response

eas_prediction = pytest.importorskip("eas_prediction")

from clients import CLIENTS

# eas_prediction 0.36 builds direct-connection URLs without a scheme, which
# urllib3 2.x reports with a FutureWarning on every call.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

IMAGES, _ = load_digits()
EXPECTED_SCORES, EXPECTED_CLASSES = DigitModel().predict(IMAGES[:1])


@pytest.fixture(scope="module")
def tf_service():
    with LocalEAS(instances=3, weights=[1, 1, 1], processor="tf") as eas:
        yield eas


@pytest.fixture(scope="module")
def string_service():
    with LocalEAS(instances=3, weights=[1, 1, 1], processor="string") as eas:
        yield eas


@pytest.mark.benchmark(group="e2e: TF [1, 784] float32, one call")
@pytest.mark.parametrize("name", list(CLIENTS))
def test_tf_predict(benchmark, tf_service, name):
    make_client, request_class = CLIENTS[name]
    benchmark.extra_info.update(case="simulator: TF [1, 784]", impl=name)
    client = make_client(tf_service.endpoint, tf_service.service_name)
    image = IMAGES[0]

    def call():
        request = request_class("predict_images")
        request.add_feed("images", [1, 784], request_class.DT_FLOAT, image)
        response = client.predict(request)
        return np.asarray(response.get_values("scores"), dtype=np.float32)

    try:
        call()  # The official client fills its instance list in the background.
        scores = benchmark(call)
    finally:
        client.destroy()
    np.testing.assert_allclose(scores, EXPECTED_SCORES[0], rtol=1e-5, atol=1e-6)


@pytest.mark.benchmark(group="e2e: string 1 KiB, one call")
@pytest.mark.parametrize("name", list(CLIENTS))
def test_string_predict(benchmark, string_service, name):
    make_client, _ = CLIENTS[name]
    module = eas_prediction if name == "eas_prediction" else easfast
    benchmark.extra_info.update(case="simulator: string 1 KiB", impl=name)
    client = make_client(string_service.endpoint, string_service.service_name)
    body = bytes(range(256)) * 4

    def call():
        return client.predict(module.StringRequest(body)).response_data

    try:
        call()
        answer = benchmark(call)
    finally:
        client.destroy()
    assert answer == string_response(body)
