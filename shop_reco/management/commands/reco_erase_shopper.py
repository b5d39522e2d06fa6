"""Erase every event, per-shopper recommendation list and experiment assignment of one shopper."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from shop_reco.services.privacy import erase_shopper


class Command(BaseCommand):
    help = "Delete all shop_reco events, stored lists and experiment assignments of a user or a visitor."

    def add_arguments(self, parser: Any) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="User primary key.")
        who.add_argument("--visitor", help="Visitor id (from the shop_reco_vid cookie).")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(
        self, *args: Any, user: str | None, visitor: str | None, interactive: bool, **options: Any
    ) -> None:
        who = f"user {user}" if user is not None else f"visitor {visitor}"
        if interactive:
            answer = input(f"Erase all shop_reco data of {who}? This cannot be undone. [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("Erasure cancelled.")
        result = erase_shopper(user_id=user, visitor_id=visitor)
        self.stdout.write(
            f"Erased {result.events} event(s), {result.lists} recommendation list(s) and "
            f"{result.assignments} experiment assignment(s) of {who}"
            + (
                f" (visitor ids: {', '.join(result.visitors)})"
                if user is not None and result.visitors
                else ""
            )
            + "."
        )
