"""Cached lists: forget_lists after an incremental update; personal lists trusted briefly per process."""

from __future__ import annotations

import time

from django.core.cache import cache

from shop_reco.models import RecommendationList
from shop_reco.services import lists
from shop_reco.services.lists import ListSpec, forget_lists, load_lists
from shop_reco.testing import publish_lists

VISITOR = "c" * 32
SPEC = ListSpec("visitor", VISITOR, "for_you")


def rewrite(version, keys) -> None:
    """What an incremental update does: the list changes inside the published version."""
    RecommendationList.objects.filter(version=version, kind="visitor", subject=VISITOR).update(
        item_keys=keys, scores=[1.0] * len(keys)
    )


def test_forget_lists_clears_the_shared_cache_and_this_process(catalogue):
    version = publish_lists({("visitor", VISITOR, "for_you"): ["1", "2"]})
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("1", "2")
    rewrite(version, ["3"])
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("1", "2")  # cached
    forget_lists(version.pk, "visitor", VISITOR)
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("3",)


def test_another_process_sees_a_personal_update_within_seconds(catalogue, monkeypatch):
    version = publish_lists({("visitor", VISITOR, "for_you"): ["1", "2"]})
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("1", "2")  # this "worker" keeps a copy
    rewrite(version, ["3"])
    # The updating process forgets the shared cache; it cannot reach this worker's memory.
    cache.delete(lists._cache_key(version.pk, SPEC))
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("1", "2")
    later = time.monotonic() + lists._PERSONAL_LOCAL_SECONDS + 0.1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert lists._PERSONAL_LOCAL_SECONDS < 5
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("3",)


def test_product_lists_stay_longer_in_memory(catalogue, monkeypatch):
    version = publish_lists({("product", "1", "similar"): ["2"]})
    spec = ListSpec("product", "1", "similar")
    load_lists(version.pk, [spec])
    RecommendationList.objects.filter(version=version).update(item_keys=["3"], scores=[1.0])
    cache.clear()
    later = time.monotonic() + lists._PERSONAL_LOCAL_SECONDS + 0.1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert load_lists(version.pk, [spec])[spec].keys == ("2",)  # no round trip for published lists


def test_an_update_is_visible_through_the_api_within_five_seconds(client, catalogue, monkeypatch):
    from shop_reco.services.recompute import _forget_cached_lists
    from tests.api.test_recommendations import as_visitor, url

    k = catalogue.key
    version = publish_lists({("visitor", VISITOR, "for_you"): catalogue.keys("Toys 1")})
    as_visitor(client, VISITOR)

    def first() -> str:
        return client.get(url("for-you"), {"limit": 1}).json()["items"][0]["key"]

    assert first() == k("Toys 1")
    rewrite(version, catalogue.keys("Garden 2"))
    # Another process ran the update: the shared cache is forgotten, this process's copy is not.
    lists_before = dict(lists._lists.data)
    _forget_cached_lists(version.pk, "visitor", VISITOR)
    lists._lists.data.update(lists_before)
    assert first() == k("Toys 1")
    later = time.monotonic() + 5
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert first() == k("Garden 2")


def _forget_in_another_process(version_id: int) -> None:
    forget_lists(version_id, "visitor", VISITOR)


def test_with_the_invalidation_channel_a_personal_list_is_kept_until_an_update_is_announced(
    catalogue, redis_url, settings, monkeypatch
):
    """Each worker keeps a shopper's list past _PERSONAL_LOCAL_SECONDS while it hears announcements; an
    update by any process (here a forked one, as a Celery worker) reaches it as soon as it is announced."""
    import multiprocessing

    from shop_reco import invalidation
    from tests.tracking.test_invalidation import listening

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    listener = listening()
    version = publish_lists({("visitor", VISITOR, "for_you"): ["1", "2"]})
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("1", "2")
    rewrite(version, ["3"])
    cache.delete(lists._cache_key(version.pk, SPEC))  # changed without an announcement: the copy stays
    later = time.monotonic() + lists._PERSONAL_LOCAL_SECONDS + 1
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("1", "2")
    monkeypatch.setattr(time, "monotonic", real_monotonic)
    seen = listener.seq
    child = multiprocessing.get_context("fork").Process(target=_forget_in_another_process, args=(version.pk,))
    child.start()
    child.join(10)
    assert child.exitcode == 0
    deadline = time.monotonic() + 5
    while listener.seq == seen:
        assert time.monotonic() < deadline, "the announcement never arrived"
        time.sleep(0.01)
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("3",)
    rewrite(version, ["4"])
    cache.delete(lists._cache_key(version.pk, SPEC))
    invalidation.current_listener().stop()  # the channel is down: what it might have missed is not trusted
    assert load_lists(version.pk, [SPEC])[SPEC].keys == ("4",)
