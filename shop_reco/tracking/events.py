"""One event as a JSON-ready row: the single validation every way in goes through.

A row is a plain dict with the :class:`~shop_reco.models.Event` field names (``user_id`` for the user), prices
as strings and times as ISO 8601 strings, so the same dict can be buffered in Redis, copied into PostgreSQL
and turned into a model instance without another schema.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from shop_reco.conf import reco_settings

ROW_FIELDS = (
    "event_type",
    "visitor_id",
    "user_id",
    "product_key",
    "quantity",
    "unit_price",
    "basket_ref",
    "slot",
    "token",
    "client_event_id",
    "context",
    "occurred_at",
)
# Column sizes of the Event model; a longer value is an error, never silently cut.
MAX_LENGTH = 64
MAX_QUANTITY = 1_000_000
PRICE_STEP = Decimal("0.01")
MAX_PRICE = Decimal("9999999999.99")  # max_digits=12, decimal_places=2


class InvalidEvent(ValueError):
    """The event cannot be stored; ``errors`` maps each bad field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()))


# Event ids need to be unique, not secret: a generator seeded from the OS per process (again in a forked child,
# which would otherwise repeat its parent's ids) costs a fraction of a getrandom() system call per event.
_event_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _event_ids.seed(os.urandom(32)))


def new_event_id() -> str:
    """Server-side id for an event that came without one, so a re-delivered batch is stored once.

    128 random bits as 32 hex digits, the shape of ``uuid4().hex``."""
    return f"{_event_ids.getrandbits(128):032x}"


def order_event_id(order_ref: str, product_key: str) -> str:
    """Deterministic id of an order line's purchase event: the live signal and a later import agree."""
    value = f"order:{order_ref}:{product_key}"
    if len(value) <= MAX_LENGTH:
        return value
    return "order:" + hashlib.sha1(value.encode()).hexdigest()


