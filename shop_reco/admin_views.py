"""Custom admin pages: the recommendation preview, the experiment report, and the score-version charts.

The preview calls the storefront's public slot functions (``shop_reco.services.recommendations``), the same
ones the template tags and the API use, so it shows exactly what a page would.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views import View

from shop_reco.adapters import get_adapter
from shop_reco.models import Event, Experiment, ExperimentAssignment, MerchandisingRule, ScoreVersion
from shop_reco.services import charts, experiments, stage_timing, tuning

PREVIEW_PERMISSION = "shop_reco.preview_recommendations"
CTR_DAYS = 30

# --- the preview ---

# The storefront slots offered in the preview, with what each needs.
PREVIEW_SLOTS: dict[str, str] = {
    "similar": "product",
    "bought_together": "product",
    "cart": "cart",
    "for_you": "",
    "trending": "",
    "recently_viewed": "",
    "buy_again": "",
}


def _split_keys(text: str) -> list[str]:
    return [key for key in re.split(r"[\s,;]+", text or "") if key]


class PreviewForm(forms.Form):
    user = forms.CharField(required=False, help_text="User id, username or email.")
    visitor_id = forms.CharField(required=False, max_length=64, label="Visitor id")
    product = forms.CharField(required=False, label="Product key", help_text="For the product-page slots.")
    cart = forms.CharField(
        required=False, label="Cart", help_text="Product keys, separated by commas or spaces."
    )
    slots = forms.MultipleChoiceField(
        required=False,
        choices=[(name, name.replace("_", " ")) for name in PREVIEW_SLOTS],
        widget=forms.CheckboxSelectMultiple,
        help_text="Empty: every slot that applies.",
    )

    def clean_user(self) -> Any:
        value = (self.cleaned_data.get("user") or "").strip()
        if not value:
            return None
        model = get_user_model()
        query = Q(**{model.USERNAME_FIELD: value})
        if value.isdigit():
            query |= Q(pk=int(value))
        if any(f.name == "email" for f in model._meta.get_fields()):
            query |= Q(email__iexact=value)
        found = list(model._default_manager.filter(query)[:2])
        if len(found) != 1:
            raise forms.ValidationError(f"No single user matches {value!r}.")
        return found[0]

    def clean_product(self) -> str:
        key = (self.cleaned_data.get("product") or "").strip()
        if key and not get_adapter().product_exists(key):
            raise forms.ValidationError(f"No product has the key {key!r}.")
        return key

    def clean_cart(self) -> list[str]:
        keys = _split_keys(self.cleaned_data.get("cart") or "")
        found = get_adapter().products_by_key(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            raise forms.ValidationError(f"Unknown product key(s): {', '.join(missing)}.")
        return keys

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        if not self.errors and not any(cleaned.get(n) for n in ("user", "visitor_id", "product", "cart")):
            raise forms.ValidationError("Pick a user, a visitor, a product or a cart.")
        return cleaned


@dataclass
class RuleEffect:
    rule: MerchandisingRule
    keys: list[str] = field(default_factory=list)


@dataclass
class PreviewItem:
    item: Any  # the storefront's RecoItem
    rules: list[MerchandisingRule]
    unruled_position: int | None  # where it would be without the rules (None: not there at all)


@dataclass
class RemovedItem:
    key: str
    name: str
    position: int
    score: float
    source: str
    rules: list[MerchandisingRule]  # the rules that removed or buried it; empty: pushed out by others


@dataclass
class PreviewSlot:
    slot: str
    items: list[PreviewItem]
    removed: list[RemovedItem]
    rules: list[MerchandisingRule]  # every rule that applies to this slot now
    error: str = ""

    @property
    def title(self) -> str:
        return self.slot.replace("_", " ").capitalize()


def _slot_call(slot: str, product: str, cart: list[str]) -> Callable[..., Any] | None:
    from shop_reco.services import recommendations as reco

    calls: dict[str, Callable[..., Any] | None] = {
        "similar": (lambda **kw: reco.similar_products(product, **kw)) if product else None,
        "bought_together": (lambda **kw: reco.bought_together(product, **kw)) if product else None,
        "cart": (lambda **kw: reco.cart_recommendations(cart, **kw)) if cart else None,
        "for_you": lambda **kw: reco.recommended_for_you(**kw),
        "trending": lambda **kw: reco.trending(**kw),
        "recently_viewed": lambda **kw: reco.recently_viewed(exclude_product=product or None, **kw),
        "buy_again": lambda **kw: reco.buy_again(**kw),
    }
    return calls.get(slot)


def _rule_matches(rule: MerchandisingRule, key: str, category: str) -> bool:
    if rule.product_key:
        return rule.product_key == key
    return bool(category) and rule.category == category


def _live_rules(slot: str) -> list[MerchandisingRule]:
    now = timezone.now()
    return list(
        MerchandisingRule.objects.filter(is_active=True)
        .filter(Q(slot="") | Q(slot=slot))
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("pk")
    )


def run_preview(
    *, user: Any, visitor_id: str, product: str, cart: list[str], slots: list[str]
) -> list[PreviewSlot]:
    """Each slot as the shopper would see it, plus the same slot without business rules, to name what the
    rules removed. Each slot gets a fresh context: on a real page, later slots skip what earlier ones showed.
    """
    from shop_reco.services.context import context_for

    adapter = get_adapter()
    wanted = slots or [
        name
        for name, needs in PREVIEW_SLOTS.items()
        if not needs or (needs == "product" and product) or (needs == "cart" and cart)
    ]
    results = []
    for slot in wanted:
        call = _slot_call(slot, product, cart)
        rules = _live_rules(slot)
        if call is None:
            needs = PREVIEW_SLOTS.get(slot, "")
            results.append(PreviewSlot(slot, [], [], rules, error=f"This slot needs a {needs}."))
            continue

        def context() -> Any:
            return context_for(user=user, visitor_id=visitor_id or "", cart=cart)

        try:
            shown = call(context=context(), explain=True)
            unruled = call(context=context(), apply_rules=False)
        except Exception as exc:  # a broken slot must not take the whole preview down
            results.append(PreviewSlot(slot, [], [], rules, error=f"{type(exc).__name__}: {exc}"))
            continue
        unruled_positions = {item.key: item.position for item in unruled.items}
        items = [
            PreviewItem(
                item,
                [rule for rule in rules if _rule_matches(rule, item.key, item.category)],
                unruled_positions.get(item.key),
            )
            for item in shown.items
        ]
        shown_keys = set(shown.keys)
        # The storefront names the rule behind each exclusion or bury of the products it considered.
        demoted: dict[str, set[int | None]] = defaultdict(set)
        for hit in shown.explain:
            if hit.action in ("exclude", "bury"):
                demoted[hit.key].add(hit.rule.pk)
        removed = []
        for item in unruled.items:
            if item.key in shown_keys:
                continue
            removed.append(
                RemovedItem(
                    item.key,
                    item.name or adapter.product_name(item.product),
                    item.position,
                    item.score,
                    item.source,
                    [rule for rule in rules if rule.pk in demoted.get(item.key, ())],
                )
            )
        results.append(PreviewSlot(slot, items, removed, rules))
    return results


def _history(user: Any, visitor_id: str) -> Any:
    from shop_reco.services.context import context_for

    if user is None and not visitor_id:
        return None
    return context_for(user=user, visitor_id=visitor_id or "").history


def _experiment_hint(user: Any, visitor_id: str) -> str:
    """Which variant of the running experiment this shopper has (or would get), without recording anything."""
    found = experiments.running_experiment()
    if found is None or (user is None and not visitor_id):
        return ""
    experiment, variants = found
    rows = ExperimentAssignment.objects.filter(experiment=experiment)
    row = rows.filter(user=user).order_by("assigned_at", "pk").first() if user is not None else None
    if row is None and visitor_id:
        row = rows.filter(visitor_id=visitor_id).first()
    if row is not None:
        return (
            f"In experiment {experiment.key!r}: variant {row.variant.key!r} "
            f"(assigned {row.assigned_at:%Y-%m-%d})."
        )
    unit = visitor_id or f"user:{user.pk}"
    variant = experiments.choose(experiment.key, unit, [(v, v.weight) for v in variants])
    return (
        f"Not yet in experiment {experiment.key!r}; would get variant {variant.key!r}. "
        "The preview shows the live configuration."
    )


class PreviewView(View):
    """Staff only, with the preview permission: what any shopper or product page will show, and why."""

    admin_site: admin.AdminSite | None = None

    def get(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(PREVIEW_PERMISSION):
            raise PermissionDenied
        form = PreviewForm(request.GET or None)
        context: dict[str, Any] = {"form": form, "results": None}
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            context["results"] = run_preview(
                user=data["user"],
                visitor_id=data["visitor_id"],
                product=data["product"],
                cart=data["cart"],
                slots=data["slots"],
            )
            context["history"] = _history(data["user"], data["visitor_id"])
            context["experiment_hint"] = _experiment_hint(data["user"], data["visitor_id"])
        context["ctr_chart"] = mark_safe(ctr_chart(CTR_DAYS))
        site = self.admin_site or admin.site
        return TemplateResponse(
            request,
            "admin/shop_reco/preview.html",
            {
                **site.each_context(request),
                **context,
                "title": "Recommendation preview",
                "ctr_days": CTR_DAYS,
            },
        )


# --- click-through per slot over time ---


def ctr_by_slot(days: int = CTR_DAYS) -> dict[str, list[tuple[str, float | None]]]:
    """Daily rec_click / rec_impression per slot over the last ``days`` days (None: no impressions)."""
    from shop_reco.attribution import parse_token

    since = timezone.now() - timedelta(days=days)
    base = Event.objects.filter(occurred_at__gte=since, event_type__in=("rec_impression", "rec_click"))
    counts: dict[tuple[str, date, str], int] = defaultdict(int)
    rows = (
        base.exclude(slot="")
        .annotate(day=TruncDate("occurred_at"))
        .values("slot", "day", "event_type")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts[(row["slot"], row["day"], row["event_type"])] += row["n"]
    # Clicks recorded without a slot still carry it in their attribution token.
    for token, occurred_at in (
        base.filter(slot="", event_type="rec_click").exclude(token="").values_list("token", "occurred_at")
    ):
        parsed = parse_token(token)
        if parsed is not None:
            counts[(parsed.slot, timezone.localdate(occurred_at), "rec_click")] += 1
    today = timezone.localdate()
    day_list = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    # Start at the first day with impressions, so a young shop does not get a mostly empty chart.
    shown_days = [day for (_, day, kind) in counts if kind == "rec_impression" and day in day_list]
    if shown_days:
        day_list = [day for day in day_list if day >= min(shown_days)]
    slots = sorted({slot for slot, _, _ in counts})
    series: dict[str, list[tuple[str, float | None]]] = {}
    for slot in slots:
        points: list[tuple[str, float | None]] = []
        for day in day_list:
            shown = counts.get((slot, day, "rec_impression"), 0)
            clicked = counts.get((slot, day, "rec_click"), 0)
            points.append((day.strftime("%d %b"), min(clicked, shown) / shown if shown else None))
        if any(value is not None for _, value in points):
            series[slot.replace("_", " ")] = points
    return series


def ctr_chart(days: int = CTR_DAYS) -> str:
    return charts.line_chart(
        ctr_by_slot(days), title=f"Click-through per slot, last {days} days", fmt=charts.percent
    )


# --- score versions ---


def version_history_context(request: HttpRequest) -> dict[str, Any]:
    """Charts of the finished versions' metrics over time, and a refresh while one is building."""
    from shop_reco.admin import numeric_metrics, total_seconds

    versions = list(
        ScoreVersion.objects.exclude(status=ScoreVersion.Status.BUILDING)
        .exclude(status=ScoreVersion.Status.FAILED)
        .order_by("-created_at")[:30]
    )[::-1]
    series: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
    names: list[str] = []
    for version in versions:
        for name in numeric_metrics(version):
            if name not in names:
                names.append(name)
    # Rates (0..1) share one chart; anything else (counts, seconds) gets its own scale.
    rates = [n for n in names if all(0 <= numeric_metrics(v).get(n, 0) <= 1 for v in versions)]
    for version in versions:
        metrics = numeric_metrics(version)
        for name in rates[:8]:
            series[name].append((f"v{version.pk}", metrics.get(name)))
    duration = [(f"v{v.pk}", total_seconds(v)) for v in versions]
    building = ScoreVersion.objects.filter(status=ScoreVersion.Status.BUILDING).exists()
    return {
        "metrics_chart": mark_safe(
            charts.line_chart(dict(series), title="Offline metrics by version", fmt=charts.percent, width=460)
        ),
        "duration_chart": mark_safe(
            charts.line_chart(
                {"recompute time (s)": duration},
                title="Recompute time by version",
                fmt=charts.number,
                width=460,
            )
        ),
        "refresh_seconds": 3 if building else 0,
    }


