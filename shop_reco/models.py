"""Data shop_reco keeps: shopper events, published score versions and their lists, merchandising rules."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class OpaqueIdField(models.CharField):
    """A random id, only ever compared for equality: indexed byte by byte ("C" collation) on PostgreSQL.

    PostgreSQL 15 compares text in any other collation through strcoll(), on every btree step of every
    insert; these ids' order means nothing, so that work buys nothing. SQLite already compares bytes
    (BINARY); other databases keep their default, which need not be called "C".
    """

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql" and self.db_collation is None:
            params["collation"] = "C"
        return params


class Event(models.Model):
    """One thing a shopper did. No IP address or user agent is ever stored."""

    event_type = models.CharField(max_length=32)
    # Random id from the signed visitor cookie; kept after login so a visitor's history can be merged.
    visitor_id = OpaqueIdField(max_length=64, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,  # erasing an account erases its behaviour too
        related_name="shop_reco_events",
        db_index=False,  # shop_reco_event_user_time serves lookups by user
    )
    product_key = models.CharField(max_length=64, blank=True, default="")
    quantity = models.IntegerField(default=1)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # Order or basket reference, so purchases of one order form one basket.
    basket_ref = models.CharField(max_length=64, blank=True, default="")
    # Recommendation slot and attribution token, for rec_* events and what they lead to.
    slot = models.CharField(max_length=64, blank=True, default="")
    token = models.CharField(max_length=64, blank=True, default="")
    # Set by clients that retry; the same id is stored once (shop_reco_event_client_id below).
    client_event_id = OpaqueIdField(max_length=64, null=True, blank=True)  # null: NULLs never clash
    context = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Every index costs each flushed row an insert, so only what the reads need: by time (recompute,
        # live popular, attribution, retention) and a shopper's events by user or visitor (storefront history,
        # merges, privacy). Nothing reads by product or token alone.
        indexes = [
            models.Index(fields=["occurred_at"], name="shop_reco_event_time"),
            models.Index(
                fields=["user", "occurred_at"],
                name="shop_reco_event_user_time",
                condition=Q(user__isnull=False),
            ),
            models.Index(fields=["visitor_id", "occurred_at"], name="shop_reco_event_visitor_time"),
        ]
        constraints = [
            # A constraint rather than unique=True, which would add a second (LIKE) index nobody queries.
            models.UniqueConstraint(fields=["client_event_id"], name="shop_reco_event_client_id"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.product_key} by {self.user_id or self.visitor_id}"


class ScoreVersion(models.Model):
    """One recompute's output. The storefront reads only the newest published version of a family."""

    class Status(models.TextChoices):
        BUILDING = "building"
        PUBLISHED = "published"
        FAILED = "failed"
        RETIRED = "retired"

    family = models.CharField(max_length=32, default="full")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    input_counts = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    # Progress for the admin and the commands: steps done of steps planned.
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    # A building version whose heartbeat stops (killed worker) is failed by the next run.
    heartbeat_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["family", "status", "-published_at"], name="shop_reco_version_live")]
        constraints = [
            # The recompute lock: one building version per family, whichever worker or machine starts it.
            models.UniqueConstraint(
                fields=["family"], condition=Q(status="building"), name="shop_reco_one_build_per_family"
            )
        ]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.family} v{self.pk} ({self.status})"

    @property
    def progress_percent(self) -> int:
        return int(100 * self.steps_done / self.steps_total) if self.steps_total else 0


class RecommendationList(models.Model):
    """A ranked list for one subject from one source, within one score version."""

    class Kind(models.TextChoices):
        PRODUCT = "product"  # subject is a product key: similar items, bought together
        USER = "user"  # subject is a user id
        VISITOR = "visitor"  # subject is an anonymous visitor id
        CATEGORY = "category"  # subject is a category name: trending/popular in it
        GLOBAL = "global"  # subject is "": popular/trending overall

    # A recompute writes millions of rows: no index of its own (the unique constraint leads with version) and
    # no database-level foreign key (a per-row check); Django still cascades deletes of versions.
    version = models.ForeignKey(
        ScoreVersion, on_delete=models.CASCADE, related_name="lists", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    subject = models.CharField(max_length=128, blank=True, default="")
    source = models.CharField(max_length=32)
    item_keys = models.JSONField(default=list)
    scores = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "kind", "subject", "source"], name="shop_reco_list_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.subject} {self.source} ({len(self.item_keys)} items)"