def make_row(
    event_type: str,
    *,
    visitor_id: str = "",
    user_id: int | str | None = None,
    product_key: Any = "",
    quantity: int = 1,
    unit_price: Decimal | float | int | str | None = None,
    basket_ref: str = "",
    slot: str = "",
    token: str = "",
    client_event_id: str | None = None,
    context: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """Validate one event and return it as a row; raises :class:`InvalidEvent` naming each bad field."""
    errors: dict[str, list[str]] = {}

    if not isinstance(event_type, str) or event_type not in reco_settings.event_types:
        errors["event_type"] = [f"Unknown event type {event_type!r}."]

    if product_key is None:
        product_key = ""
    elif isinstance(product_key, int) and not isinstance(product_key, bool):
        product_key = str(product_key)
    strings = {
        "visitor_id": visitor_id,
        "product_key": product_key,
        "basket_ref": basket_ref,
        "slot": slot,
        "token": token,
    }
    if client_event_id is None:
        client_event_id = new_event_id()
    strings["client_event_id"] = client_event_id
    for name, value in strings.items():
        problem = _string_problem(value)
        if problem:
            errors[name] = [problem]
    if not client_event_id:
        errors["client_event_id"] = ["May not be blank."]

    if isinstance(quantity, bool) or not isinstance(quantity, int):
        errors["quantity"] = ["A whole number is required."]
    elif abs(quantity) > MAX_QUANTITY:
        errors["quantity"] = [f"Must be between {-MAX_QUANTITY} and {MAX_QUANTITY}."]

    price_text: str | None = None
    if unit_price is not None:
        price_text = _price_text(unit_price)
        if price_text is None:
            errors["unit_price"] = ["A number with at most 10 digits before the decimal point is required."]

    context = {} if context is None else context
    encoded: EncodedContext | None
    if type(context) is CheckedContext:  # validated when made, and it cannot have changed since
        problem, encoded = "", context
    else:
        problem, context_json = _checked_context(context)
        # A copy that keeps the JSON text validated here: the buffer's line reuses it instead of encoding again.
        encoded = None if problem else EncodedContext(context, context_json)
    if problem:
        errors["context"] = [problem]

    if occurred_at is None:
        occurred_at = datetime.now(UTC)  # stored as UTC text either way (USE_TZ or not)
    elif not isinstance(occurred_at, datetime):
        errors["occurred_at"] = ["A datetime is required."]
    elif timezone.is_naive(occurred_at):
        occurred_at = timezone.make_aware(occurred_at)

    if user_id is not None and (isinstance(user_id, bool) or not isinstance(user_id, int | str)):
        errors["user_id"] = ["A user primary key is required."]

    if errors:
        raise InvalidEvent(errors)
    return {
        "event_type": event_type,
        "visitor_id": visitor_id,
        "user_id": user_id,
        "product_key": product_key,
        "quantity": quantity,
        "unit_price": price_text,
        "basket_ref": basket_ref,
        "slot": slot,
        "token": token,
        "client_event_id": client_event_id,
        "context": encoded,
        # UTC ISO text: PostgreSQL COPY and datetime.fromisoformat both read it without help.
        "occurred_at": occurred_at.astimezone(UTC).isoformat(),  # type: ignore[union-attr]
    }


def _string_problem(value: Any) -> str:
    if not isinstance(value, str):
        return "A string is required."
    if len(value) > MAX_LENGTH:
        return f"At most {MAX_LENGTH} characters."
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        return "Null characters are not allowed."
    return ""


def _price_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    try:
        price = Decimal(str(value)).quantize(PRICE_STEP)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not price.is_finite() or abs(price) > MAX_PRICE:
        return None
    return str(price)


class EncodedContext(dict):
    """A row's context: a plain dict to every reader, holding the compact JSON text it was validated as.

    The text is what :func:`to_copy_line` writes, so an event's context is encoded once, not twice. Rows are
    built and stored, not edited: the text is the context as it was when the event was made.
    """

    __slots__ = ("json",)

    def __init__(self, value: dict[str, Any], text: str) -> None:
        super().__init__(value)
        self.json = text


class CheckedContext(EncodedContext):
    """An event context validated once and then reused by many events (a memoised slot's impression):
    read-only, so the JSON text it carries always is its content. Make one with :func:`checked_context`."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("A checked event context cannot be changed; copy it with dict(context).")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self),)  # a pickled or deep-copied context is a plain dict again


def checked_context(context: dict[str, Any]) -> CheckedContext:
    """``context`` validated as an event context (:class:`InvalidEvent` naming ``context`` when it cannot be
    stored), for passing to many :func:`make_row` calls without validating it again."""
    problem, text = _checked_context(context)
    if problem:
        raise InvalidEvent({"context": [problem]})
    return CheckedContext(context, text)


# One encoder, made once: json.dumps with non-default options builds a new encoder per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _checked_context(context: Any) -> tuple[str, str]:
    """(why the context cannot be stored or "", its compact JSON text when it can): a small JSON object, no NUL
    characters."""
    if not isinstance(context, dict):
        return "A JSON object is required.", ""
    try:
        text = _COMPACT_JSON.encode(context)
    except (TypeError, ValueError):
        return "Must contain only JSON values (strings, numbers, booleans, null, lists, objects).", ""
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): PostgreSQL jsonb rejects it
        return "Must be valid Unicode text (no unpaired surrogates).", ""
    limit = reco_settings.EVENT_CONTEXT_MAX_BYTES
    if size > limit:
        return f"At most {limit} bytes of JSON.", ""
    if "\\u0000" in text:  # PostgreSQL jsonb rejects it
        return "Null characters are not allowed.", ""
    return "", text


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_UNESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
_COPY_ESCAPED = re.compile(r"\\(.)")


def to_copy_line(row: dict[str, Any]) -> str:
    """The row as one line of PostgreSQL's COPY text format, the Redis buffer's format.

    A flush can then hand a whole batch to ``COPY`` without decoding it in Python.
    """
    values = []
    for name in ROW_FIELDS:
        value = row.get(name)
        if name == "context":
            value = value.json if isinstance(value, EncodedContext) else _COMPACT_JSON.encode(value or {})
        if value is None:
            values.append("\\N")
            continue
        text = value if isinstance(value, str) else str(value)
        # Most values have nothing to escape; four substring scans are far cheaper than translate().
        if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
            text = text.translate(_COPY_ESCAPES)
        values.append(text)
    return "\t".join(values)


def from_copy_line(line: bytes | str) -> dict[str, Any]:
    """A row back from :func:`to_copy_line` (for the rare slow path and for databases without COPY)."""
    text = line.decode() if isinstance(line, bytes) else line
    raw = dict(zip(ROW_FIELDS, text.split("\t"), strict=True))
    row: dict[str, Any] = {
        name: None if value == "\\N" else _COPY_ESCAPED.sub(lambda m: _COPY_UNESCAPES.get(m[1], m[1]), value)
        for name, value in raw.items()
    }
    row["quantity"] = int(row["quantity"])
    user = row["user_id"]
    row["user_id"] = int(user) if user is not None and user.isdigit() else user
    row["context"] = json.loads(row["context"] or "{}")
    return row


def row_to_model_kwargs(row: dict[str, Any]) -> dict[str, Any]:
    """Field values for ``Event(**kwargs)`` from a row (for the ORM write path)."""
    price = row.get("unit_price")
    return {
        "event_type": row["event_type"],
        "visitor_id": row.get("visitor_id") or "",
        "user_id": row.get("user_id"),
        "product_key": row.get("product_key") or "",
        "quantity": row.get("quantity", 1),
        "unit_price": Decimal(price) if price is not None else None,
        "basket_ref": row.get("basket_ref") or "",
        "slot": row.get("slot") or "",
        "token": row.get("token") or "",
        "client_event_id": row.get("client_event_id"),
        "context": row.get("context") or {},
        "occurred_at": datetime.fromisoformat(row["occurred_at"]),
    }
