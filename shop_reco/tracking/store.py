"""Writing event rows to the database, each ``client_event_id`` once.

The buffer keeps rows as lines of PostgreSQL's COPY text format (``events.to_copy_line``), so on PostgreSQL
with psycopg 3 a flushed batch goes to the event table in one ``COPY`` without being decoded in Python. When
that meets an id already stored (a batch re-delivered after a crash, a retried client event) or an erased
user, the batch takes the slow, idempotent way instead: ``COPY`` into a temporary ``jsonb`` table, then
``INSERT ... SELECT ... ON CONFLICT (client_event_id) DO NOTHING`` keeping only existing users. Elsewhere
(and for a handful of rows): ``bulk_create`` with ``ignore_conflicts``. Every way runs in one transaction: a
batch is stored whole or not at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Field

from shop_reco.models import Event
from shop_reco.tracking.events import ROW_FIELDS, from_copy_line, row_to_model_kwargs, to_copy_line
from shop_reco.tracking.history import forget_batch, forget_rows

# Below this many rows a multi-row INSERT is cheaper than COPY.
COPY_MIN_ROWS = 200


def write_rows(rows: Sequence[dict[str, Any]], *, verify_users: bool = True, exact: bool = True) -> int:
    """Store rows (see :mod:`shop_reco.tracking.events`) all-or-nothing; returns how many were new.

    ``exact=False`` skips the query that makes the count exact on the ``bulk_create`` path (the request path
    does not need the count).
    """
    if not rows:
        return 0
    if len(rows) >= COPY_MIN_ROWS and _can_copy():
        return write_copy_lines([to_copy_line(row).encode() for row in rows])
    stored = _bulk_create(rows, verify_users=verify_users, exact=exact)
    forget_rows(rows)
    return stored


def write_copy_lines(lines: Sequence[bytes], merges: dict[str, str] | None = None) -> int:
    """Store buffered rows (COPY text lines); returns how many were new.

    ``merges`` maps visitor ids to the user each logged in as meanwhile: their anonymous events become the
    user's.
    """
    if not lines:
        return 0
    return write_copy_batch(b"\n".join(lines), merges)


def write_copy_batch(batch: bytes, merges: dict[str, str] | None = None) -> int:
    """:func:`write_copy_lines` for the lines already joined by newlines, as a flush takes them from Redis.

    The common case never splits the batch in Python: one regex pass for the user ids, then one ``COPY``.
    """
    if not batch:
        return 0
    stored = _write_copy_batch(batch, merges)
    forget_batch(batch, merges)  # the storefront's cached histories of these shoppers are stale now
    return stored


def _write_copy_batch(batch: bytes, merges: dict[str, str] | None) -> int:
    if not _can_copy():
        rows = [from_copy_line(line) for line in batch.split(b"\n")]
        _apply_merges(rows, merges)
        return _bulk_create(rows, verify_users=True)
    if not _all_users_exist(batch):
        return _slow_path(batch.split(b"\n"), merges)
    qn = connection.ops.quote_name
    columns = ", ".join(qn(_column(name)) for name in ROW_FIELDS)
    try:
        # wrap_database_errors: cursor.copy() is psycopg's own, so map its errors to Django's.
        with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.copy(f"COPY {qn(Event._meta.db_table)} ({columns}) FROM STDIN") as copy:
                copy.write(batch)
            if merges:
                _merge_in_sql(cursor, merges)
        return batch.count(b"\n") + 1
    except IntegrityError:
        # Some ids are stored already (or repeat within the batch): insert only what is new.
        return _slow_path(batch.split(b"\n"), merges)


def _can_copy() -> bool:
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3  # psycopg 2 has no cursor.copy()


def _column(name: str) -> str:
    field = Event._meta.get_field("user" if name == "user_id" else name)
    assert isinstance(field, Field) and field.column is not None
    return field.column


# The user_id field of every COPY line (the third field, as ROW_FIELDS orders them).
_USER_IDS = re.compile(rb"^(?:[^\t\n]*\t){%d}([^\t\n]*)" % ROW_FIELDS.index("user_id"), re.MULTILINE)


def _all_users_exist(batch: bytes) -> bool:
    """One query per batch: an erased user's events still in the buffer would fail the foreign key."""
    user_ids = set(_USER_IDS.findall(batch))
    user_ids.discard(b"\\N")
    if not user_ids:
        return True
    model = get_user_model()
    wanted = {value.decode() for value in user_ids}
    found = model._default_manager.filter(pk__in=wanted).values_list("pk", flat=True)
    return len(wanted) == len({str(pk) for pk in found})


