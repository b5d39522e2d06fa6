"""Score version lifecycle: start (the recompute lock), progress, publish atomically, fail, prune."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from shop_reco.models import ScoreArtifact, ScoreVersion

logger = logging.getLogger(__name__)

Status = ScoreVersion.Status

# A building version that has not reported for this long belongs to a dead worker.
STALE_AFTER = timedelta(minutes=10)


class RecomputeAlreadyRunning(Exception):
    """Another recompute of the same family is building."""

    def __init__(self, version: ScoreVersion) -> None:
        super().__init__(f"{version} is already building (started {version.created_at:%Y-%m-%d %H:%M:%S})")
        self.version = version


def start_version(
    family: str, parameters: dict[str, Any], *, stale_after: timedelta = STALE_AFTER
) -> ScoreVersion:
    """Create the building version, or raise :class:`RecomputeAlreadyRunning`.

    The database's partial unique constraint is the lock, so it holds across worker machines.
    """
    fail_stale_versions(family, stale_after)
    try:
        with transaction.atomic():
            return ScoreVersion.objects.create(family=family, parameters=parameters)
    except IntegrityError:
        running = ScoreVersion.objects.filter(family=family, status=Status.BUILDING).first()
        if running is None:  # finished between our insert and this read: a retry will get the lock
            raise
        raise RecomputeAlreadyRunning(running) from None


def fail_stale_versions(family: str, stale_after: timedelta = STALE_AFTER) -> int:
    cutoff = timezone.now() - stale_after
    stale = ScoreVersion.objects.filter(family=family, status=Status.BUILDING, heartbeat_at__lt=cutoff)
    count = stale.update(status=Status.FAILED, error="No heartbeat: the worker building it stopped.")
    if count:
        logger.warning("Failed %d stale building %s version(s)", count, family)
    return count


def report_progress(
    version_id: int, *, done: int | None = None, total: int | None = None, add: int = 0
) -> None:
    """Heartbeat plus progress; ``add`` counts finished shards without a read-modify-write race."""
    from django.db.models import F

    updates: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if total is not None:
        updates["steps_total"] = total
    if done is not None:
        updates["steps_done"] = done
    elif add:
        updates["steps_done"] = F("steps_done") + add
    ScoreVersion.objects.filter(pk=version_id, status=Status.BUILDING).update(**updates)


def publish(version_id: int) -> ScoreVersion:
    """Flip the storefront to this version in one transaction; the previous one retires."""
    with transaction.atomic():
        version = ScoreVersion.objects.select_for_update().get(pk=version_id)
        if version.status != Status.BUILDING:
            raise ValueError(f"{version} cannot be published from status {version.status!r}")
        ScoreVersion.objects.filter(family=version.family, status=Status.PUBLISHED).update(
            status=Status.RETIRED
        )
        version.status = Status.PUBLISHED
        version.published_at = timezone.now()
        version.steps_done = version.steps_total
        version.save(update_fields=["status", "published_at", "steps_done"])
    ScoreArtifact.objects.filter(version_id=version_id).exclude(name__in=KEEP_ARTIFACTS).delete()
    return version


def fail(version_id: int, error: str) -> None:
    ScoreVersion.objects.filter(pk=version_id, status=Status.BUILDING).update(
        status=Status.FAILED, error=error[:10_000]
    )
    ScoreArtifact.objects.filter(version_id=version_id).delete()


def prune(family: str, keep: int) -> int:
    """Delete all but the ``keep`` newest finished versions (the published one is always kept)."""
    finished = (
        ScoreVersion.objects.filter(family=family).exclude(status=Status.BUILDING).order_by("-created_at")
    )
    keep_ids = list(finished.values_list("pk", flat=True)[: max(1, keep)])
    live = live_version(family)
    if live is not None:
        keep_ids.append(live.pk)
    deleted, _ = finished.exclude(pk__in=keep_ids).delete()
    return deleted


def live_version(family: str = "full") -> ScoreVersion | None:
    return (
        ScoreVersion.objects.filter(family=family, status=Status.PUBLISHED).order_by("-published_at").first()
    )


# Artifacts the incremental updates keep reading after publishing (the content model for new products).
KEEP_ARTIFACTS = ("item_nn",)


def artifact_names(version_id: int) -> list[str]:
    return list(ScoreArtifact.objects.filter(version_id=version_id).values_list("name", flat=True))


def save_arrays(version_id: int, name: str, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
    data = buffer.getbuffer()
    if _binary_io():
        # Binary parameter: hundreds of MB travel as they are, not as hex text the server must parse.
        table = connection.ops.quote_name(ScoreArtifact._meta.db_table)
        with _binary_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (version_id, name, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (version_id, name) DO UPDATE SET data = EXCLUDED.data",
                [version_id, name, data],
                binary=True,
            )
        return
    ScoreArtifact.objects.update_or_create(version_id=version_id, name=name, defaults={"data": bytes(data)})


def _binary_io() -> bool:
    """PostgreSQL through psycopg 3 (psycopg2 and other databases take the ORM's path)."""
    return (
        connection.vendor == "postgresql"
        and getattr(getattr(connection, "Database", None), "__name__", "") == "psycopg"
    )


def _binary_cursor() -> Any:
    """A psycopg cursor with server-side binding on Django's connection (Django's own binds client-side,
    which has no binary format)."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def load_arrays(version_id: int, name: str) -> dict[str, np.ndarray]:
    """Arrays of one artifact, cached per worker process (the shards of one run read the same ones)."""
    artifact_id = ScoreArtifact.objects.values_list("pk", flat=True).get(version_id=version_id, name=name)
    return _load_artifact(artifact_id)


@lru_cache(maxsize=4)
def _load_artifact(artifact_id: int) -> dict[str, np.ndarray]:
    if _binary_io():
        table = connection.ops.quote_name(ScoreArtifact._meta.db_table)
        with _binary_cursor() as cursor:
            cursor.execute(f"SELECT data FROM {table} WHERE id = %s", [artifact_id], binary=True)
            row = cursor.fetchone()
        if row is None:
            raise ScoreArtifact.DoesNotExist(artifact_id)
        data = row[0]
    else:
        data = ScoreArtifact.objects.values_list("data", flat=True).get(pk=artifact_id)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}
