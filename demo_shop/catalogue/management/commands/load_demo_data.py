"""Load the UCI Online Retail data (CC BY 4.0) into the demo shop: products, customers, orders."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from demo_shop.catalogue import loader, retail


class Command(BaseCommand):
    help = (
        "Load the Online Retail file (default: the shipped subset) as products, categories, customers and "
        "orders. Idempotent: rows are keyed on sku, username and order number."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--path",
            type=Path,
            default=retail.SUBSET_PATH,
            help="The Online Retail file, .csv or .csv.gz (default: the shipped subset).",
        )
        parser.add_argument(
            "--flush",
            action="store_true",
            help="First delete all orders, products, categories and imported customers.",
        )

    def handle(self, *args: Any, path: Path, flush: bool, verbosity: int, **options: Any) -> None:
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        started = time.perf_counter()
        if flush:
            loader.flush_demo_data()
        # The bar goes to the real stderr: Django's OutputWrapper appends newlines that would break it.
        show = verbosity >= 1

        def progress(iterable: Any, **kwargs: Any) -> Any:
            return tqdm(iterable, file=sys.stderr, disable=not show, leave=False, **kwargs)

        try:
            data = retail.parse(progress(retail.read_rows(path), desc="Reading", unit=" rows"))
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        summary = loader.load(data, progress=progress)
        elapsed = time.perf_counter() - started
        if show:
            self._report(path, data.rows, summary, elapsed)

    def _report(self, path: Path, rows: int, summary: loader.LoadSummary, elapsed: float) -> None:
        created = summary.created
        out = self.stdout
        out.write(self.style.SUCCESS(f"Loaded {path.name} ({rows:,} rows) in {elapsed:.1f} s"))
        out.write(f"  categories   {summary.categories:>8,}  (new {created['categories']:,})")
        out.write(f"  products     {summary.products:>8,}  (new {created['products']:,})")
        out.write(f"  customers    {summary.customers:>8,}  (new {created['customers']:,})")
        guests = f"{summary.guest_orders:,} guest"
        out.write(f"  orders       {summary.orders:>8,}  (new {created['orders']:,}; {guests})")
        out.write(f"  order lines  {summary.lines:>8,}  (new {created['lines']:,})")
        out.write(f"Skipped rows: {sum(summary.skipped.values()):,}")
        for reason, count in summary.skipped.most_common():
            out.write(f"  {reason:<20} {count:>8,}")
        if not created["orders"]:
            out.write("No new orders: the data was already loaded.")
