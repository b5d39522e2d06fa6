"""Export everything kept about one shopper as JSON lines (a subject access request)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from shop_reco.services.privacy import export_shopper


class Command(BaseCommand):
    help = (
        "Write all shop_reco events, stored lists and experiment assignments of a user or a visitor as "
        "JSON lines to stdout or a file."
    )

    def add_arguments(self, parser: Any) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="User primary key.")
        who.add_argument("--visitor", help="Visitor id (from the shop_reco_vid cookie).")
        parser.add_argument("--output", "-o", default="-", help="File to write; '-' (default) is stdout.")

    def handle(self, *args: Any, user: str | None, visitor: str | None, output: str, **options: Any) -> None:
        lines = (
            json.dumps(row, separators=(",", ":")) for row in export_shopper(user_id=user, visitor_id=visitor)
        )
        count = 0
        if output == "-":
            for line in lines:
                self.stdout.write(line)
                count += 1
        else:
            with open(output, "w", encoding="utf-8") as stream:
                for line in lines:
                    stream.write(line + "\n")
                    count += 1
        self.stderr.write(f"Exported {count} record(s).")
