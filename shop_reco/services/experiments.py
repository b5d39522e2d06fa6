"""A/B tests between configuration overlays: deterministic assignment, exposure log, report, stop, promote.

One experiment runs at a time, so a shopper's configuration is ``current_config(variant=<their variant>)``.
Assignment hashes the experiment key with the visitor id (or ``user:<pk>`` when there is none) and is stored
on first exposure; a user who logs in keeps the variant of the visitor id they were first exposed as.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from shop_reco.conf import reco_settings
from shop_reco.models import Event, Experiment, ExperimentAssignment, ExperimentVariant
from shop_reco.services import stats, tuning

Status = Experiment.Status

_RUNNING_SECONDS = 5.0
_ASSIGNMENT_CACHE_SECONDS = 24 * 3600
_running_memo: list[Any] = [0.0, None]  # [expires_at, (experiment, variants) | None]


# --- assignment ---


def bucket(experiment_key: str, unit: str) -> float:
    """A stable number in [0, 1) for a shopper in an experiment (uniform over shoppers)."""
    digest = hashlib.sha256(f"{experiment_key}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def choose(experiment_key: str, unit: str, weights: Sequence[tuple[Any, int]]) -> Any:
    """The variant whose cumulative share of the weights holds this shopper's bucket."""
    total = sum(max(weight, 0) for _, weight in weights)
    if total <= 0:
        raise ValueError("An experiment needs a variant with a positive weight.")
    point = bucket(experiment_key, unit) * total
    running = 0.0
    for variant, weight in weights:
        running += max(weight, 0)
        if point < running:
            return variant
    return weights[-1][0]  # pragma: no cover - float rounding at the very top


def running_experiment() -> tuple[Experiment, list[ExperimentVariant]] | None:
    """The running experiment and its variants, memoised for a few seconds per process."""
    now = time.monotonic()
    if _running_memo[0] > now:
        return _running_memo[1]
    experiment = Experiment.objects.filter(status=Status.RUNNING).order_by("started_at", "pk").first()
    found = (experiment, list(experiment.variants.order_by("pk"))) if experiment is not None else None
    _running_memo[:] = [now + _RUNNING_SECONDS, found]
    return found


def clear_memo() -> None:
    _running_memo[:] = [0.0, None]


def _unit(visitor_id: str, user_id: Any) -> str:
    return visitor_id or f"user:{user_id}"


def assign(
    experiment: Experiment,
    variants: Sequence[ExperimentVariant] | None = None,
    *,
    visitor_id: str = "",
    user_id: Any = None,
) -> ExperimentVariant | None:
    """The shopper's variant, recording the exposure the first time. None without any shopper id."""
    if not visitor_id and user_id is None:
        return None
    variants = list(variants if variants is not None else experiment.variants.order_by("pk"))
    by_pk = {variant.pk: variant for variant in variants}
    cache_key = f"shop_reco:xa:{experiment.pk}:{visitor_id}:{user_id or ''}"
    cached = cache.get(cache_key)
    if cached in by_pk:
        return by_pk[cached]
    variant_id = _assign_in_db(experiment, variants, visitor_id, user_id)
    cache.set(cache_key, variant_id, timeout=_ASSIGNMENT_CACHE_SECONDS)
    return by_pk.get(variant_id)


def _assign_in_db(
    experiment: Experiment, variants: Sequence[ExperimentVariant], visitor_id: str, user_id: Any
) -> int:
    rows = ExperimentAssignment.objects.filter(experiment=experiment)
    if user_id is not None:
        # A known user keeps the variant of the visitor id they were first exposed as, on every device.
        first = rows.filter(user_id=user_id).order_by("assigned_at", "pk").first()
        if first is not None:
            if visitor_id and not rows.filter(visitor_id=visitor_id).exists():
                _create(experiment, first.variant_id, visitor_id, user_id)
            return first.variant_id
    if visitor_id:
        mine = rows.filter(visitor_id=visitor_id).first()
        if mine is not None:
            if user_id is not None and mine.user_id is None:
                # First login: this visitor's assignment becomes the user's.
                rows.filter(pk=mine.pk, user__isnull=True).update(user_id=user_id)
            return mine.variant_id
    variant = choose(experiment.key, _unit(visitor_id, user_id), [(v, v.weight) for v in variants])
    return _create(experiment, variant.pk, visitor_id, user_id)


