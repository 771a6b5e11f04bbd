"""The few HubSpot calls the plugin makes, through hubspot-api-client, with HubSpot's failures translated.

One generic CRM objects API (`/crm/v3/objects/{type}`) serves contacts, companies, deals, tasks and notes, so
there is one connection pool and one exception class to translate. The client's own retries are switched
off: by default urllib3 silently re-sends GET/PUT/DELETE after a 429 with Retry-After, sleeping inside the
dispatcher's thread; the dispatcher owns retries and backoff, and we tell it when (`RetryLater.retry_after`).

Translation: 429 → RetryLater(retry_after = Retry-After); 5xx, timeouts, refused connections → RetryLater;
any other 4xx → PushFailed carrying HubSpot's own message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import json
import threading
from typing import Any, Callable, TypeVar

import urllib3
from hubspot import HubSpot
from hubspot.crm.objects import (AssociationSpec, Filter, FilterGroup, PublicAssociationsForObject, PublicObjectId,
                                 PublicObjectSearchRequest, SimplePublicObjectInput,
                                 SimplePublicObjectInputForCreate)
from hubspot.marketing.transactional import PublicSingleSendEmail, PublicSingleSendRequestEgg

from crmrules.api import PushFailed, RetryLater

T = TypeVar("T")

DEFAULT_HOST = "https://api.hubapi.com"


class Unreachable(RetryLater):
    """No HTTP answer (timeout, refused, reset): a write may or may not have been applied."""


class NotFound(PushFailed):
    """HubSpot answered 404: the record is gone (deleted, or merged away)."""


class Client:
    """A HubSpot account seen through a private-app or OAuth access token."""

    def __init__(self, token: str, host: str | None = None, timeout: float = 10.0):
        self.timeout = timeout
        self.host = host or DEFAULT_HOST
        no_retries = urllib3.util.Retry(total=0, respect_retry_after_header=False, raise_on_status=False)
        api = HubSpot(access_token=token, host=host, retry=no_retries)
        # Each property access of the discovery layer builds a new ApiClient (and pool): build each once.
        self._objects = api.crm.objects.basic_api
        self._search = api.crm.objects.search_api
        self._single_send = api.marketing.transactional.single_send_api

    # ------------------------------------------------------------ records

    def get(self, object_type: str, object_id: str, names: list[str]) -> dict[str, str | None]:
        found = self._call(f"GET {object_type}/{object_id}", self._objects.get_by_id, object_type, object_id,
                           properties=names)
        return dict(found.properties or {})

    def update(self, object_type: str, object_id: str, props: dict[str, str]) -> None:
        self._call(f"PATCH {object_type}/{object_id}", self._objects.update, object_type, object_id,
                   SimplePublicObjectInput(properties=props))

    def create(self, object_type: str, props: dict[str, str],
               associations: list[tuple[str, int]] = ()) -> str:  # type: ignore[assignment]
        links = [PublicAssociationsForObject(
            to=PublicObjectId(id=to_id),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)])
            for to_id, type_id in associations]
        created = self._call(f"POST {object_type}", self._objects.create, object_type,
                             SimplePublicObjectInputForCreate(properties=props, associations=links or None))
        return str(created.id)

    def search(self, object_type: str, filters: list[tuple[str, str, str]], names: list[str] | None = None,
               sort: tuple[str, str] | None = None, limit: int = 10,
               after: str | None = None) -> tuple[list[Any], str | None]:
        """One page of a CRM search: (records, the `after` of the next page or None)."""

        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name=p, operator=op, value=v)
                                                for p, op, v in filters])] if filters else None,
            sorts=[{"propertyName": sort[0], "direction": sort[1]}] if sort else None,
            properties=names, limit=limit, after=after)
        page = self._call(f"search {object_type}", self._search.do_search, object_type, request)
        nxt = page.paging.next.after if page.paging and page.paging.next else None
        return list(page.results or []), nxt

    def find_one(self, object_type: str, prop: str, value: str, names: list[str] | None = None) -> Any | None:
        results, _ = self.search(object_type, [(prop, "EQ", value)], names=names, limit=1)
        return results[0] if results else None

    # ------------------------------------------------------------ email

    def send_transactional(self, email_id: int, to: str, send_id: str, custom: dict[str, Any]) -> str:
        """Single-send: HubSpot sends at most one email per `sendId`, which makes the push idempotent."""

        body = PublicSingleSendRequestEgg(email_id=email_id, message=PublicSingleSendEmail(to=to, send_id=send_id),
                                          custom_properties=custom or None)
        status = self._call("single-send email", self._single_send.send_email, body)
        return str(status.status_id)

    # ------------------------------------------------------------ errors

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused connections, broken responses
            raise Unreachable(f"HubSpot unreachable during {what}: {type(exc).__name__}") from exc
        except OSError as exc:
            raise Unreachable(f"HubSpot unreachable during {what}: {exc}") from exc
        except Exception as exc:
            status = getattr(exc, "status", None)
            if not isinstance(status, int):
                raise
            raise translate(status, getattr(exc, "headers", None), getattr(exc, "body", None), what) from exc


def translate(status: int, headers: Any, body: Any, what: str) -> Exception:
    info = _error_body(body)
    message = readable_message(info)
    if status == 429:
        policy = info.get("policyName")
        return RetryLater(f"HubSpot rate limit{f' ({policy})' if policy else ''} on {what}",
                          retry_after=retry_after(headers, policy))
    if status >= 500:
        return RetryLater(f"HubSpot answered {status} to {what}" + (f": {message}" if message else ""),
                          retry_after=retry_after(headers, None))
    detail = f"HubSpot answered {status} to {what}" + (f": {message}" if message else "")
    if status == 401:
        return PushFailed(detail + " (check HUBSPOT_ACCESS_TOKEN)")
    if status == 403:
        return PushFailed(detail + " (the token lacks a scope this action needs)")
    if status == 404:
        return NotFound(detail)
    return PushFailed(detail)


def retry_after(headers: Any, policy: Any) -> float | None:
    """Retry-After in seconds (HubSpot sends seconds; HTTP also allows a date). Without it, HubSpot's
    ten-secondly limit has refilled after ten seconds; for the daily limit we let the dispatcher back off."""

    raw = None
    if headers is not None:
        try:
            raw = headers.get("Retry-After")
        except AttributeError:
            raw = None
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
                return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                pass
    if policy in ("TEN_SECONDLY_ROLLING", "SECONDLY"):
        return 10.0
    return None


def readable_message(info: dict[str, Any]) -> str:
    """HubSpot's `message`, with the JSON list it sometimes embeds ("Property values were not valid: [...]")
    turned back into sentences, so a dead letter reads `Property "x" does not exist (PROPERTY_DOESNT_EXIST)`."""

    message = str(info.get("message") or "").strip()
    head, sep, tail = message.partition(": [")
    if sep:
        try:
            problems = json.loads("[" + tail)
            message = "; ".join(f"{p.get('message')}" + (f" ({p['error']})" if p.get("error") else "")
                                for p in problems if isinstance(p, dict)) or message
        except ValueError:
            pass
    errors = info.get("errors")
    if isinstance(errors, list) and not sep:
        details = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
        if details:
            message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
    return message[:500]


def _error_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body[:200]}
        return parsed if isinstance(parsed, dict) else {}
    return {}


_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _cached(token: str, host: str | None, timeout: float) -> Client:
    return Client(token, host, timeout)


def client_for(token: str, host: str | None, timeout: float) -> Client:
    """A client per (token, host, timeout), kept so connections are reused across pushes."""

    with _lock:
        return _cached(token, host, timeout)
