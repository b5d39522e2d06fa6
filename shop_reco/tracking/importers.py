"""Readers for historical event files: our CSV, event JSON lines, and OTTO session JSON lines.

Each reader yields keyword arguments for :func:`shop_reco.tracking.events.make_row`, or an
:class:`InvalidEvent` for a line that cannot be read (the importer counts and skips those). Every yielded
event carries a deterministic ``client_event_id``, so importing the same file twice stores each event once.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from shop_reco.tracking.events import InvalidEvent

CSV_COLUMNS = (
    "event_type",
    "visitor_id",
    "user_id",
    "product_key",
    "quantity",
    "unit_price",
    "basket_ref",
    "occurred_at",
)
OPTIONAL_COLUMNS = ("slot", "token", "client_event_id", "context")
OTTO_TYPES = {"clicks": "view", "carts": "add_to_cart", "orders": "purchase"}

Record = dict[str, Any] | InvalidEvent


def read_events(stream: TextIO, fmt: str) -> Iterator[Record]:
    if fmt == "csv":
        return read_csv(stream)
    if fmt in ("jsonl", "otto"):
        return read_jsonl(stream)
    raise ValueError(f"Unknown format {fmt!r}; use csv or jsonl.")


def read_csv(stream: TextIO) -> Iterator[Record]:
    reader = csv.DictReader(stream)
    missing = [name for name in CSV_COLUMNS if name not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"CSV is missing column(s): {', '.join(missing)}")
    for line_no, raw in enumerate(reader, start=2):
        try:
            yield _event_kwargs(raw, source=f"csv:{line_no}")
        except InvalidEvent as exc:
            yield exc


def read_jsonl(lines: Iterable[str]) -> Iterator[Record]:
    """Event objects, one per line, or OTTO sessions (``{"session": .., "events": [..]}``), auto-detected."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            yield InvalidEvent({"line": [f"Line {line_no}: malformed JSON ({exc})."]})
            continue
        if isinstance(data, dict) and "session" in data and "events" in data:
            yield from otto_session(data)
        elif isinstance(data, dict):
            try:
                yield _event_kwargs(data, source=f"jsonl:{line_no}")
            except InvalidEvent as exc:
                yield exc
        else:
            yield InvalidEvent({"line": [f"Line {line_no}: expected a JSON object."]})


def otto_session(data: dict[str, Any]) -> Iterator[Record]:
    """One OTTO session: clicks -> view, carts -> add_to_cart, orders -> purchase; session -> visitor."""
    session = data.get("session")
    events = data.get("events")
    if not isinstance(session, int) or not isinstance(events, list):
        yield InvalidEvent({"session": ["Expected an integer session and a list of events."]})
        return
    for event in events:
        try:
            aid, ts, kind = event["aid"], event["ts"], event["type"]
            event_type = OTTO_TYPES[kind]
            occurred_at = datetime.fromtimestamp(int(ts) / 1000, UTC)
        except (KeyError, TypeError, ValueError, OverflowError):
            yield InvalidEvent({"events": [f"Session {session}: unreadable event {event!r}."]})
            continue
        yield {
            "event_type": event_type,
            "visitor_id": str(session),
            "product_key": str(aid),
            # Orders sharing a timestamp are one checkout: one basket for bought-together.
            "basket_ref": f"otto-{session}-{ts}" if event_type == "purchase" else "",
            "client_event_id": f"otto:{session}:{ts}:{aid}:{kind}",
            "occurred_at": occurred_at,
        }


def _event_kwargs(raw: dict[str, Any], *, source: str) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    kwargs: dict[str, Any] = {"event_type": raw.get("event_type") or ""}
    for name in ("visitor_id", "product_key", "basket_ref", "slot", "token"):
        value = raw.get(name)
        kwargs[name] = "" if value is None else str(value)
    user = raw.get("user_id")
    kwargs["user_id"] = None if user in (None, "") else (int(user) if str(user).isdigit() else str(user))
    quantity = raw.get("quantity")
    try:
        kwargs["quantity"] = 1 if quantity in (None, "") else int(quantity)
    except (TypeError, ValueError):
        errors["quantity"] = [f"{source}: {quantity!r} is not a whole number."]
    price = raw.get("unit_price")
    kwargs["unit_price"] = None if price in (None, "") else price
    when = raw.get("occurred_at")
    try:
        occurred_at = datetime.fromisoformat(str(when))
        kwargs["occurred_at"] = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
    except ValueError:
        errors["occurred_at"] = [f"{source}: {when!r} is not an ISO 8601 date and time."]
    context = raw.get("context")
    if isinstance(context, str) and context:
        try:
            context = json.loads(context)
        except ValueError:
            errors["context"] = [f"{source}: context is not JSON."]
    kwargs["context"] = context or {}
    if errors:
        raise InvalidEvent(errors)
    client_id = raw.get("client_event_id")
    if not client_id:
        # Same line, same id: a re-import is a no-op (two identical lines collapse into one event).
        fingerprint = json.dumps(
            [
                kwargs[name] if name != "occurred_at" else str(kwargs[name])
                for name in (*CSV_COLUMNS, "slot", "token")
            ],
            default=str,
        )
        client_id = "import:" + hashlib.sha1(fingerprint.encode()).hexdigest()
    kwargs["client_event_id"] = str(client_id)
    return kwargs
