"""HubSpot's v3 request signature, with the freshness checks the client library's helper lacks.

`X-HubSpot-Signature-v3` is base64(HMAC-SHA256(client secret, method + URI + body + timestamp)). The URI is the
one HubSpot was configured to call — the *public* URL, which behind a TLS terminator or proxy is not what this
process sees — so it comes from the `public_url` setting. `hubspot.utils.signature.Signature` computes the
digest; its own `is_valid` only rejects timestamps older than five minutes (a timestamp from the future passes),
reads the wall clock itself, and raises on a bad timestamp. So we check age and future skew here, with a clock
tests can set, then compare with `hmac.compare_digest`. v1/v2 signatures carry no timestamp (a captured request
replays forever) and are not accepted.
"""

from __future__ import annotations

import hmac
import re
import time

from hubspot.utils.signature import Signature

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"

# HubSpot decodes these percent-escapes in the URI before signing (its "validating requests" page lists them).
_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
            "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


class SignatureError(Exception):
    """The request is not provably from HubSpot, or no longer fresh; `reason` says which check failed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def signed_uri(uri: str) -> str:
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def sign(secret: str, method: str, uri: str, body: bytes | str, timestamp: str) -> str:
    """The signature HubSpot would send (tests and `verify` share it)."""

    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return str(Signature.get_signature(secret, text, "v3", http_uri=signed_uri(uri), http_method=method.upper(),
                                       timestamp=timestamp))


def verify(*, secret: str, method: str, uri: str, body: bytes, signature: str | None, timestamp: str | None,
           max_age: float = 300.0, max_skew: float = 60.0, now: float | None = None) -> None:
    """Raise SignatureError unless `signature` is HubSpot's for this request and `timestamp` is fresh."""

    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not timestamp:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    try:
        sent_ms = int(timestamp.strip())
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a number of milliseconds") from None
    age = (time.time() if now is None else now) - sent_ms / 1000.0
    if age > max_age:
        raise SignatureError(f"request timestamp is {age:.0f} s old (limit {max_age:.0f} s)")
    if age < -max_skew:
        raise SignatureError(f"request timestamp is {-age:.0f} s in the future (limit {max_skew:.0f} s)")
    try:
        expected = sign(secret, method, uri, body, timestamp.strip())
    except UnicodeDecodeError:
        raise SignatureError("request body is not UTF-8") from None
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace")):
        raise SignatureError("signature does not match (wrong client secret, altered body, or public_url "
                             "differs from the URL configured in HubSpot)")
