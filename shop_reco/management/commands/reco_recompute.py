"""Recompute every score and publish a new version: the work of the recompute Celery task, run here."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop_reco.management.progress import ProgressBar
from shop_reco.models import ScoreVersion


class Command(BaseCommand):
    help = "Recompute recommendation scores and publish a new score version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--family", default="full", help="Score family (default: full).")
        parser.add_argument("--shards", type=int, default=None, help="Shards per stage (default: setting).")
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Hand the work to the Celery workers and follow its progress instead of running it here.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["shards"] is not None and options["shards"] < 1:
            raise CommandError("--shards must be at least 1.")
        bar = ProgressBar("Recompute", stream=self.stderr, enabled=not options["no_progress"])
        with bar:
            if options["enqueue"]:
                version = self._enqueue(options["family"], options["shards"], bar)
            else:
                version = self._run_here(options["family"], options["shards"], bar)
        if version.status != ScoreVersion.Status.PUBLISHED:
            raise CommandError(f"{version} did not publish: {version.error or version.status}")
        counts = ", ".join(f"{k} {v}" for k, v in version.input_counts.items())
        self.stdout.write(
            self.style.SUCCESS(f"Published {version}: {counts}; {version.timings.get('total_s')} s")
        )
        if version.metrics:
            self.stdout.write("Offline metrics: " + ", ".join(f"{k} {v}" for k, v in version.metrics.items()))

    def _run_here(self, family: str, shards: int | None, bar: ProgressBar) -> ScoreVersion:
        from shop_reco.services import recompute, versions

        try:
            version = versions.start_version(family, recompute.parameters())
        except versions.RecomputeAlreadyRunning as running:
            raise CommandError(str(running)) from None
        try:
            plan = recompute.prepare(version.pk, shards=shards)
        except Exception as exc:
            versions.fail(version.pk, f"prepare: {exc!r}")
            raise
        return recompute.run_in_process(version.pk, plan, progress=bar.update)

    def _enqueue(self, family: str, shards: int | None, bar: ProgressBar) -> ScoreVersion:
        from shop_reco.pipeline_tasks import recompute

        version_id = recompute.delay(family=family, shards=shards).get(timeout=3600)
        if version_id is None:
            raise CommandError(f"A {family} recompute is already running.")
        while True:
            version = ScoreVersion.objects.get(pk=version_id)
            bar.update(version.steps_done, version.steps_total or None)
            if version.status != ScoreVersion.Status.BUILDING:
                return version
            time.sleep(0.5)
