"""Shopper histories for the storefront, cached, and forgotten by every write that changes one.

A history (a shopper's latest views and purchases: recently viewed, buy again, the "already bought" rule)
costs an indexed query on every page that shows a personal slot. Cached in the Django cache (Redis in
production, shared by every worker) it is one round trip; with Redis, each process also keeps the histories it
read lately, which every write path below announces to all processes as it drops them
(``shop_reco.invalidation``): then a shopper's next page reads none.

Freshness: each identity (user, visitor) has a stamp, a random token; a cached history holds the stamps it
was read under and is used only while they are current. Every write path of shop_reco drops the stamps of the
shoppers it wrote, after the rows are in: the buffer flush (one ``DEL`` per batch), direct writes, the merge
at login and the erasure. A dropped or evicted stamp is replaced by a new token, so no old history matches it
again. Writes that bypass shop_reco (the ORM by hand, the retention purge) show within
``HISTORY_CACHE_SECONDS`` plus the ``invalidation.LOCAL_SECONDS`` a process keeps its own copy.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core.cache import cache
from django.db import transaction

from shop_reco import cache_reads, invalidation
from shop_reco.conf import reco_settings

logger = logging.getLogger("shop_reco.storefront")

Rows = list[tuple[str, str, Any]]  # (event type, product key, occurred at), newest first

# The event types a history holds: the history query reads these, so only writes of these make it stale.
HISTORY_EVENT_TYPES = ("view", "purchase")
# Visitor and user columns of the buffer's COPY lines of those types (events.ROW_FIELDS: type, visitor, user).
_SHOPPERS_IN_BATCH = re.compile(
    rb"^(?:"
    + b"|".join(re.escape(kind.encode()) for kind in HISTORY_EVENT_TYPES)
    + rb")\t([^\t\n]*)\t([^\t\n]*)\t",
    re.MULTILINE,
)


# Histories this process read lately, dropped when any process announces a change (see shop_reco.invalidation).
_local_histories = invalidation.LocalValues(4096)


def clear_local_histories() -> None:
    _local_histories.clear()


def _stamp_key(kind: str, identity: Any) -> str:
    return f"shop_reco:hs:{kind}:{identity}"


def _identities(user_id: Any, visitor_id: str) -> list[str]:
    keys = []
    if user_id is not None:
        keys.append(_stamp_key("u", user_id))
    if visitor_id:
        keys.append(_stamp_key("v", visitor_id))
    return keys


def _seconds() -> float:
    return float(reco_settings.HISTORY_CACHE_SECONDS)


def cached_history(user_id: Any, visitor_id: str, load: Callable[[], Rows]) -> Rows:
    """``load()`` (the history query) through the cache; the query itself when caching is off or fails."""
    seconds = _seconds()
    stamps = _identities(user_id, visitor_id)
    if seconds <= 0 or not stamps:
        return load()
    data_key = f"shop_reco:h:{user_id if user_id is not None else ''}:{visitor_id}"
    local = _local_histories.get(data_key)
    if local is not None:
        return local  # type: ignore[no-any-return]
    token = invalidation.read_token()
    try:
        found = cache_reads.get_many([*stamps, data_key])
        current = [found.get(key) for key in stamps]
        hit = found.get(data_key)
        if hit is not None and None not in current and hit[0] == current:
            _local_histories.put(data_key, stamps, hit[1], token)
            return hit[1]  # type: ignore[no-any-return]
        for index, key in enumerate(stamps):
            if current[index] is None:
                # add(): two requests minting a stamp at once agree on the first one's token.
                cache.add(key, secrets.token_hex(8), timeout=_stamp_seconds(seconds))
                current[index] = cache.get(key)
    except Exception:  # a cache outage costs the query, never the page
        logger.warning("shop_reco could not read the history cache", exc_info=True)
        return load()
    rows = load()
    if None not in current:
        try:
            cache.set(data_key, (current, rows), timeout=seconds)
        except Exception:
            logger.warning("shop_reco could not write the history cache", exc_info=True)
        else:
            _local_histories.put(data_key, stamps, rows, token)
    return rows


def _stamp_seconds(seconds: float) -> float:
    # Stamps outlive the histories stored under them; an expired stamp only costs a query.
    return seconds * 4


def forget_histories(user_ids: Iterable[Any] = (), visitor_ids: Iterable[str] = ()) -> None:
    """Drop the stamps of these shoppers: their cached histories are not used again.

    Called once the rows are in, and again when the surrounding transaction commits (a request in between
    could have cached the history without them).
    """
    if _seconds() <= 0:
        return
    keys = [_stamp_key("u", user_id) for user_id in set(user_ids) if user_id is not None]
    keys += [_stamp_key("v", visitor_id) for visitor_id in set(visitor_ids) if visitor_id]
    if not keys:
        return
    _drop(keys)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _drop(keys))


def _drop(keys: list[str]) -> None:
    try:
        invalidation.announce(keys)  # and every process drops its own copies
    except Exception:  # the stamps then expire with HISTORY_CACHE_SECONDS
        logger.warning("shop_reco could not drop %d cached histories", len(keys), exc_info=True)


def forget_rows(rows: Sequence[dict[str, Any]]) -> None:
    """:func:`forget_histories` for the shoppers of event rows (``events.make_row`` dicts)."""
    shown = [row for row in rows if row.get("event_type") in HISTORY_EVENT_TYPES]
    if shown:
        forget_histories(
            (row.get("user_id") for row in shown), (row.get("visitor_id") or "" for row in shown)
        )


def forget_batch(batch: bytes, merges: dict[str, str] | None = None) -> None:
    """:func:`forget_histories` for a buffered batch of COPY lines, without decoding it row by row."""
    user_ids: set[bytes] = set()
    visitor_ids: set[bytes] = set()
    for visitor_id, user_id in _SHOPPERS_IN_BATCH.findall(batch):
        visitor_ids.add(visitor_id)
        user_ids.add(user_id)
    user_ids.discard(b"\\N")
    users = {value.decode() for value in user_ids}
    visitors = {value.decode() for value in visitor_ids}
    if merges:
        # The flush moves every earlier anonymous event of these visitors to their user, too.
        users.update(merges.values())
    forget_histories(users, visitors)
