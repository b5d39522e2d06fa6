"""Write the Redis event buffer to the database (the ``flush_events`` task, for cron users)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from shop_reco.services import tracking
from shop_reco.tracking import buffer


class Command(BaseCommand):
    help = "Flush buffered shop_reco events from Redis into the database."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--wait", type=float, default=0.0, help="Seconds to wait if another flush runs.")
        parser.add_argument(
            "--requeue-dead",
            action="store_true",
            help="First put batches the database refused back in the buffer.",
        )

    def handle(self, *args: Any, wait: float, requeue_dead: bool, **options: Any) -> None:
        if not buffer.buffer_url():
            self.stdout.write("No EVENT_BUFFER_URL: events are written directly; nothing to flush.")
            return
        if requeue_dead:
            self.stdout.write(f"Requeued {buffer.requeue_dead_letters()} parked event(s).")
        result = tracking.flush_events(wait=wait)
        if result.busy:
            raise CommandError("Another flush holds the lock; try again or pass --wait.")
        self.stdout.write(
            f"Flushed {result.delivered} event(s) in {result.batches} batch(es): {result.stored} new, "
            f"{result.delivered - result.stored - result.dead_lettered} already stored"
            + (f", {result.dead_lettered} parked" if result.dead_lettered else "")
            + "."
        )
