"""The simple-salesforce client, and what its exceptions mean for the dispatcher (retry or give up).

simple-salesforce never retries and has no notion of throttling: Salesforce answers a spent API allowance with
HTTP 403 `REQUEST_LIMIT_EXCEEDED` (not 429), which the library raises as `SalesforceRefusedRequest`, the same
class as a genuine permission error. `classify` tells them apart by `errorCode`.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (SalesforceError, SalesforceExpiredSession, SalesforceGeneralError,
                                          SalesforceRefusedRequest)

from crmrules.api import PushFailed, RetryLater
from crmrules.config import secret

from .settings import SECRETS, SalesforceSettings

T = TypeVar("T")

TRANSIENT_CODES = {"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "API_CURRENTLY_DISABLED"}
"""Error codes that go away by themselves: the daily allowance refills, a row lock is released."""


class TimeoutSession(requests.Session):
    """simple-salesforce passes no timeout, so a stalled connection would hold a dispatcher forever."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


_clients: dict[str, Salesforce] = {}
_lock = threading.Lock()
_shared_session: requests.Session | None = None


def use_session(session: requests.Session | None) -> requests.Session | None:
    """Make every Salesforce call of this process go through `session` (None: each client its own, with the
    `timeout` option); returns the one used before. For tests (a local stand-in) and embedders (proxies, mTLS):
    the plugin's push and pull are handed only its context, which has no place for a live object."""

    global _shared_session
    before, _shared_session = _shared_session, session
    return before


def _credentials(options: SalesforceSettings) -> dict[str, Any]:
    instance_url = options.instance_url or secret(SECRETS["instance_url"])
    session_id = secret(SECRETS["session_id"])
    if instance_url and session_id:
        return {"instance_url": instance_url if "://" in instance_url else f"https://{instance_url}",
                "session_id": session_id}
    username, password = secret(SECRETS["username"]), secret(SECRETS["password"])
    if username and password:
        return {"username": username, "password": password,
                "security_token": secret(SECRETS["security_token"]) or "", "domain": options.domain}
    raise PushFailed("no Salesforce credentials: set SALESFORCE_INSTANCE_URL and SALESFORCE_SESSION_ID, or "
                     "SALESFORCE_USERNAME, SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN")


def connect(options: SalesforceSettings, session: requests.Session | None = None) -> Salesforce:
    """A client for these options, reused while the credentials stay the same (a password login costs a call).

    `session` (else the one given to `use_session`) replaces the HTTP session.
    """

    session = session if session is not None else _shared_session
    creds = _credentials(options)
    version = {"version": options.api_version} if options.api_version else {}
    if session is not None:  # the caller owns the session, and so the client: nothing to reuse or share
        return _login(creds, version, session)
    # Per thread too: the dispatcher and the poller run on their own threads, and a requests.Session is not
    # meant to be shared between threads.
    key = hashlib.sha256(repr((sorted(creds.items()), version, options.timeout,
                               threading.get_ident())).encode()).hexdigest()
    with _lock:
        client = _clients.get(key)
    if client is None:
        client = _login(creds, version, TimeoutSession(options.timeout))
        with _lock:
            _clients[key] = client
    return client


def _login(creds: dict[str, Any], version: dict[str, Any], session: requests.Session) -> Salesforce:
    try:
        return Salesforce(**creds, **version, session=session)
    except SalesforceError as exc:  # a password login that failed
        raise classify(exc) from exc
    except requests.RequestException as exc:
        raise RetryLater(f"Salesforce login unreachable: {exc}") from exc


def forget(client: Salesforce) -> None:
    """Drop a cached client whose session expired, so the next call logs in (or reads a rotated token) again."""

    with _lock:
        for key, cached in list(_clients.items()):
            if cached is client:
                del _clients[key]


def errors(exc: SalesforceError) -> list[dict[str, Any]]:
    """Salesforce's `[{"message", "errorCode", "fields"}]` from an exception (or one synthesised from its text)."""

    content = exc.content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list) and all(isinstance(e, dict) for e in content):
        return content
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return [{"message": text[:500], "errorCode": f"HTTP_{exc.status}"}]


def codes(exc: SalesforceError) -> set[str]:
    return {str(e.get("errorCode", "")) for e in errors(exc)}


def describe(exc: SalesforceError) -> str:
    return "; ".join(f"{e.get('errorCode', '?')}: {e.get('message', '')}" for e in errors(exc))


def classify(exc: BaseException, limit_retry_after: float = 900.0) -> Exception:
    """The crmrules error for a failed call: RetryLater for passing trouble, PushFailed for the rest."""

    if isinstance(exc, (RetryLater, PushFailed)):
        return exc
    if isinstance(exc, requests.Timeout):
        return RetryLater(f"Salesforce did not answer in time: {exc}")
    if isinstance(exc, requests.ConnectionError):
        return RetryLater(f"Salesforce unreachable: {exc}")
    if isinstance(exc, SalesforceError):
        found = codes(exc)
        if "REQUEST_LIMIT_EXCEEDED" in found:
            return RetryLater(f"Salesforce API limit reached ({describe(exc)})", retry_after=limit_retry_after)
        if isinstance(exc, SalesforceExpiredSession):
            return RetryLater(f"Salesforce session expired or invalid; renew SALESFORCE_SESSION_ID "
                              f"({describe(exc)})", retry_after=60)
        if found & TRANSIENT_CODES or (isinstance(exc, SalesforceGeneralError) and exc.status >= 500):
            return RetryLater(f"Salesforce answered {exc.status}: {describe(exc)}")
        if isinstance(exc, SalesforceRefusedRequest):
            return PushFailed(f"Salesforce refused the request (403): {describe(exc)}")
        return PushFailed(f"Salesforce answered {exc.status}: {describe(exc)}")
    if isinstance(exc, requests.RequestException):
        return RetryLater(f"HTTP error talking to Salesforce: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class Api:
    """One push's or poll's access to Salesforce: every call goes through `run`, which classifies failures.

    A client logged in with username/password gets one fresh login when its session expires mid-way.
    """

    def __init__(self, options: SalesforceSettings, session: requests.Session | None = None):
        self.options = options
        self.session = session
        self.sf = connect(options, session)

    def run(self, fn: Callable[[Salesforce], T]) -> T:
        try:
            return fn(self.sf)
        except SalesforceExpiredSession as exc:
            forget(self.sf)
            if getattr(self.sf, "auth_type", None) != "password":
                raise classify(exc, self.options.limit_retry_after) from exc
            self.sf = connect(self.options, self.session)
            try:
                return fn(self.sf)
            except (SalesforceError, requests.RequestException) as again:
                raise classify(again, self.options.limit_retry_after) from again
        except (SalesforceError, requests.RequestException) as exc:
            raise classify(exc, self.options.limit_retry_after) from exc
