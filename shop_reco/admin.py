"""Admin screens: tuning with history and rollback, merchandising rules, score versions, experiments.

Heavy work is never done here: actions enqueue Celery tasks or call ``shop_reco.services`` and report with
``message_user``. Custom pages (preview, experiment report) live in :mod:`shop_reco.admin_views`.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from shop_reco import admin_views
from shop_reco.adapters import get_adapter
from shop_reco.models import (
    Experiment,
    ExperimentVariant,
    MerchandisingRule,
    RecoConfig,
    RecoConfigRevision,
    ScoreVersion,
)
from shop_reco.queueing import RECOMPUTE, queue_task
from shop_reco.services import experiments, tuning

# --- tuning ---

_SEP = "__"  # form field names are setting paths with "." replaced: SLOTS__similar__limit


def _field_name(path: str) -> str:
    return path.replace(".", _SEP)


def _fallback_text(stages: list[str]) -> str:
    return ", ".join(stages)


class BaseRecoConfigForm(forms.ModelForm):
    """Structured fields for every tunable value; one schema (services.tuning) decides what is valid."""

    base: dict[str, Any] = {}  # set by build_config_form: what the stored overlay is compared against

    class Meta:
        model = RecoConfig
        fields: list[str] = []

    comment = forms.CharField(
        required=False, max_length=200, help_text="Why you changed it; shown in the history."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        effective = tuning.merge(self.base, self.instance.values or {})
        for setting, value in tuning.flatten(effective):
            name = _field_name(setting)
            if name in self.fields:
                self.fields[name].initial = _fallback_text(value) if setting.endswith(".fallback") else value
        self.overlay: dict[str, Any] = {}

    def _values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in self.cleaned_data.items():
            if _SEP not in name and name not in tuning.TUNABLE_KEYS:
                continue
            parts = name.split(_SEP)
            if parts[-1] == "fallback":
                value = [
                    stage.strip() for stage in (value or "").replace(";", ",").split(",") if stage.strip()
                ]
            target = values
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        if self.errors:
            return cleaned
        try:
            values = tuning.validate_overlay(self._values())
        except ValidationError as exc:
            for path, errors in exc.message_dict.items():
                name = _field_name(path)
                for message in errors:
                    if name in self.fields:
                        self.add_error(name, message)
                    else:
                        self.add_error(None, f"{path}: {message}")
            return cleaned
        # Store only what differs from the settings, so untouched keys keep following them.
        self.overlay = tuning.diff(self.base, values)
        return cleaned


def build_config_form(site_id: int, *, with_site: bool) -> type[BaseRecoConfigForm]:
    """A form class with one field per tunable value (event types and slots come from settings)."""
    base = tuning.base_config(site_id)
    fields: dict[str, forms.Field] = {}
    for name in base["EVENT_WEIGHTS"]:
        fields[_field_name(f"EVENT_WEIGHTS.{name}")] = forms.FloatField(label=name.replace("_", " "))
    fields["DECAY_HALF_LIFE_DAYS"] = forms.FloatField(
        label="Time-decay half-life (days)", help_text="An event this many days old counts half."
    )
    fields["NEIGHBOURS"] = forms.IntegerField(
        label="Neighbours per item", help_text="How many similar items each product keeps."
    )
    fields["MIN_SUPPORT"] = forms.FloatField(
        label="Minimum support", help_text="Fraction of all baskets holding the pair, e.g. 0.001 = 0.1%."
    )
    fields["MIN_CONFIDENCE"] = forms.FloatField(
        label="Minimum confidence", help_text="Fraction of baskets with A that also hold B, e.g. 0.05 = 5%."
    )
    for slot in base["SLOTS"]:
        prefix = f"SLOTS.{slot}."
        fields[_field_name(prefix + "limit")] = forms.IntegerField(label="Items shown")
        fields[_field_name(prefix + "max_per_category")] = forms.IntegerField(
            label="At most per category", required=False, help_text="Empty: no diversity cap."
        )
        fields[_field_name(prefix + "exclude_purchased")] = forms.BooleanField(
            label="Hide what the shopper bought", required=False
        )
        fields[_field_name(prefix + "fallback")] = forms.CharField(
            label="Fallback order",
            required=False,
            help_text=f"Comma-separated, from: {', '.join(tuning.FALLBACK_STAGES)}. Empty: no fallback.",
        )
        for source in base["BLEND_WEIGHTS"].get(slot, {}):
            fields[_field_name(f"BLEND_WEIGHTS.{slot}.{source}")] = forms.FloatField(
                label=f"Blend weight: {source}"
            )
    attrs: dict[str, Any] = {**fields, "base": base}
    if with_site:
        attrs["Meta"] = type("Meta", (), {"model": RecoConfig, "fields": ["site_id"]})
    return type("RecoConfigForm", (BaseRecoConfigForm,), attrs)


class RecoConfigRevisionInline(admin.TabularInline):
    model = RecoConfigRevision
    extra = 0
    can_delete = False
    fields = ("created_at", "author", "comment", "changes", "rollback")
    readonly_fields = fields
    ordering = ("-created_at", "-pk")
    verbose_name_plural = "History"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Changes")
    def changes(self, revision: RecoConfigRevision) -> str:
        return _revision_changes(revision)

    @admin.display(description="")
    def rollback(self, revision: RecoConfigRevision) -> str:
        url = reverse("admin:shop_reco_recoconfig_rollback", args=[revision.pk])
        # The change form is already a form with a CSRF token: this button posts it to the rollback URL.
        return format_html(
            '<button type="submit" class="button" formaction="{}" formnovalidate name="_rollback">'
            "Roll back to this</button>",
            url,
        )


def _revision_changes(revision: RecoConfigRevision) -> str:
    previous = tuning.previous_revision(revision)
    found = tuning.changes(previous.values if previous else {}, revision.values or {})
    if not found:
        return "No change"
    return format_html_join(
        mark_safe("<br>"),
        "{}: {} → {}",
        ((path, _short(old), _short(new)) for path, old, new in found[:12]),
    ) + (f" … and {len(found) - 12} more" if len(found) > 12 else "")


def _short(value: Any) -> str:
    if value is None:
        return "default"
    return json.dumps(value) if not isinstance(value, str) else value


@admin.register(RecoConfig)
class RecoConfigAdmin(admin.ModelAdmin):
    inlines = [RecoConfigRevisionInline]
    list_display = ("__str__", "updated_at", "updated_by")
    readonly_fields = ("overrides",)

    def _site_id(self, obj: RecoConfig | None) -> int:
        return obj.site_id if obj is not None else 0

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        with_site = tuning.sites_enabled() and obj is None
        return build_config_form(self._site_id(obj), with_site=with_site)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        form = build_config_form(self._site_id(obj), with_site=False)
        names = list(form.base_fields)
        fieldsets: list[tuple[str | None, dict[str, Any]]] = []
        if tuning.sites_enabled() and obj is None:
            fieldsets.append((None, {"fields": ["site_id"], "description": "0 applies to every site."}))
        fieldsets += [
            ("Event weights", {"fields": [n for n in names if n.startswith("EVENT_WEIGHTS")]}),
            ("Models", {"fields": ["DECAY_HALF_LIFE_DAYS", "NEIGHBOURS"]}),
            ("Bought together", {"fields": ["MIN_SUPPORT", "MIN_CONFIDENCE"]}),
        ]
        for slot in form.base["SLOTS"]:
            own = [n for n in names if n.startswith(f"SLOTS{_SEP}{slot}{_SEP}")]
            own += [n for n in names if n.startswith(f"BLEND_WEIGHTS{_SEP}{slot}{_SEP}")]
            fieldsets.append((f"Slot: {slot.replace('_', ' ')}", {"fields": own}))
        fieldsets.append(("Save", {"fields": ["comment", "overrides"]}))
        return fieldsets

    @admin.display(description="Values changed from the settings")
    def overrides(self, obj: RecoConfig) -> str:
        if not obj or not obj.values:
            return "None: everything follows SHOP_RECO."
        return format_html("<pre>{}</pre>", json.dumps(obj.values, indent=2, sort_keys=True))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the history would go with it; roll back instead

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Without sites there is one configuration, created on first visit.
        return tuning.sites_enabled() and super().has_add_permission(request)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not tuning.sites_enabled():
            if not self.has_view_or_change_permission(request):
                raise PermissionDenied
            config = tuning.get_config(0)
            return HttpResponseRedirect(reverse("admin:shop_reco_recoconfig_change", args=[config.pk]))
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: RecoConfig, form: Any, change: bool) -> None:
        if obj.pk is None:
            obj.save()
        tuning.save_config(
            obj, form.overlay, author=request.user, comment=form.cleaned_data.get("comment", "")
        )

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "rollback/<int:revision_id>/", wrap(self.rollback_view), name="shop_reco_recoconfig_rollback"
            ),
            path(
                "preview/",
                wrap(admin_views.PreviewView.as_view(admin_site=self.admin_site)),
                name="shop_reco_preview",
            ),
            *super().get_urls(),
        ]

    def rollback_view(self, request: HttpRequest, revision_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        revision = get_object_or_404(RecoConfigRevision, pk=revision_id)
        if not self.has_change_permission(request, revision.config):
            raise PermissionDenied
        tuning.rollback(revision, author=request.user)
        self.message_user(request, f"Rolled back to revision {revision.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:shop_reco_recoconfig_change", args=[revision.config_id]))


@admin.register(RecoConfigRevision)
class RecoConfigRevisionAdmin(admin.ModelAdmin):
    list_display = ("pk", "config", "created_at", "author", "comment", "changes")
    list_filter = ("config", "author")
    search_fields = ("comment",)
    readonly_fields = ("config", "values_display", "author", "created_at", "comment", "changes")
    exclude = ("values",)
    actions = ["rollback_to_selected"]

    @admin.display(description="Changes")
    def changes(self, revision: RecoConfigRevision) -> str:
        return _revision_changes(revision)

    @admin.display(description="Values")
    def values_display(self, revision: RecoConfigRevision) -> str:
        return format_html("<pre>{}</pre>", json.dumps(revision.values, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history is immutable

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_rollback_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("shop_reco.change_recoconfig")

    @admin.action(description="Roll back to the selected revision", permissions=["rollback"])
    def rollback_to_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one revision to roll back to.", messages.WARNING)
            return
        revision = queryset.get()
        tuning.rollback(revision, author=request.user)
        self.message_user(
            request, f"Rolled back {revision.config} to revision {revision.pk}.", messages.SUCCESS
        )


# --- merchandising rules ---


class MerchandisingRuleForm(forms.ModelForm):
    slot = forms.ChoiceField(required=False, help_text="Empty applies the rule to every slot.")

    class Meta:
        model = MerchandisingRule
        fields = (
            "action",
            "product_key",
            "category",
            "slot",
            "strength",
            "starts_at",
            "ends_at",
            "is_active",
            "note",
        )
        help_texts = {
            "strength": "Boost multiplies the score by it, bury divides (both above 1); pin: the position.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = tuning.slot_names()
        current = self.instance.slot if self.instance else ""
        if current and current not in names:
            names.append(current)
        slot_field: Any = self.fields["slot"]
        slot_field.choices = [("", "All slots"), *((name, name.replace("_", " ")) for name in names)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        product_key = (cleaned.get("product_key") or "").strip()
        category = (cleaned.get("category") or "").strip()
        cleaned["product_key"], cleaned["category"] = product_key, category
        if not product_key and not category:
            raise ValidationError("Give a product key or a category.")
        if product_key and category:
            raise ValidationError("Give a product key or a category, not both: make two rules.")
        if product_key and not get_adapter().product_exists(product_key):
            self.add_error("product_key", f"No product has the key {product_key!r}.")
        starts_at, ends_at = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "The end must be after the start.")
        action, strength = cleaned.get("action"), cleaned.get("strength")
        if strength is not None:
            if action == MerchandisingRule.Action.PIN and (strength < 1 or strength != int(strength)):
                self.add_error("strength", "A pin's strength is its position: a whole number from 1.")
            elif action in (MerchandisingRule.Action.BOOST, MerchandisingRule.Action.BURY) and strength <= 1:
                self.add_error("strength", "Use a strength above 1 (2 doubles or halves the score).")
        return cleaned


class ScheduleFilter(admin.SimpleListFilter):
    title = "schedule"
    parameter_name = "schedule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live now"), ("scheduled", "Starts later"), ("ended", "Ended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        started = Q(starts_at__isnull=True) | Q(starts_at__lte=now)
        running = Q(ends_at__isnull=True) | Q(ends_at__gt=now)
        if self.value() == "live":
            return queryset.filter(started, running, is_active=True)
        if self.value() == "scheduled":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "ended":
            return queryset.filter(ends_at__lte=now)
        return queryset


class TargetFilter(admin.SimpleListFilter):
    title = "target"
    parameter_name = "target"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("product", "A product"), ("category", "A category")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "product":
            return queryset.exclude(product_key="")
        if self.value() == "category":
            return queryset.filter(product_key="")
        return queryset


@admin.register(MerchandisingRule)
class MerchandisingRuleAdmin(admin.ModelAdmin):
    form = MerchandisingRuleForm
    list_display = (
        "__str__",
        "action",
        "target",
        "slot_name",
        "strength",
        "starts_at",
        "ends_at",
        "is_active",
        "live",
    )
    list_filter = ("action", ScheduleFilter, TargetFilter, "slot", "is_active")
    search_fields = ("product_key", "category", "note")
    list_editable = ("is_active",)
    date_hierarchy = "starts_at"
    actions = ["activate", "deactivate"]

    @admin.display(description="Target")
    def target(self, rule: MerchandisingRule) -> str:
        return f"product {rule.product_key}" if rule.product_key else f"category {rule.category}"

    @admin.display(description="Slot")
    def slot_name(self, rule: MerchandisingRule) -> str:
        return rule.slot or "all"

    @admin.display(description="Live now", boolean=True)
    def live(self, rule: MerchandisingRule) -> bool:
        now = timezone.now()
        return (
            rule.is_active
            and (rule.starts_at is None or rule.starts_at <= now)
            and (rule.ends_at is None or rule.ends_at > now)
        )

    @admin.action(description="Activate the selected rules", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(is_active=True)
        self.message_user(request, f"{count} rule(s) active; the storefront applies them within a minute.")

    @admin.action(description="Deactivate the selected rules", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(is_active=False)
        self.message_user(request, f"{count} rule(s) off; the storefront drops them within a minute.")


# --- score versions ---


def enqueue_recompute(family: str) -> Any:
    """Queue the recompute task (eager Celery runs it here and now); returns its AsyncResult."""
    return queue_task(RECOMPUTE, family=family)


def numeric_metrics(version: ScoreVersion) -> dict[str, float]:
    return {
        path: float(value)
        for path, value in tuning.flatten(version.metrics or {})
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def previous_version(version: ScoreVersion) -> ScoreVersion | None:
    """The version this one is compared with: the latest finished one of its family before it."""
    return (
        ScoreVersion.objects.filter(
            family=version.family,
            created_at__lt=version.created_at,
            status__in=[ScoreVersion.Status.PUBLISHED, ScoreVersion.Status.RETIRED],
        )
        .order_by("-created_at")
        .first()
    )


def total_seconds(version: ScoreVersion) -> float | None:
    timings = version.timings or {}
    for name in ("total_s", "total"):  # the pipeline's end-to-end figure, when the run got that far
        if isinstance(timings.get(name), int | float):
            return float(timings[name])
    return None


@admin.register(ScoreVersion)
class ScoreVersionAdmin(admin.ModelAdmin):
    list_display = ("pk", "family", "status", "progress", "created_at", "duration", "inputs", "metric_deltas")
    list_filter = ("family", "status")
    actions = ["recompute_now"]
    change_list_template = "admin/shop_reco/scoreversion/change_list.html"
    change_form_template = "admin/shop_reco/scoreversion/change_form.html"
    readonly_fields = (
        "family",
        "status",
        "progress",
        "created_at",
        "published_at",
        "heartbeat_at",
        "duration",
        "inputs",
        "parameters_display",
        "error",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The live and the building version belong to the pipeline; old and failed ones may go.
        if obj is not None and obj.status in (ScoreVersion.Status.PUBLISHED, ScoreVersion.Status.BUILDING):
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Progress")
    def progress(self, version: ScoreVersion) -> str:
        if version.status in (ScoreVersion.Status.PUBLISHED, ScoreVersion.Status.RETIRED):
            return "done"
        percent = version.progress_percent
        if version.status == ScoreVersion.Status.FAILED:
            return format_html('<span title="{}">failed at {}%</span>', version.error[:300], percent)
        return format_html(
            '<span class="sr-progress" title="{} of {} steps">'
            '<progress max="100" value="{}"></progress> {}%</span>',
            version.steps_done,
            version.steps_total,
            percent,
            percent,
        )

    @admin.display(description="Duration")
    def duration(self, version: ScoreVersion) -> str:
        seconds = total_seconds(version)
        return "-" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description="Inputs")
    def inputs(self, version: ScoreVersion) -> str:
        counts = version.input_counts or {}
        return (
            ", ".join(
                f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}"
                for key, value in counts.items()
            )
            or "-"
        )

    @admin.display(description="Metrics (Δ previous)")
    def metric_deltas(self, version: ScoreVersion) -> str:
        current = numeric_metrics(version)
        if not current:
            return "-"
        previous = previous_version(version)
        before = numeric_metrics(previous) if previous else {}
        return format_html_join(mark_safe("<br>"), "{}: {} {}", _delta_rows(current, before))

    @admin.display(description="Parameters")
    def parameters_display(self, version: ScoreVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(version.parameters, indent=2, sort_keys=True))

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("recompute/", wrap(self.recompute_view), name="shop_reco_scoreversion_recompute"),
            *super().get_urls(),
        ]

    def has_recompute_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("shop_reco.change_scoreversion")

    def _recompute(self, request: HttpRequest, family: str) -> None:
        try:
            result = enqueue_recompute(family)
        except Exception as exc:  # a broker that is down, or an eager run that failed
            self.message_user(request, f"Could not start the {family!r} recompute: {exc}", messages.ERROR)
            return
        if getattr(result, "ready", lambda: False)() and not getattr(result, "failed", lambda: False)():
            version_id = result.result
            if version_id is None:
                self.message_user(request, f"A {family!r} recompute is already running.", messages.WARNING)
            else:
                self.message_user(
                    request, f"Recompute of {family!r} finished: version {version_id}.", messages.SUCCESS
                )
        else:
            self.message_user(
                request,
                f"Recompute of {family!r} queued (task {result.id}); progress shows below and refreshes.",
                messages.SUCCESS,
            )

    @admin.action(description="Recompute now (the selected versions' families)", permissions=["recompute"])
    def recompute_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for family in sorted(set(queryset.values_list("family", flat=True))):
            self._recompute(request, family)

    def recompute_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        if not self.has_recompute_permission(request):
            raise PermissionDenied
        from shop_reco.conf import reco_settings

        family = request.POST.get("family") or reco_settings.SCORE_FAMILY
        self._recompute(request, family)
        return HttpResponseRedirect(reverse("admin:shop_reco_scoreversion_changelist"))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = dict(extra_context or {})
        context.update(admin_views.version_history_context(request))
        context["can_recompute"] = self.has_recompute_permission(request)
        return super().changelist_view(request, context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        version = self.get_object(request, object_id)
        if version is not None:
            context.update(admin_views.version_detail_context(version))
        return super().change_view(request, object_id, form_url, context)


def _delta_rows(current: dict[str, float], before: dict[str, float]) -> list[tuple[str, str, str]]:
    rows = []
    for name, value in current.items():
        old = before.get(name)
        delta = "" if old is None else f"({value - old:+.4g})"
        rows.append((name, f"{value:.4g}", delta))
    return rows


# --- experiments ---


class ExperimentVariantForm(forms.ModelForm):
    overlay = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text='Only what differs, e.g. {"SLOTS": {"similar": {"limit": 8}}, "NEIGHBOURS": 100}.',
    )

    class Meta:
        model = ExperimentVariant
        fields = ("key", "name", "weight", "is_control", "overlay")

    def clean_overlay(self) -> dict[str, Any]:
        overlay = self.cleaned_data.get("overlay") or {}
        try:
            return tuning.validate_overlay(overlay)
        except ValidationError as exc:
            raise ValidationError(
                [f"{path}: {message}" for path, errors in exc.message_dict.items() for message in errors]
            ) from None


class VariantFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        live = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if len(live) < 2:
            raise ValidationError(
                "An experiment needs at least two variants (for example a control and a test)."
            )
        if sum(1 for f in live if f.cleaned_data.get("is_control")) > 1:
            raise ValidationError("Mark at most one variant as the control.")
        if sum(f.cleaned_data.get("weight") or 0 for f in live) <= 0:
            raise ValidationError("At least one variant needs a traffic weight above 0.")


class ExperimentVariantInline(admin.TabularInline):
    model = ExperimentVariant
    form = ExperimentVariantForm
    formset = VariantFormSet
    extra = 0
    min_num = 2

    def _frozen(self, obj: Experiment | None) -> bool:
        # Changing arms while shoppers are in them would mix two experiments in one report.
        return obj is not None and obj.status != Experiment.Status.DRAFT

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("key", "name", "weight", "is_control", "overlay") if self._frozen(obj) else ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._frozen(obj) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._frozen(obj) and super().has_delete_permission(request, obj)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    inlines = [ExperimentVariantInline]
    list_display = ("name", "key", "status", "started_at", "ended_at", "visitors", "report_link")
    list_filter = ("status",)
    search_fields = ("name", "key")
    prepopulated_fields = {"key": ("name",)}
    actions = ["start_selected", "stop_selected"]
    change_form_template = "admin/shop_reco/experiment/change_form.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fixed = ("status", "created_at", "started_at", "ended_at", "promoted_variant")
        return (*fixed, "key") if obj is not None and obj.status != Experiment.Status.DRAFT else fixed

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, Any]:
        return {} if obj is not None and obj.status != Experiment.Status.DRAFT else self.prepopulated_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(_visitors=Count("assignments"))

    @admin.display(description="Visitors", ordering="_visitors")
    def visitors(self, experiment: Experiment) -> int:
        return experiment._visitors  # type: ignore[attr-defined]

    @admin.display(description="Report")
    def report_link(self, experiment: Experiment) -> str:
        if experiment.status == Experiment.Status.DRAFT:
            return "-"
        return format_html(
            '<a href="{}">Report</a>', reverse("admin:shop_reco_experiment_report", args=[experiment.pk])
        )

    def save_model(self, request: HttpRequest, obj: Experiment, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        experiments.clear_memo()

    @admin.action(description="Start the selected experiments", permissions=["change"])
    def start_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for experiment in queryset:
            try:
                experiments.start(experiment)
            except ValidationError as exc:
                self.message_user(request, f"{experiment}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment} is running.", messages.SUCCESS)

    @admin.action(description="Stop the selected experiments", permissions=["change"])
    def stop_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for experiment in queryset:
            try:
                experiments.stop(experiment)
            except ValidationError as exc:
                self.message_user(request, f"{experiment}: {' '.join(exc.messages)}", messages.WARNING)
            else:
                self.message_user(
                    request, f"{experiment} stopped; every shopper gets the live configuration."
                )

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/report/", wrap(self.report_view), name="shop_reco_experiment_report"),
            path("<int:pk>/stop/", wrap(self.stop_view), name="shop_reco_experiment_stop"),
            path(
                "<int:pk>/promote/<int:variant_pk>/",
                wrap(self.promote_view),
                name="shop_reco_experiment_promote",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_view_or_change_permission(request, experiment):
            raise PermissionDenied
        return admin_views.experiment_report(
            request,
            self.admin_site,
            experiment,
            can_change=self.has_change_permission(request, experiment),
            can_promote=self.has_change_permission(request, experiment)
            and request.user.has_perm("shop_reco.change_recoconfig"),
        )

    def stop_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        experiment = get_object_or_404(Experiment, pk=pk)
        if request.method != "POST":
            return HttpResponse(status=405)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        try:
            experiments.stop(experiment)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.WARNING)
        else:
            self.message_user(request, f"{experiment} stopped.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:shop_reco_experiment_report", args=[pk]))

    def promote_view(self, request: HttpRequest, pk: int, variant_pk: int) -> HttpResponse:
        variant = get_object_or_404(ExperimentVariant, pk=variant_pk, experiment_id=pk)
        if request.method != "POST":
            return HttpResponse(status=405)
        if not (
            self.has_change_permission(request, variant.experiment)
            and request.user.has_perm("shop_reco.change_recoconfig")
        ):
            raise PermissionDenied
        try:
            revision = experiments.promote(variant, author=request.user)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(
                request,
                f"Variant {variant.key!r} is now the live configuration (revision {revision.pk}).",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:shop_reco_experiment_report", args=[pk]))
