"""Delete events past the retention period (the ``purge_events`` task, for cron users)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from shop_reco.conf import reco_settings
from shop_reco.services import tracking


class Command(BaseCommand):
    help = "Delete shop_reco events older than RETENTION_DAYS (or --days)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=None, help="Override RETENTION_DAYS for this run.")

    def handle(self, *args: Any, days: int | None, **options: Any) -> None:
        days = reco_settings.RETENTION_DAYS if days is None else days
        if days is None:
            self.stdout.write("RETENTION_DAYS is None: events are kept; nothing purged.")
            return
        deleted = tracking.purge_events(days)
        self.stdout.write(f"Deleted {deleted} event(s) older than {days} day(s).")