def _create(experiment: Experiment, variant_id: int, visitor_id: str, user_id: Any) -> int:
    try:
        with transaction.atomic():
            ExperimentAssignment.objects.create(
                experiment=experiment, variant_id=variant_id, visitor_id=visitor_id, user_id=user_id
            )
        return variant_id
    except IntegrityError:  # a concurrent request of the same shopper won: use its row
        rows = ExperimentAssignment.objects.filter(experiment=experiment)
        existing = rows.filter(visitor_id=visitor_id).first() if visitor_id else None
        if existing is None:
            existing = rows.filter(user_id=user_id).order_by("assigned_at", "pk").first()
        if existing is None:
            raise
        return existing.variant_id


def variant_for(*, visitor_id: str = "", user: Any = None) -> ExperimentVariant | None:
    """The shopper's variant of the running experiment (recording the exposure), or None."""
    found = running_experiment()
    if found is None:
        return None
    experiment, variants = found
    return assign(experiment, variants, visitor_id=visitor_id or "", user_id=getattr(user, "pk", user))


def config_for_shopper(
    *, visitor_id: str = "", user: Any = None, site_id: int | None = None, shared: bool = False
) -> dict[str, Any]:
    """``current_config`` for this shopper: with their experiment variant's overlay when one is running.

    ``shared=True``: the memoised configuration itself, read-only (the storefront's hot path).
    """
    variant = variant_for(visitor_id=visitor_id, user=user)
    return tuning.current_config(variant=variant, site_id=site_id, shared=shared)


# --- lifecycle ---


def check_can_start(experiment: Experiment) -> None:
    variants = list(experiment.variants.all())
    if len(variants) < 2:
        raise ValidationError("An experiment needs at least two variants.")
    if sum(variant.weight for variant in variants) <= 0:
        raise ValidationError("At least one variant needs a traffic weight above 0.")
    if experiment.status != Status.DRAFT:
        raise ValidationError(
            f"{experiment} is {experiment.get_status_display().lower()}; only drafts can start."
        )
    other = Experiment.objects.filter(status=Status.RUNNING).exclude(pk=experiment.pk).first()
    if other is not None:
        raise ValidationError(f"Stop {other} first: one experiment runs at a time.")
    for variant in variants:
        tuning.validate_overlay(variant.overlay)


def start(experiment: Experiment) -> None:
    check_can_start(experiment)
    experiment.status = Status.RUNNING
    experiment.started_at = timezone.now()
    experiment.save(update_fields=["status", "started_at"])
    clear_memo()


def stop(experiment: Experiment) -> None:
    if experiment.status != Status.RUNNING:
        raise ValidationError(f"{experiment} is not running.")
    experiment.status = Status.STOPPED
    experiment.ended_at = timezone.now()
    experiment.save(update_fields=["status", "ended_at"])
    clear_memo()


def promote(variant: ExperimentVariant, *, author: Any = None) -> Any:
    """Write the variant's overlay into the live configuration as a new revision and end the experiment."""
    experiment = variant.experiment
    if experiment.status not in (Status.RUNNING, Status.STOPPED):
        raise ValidationError(f"{experiment} has not run; nothing to promote.")
    with transaction.atomic():
        revision = tuning.apply_to_config(
            variant.overlay or {},
            site_id=tuning.current_site_id(),
            author=author,
            comment=f"Promoted variant {variant.key!r} of experiment {experiment.key!r}",
        )
        experiment.status = Status.PROMOTED
        experiment.ended_at = experiment.ended_at or timezone.now()
        experiment.promoted_variant = variant
        experiment.save(update_fields=["status", "ended_at", "promoted_variant"])
    clear_memo()
    return revision


