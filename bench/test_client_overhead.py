"""Client-side cost per call: easfast beside eas_prediction against nginx.

nginx (``bench/nginx.py``) serves three instances that return one fixed,
valid PredictResponse, and a static discovery document. The server's share
of each call is small, so the ratio shows what each client costs: building
the request, the HTTP exchange and parsing the response.
"""

from __future__ import annotations

import io

import numpy as np
import pycurl
import pytest
from nginx import NginxService, find_nginx

import easfast
from easfast import _core
from easfast.testing import DigitModel, load_digits

eas_prediction = pytest.importorskip("eas_prediction")

from clients import CLIENTS

pytestmark = [
    pytest.mark.skipif(
        find_nginx() is None,
        reason="nginx is not installed (apt-get install nginx-light)",
    ),
    # eas_prediction 0.36 builds direct-connection URLs without a scheme,
    # which urllib3 2.x reports with a FutureWarning on every call.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

IMAGES, _ = load_digits()
SCORES, CLASSES = DigitModel().predict(IMAGES[:1])
RESPONSE = _core.encode_tf_response({"scores": SCORES, "classes": CLASSES})
SIZES = {"1x784": IMAGES[:1], "64x784": np.repeat(IMAGES[:1], 64, axis=0)}


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    service = NginxService(tmp_path_factory.mktemp("nginx"), "mnist", RESPONSE)
    yield service
    service.stop()


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", list(CLIENTS))
def test_tf_call(benchmark, nginx, name, size):
    make_client, request_class = CLIENTS[name]
    images = SIZES[size]
    benchmark.group = f"nginx: TF call, float32 [{size.replace('x', ', ')}] in"
    benchmark.extra_info.update(case=benchmark.group, impl=name)
    client = make_client(nginx.endpoint, "mnist")

    def call():
        request = request_class("predict_images")
        request.add_feed(
            "images", list(images.shape), request_class.DT_FLOAT, images.ravel()
        )
        response = client.predict(request)
        return np.asarray(response.get_values("scores"), dtype=np.float32)

    try:
        call()  # The official client fills its instance list in the background.
        scores = benchmark(call)
    finally:
        client.destroy()
    np.testing.assert_array_equal(scores, SCORES.ravel())


def test_tf_call_raw_pycurl(benchmark, nginx):
    """Floor for the 1x784 group: one kept-alive pycurl POST, no codec."""
    benchmark.group = "nginx: TF call, float32 [1, 784] in"
    benchmark.extra_info.update(case=benchmark.group, impl="raw pycurl")
    body = _core.encode_tf_request("predict_images", {"images": IMAGES[:1]})
    curl = pycurl.Curl()
    curl.setopt(pycurl.URL, f"http://127.0.0.1:{nginx.ports[0]}/api/predict/mnist")
    curl.setopt(pycurl.TCP_NODELAY, 1)
    curl.setopt(pycurl.NOSIGNAL, 1)
    curl.setopt(pycurl.HTTPHEADER, ["Expect:", "Content-Type: application/octet-stream"])
    curl.setopt(pycurl.POSTFIELDS, body)

    def call():
        sink = io.BytesIO()
        curl.setopt(pycurl.WRITEFUNCTION, sink.write)
        curl.perform()
        return sink.getvalue()

    try:
        call()
        answer = benchmark(call)
    finally:
        curl.close()
    assert answer == RESPONSE


@pytest.mark.benchmark(group="nginx: 64 calls from one thread")
@pytest.mark.parametrize("name", ["eas_prediction", "easfast", "easfast-many"])
def test_64_calls(benchmark, nginx, name):
    image = IMAGES[:1]
    benchmark.extra_info.update(case="nginx: 64 calls, one thread", impl=name)
    if name == "easfast-many":
        client = easfast.Client("mnist", endpoint=nginx.endpoint)

        def run():
            outs = client.predict_many([{"images": image}] * 64, concurrency=8)
            return outs[-1]["scores"]

        close = client.close
    else:
        make_client, request_class = CLIENTS[name]
        predict_client = make_client(nginx.endpoint, "mnist")

        def run():
            for _ in range(64):
                request = request_class("predict_images")
                request.add_feed(
                    "images", [1, 784], request_class.DT_FLOAT, image.ravel()
                )
                response = predict_client.predict(request)
            return np.asarray(response.get_values("scores"), dtype=np.float32)

        close = predict_client.destroy
    try:
        run()
        scores = benchmark(run)
    finally:
        close()
    np.testing.assert_array_equal(np.ravel(scores), SCORES.ravel())