class ScoreArtifact(models.Model):
    """Arrays a recompute shares between its shard tasks (on any worker machine), as npz bytes."""

    version = models.ForeignKey(ScoreVersion, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=64)
    data = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "name"], name="shop_reco_artifact_unique")]

    def __str__(self) -> str:
        return f"{self.name} of {self.version}"


class MerchandisingRule(models.Model):
    """A merchandiser's override: pin, boost, bury or exclude a product or a whole category."""

    class Action(models.TextChoices):
        PIN = "pin", "Pin to the top"
        BOOST = "boost", "Boost"
        BURY = "bury", "Bury"
        EXCLUDE = "exclude", "Exclude"

    action = models.CharField(max_length=16, choices=Action.choices)
    product_key = models.CharField(max_length=64, blank=True, default="")
    category = models.CharField(max_length=128, blank=True, default="")
    # Empty applies to every slot.
    slot = models.CharField(max_length=64, blank=True, default="")
    # Multiplier for boost/bury; position for pins.
    strength = models.FloatField(default=2.0)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~(Q(product_key="") & Q(category="")),
                name="shop_reco_rule_has_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.product_key or self.category}"


# --- Tuning and experiments (admin-owned) ---


class RecoConfig(models.Model):
    """The admin's tuning overlay over ``SHOP_RECO``: one row for all sites (site_id 0) and one per site."""

    # A plain id, not a foreign key: django.contrib.sites is optional. 0 means every site.
    site_id = models.PositiveIntegerField(default=0, unique=True)
    # Only the keys the merchandiser changed; the rest follows the settings (services.tuning validates it).
    values = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "recommendation configuration"
        verbose_name_plural = "recommendation configuration"
        permissions = [("preview_recommendations", "Can preview any shopper's recommendations")]

    def __str__(self) -> str:
        return "Configuration (all sites)" if not self.site_id else f"Configuration (site {self.site_id})"


class RecoConfigRevision(models.Model):
    """A snapshot of a configuration's values after each save, so any change can be seen and rolled back."""

    config = models.ForeignKey(RecoConfig, on_delete=models.CASCADE, related_name="revisions")
    values = models.JSONField(default=dict, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    comment = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        get_latest_by = "created_at"
        verbose_name = "configuration revision"

    def __str__(self) -> str:
        return f"Revision {self.pk} of {self.config}"


class Experiment(models.Model):
    """An A/B test between configuration overlays, one variant per shopper."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"
        PROMOTED = "promoted"

    # Part of the assignment hash: renaming it reshuffles new shoppers, so it cannot change once running.
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    promoted_variant = models.ForeignKey(
        "ExperimentVariant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ExperimentVariant(models.Model):
    """One arm of an experiment: a configuration overlay and its share of the traffic."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=32)
    name = models.CharField(max_length=100, blank=True, default="")
    # Partial configuration in the shape of services.tuning.current_config(); {} is the current configuration.
    overlay = models.JSONField(default=dict, blank=True)
    # Relative traffic share: weights 1 and 1 split evenly, 1 and 3 send a quarter to the first.
    weight = models.PositiveIntegerField(default=1)
    is_control = models.BooleanField(default=False)

    class Meta:
        ordering = ["experiment", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="shop_reco_variant_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}:{self.key}"


class ExperimentAssignment(models.Model):
    """The exposure log: which variant a visitor (and, once logged in, their user) first saw, and when."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    variant = models.ForeignKey(ExperimentVariant, on_delete=models.CASCADE, related_name="assignments")
    visitor_id = models.CharField(max_length=64, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A visitor is assigned once; so is a user who was only ever seen logged in without a visitor id.
            models.UniqueConstraint(
                fields=["experiment", "visitor_id"],
                condition=~Q(visitor_id=""),
                name="shop_reco_assignment_visitor",
            ),
            models.UniqueConstraint(
                fields=["experiment", "user"],
                condition=Q(visitor_id=""),
                name="shop_reco_assignment_user_only",
            ),
            models.CheckConstraint(
                condition=~(Q(visitor_id="") & Q(user__isnull=True)), name="shop_reco_assignment_has_shopper"
            ),
        ]
        indexes = [
            models.Index(fields=["experiment", "user", "assigned_at"], name="shop_reco_assignment_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id or self.visitor_id} in {self.variant}"