# --- report ---


@dataclass
class Comparison:
    """A variant against the control: relative lift and a two-sided test."""

    lift: float | None
    test: stats.TestResult

    def significant(self, confidence: float) -> bool:
        return self.test.significant(confidence)


@dataclass
class VariantResult:
    variant: ExperimentVariant
    visitors: int = 0
    impressions: int = 0
    clicks: int = 0
    add_to_cart_visitors: int = 0
    converted_visitors: int = 0
    orders: int = 0
    revenue: Decimal = Decimal("0")
    revenue_squares: float = 0.0
    ctr: stats.Interval = field(default_factory=lambda: stats.Interval(0, 0, 0))
    add_to_cart_rate: stats.Interval = field(default_factory=lambda: stats.Interval(0, 0, 0))
    conversion_rate: stats.Interval = field(default_factory=lambda: stats.Interval(0, 0, 0))
    revenue_per_visitor: stats.Interval = field(default_factory=lambda: stats.Interval(0, 0, 0))
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def revenue_summary(self) -> stats.MeanSummary:
        return stats.MeanSummary(self.visitors, float(self.revenue), self.revenue_squares)


METRICS = ("ctr", "add_to_cart_rate", "conversion_rate", "revenue_per_visitor")
METRIC_LABELS = {
    "ctr": "Click-through rate",
    "add_to_cart_rate": "Add-to-cart rate",
    "conversion_rate": "Conversion rate",
    "revenue_per_visitor": "Revenue per visitor",
}


@dataclass
class ExperimentReport:
    experiment: Experiment
    since: datetime | None
    until: datetime
    confidence: float
    window: timedelta
    results: list[VariantResult]

    @property
    def control(self) -> VariantResult | None:
        return self.results[0] if self.results else None


def _lift(control: float, value: float) -> float | None:
    return (value - control) / control if control else None


