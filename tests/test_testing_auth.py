"""Token checks of the simulator: raw tokens and EAS signatures."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client

import pytest

from easfast.testing import string_response

TOKEN = "c2VjcmV0LXRva2Vu=="
PATH = "/api/predict/mnist"


def sdk_headers(
    token: str,
    body: bytes,
    path: str = PATH,
    content_type: str = "application/octet-stream",
    date: str | None = None,
) -> dict[str, str]:
    """Build the headers the official SDK sends, from the protocol's description."""
    if date is None:
        date = datetime.datetime.now().strftime("%a, %d %b %Y %H:%M:%S GMT")
    content_md5 = hashlib.md5(body).hexdigest()
    text = f"POST\n{content_md5}\n{content_type}\n{date}\n{path}"
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return {
        "Date": date,
        "Content-Type": content_type,
        "Content-MD5": content_md5,
        "Authorization": "EAS " + base64.b64encode(digest).decode(),
    }


def post(address: str, body: bytes, headers: dict[str, str], path: str = PATH):
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def eas(local_eas):
    return local_eas(instances=1, processor="string", token=TOKEN)


@pytest.fixture(params=["instance", "gateway"])
def address(request, eas):
    return (
        eas.instances[0].address
        if request.param == "instance"
        else eas.gateway_endpoint
    )


class TestAccepted:
    def test_eas_signature(self, address):
        body = b"signed body"
        assert post(address, body, sdk_headers(TOKEN, body)) == (
            200,
            string_response(body),
        )

    def test_raw_token(self, address):
        assert post(address, b"ab", {"Authorization": TOKEN}) == (200, b"ba")

    def test_signature_with_custom_content_type(self, address):
        body = b'{"x": 1}'
        headers = sdk_headers(TOKEN, body, content_type="application/json")
        assert post(address, body, headers)[0] == 200

    def test_old_date_is_not_rejected(self, address):
        # The official SDK labels local time as GMT, so the clock is not checked.
        headers = sdk_headers(TOKEN, b"x", date="Mon, 01 Jan 2001 00:00:00 GMT")
        assert post(address, b"x", headers)[0] == 200

    def test_no_token_means_no_check(self, local_eas):
        eas = local_eas(instances=1, processor="string", token=None)
        assert post(eas.instances[0].address, b"ab", {})[0] == 200


class TestRejected:
    def test_missing_authorization(self, address):
        status, body = post(address, b"x", {})
        assert status == 401
        assert b"missing Authorization header" in body

    def test_wrong_raw_token(self, address):
        status, body = post(address, b"x", {"Authorization": "wrong"})
        assert status == 401
        assert b"invalid token" in body

    def test_signature_made_with_other_token(self, address):
        status, body = post(address, b"x", sdk_headers("other", b"x"))
        assert status == 401
        assert b"invalid EAS signature" in body

    def test_body_changed_after_signing(self, address):
        headers = sdk_headers(TOKEN, b"original")
        status, body = post(address, b"tampered", headers)
        assert status == 401
        assert b"does not match the body's MD5" in body

    def test_md5_and_signature_of_other_body(self, address):
        # Content-MD5 matches the body, but the signature signs another MD5.
        headers = sdk_headers(TOKEN, b"original")
        headers["Content-MD5"] = hashlib.md5(b"tampered").hexdigest()
        status, body = post(address, b"tampered", headers)
        assert status == 401
        assert b"invalid EAS signature" in body

    def test_missing_content_md5(self, address):
        headers = sdk_headers(TOKEN, b"x")
        del headers["Content-MD5"]
        status, body = post(address, b"x", headers)
        assert status == 401
        assert b"missing Content-MD5" in body

    def test_signature_for_other_path(self, local_eas):
        eas = local_eas(
            instances=1, processor="string", service_name="svc/v2", token=TOKEN
        )
        headers = sdk_headers(TOKEN, b"x", path="/api/predict/svc")
        status, _ = post(
            eas.instances[0].address, b"x", headers, path="/api/predict/svc/v2"
        )
        assert status == 401

    def test_rejection_counts_as_request(self, eas):
        post(eas.instances[0].address, b"x", {})
        assert eas.instances[0].request_count == 1
