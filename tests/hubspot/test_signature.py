"""v3 signature checks: HubSpot's own helper signs, the plugin verifies (and adds the freshness checks)."""

from __future__ import annotations

import json
import time

import pytest
from hubspot.utils.signature import Signature

from crmrules_hubspot import signature

from .conftest import CLIENT_SECRET, PUBLIC_URL, Inbox, notification, receiver_app, signed_headers

BODY = json.dumps([notification("contact.propertyChange", propertyName="firstname", propertyValue="유진")],
                  ensure_ascii=False).encode("utf-8")
NOW = 1_790_000_000.0


def _hubspot_signed(body: bytes = BODY, secret: str = CLIENT_SECRET, uri: str = PUBLIC_URL,
                    at: float = NOW) -> tuple[str, str]:
    ts = str(int(at * 1000))
    return Signature.get_signature(secret, body.decode("utf-8"), "v3", http_uri=uri, http_method="POST",
                                   timestamp=ts), ts


def _verify(sig: str, ts: str, body: bytes = BODY, uri: str = PUBLIC_URL, now: float = NOW) -> None:
    signature.verify(secret=CLIENT_SECRET, method="POST", uri=uri, body=body, signature=sig, timestamp=ts, now=now)


def test_valid_signature_passes() -> None:
    _verify(*_hubspot_signed())


def test_tampered_body_fails() -> None:
    sig, ts = _hubspot_signed()
    with pytest.raises(signature.SignatureError, match="does not match"):
        _verify(sig, ts, body=BODY.replace("유진".encode(), "유친".encode()))


def test_wrong_secret_fails() -> None:
    sig, ts = _hubspot_signed(secret="someone-elses-secret")
    with pytest.raises(signature.SignatureError, match="does not match"):
        _verify(sig, ts)


def test_stale_timestamp_fails_even_with_a_good_signature() -> None:
    sig, ts = _hubspot_signed(at=NOW - 301)
    with pytest.raises(signature.SignatureError, match="old"):
        _verify(sig, ts)
    _verify(*_hubspot_signed(at=NOW - 299))  # just inside five minutes


def test_future_timestamp_beyond_skew_fails() -> None:
    """The client library's helper lets any future timestamp through; a replay window must not be stretched."""
    sig, ts = _hubspot_signed(at=NOW + 3600)
    with pytest.raises(signature.SignatureError, match="future"):
        _verify(sig, ts)
    _verify(*_hubspot_signed(at=NOW + 30))  # small clock error is tolerated


def test_timestamp_is_part_of_the_signed_string() -> None:
    sig, _ = _hubspot_signed(at=NOW)
    with pytest.raises(signature.SignatureError, match="does not match"):
        _verify(sig, str(int((NOW - 1) * 1000)))


@pytest.mark.parametrize("sig,ts,message", [(None, "1", "missing X-HubSpot-Signature-v3"),
                                            ("abc", None, "missing X-HubSpot-Request-Timestamp"),
                                            ("abc", "yesterday", "not a number"),
                                            ("서명", str(int(NOW * 1000)), "does not match")])
def test_missing_or_garbled_headers_fail(sig: str | None, ts: str | None, message: str) -> None:
    with pytest.raises(signature.SignatureError, match=message):
        _verify(sig, ts)  # type: ignore[arg-type]


def test_uri_is_signed_with_hubspots_decoded_escapes() -> None:
    """HubSpot decodes %3A, %2F, %40 ... in the URI before signing; a URL written with them still verifies."""
    uri_as_configured = "https://hooks.example.com/hooks/hubspot?next=https%3A%2F%2Fa.example%2Fb&who=kim%40x"
    sig, ts = _hubspot_signed(uri="https://hooks.example.com/hooks/hubspot?next=https://a.example/b&who=kim@x")
    _verify(sig, ts, uri=uri_as_configured)


# ------------------------------------------------------------------ through the view

@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def http(inbox: Inbox):
    return receiver_app({"public_url": PUBLIC_URL}, inbox).test_client()


def test_view_accepts_a_signed_batch_signed_for_the_public_url(http, inbox: Inbox) -> None:
    """The request reaches us as http://localhost/hooks/hubspot (behind a proxy); HubSpot signed PUBLIC_URL."""
    response = http.post("/hooks/hubspot", data=BODY, headers=signed_headers(BODY))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["new"] == 1
    assert [e.properties for e in inbox.events] == [{"first_name": "유진"}]


def test_view_signed_for_the_internal_url_is_refused(http, inbox: Inbox) -> None:
    response = http.post("/hooks/hubspot", data=BODY, headers=signed_headers(BODY, uri="http://localhost/hooks/hubspot"))
    assert response.status_code == 401
    assert inbox.events == []


@pytest.mark.parametrize("case", ["tampered", "stale", "future", "wrong-secret", "unsigned"])
def test_view_refuses_bad_signatures_and_stores_nothing(http, inbox: Inbox, case: str) -> None:
    headers = {
        "tampered": signed_headers(BODY),
        "stale": signed_headers(BODY, at=time.time() - 600),
        "future": signed_headers(BODY, at=time.time() + 600),
        "wrong-secret": signed_headers(BODY, secret="not-the-secret"),
        "unsigned": {"Content-Type": "application/json"},
    }[case]
    body = BODY + b" " if case == "tampered" else BODY
    response = http.post("/hooks/hubspot", data=body, headers=headers)
    assert response.status_code == 401
    assert inbox.events == []
    assert CLIENT_SECRET not in response.get_data(as_text=True)


def test_view_without_a_client_secret_refuses_everything(http, inbox: Inbox, monkeypatch) -> None:
    monkeypatch.delenv("HUBSPOT_CLIENT_SECRET")
    response = http.post("/hooks/hubspot", data=BODY, headers=signed_headers(BODY))
    assert response.status_code == 503
    assert inbox.events == []


def test_view_without_public_url_uses_the_request_url(inbox: Inbox) -> None:
    client = receiver_app({}, inbox).test_client()
    response = client.post("/hooks/hubspot?portal=62515", data=BODY,
                           headers=signed_headers(BODY, uri="http://localhost/hooks/hubspot?portal=62515"))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_view_refuses_a_signed_body_that_is_not_a_batch(http, inbox: Inbox) -> None:
    for body in (b"{not json", b'{"eventId": 1}'):
        response = http.post("/hooks/hubspot", data=body, headers=signed_headers(body))
        assert response.status_code == 400
    assert inbox.events == []


def test_invalid_settings_refuse_with_503_and_a_pointer_to_the_log(inbox: Inbox, caplog) -> None:
    client = receiver_app({"public_url": PUBLIC_URL, "max_agee": 3}, inbox).test_client()
    response = client.post("/hooks/hubspot", data=BODY, headers=signed_headers(BODY))
    assert response.status_code == 503 and "log" in response.json["error"]
    assert "plugins.hubspot.max_agee" in caplog.text
    assert inbox.events == []