def report(
    experiment: Experiment, *, confidence: float | None = None, until: datetime | None = None
) -> ExperimentReport:
    """Per variant: impressions, CTR, add-to-cart and conversion rates, revenue per visitor, each with a
    confidence interval and a test against the control (the variant marked control, else the first).

    Rates: CTR is rec_click / rec_impression events; add-to-cart and conversion rates are the share of
    assigned visitors with at least one add_to_cart / purchase attributed to a recommendation click (the
    storefront's attribution: the same shopper clicked that product within the attribution window).
    Revenue per visitor is attributed unit_price * quantity over all assigned visitors, zeros included.
    Only events from a shopper's assignment onward count.
    """
    from shop_reco.attribution import attribute

    confidence = float(confidence or reco_settings.EXPERIMENT_CONFIDENCE)
    until = until or experiment.ended_at or timezone.now()
    since = experiment.started_at
    window = timedelta(days=float(reco_settings.ATTRIBUTION_WINDOW_DAYS))
    variants = sorted(experiment.variants.all(), key=lambda v: (not v.is_control, v.pk))
    results = {variant.pk: VariantResult(variant) for variant in variants}
    assignment_variant = dict(
        ExperimentAssignment.objects.filter(experiment=experiment).values_list("pk", "variant_id")
    )
    for variant_id in assignment_variant.values():
        if variant_id in results:
            results[variant_id].visitors += 1

    events = _assigned_events(experiment, since, until)
    for row in (
        events.filter(event_type__in=("rec_impression", "rec_click"))
        .values("assignment_id", "event_type")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        result = results.get(assignment_variant.get(row["assignment_id"], 0))
        if result is None:
            continue
        if row["event_type"] == "rec_impression":
            result.impressions += row["n"]
        else:
            result.clicks += row["n"]

    carted: set[int] = set()
    revenue: dict[int, Decimal] = defaultdict(Decimal)
    orders: dict[int, int] = defaultdict(int)
    outcomes = (
        events.filter(event_type__in=("add_to_cart", "purchase")).exclude(product_key="").order_by("pk")
    )
    batch: list[Event] = []

    def flush() -> None:
        credited = attribute(batch, window=window)
        for event in batch:
            if event.pk not in credited:
                continue
            assignment_id = event.assignment_id  # type: ignore[attr-defined]
            if event.event_type == "add_to_cart":
                carted.add(assignment_id)
            else:
                revenue[assignment_id] += (event.unit_price or Decimal("0")) * event.quantity
                orders[assignment_id] += 1
        batch.clear()

    for event in outcomes.iterator(chunk_size=2000):
        batch.append(event)
        if len(batch) >= 2000:
            flush()
    flush()

    for assignment_id in carted:
        result = results.get(assignment_variant.get(assignment_id, 0))
        if result is not None:
            result.add_to_cart_visitors += 1
    for assignment_id, amount in revenue.items():
        result = results.get(assignment_variant.get(assignment_id, 0))
        if result is None:
            continue
        result.revenue += amount
        result.revenue_squares += float(amount) ** 2
        result.orders += orders[assignment_id]
        # A visitor converts when they bought something attributed, whatever its price.
        result.converted_visitors += 1

    ordered = list(results.values())
    for result in ordered:
        # Impressions are per rendered slot and a slot may be clicked twice: cap clicks for the rate.
        result.ctr = stats.wilson_interval(
            min(result.clicks, result.impressions), result.impressions, confidence
        )
        result.add_to_cart_rate = stats.wilson_interval(
            result.add_to_cart_visitors, result.visitors, confidence
        )
        result.conversion_rate = stats.wilson_interval(result.converted_visitors, result.visitors, confidence)
        result.revenue_per_visitor = stats.mean_interval(result.revenue_summary, confidence)
    if ordered:
        control = ordered[0]
        for result in ordered[1:]:
            result.comparisons = _compare(control, result)
    return ExperimentReport(experiment, since, until, confidence, window, ordered)


def _compare(control: VariantResult, result: VariantResult) -> dict[str, Comparison]:
    def rate(name: str, successes: str, trials: str) -> Comparison:
        c_k, c_n = getattr(control, successes), getattr(control, trials)
        r_k, r_n = getattr(result, successes), getattr(result, trials)
        if successes == "clicks":
            c_k, r_k = min(c_k, c_n), min(r_k, r_n)
        test = stats.two_proportion_test(c_k, c_n, r_k, r_n)
        return Comparison(_lift(getattr(control, name).estimate, getattr(result, name).estimate), test)

    return {
        "ctr": rate("ctr", "clicks", "impressions"),
        "add_to_cart_rate": rate("add_to_cart_rate", "add_to_cart_visitors", "visitors"),
        "conversion_rate": rate("conversion_rate", "converted_visitors", "visitors"),
        "revenue_per_visitor": Comparison(
            _lift(control.revenue_per_visitor.estimate, result.revenue_per_visitor.estimate),
            stats.welch_test(control.revenue_summary, result.revenue_summary),
        ),
    }


def _assigned_events(experiment: Experiment, since: datetime | None, until: datetime) -> Any:
    """Events annotated with the shopper's assignment: the user's first one, else the visitor's."""
    assignments = ExperimentAssignment.objects.filter(
        experiment=experiment, assigned_at__lte=OuterRef("occurred_at")
    )
    by_user = assignments.filter(user_id=OuterRef("user_id")).order_by("assigned_at", "pk").values("pk")[:1]
    by_visitor = assignments.filter(visitor_id=OuterRef("visitor_id")).exclude(visitor_id="").values("pk")[:1]
    events = Event.objects.filter(occurred_at__lte=until)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return (
        events.filter(Q(user__isnull=False) | ~Q(visitor_id=""))
        .annotate(assignment_id=Coalesce(Subquery(by_user), Subquery(by_visitor)))
        .filter(assignment_id__isnull=False)
    )
