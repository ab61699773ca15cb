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
import math
import time
from email.utils import formatdate

# The last (whole second, formatted date) pair. A request signed with a
# token needs the date, and formatting it costs more than the signature, so
# calls within one second share it. Replacing the tuple is atomic, so
# threads need no lock.
_last_date: tuple[int | None, str] = (None, "")


def http_date(timestamp: float | None = None) -> str:
    """Return ``timestamp`` (default now) as an RFC 7231 date in UTC (GMT)."""
    global _last_date
    second = math.floor(time.time() if timestamp is None else timestamp)
    cached = _last_date
    if cached[0] == second:
        return cached[1]
    date = formatdate(second, usegmt=True)
    _last_date = (second, date)
    return date


def signature(
    token: str, body_md5: str, content_type: str, date: str, resource: str
) -> str:
    """Return the ``Authorization`` value ``EAS <base64 HMAC-SHA1>``."""
    message = f"POST\n{body_md5}\n{content_type}\n{date}\n{resource}"
    digest = hmac.digest(token.encode("utf-8"), message.encode("utf-8"), "sha1")
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
