"""Per-step cost of a recompute: wall time, this process's CPU time and the database backend's CPU time.

Each pipeline step (a Celery task, or a step of an in-process run) records one entry under
``ScoreVersion.timings["stages"]``, keyed by step name (``"load:1"``, ``"combine"``...). The serial steps
(plan, combine, assemble, finalize) against the parallel ones (load, content, item and shopper shards) give
the serial fraction, hence the speed-up more worker processes can bring (Amdahl), and the database's share.

The database CPU is read from ``/proc/<backend pid>/stat``, so it is only known when PostgreSQL runs on the
worker's machine (a benchmark, a single-host shop); elsewhere it is ``None``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from django.db import connection

SERIAL_STEPS = ("plan", "combine", "assemble", "finalize")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def record_json(version_id: int, field: str, values: dict[str, Any], *, under: str | None = None) -> None:
    """Merge ``values`` into a JSON field of the version (into its ``under`` object when given).

    On PostgreSQL one ``UPDATE ... ||`` does it, so shards finishing together never drop each other's keys.
    """
    from shop_reco.models import ScoreVersion

    if connection.vendor == "postgresql":
        column = connection.ops.quote_name(ScoreVersion._meta.get_field(field).name)  # a JSON field's column
        table = connection.ops.quote_name(ScoreVersion._meta.db_table)
        if under is None:
            sql = (
                f"UPDATE {table} SET {column} = coalesce({column}, '{{}}'::jsonb) || %s::jsonb WHERE id = %s"
            )
            params: list[Any] = [json.dumps(values), version_id]
        else:
            sql = (
                f"UPDATE {table} SET {column} = coalesce({column}, '{{}}'::jsonb) || jsonb_build_object(%s::text, "
                f"coalesce({column} -> %s, '{{}}'::jsonb) || %s::jsonb) WHERE id = %s"
            )
            params = [under, under, json.dumps(values), version_id]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    version = ScoreVersion.objects.get(pk=version_id)
    current = dict(getattr(version, field) or {})
    if under is None:
        current.update(values)
    else:
        current[under] = {**(current.get(under) or {}), **values}
    ScoreVersion.objects.filter(pk=version_id).update(**{field: current})


def _backend_pid() -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _process_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of a local process, or None (not local, gone, not readable)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return None


class _Costs:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.pid = _backend_pid()
        self.db_cpu = _process_cpu(self.pid)


@contextlib.contextmanager
def stage(version_id: int, name: str) -> Iterator[dict[str, Any]]:
    """Time the block as step ``name`` of the version; the yielded dict can carry extra figures.

    Nothing is recorded when the block raises (a retried shard records its successful run only).
    """
    extra: dict[str, Any] = {}
    before = _Costs()
    yield extra
    wall = time.perf_counter() - before.wall
    cpu = time.process_time() - before.cpu
    db_cpu: float | None = None
    if before.db_cpu is not None and _backend_pid() == before.pid:
        after = _process_cpu(before.pid)
        db_cpu = None if after is None else after - before.db_cpu
    entry = {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "db_cpu_s": None if db_cpu is None else round(db_cpu, 2),
        "pid": os.getpid(),
        "ended": round(time.time(), 3),
        **extra,
    }
    record_json(version_id, "timings", {name: entry}, under="stages")


def summary(stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Totals per kind of step and the serial fraction of the work, from ``timings["stages"]``.

    ``serial_fraction`` is the serial steps' share of the summed step wall times; with one worker process
    that is the share Amdahl's law keeps serial, so ``expected_speedup_2`` = 1 / (s + (1 - s) / 2) is what
    two processes can give on two otherwise idle cores (the database's CPU counts in the wall times).
    """
    by_step: dict[str, dict[str, float]] = {}
    for name, entry in stages.items():
        step = name.split(":", 1)[0]
        totals = by_step.setdefault(step, {"count": 0, "wall_s": 0.0, "cpu_s": 0.0, "db_cpu_s": 0.0})
        totals["count"] += 1
        totals["wall_s"] += float(entry.get("wall_s") or 0.0)
        totals["cpu_s"] += float(entry.get("cpu_s") or 0.0)
        totals["db_cpu_s"] += float(entry.get("db_cpu_s") or 0.0)
    serial = sum(v["wall_s"] for k, v in by_step.items() if k in SERIAL_STEPS)
    total = sum(v["wall_s"] for v in by_step.values())
    fraction = serial / total if total else 0.0
    # The same share in CPU seconds (worker + database backend): what other jobs on the machine distort least.
    serial_cpu = sum(v["cpu_s"] + v["db_cpu_s"] for k, v in by_step.items() if k in SERIAL_STEPS)
    total_cpu = sum(v["cpu_s"] + v["db_cpu_s"] for v in by_step.values())
    return {
        "steps": {k: {m: round(x, 3) for m, x in v.items()} for k, v in by_step.items()},
        "serial_s": round(serial, 3),
        "parallel_s": round(total - serial, 3),
        "serial_fraction": round(fraction, 4),
        "expected_speedup_2": round(1.0 / (fraction + (1.0 - fraction) / 2.0), 3) if total else None,
        "serial_cpu_s": round(serial_cpu, 3),
        "total_cpu_s": round(total_cpu, 3),
        "serial_fraction_cpu": round(serial_cpu / total_cpu, 4) if total_cpu else 0.0,
    }
