"""Request headers of the EAS token authentication.

With a service token ``T`` the request carries ``Authorization: EAS <sig>``,
where ``sig`` is base64(HMAC-SHA1(key=T, msg)) and ``msg`` joins with "\\n"
the verb ``POST``, the lowercase hex MD5 of the body, the content type, the
``Date`` header and the resource ``/api/predict/<service>``. A custom URL
sends the token itself as ``Authorization`` instead, as the official SDK
does, because the resource of an arbitrary URL is unknown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate


def http_date(timestamp: float | None = None) -> str:
    """Return ``timestamp`` (default now) as an RFC 7231 date in UTC (GMT)."""
    return formatdate(timestamp, usegmt=True)


def signature(
    token: str, body_md5: str, content_type: str, date: str, resource: str
) -> str:
    """Return the ``Authorization`` value ``EAS <base64 HMAC-SHA1>``."""
    message = f"POST\n{body_md5}\n{content_type}\n{date}\n{resource}"
    digest = hmac.new(
        token.encode("utf-8"), message.encode("utf-8"), hashlib.sha1
    ).digest()
    return "EAS " + base64.b64encode(digest).decode("ascii")


def auth_headers(
    token: str,
    body: bytes,
    content_type: str,
    resource: str | None,
    timestamp: float | None = None,
) -> list[str]:
    """Return the ``Name: value`` header lines that authenticate ``body``.

    ``resource`` is ``/api/predict/<service>`` for a signed request, or None
    to send the raw token (custom URL mode).
    """
    date = http_date(timestamp)
    if resource is None:
        return [f"Date: {date}", f"Authorization: {token}"]
    body_md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    return [
        f"Date: {date}",
        f"Content-MD5: {body_md5}",
        "Authorization: " + signature(token, body_md5, content_type, date, resource),
    ]