@dataclass
class MetricRow:
    name: str
    value: float
    previous: float | None

    @property
    def delta(self) -> float | None:
        return None if self.previous is None else self.value - self.previous

    @property
    def relative(self) -> float | None:
        if self.previous in (None, 0):
            return None
        return (self.value - self.previous) / abs(self.previous)  # type: ignore[operator]


def step_timings(timings: dict[str, Any]) -> list[tuple[str, float]]:
    """(step, seconds) bars: each kind of pipeline step's summed wall time when the steps were recorded,
    else the run's own numeric entries; never the end-to-end total, which would dwarf the steps."""
    stages = timings.get("stages")
    if isinstance(stages, dict) and stages:
        steps = stage_timing.summary(stages)["steps"]
        return [(name, float(step["wall_s"])) for name, step in steps.items()]
    return [
        (name, float(value))
        for name, value in tuning.flatten(timings)
        if isinstance(value, int | float) and name not in ("total", "total_s") and math.isfinite(value)
    ]


def version_detail_context(version: ScoreVersion) -> dict[str, Any]:
    from shop_reco.admin import numeric_metrics, previous_version

    previous = previous_version(version)
    before = numeric_metrics(previous) if previous else {}
    rows = [MetricRow(name, value, before.get(name)) for name, value in numeric_metrics(version).items()]
    timings = step_timings(version.timings or {})
    return {
        "metric_rows": rows,
        "previous_version": previous,
        "timings_chart": mark_safe(charts.bar_chart(timings, title="Time per step (s)", fmt=charts.number))
        if timings
        else "",
        "refresh_seconds": 3 if version.status == ScoreVersion.Status.BUILDING else 0,
        "progress_percent": 100
        if version.status == ScoreVersion.Status.PUBLISHED
        else version.progress_percent,
    }


