"""Score versions: the recompute lock, atomic publishing, failure, pruning, and idempotent list writes."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from shop_reco.models import RecommendationList, ScoreArtifact, ScoreVersion
from shop_reco.services import score_store, versions

pytestmark = pytest.mark.django_db

Status = ScoreVersion.Status


def test_second_start_of_same_family_is_refused_until_the_first_ends():
    first = versions.start_version("full", {})
    with pytest.raises(versions.RecomputeAlreadyRunning) as raised:
        versions.start_version("full", {})
    assert raised.value.version == first
    other_family = versions.start_version("content", {})  # families lock independently
    versions.publish(first.pk)
    second = versions.start_version("full", {})
    assert {first.pk, second.pk, other_family.pk} == set(ScoreVersion.objects.values_list("pk", flat=True))


def test_a_dead_build_stops_blocking_after_its_heartbeat_goes_stale():
    dead = versions.start_version("full", {})
    ScoreVersion.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    fresh = versions.start_version("full", {})
    dead.refresh_from_db()
    assert dead.status == Status.FAILED
    assert fresh.status == Status.BUILDING


def test_publish_flips_the_live_version_and_retires_the_previous():
    old = versions.start_version("full", {})
    versions.publish(old.pk)
    assert versions.live_version() == old
    new = versions.start_version("full", {})
    assert versions.live_version() == old  # building is never read
    versions.publish(new.pk)
    old.refresh_from_db()
    assert versions.live_version() == new
    assert old.status == Status.RETIRED


def test_a_failed_version_leaves_the_previous_one_serving_and_cannot_be_published():
    live = versions.start_version("full", {})
    versions.publish(live.pk)
    broken = versions.start_version("full", {})
    versions.save_arrays(broken.pk, "matrix", {"x": np.arange(3)})
    versions.fail(broken.pk, "boom")
    assert versions.live_version() == live
    assert not ScoreArtifact.objects.filter(version=broken).exists()
    with pytest.raises(ValueError, match="cannot be published"):
        versions.publish(broken.pk)


def test_prune_keeps_the_newest_and_the_live_version():
    made = []
    for _ in range(5):
        version = versions.start_version("full", {})
        versions.publish(version.pk)
        made.append(version.pk)
    score_store.write_lists(made[0], [("product", "1", "similar", ["2"], [0.5])])
    versions.prune("full", keep=2)
    assert sorted(ScoreVersion.objects.values_list("pk", flat=True)) == made[-2:]
    assert not RecommendationList.objects.filter(version_id=made[0]).exists()


def test_progress_is_reported_and_shards_add_up():
    version = versions.start_version("full", {})
    versions.report_progress(version.pk, done=0, total=4)
    versions.report_progress(version.pk, add=1)
    versions.report_progress(version.pk, add=2)
    version.refresh_from_db()
    assert (version.steps_done, version.progress_percent) == (3, 75)


def test_artifacts_round_trip():
    version = versions.start_version("full", {})
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    versions.save_arrays(version.pk, "matrix", {"m": matrix, "ids": np.array(["a", "b", "c"])})
    loaded = versions.load_arrays(version.pk, "matrix")
    np.testing.assert_array_equal(loaded["m"], matrix)
    assert loaded["ids"].tolist() == ["a", "b", "c"]


def test_list_writes_are_idempotent_upserts():
    version = versions.start_version("full", {})
    rows = [("product", str(i), "similar", [str(i + 1), str(i + 2)], [0.9, 0.5]) for i in range(50)]
    assert score_store.write_lists(version.pk, rows) == 50
    # A retried shard rewrites the same lists with new scores: still one row each, the new values win.
    retry = [("product", str(i), "similar", [str(i + 2)], [0.7]) for i in range(50)]
    score_store.write_lists(version.pk, retry)
    stored = RecommendationList.objects.filter(version=version)
    assert stored.count() == 50
    row = stored.get(subject="3")
    assert (row.item_keys, row.scores) == (["5"], [0.7])
