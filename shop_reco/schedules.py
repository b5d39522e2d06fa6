"""The default Celery beat schedule: merge it into CELERY_BEAT_SCHEDULE (or beat_schedule) of your Celery app.

    from shop_reco.schedules import default_beat_schedule
    CELERY_BEAT_SCHEDULE = {**default_beat_schedule()}

Cadences come from ``SHOP_RECO["SCHEDULE_SECONDS"]``; django-celery-beat users can create the same entries as
periodic tasks in its admin instead.
"""

from __future__ import annotations

from typing import Any

TASKS = {
    "flush_events": "shop_reco.tasks.flush_events",
    "recompute": "shop_reco.tasks.recompute",
    "purge_events": "shop_reco.tasks.purge_events",
}


def default_beat_schedule(seconds: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """One entry per periodic task; ``seconds`` overrides the cadences (default: the DEFAULTS)."""
    from shop_reco.conf import DEFAULTS

    cadence = {**DEFAULTS["SCHEDULE_SECONDS"], **(seconds or {})}
    return {
        f"shop_reco.{name}": {"task": task, "schedule": float(cadence[name])} for name, task in TASKS.items()
    }