# --- experiment report ---


def _format_for(metric: str) -> Callable[[float], str]:
    return charts.money if metric == "revenue_per_visitor" else charts.percent


def experiment_report(
    request: HttpRequest,
    site: admin.AdminSite,
    experiment: Experiment,
    *,
    can_change: bool,
    can_promote: bool,
) -> HttpResponse:
    result = experiments.report(experiment)
    chart_list = []
    for metric in experiments.METRICS:
        rows = [
            (
                row.variant.key,
                getattr(row, metric).estimate,
                getattr(row, metric).low,
                getattr(row, metric).high,
            )
            for row in result.results
        ]
        highlight = [
            bool(row.comparisons.get(metric) and row.comparisons[metric].significant(result.confidence))
            for row in result.results
        ]
        title = f"{experiments.METRIC_LABELS[metric]} ({result.confidence:.0%} interval)"
        chart_list.append(
            mark_safe(charts.interval_chart(rows, title=title, fmt=_format_for(metric), highlight=highlight))
        )
    table = []
    for row in result.results:
        cells = []
        for metric in experiments.METRICS:
            interval = getattr(row, metric)
            comparison = row.comparisons.get(metric)
            fmt = _format_for(metric)
            cells.append(
                {
                    "value": fmt(interval.estimate),
                    "interval": f"{fmt(interval.low)} to {fmt(interval.high)}",
                    "lift": None
                    if comparison is None or comparison.lift is None
                    else f"{comparison.lift:+.1%}",
                    "p_value": None if comparison is None else f"{comparison.test.p_value:.3g}",
                    "significant": comparison is not None and comparison.significant(result.confidence),
                }
            )
        table.append({"row": row, "cells": cells})
    context = {
        **site.each_context(request),
        "title": f"Experiment: {experiment.name}",
        "experiment": experiment,
        "report": result,
        "charts": chart_list,
        "table": table,
        "metric_labels": [experiments.METRIC_LABELS[m] for m in experiments.METRICS],
        "can_stop": can_change and experiment.status == Experiment.Status.RUNNING,
        "can_promote": can_promote
        and experiment.status in (Experiment.Status.RUNNING, Experiment.Status.STOPPED),
        "opts": Experiment._meta,
        "window_days": result.window.days,
        "alpha": round(1 - result.confidence, 4),
    }
    return TemplateResponse(request, "admin/shop_reco/experiment_report.html", context)
