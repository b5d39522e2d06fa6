"""The storefront's cached shopper histories: read once, forgotten by every write that changes them.

Runs on the Redis cache, as in production (the Django cache shared by every worker).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shop_reco.models import Event
from shop_reco.services.context import context_for
from shop_reco.services.privacy import erase_shopper
from shop_reco.services.tracking import flush_events, merge_visitor
from shop_reco.tracking import track
from shop_reco.tracking.history import clear_local_histories

ME, YOU = "a" * 32, "b" * 32


@pytest.fixture
def redis_cache(redis_url, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    cache.clear()
    yield
    cache.clear()


def history(visitor: str = ME, user=None):
    """The history a page would use, and how many queries it took."""
    with CaptureQueriesContext(connection) as queries:
        context = context_for(visitor_id=visitor, user=user)
        seen = context.history
    return seen, len(queries)


def viewed(key: str, visitor: str = ME, user=None, minutes_ago: int = 1) -> None:
    track(
        "view",
        product=key,
        visitor_id=visitor,
        user=user,
        occurred_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_a_history_is_read_once_then_served_from_the_cache(redis_cache, products):
    viewed(str(products[0].pk))
    first, queries = history()
    assert first.recent_views == [str(products[0].pk)] and queries == 1
    again, queries = history()
    assert again.recent_views == first.recent_views and queries == 0


def test_a_new_event_shows_at_once_and_other_shoppers_keep_their_cache(redis_cache, products):
    viewed(str(products[0].pk))
    viewed(str(products[2].pk), visitor=YOU)
    history(), history(YOU)
    viewed(str(products[1].pk), minutes_ago=0)
    mine, queries = history()
    assert mine.recent_views == [str(products[1].pk), str(products[0].pk)] and queries == 1
    theirs, queries = history(YOU)
    assert theirs.recent_views == [str(products[2].pk)] and queries == 0


def test_the_buffer_flush_forgets_the_histories_it_writes(redis_cache, buffered, products):
    viewed(str(products[0].pk))
    flush_events()
    assert history()[0].recent_views == [str(products[0].pk)]
    track("purchase", product=str(products[1].pk), visitor_id=ME)
    track("add_to_cart", product=str(products[2].pk), visitor_id=YOU)
    assert history()[1] == 0  # buffered, not in the database yet: the cached history is still the truth
    flush_events()
    after, queries = history()
    assert set(after.purchased) == {str(products[1].pk)} and queries == 1


def test_a_login_merge_and_an_erasure_forget_the_history(redis_cache, products, customer):
    viewed(str(products[0].pk))
    assert history(user=customer)[0].recent_views == [str(products[0].pk)]
    viewed(str(products[1].pk), visitor=YOU, user=customer)
    # The customer on another browser: only what is theirs so far.
    assert history(YOU, user=customer)[0].recent_views == [str(products[1].pk)]
    merge_visitor(ME, customer)  # this browser's events become the customer's
    merged, queries = history(YOU, user=customer)
    assert set(merged.recent_views) == {str(products[0].pk), str(products[1].pk)} and queries == 1
    erase_shopper(user_id=customer.pk)
    assert Event.objects.count() == 0
    assert history(YOU, user=customer)[0].recent_views == []


def test_an_evicted_stamp_never_revives_an_old_history(redis_cache, products):
    viewed(str(products[0].pk))
    history()
    cache.delete("shop_reco:hs:v:" + ME)  # evicted under memory pressure
    Event.objects.all().delete()  # a change shop_reco did not see
    # Read by a worker without a copy of its own (this one keeps its copy for invalidation.LOCAL_SECONDS at
    # most, as test_invalidation shows): the shared entry must not come back to life.
    clear_local_histories()
    seen, queries = history()
    assert seen.recent_views == [] and queries == 1


def test_a_cache_outage_costs_the_query_not_the_page(products, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    viewed(str(products[0].pk))
    assert history()[0].recent_views == [str(products[0].pk)]


def test_zero_seconds_reads_the_database_every_time(redis_cache, products, reco):
    reco(HISTORY_CACHE_SECONDS=0)
    viewed(str(products[0].pk))
    history()
    assert history()[1] == 1
