"""A full recompute, run in-process, publishes lists that match the engine run directly on the same data."""

import numpy as np
import pytest
from django.core.management import call_command

from shop_reco import sources
from shop_reco.engine.item_knn import ItemKNN
from shop_reco.models import RecommendationList, ScoreVersion
from shop_reco.pipeline_tasks import recompute
from shop_reco.services import recompute as pipeline
from shop_reco.services import versions

pytestmark = pytest.mark.django_db


def lists(version, kind, source):
    rows = RecommendationList.objects.filter(version=version, kind=kind, source=source)
    return {row.subject: row.item_keys for row in rows}


def test_recompute_publishes_every_list_family(shop):
    version_id = recompute.delay(shards=3).get()
    version = ScoreVersion.objects.get(pk=version_id)
    assert version.status == ScoreVersion.Status.PUBLISHED
    assert version.input_counts["events"] == 30 * 4
    assert version.progress_percent == 100
    keys = [str(p.pk) for p in shop["products"]]

    together = lists(version, "product", sources.BOUGHT_TOGETHER)
    assert together[keys[0]][0] == keys[1]
    assert together[keys[6]][0] == keys[7]
    similar = lists(version, "product", sources.SIMILAR_CF)
    assert similar[keys[2]][0] == keys[3]
    content = lists(version, "product", sources.SIMILAR_CONTENT)
    assert set(content[keys[0]][:4]) <= set(keys[:6])  # mugs resemble mugs
    popular = lists(version, "global", sources.POPULAR)[""]
    assert popular[0] in {keys[0], keys[1], keys[2], keys[3], keys[6], keys[7]}
    assert set(lists(version, "category", sources.POPULAR)["Mugs"]) <= set(keys[:6])

    customer = shop["users"][0]  # bought 0, 1, 4
    for_you = lists(version, "user", sources.FOR_SHOPPER)[str(customer.pk)]
    assert not {keys[0], keys[1], keys[4]} & set(for_you)  # discovery only
    assert keys[11] not in for_you  # out of stock
    again = lists(version, "user", sources.BUY_AGAIN)[str(customer.pk)]
    assert set(again) == {keys[0], keys[1], keys[4]}
    assert "anon0" in lists(version, "visitor", sources.FOR_SHOPPER)
    assert version.metrics["evaluated_baskets"] == 30


def test_sharding_does_not_change_the_lists(shop):
    one = ScoreVersion.objects.get(pk=recompute.delay(shards=1).get())
    five = ScoreVersion.objects.get(pk=recompute.delay(shards=5).get())
    for kind, source in [
        ("product", sources.SIMILAR_CF),
        ("product", sources.BOUGHT_TOGETHER),
        ("user", sources.FOR_SHOPPER),
    ]:
        assert lists(one, kind, source) == lists(five, kind, source)


def test_item_neighbours_equal_the_engine_fitted_directly(shop, monkeypatch):
    monkeypatch.setattr(versions, "KEEP_ARTIFACTS", ("item_nn", "matrix"))  # keep the input for the check
    version_id = recompute.delay(shards=4).get()
    arrays = versions.load_arrays(version_id, "matrix")
    X = pipeline._csr(arrays, "X")
    model = ItemKNN(K=50).fit(X)
    stored = lists(ScoreVersion.objects.get(pk=version_id), "product", sources.SIMILAR_CF)
    labels = arrays["items"]
    for item in range(X.shape[1]):
        ids, scores = model.similar_items(item, N=50)
        expected = [labels[i] for i, s in zip(ids, scores, strict=True) if i >= 0 and s > 0]
        got = stored.get(labels[item], [])
        # Same neighbours; ties may be ordered differently.
        assert sorted(got) == sorted(expected)


def test_a_failing_step_fails_the_version_and_keeps_the_old_one_serving(shop, monkeypatch):
    good = recompute.delay().get()

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "shopper_shard", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        recompute.delay().get()
    assert versions.live_version().pk == good
    failed = ScoreVersion.objects.exclude(pk=good).get()
    assert failed.status == ScoreVersion.Status.FAILED
    assert "disk full" in failed.error
    monkeypatch.undo()
    assert recompute.delay().get() is not None  # the lock was released


def test_command_prints_progress_and_summary(shop, capsys):
    call_command("reco_recompute", "--shards", "2")
    captured = capsys.readouterr()
    assert "Recompute [" in captured.err and "100%" in captured.err
    assert "Published" in captured.out and "events 120" in captured.out


def test_empty_shop_publishes_an_empty_version(db):
    version = ScoreVersion.objects.get(pk=recompute.delay().get())
    assert version.status == ScoreVersion.Status.PUBLISHED
    assert version.input_counts["events"] == 0


def test_incremental_update_of_one_shopper(shop):
    from datetime import timedelta

    from django.utils import timezone

    from shop_reco.models import Event

    version_id = recompute.delay().get()
    keys = [str(p.pk) for p in shop["products"]]
    # A new visitor views item 6: the neighbours of 6 (item 7 first) become their recommendations.
    Event.objects.create(event_type="purchase", visitor_id="newcomer", product_key=keys[6], basket_ref="x",
                         occurred_at=timezone.now() - timedelta(days=1))  # fmt: skip
    assert pipeline.update_shopper("v:newcomer")
    stored = RecommendationList.objects.get(
        version_id=version_id, kind="visitor", subject="newcomer", source=sources.FOR_SHOPPER
    )
    assert stored.item_keys[0] == keys[7]
    again = RecommendationList.objects.get(
        version_id=version_id, kind="visitor", subject="newcomer", source=sources.BUY_AGAIN
    )
    assert again.item_keys == [keys[6]]


def test_new_product_gets_content_neighbours_at_once(shop):
    from demo_shop.catalogue.models import Category, Product

    version_id = recompute.delay().get()
    mug = Product.objects.create(sku="NEW", name="Mug number 99", description="ceramic tea mug style 0",
                                 category=Category.objects.get(name="Mugs"), price=3, stock=5)  # fmt: skip
    assert pipeline.index_new_product(str(mug.pk))
    stored = RecommendationList.objects.get(
        version_id=version_id, kind="product", subject=str(mug.pk), source=sources.SIMILAR_CONTENT
    )
    mug_keys = {str(p.pk) for p in shop["products"][:6]}
    assert stored.item_keys[0] in mug_keys
    assert np.all(np.diff(stored.scores) <= 0)
