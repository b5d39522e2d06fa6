"""Import historical events in bulk: our CSV, event JSON lines, OTTO sessions, or the shop's orders.

    manage.py reco_import_events events.csv
    manage.py reco_import_events train.jsonl --allow-unknown-products      # OTTO sessions, no catalogue
    manage.py reco_import_events --orders myshop.reco.historical_orders   # a callable yielding order lines

CSV columns: event_type, visitor_id, user_id, product_key, quantity, unit_price, basket_ref, occurred_at
(ISO 8601; naive times are UTC), optionally slot, token, client_event_id, context (JSON). The ``--orders``
callable takes no arguments and yields ``(order_ref, user_id or None, product_key, quantity, unit_price,
placed_at)`` grouped by order; each line becomes a purchase event (see ``services.tracking.import_orders``).
Running an import twice stores each event once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from shop_reco.services import tracking
from shop_reco.tracking.importers import read_events


class Command(BaseCommand):
    help = "Import historical shop_reco events from a CSV / JSON lines / OTTO file or from the shop's orders."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", nargs="?", help="File to import ('-' for stdin).")
        parser.add_argument("--format", choices=("csv", "jsonl", "otto"), help="Default: from the file name.")
        parser.add_argument(
            "--orders", metavar="DOTTED_PATH", help="Callable yielding historical order lines."
        )
        parser.add_argument(
            "--allow-unknown-products",
            action="store_true",
            help="Keep events of products the catalogue does not know (fixtures without a catalogue).",
        )
        parser.add_argument("--batch-size", type=int, default=tracking.IMPORT_BATCH)
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        path, orders = options["path"], options["orders"]
        if bool(path) == bool(orders):
            raise CommandError("Give a file to import or --orders, not both.")
        common = {
            "allow_unknown_products": options["allow_unknown_products"],
            "batch_size": options["batch_size"],
        }
        with self._progress(not options["no_progress"]) as progress:
            if orders:
                try:
                    source = import_string(orders)
                except ImportError as exc:
                    raise CommandError(f"--orders {orders!r} could not be imported: {exc}") from exc
                result = tracking.import_orders(source(), progress=progress, **common)
            else:
                fmt = options["format"] or _format_of(path)
                with _open(path) as stream:
                    try:
                        result = tracking.import_events(read_events(stream, fmt), progress=progress, **common)
                    except ValueError as exc:
                        raise CommandError(str(exc)) from exc
        for error in result.errors:
            self.stderr.write(f"invalid: {error}")
        self.stdout.write(f"Imported: {result}.")
        if result.unknown_products and not options["allow_unknown_products"]:
            self.stdout.write("Events of unknown products were skipped; --allow-unknown-products keeps them.")

    @contextmanager
    def _progress(self, enabled: bool) -> Iterator[Callable[[int], None] | None]:
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is optional: no bar then
            enabled = False
        if not enabled:
            yield None
            return
        bar = tqdm(unit=" events", file=sys.stderr, mininterval=0.5)
        try:
            yield bar.update
        finally:
            bar.close()


def _format_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise CommandError(f"Cannot tell the format of {path!r}; pass --format csv or --format jsonl.")


@contextmanager
def _open(path: str) -> Iterator[Any]:
    if path == "-":
        yield sys.stdin
        return
    try:
        stream = open(path, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc}") from exc
    with stream:
        yield stream
