"""Bulk writes of ranked lists into a score version: COPY on PostgreSQL, bulk upsert elsewhere.

Writes are upserts keyed on (version, kind, subject, source), so a retried shard replaces its own rows instead
of duplicating them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from django.db import connection, transaction

from shop_reco.models import RecommendationList

# (kind, subject, source, item keys best first, scores)
ListRow = tuple[str, str, str, Sequence[str], Sequence[float]]

_BATCH = 5_000


def write_lists(version_id: int, rows: Iterable[ListRow]) -> int:
    """Store ``rows`` in the version; returns how many lists were written."""
    if connection.vendor == "postgresql":
        return _copy_lists(version_id, rows)
    written = 0
    batch: list[RecommendationList] = []
    with transaction.atomic():
        for kind, subject, source, keys, scores in rows:
            batch.append(
                RecommendationList(
                    version_id=version_id,
                    kind=kind,
                    subject=subject,
                    source=source,
                    item_keys=list(keys),
                    scores=[round(float(s), 6) for s in scores],
                )
            )
            if len(batch) >= _BATCH:
                written += _upsert(batch)
                batch = []
        written += _upsert(batch)
    return written


def _upsert(batch: list[RecommendationList]) -> int:
    if batch:
        RecommendationList.objects.bulk_create(
            batch,
            update_conflicts=True,
            unique_fields=["version", "kind", "subject", "source"],
            update_fields=["item_keys", "scores"],
        )
    return len(batch)


def _copy_lists(version_id: int, rows: Iterable[ListRow]) -> int:
    table = RecommendationList._meta.db_table
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS shop_reco_list_load "
            "(kind text, subject text, source text, item_keys jsonb, scores jsonb) ON COMMIT DELETE ROWS"
        )
        # Inside an outer transaction (a test, a caller's atomic block) the commit has not emptied it yet.
        cursor.execute("TRUNCATE shop_reco_list_load")
        with cursor.cursor.copy(
            "COPY shop_reco_list_load (kind, subject, source, item_keys, scores) FROM STDIN"
        ) as copy:
            for kind, subject, source, keys, scores in rows:
                copy.write_row(
                    (
                        kind,
                        subject,
                        source,
                        json.dumps([str(key) for key in keys]),
                        json.dumps([round(float(s), 6) for s in scores]),
                    )
                )
                written += 1
        cursor.execute(
            f"INSERT INTO {table} (version_id, kind, subject, source, item_keys, scores) "
            "SELECT %s, kind, subject, source, item_keys, scores FROM shop_reco_list_load "
            f"ON CONFLICT (version_id, kind, subject, source) DO UPDATE "
            "SET item_keys = EXCLUDED.item_keys, scores = EXCLUDED.scores",
            [version_id],
        )
    return written
