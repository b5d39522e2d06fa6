"""Merchandising rules (pin, boost, bury, exclude) read once a minute per version and applied at read time."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from shop_reco.models import MerchandisingRule
from shop_reco.services.lists import _memo_get, _memo_put

_RULE_SECONDS = 60


@dataclass(frozen=True)
class Rule:
    action: str
    product_key: str
    category: str
    slot: str
    strength: float
    starts_at: datetime | None
    ends_at: datetime | None
    pk: int | None = None  # the MerchandisingRule's, so the admin can name the rule behind an effect

    def applies(self, slot: str, now: datetime) -> bool:
        if self.slot and self.slot != slot:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        return not (self.ends_at is not None and now >= self.ends_at)

    def matches(self, key: str, category: str) -> bool:
        if self.product_key:
            return self.product_key == key
        return bool(category) and self.category == category

    @property
    def multiplier(self) -> float:
        """Boost multiplies the score by strength; bury divides by it (a strength <= 0 does nothing)."""
        if self.strength <= 0:
            return 1.0
        if self.action == MerchandisingRule.Action.BOOST:
            return self.strength
        if self.action == MerchandisingRule.Action.BURY:
            return 1.0 / self.strength
        return 1.0

    @property
    def position(self) -> int:
        """Pins use strength as a 1-based position."""
        return max(1, int(self.strength))


def active_rules(version_id: int | None, now: datetime | None = None) -> list[Rule]:
    """Active rules, cached per (version, minute): an admin edit shows within a minute, with no purge."""
    now = now or timezone.now()
    minute = int(now.timestamp() // 60)
    key = ("rules", version_id, minute)
    hit = _memo_get(key)
    if hit is not None:
        rules: list[Rule] = hit[1]
    else:
        cache_key = f"shop_reco:rules:{version_id}:{minute}"
        rules = cache.get(cache_key)
        if rules is None:
            rules = [
                Rule(
                    action=row.action,
                    product_key=row.product_key,
                    category=row.category,
                    slot=row.slot,
                    strength=float(row.strength),
                    starts_at=row.starts_at,
                    ends_at=row.ends_at,
                    pk=row.pk,
                )
                for row in MerchandisingRule.objects.filter(is_active=True).order_by("pk")
            ]
            cache.set(cache_key, rules, timeout=_RULE_SECONDS * 2)
        _memo_put(key, rules, _RULE_SECONDS)
    return rules


def rules_for_slot(rules: list[Rule], slot: str, now: datetime | None = None) -> list[Rule]:
    """The rules that apply to ``slot`` now; dates are checked per request, so rules start and end on time."""
    now = now or timezone.now()
    return [rule for rule in rules if rule.applies(slot, now)]


# (id of an active_rules list, slot) -> (that list, valid from, valid until, the slot's rules, their signature)
_by_slot: dict[tuple[int, str], tuple[list[Rule], datetime | None, datetime | None, list[Rule], tuple]] = {}


def rules_for_slot_now(rules: list[Rule], slot: str, now: datetime) -> tuple[list[Rule], tuple]:
    """:func:`rules_for_slot`, and a hashable signature of the result for the slot memo's key.

    Worked out once per rules list and slot until the next moment a rule starts or ends (every request of a
    minute shares the same ``active_rules`` list), not on every request.
    """
    key = (id(rules), slot)
    hit = _by_slot.get(key)
    if (
        hit is not None
        and hit[0] is rules
        and (hit[1] is None or hit[1] <= now)
        and (hit[2] is None or now < hit[2])
    ):
        return hit[3], hit[4]
    applying = rules_for_slot(rules, slot, now)
    # Every field of each rule, as plain tuples: hashed in C on every request, and a field added to Rule is
    # in the memo key without anyone remembering to list it here.
    signature = tuple(astuple(rule) for rule in applying)
    moments = [moment for rule in rules for moment in (rule.starts_at, rule.ends_at) if moment is not None]
    valid_from = max((moment for moment in moments if moment <= now), default=None)
    valid_until = min((moment for moment in moments if moment > now), default=None)
    if len(_by_slot) > 256:
        _by_slot.clear()
    _by_slot[key] = (rules, valid_from, valid_until, applying, signature)
    return applying, signature