def _merge_in_sql(cursor: Any, merges: dict[str, str]) -> None:
    qn = connection.ops.quote_name
    user_type = Event._meta.get_field("user").db_type(connection)
    cursor.execute(
        f"UPDATE {qn(Event._meta.db_table)} SET {qn(_column('user_id'))} = m.customer::{user_type} "
        "FROM unnest(%s::text[], %s::text[]) AS m(visitor, customer) "
        f"WHERE {qn(_column('visitor_id'))} = m.visitor AND {qn(_column('user_id'))} IS NULL",
        [list(merges), list(merges.values())],
    )


def _apply_merges(rows: list[dict[str, Any]], merges: dict[str, str] | None) -> None:
    if not merges:
        return
    for row in rows:
        if row.get("user_id") is None and row.get("visitor_id") in merges:
            row["user_id"] = merges[row["visitor_id"]]


def _slow_path(lines: Sequence[bytes], merges: dict[str, str] | None) -> int:
    rows = [from_copy_line(line) for line in lines]
    _apply_merges(rows, merges)
    return _insert_via_temp_table([json.dumps(row, separators=(",", ":")).encode() for row in rows])


def _bulk_create(rows: Sequence[dict[str, Any]], *, verify_users: bool, exact: bool = True) -> int:
    unique: dict[str, dict[str, Any]] = {}
    without_id: list[dict[str, Any]] = []
    for row in rows:
        key = row.get("client_event_id")
        if key is None:
            without_id.append(row)
        else:
            unique.setdefault(key, row)
    batch = [*unique.values(), *without_id]
    if verify_users:
        # An erased account's events still in the buffer are dropped, not turned into an FK error.
        user_ids = {row["user_id"] for row in batch if row.get("user_id") is not None}
        if user_ids:
            model = get_user_model()
            existing = {
                str(pk) for pk in model._default_manager.filter(pk__in=user_ids).values_list("pk", flat=True)
            }
            batch = [row for row in batch if row.get("user_id") is None or str(row["user_id"]) in existing]
    if exact and unique:
        # Exact "new rows" counts for imports; ignore_conflicts below still covers a race.
        stored: set[str] = set()
        keys = list(unique)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            stored.update(
                str(key)
                for key in Event.objects.filter(client_event_id__in=chunk).values_list(
                    "client_event_id", flat=True
                )
            )
        batch = [row for row in batch if row.get("client_event_id") not in stored]
    objects = [Event(**row_to_model_kwargs(row)) for row in batch]
    with transaction.atomic():
        Event.objects.bulk_create(objects, batch_size=1000, ignore_conflicts=True)
    return len(objects)


def _insert_via_temp_table(lines: Sequence[bytes]) -> int:
    """COPY into a temporary jsonb table, then INSERT ... ON CONFLICT DO NOTHING: stores only new ids."""
    qn = connection.ops.quote_name
    user_model = get_user_model()
    user_pk = user_model._meta.pk
    assert user_pk is not None and user_pk.column is not None
    assert user_pk is not None
    user_type = Event._meta.get_field("user").db_type(connection)
    columns = [_column(name) for name in ROW_FIELDS]
    # COPY's text format treats backslash as an escape; JSON text never holds a raw tab or newline.
    payload = b"\n".join(line.replace(b"\\", b"\\\\") for line in lines)
    load = "shop_reco_event_load"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {load} (j jsonb) ON COMMIT DROP")
        with connection.wrap_database_errors, cursor.copy(f"COPY {load} (j) FROM STDIN") as copy:
            copy.write(payload)
        cursor.execute(
            f"""
            INSERT INTO {qn(Event._meta.db_table)} ({", ".join(qn(c) for c in columns)})
            SELECT l.j->>'event_type',
                   coalesce(l.j->>'visitor_id', ''),
                   (l.j->>'user_id')::{user_type},
                   coalesce(l.j->>'product_key', ''),
                   coalesce((l.j->>'quantity')::integer, 1),
                   (l.j->>'unit_price')::numeric,
                   coalesce(l.j->>'basket_ref', ''),
                   coalesce(l.j->>'slot', ''),
                   coalesce(l.j->>'token', ''),
                   l.j->>'client_event_id',
                   coalesce(l.j->'context', '{{}}'::jsonb),
                   (l.j->>'occurred_at')::timestamptz
            FROM {load} l
            WHERE l.j->>'user_id' IS NULL OR EXISTS (
                SELECT 1 FROM {qn(user_model._meta.db_table)} u
                WHERE u.{qn(user_pk.column)} = (l.j->>'user_id')::{user_type}
            )
            ON CONFLICT ({qn(_column("client_event_id"))}) DO NOTHING
            """
        )
        stored = max(cursor.rowcount, 0)
        # ON COMMIT DROP alone is not enough when a caller's transaction spans several batches.
        cursor.execute(f"DROP TABLE {load}")
        return stored
