"""Histories kept in each worker process, dropped by every process when a change is announced (real Redis).

A page of a shopper whose history is unchanged reads nothing at all; a change made by any process reaches the
others through the invalidation channel, and nothing is trusted while the channel is down.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shop_reco import cache_reads, invalidation
from shop_reco.models import Event
from shop_reco.services.context import context_for
from shop_reco.tracking import track
from shop_reco.tracking.history import forget_histories

ME = "c" * 32


@pytest.fixture
def redis_cache(redis_url, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    cache.clear()
    yield redis.Redis.from_url(redis_url)
    cache.clear()


@pytest.fixture
def shared_reads(monkeypatch):
    """How many times the history went to Redis (a spy on the real read, which still runs)."""
    calls = []
    real = cache_reads.get_many

    def counting(keys):
        calls.append(keys)
        return real(keys)

    monkeypatch.setattr(cache_reads, "get_many", counting)
    return calls


def listening() -> invalidation.Listener:
    listener = invalidation.current_listener()
    assert listener is not None
    deadline = time.monotonic() + 5
    while not listener.epoch:
        assert time.monotonic() < deadline, "the listener never subscribed"
        time.sleep(0.01)
    return listener


def history(visitor: str = ME):
    with CaptureQueriesContext(connection) as queries:
        views = context_for(visitor_id=visitor).history.recent_views
    return views, len(queries)


def viewed_in_database(key: str, visitor: str = ME) -> None:
    """A view written around shop_reco (nothing announced), as the ORM by hand or a purge would."""
    Event.objects.create(event_type="view", visitor_id=visitor, product_key=key, occurred_at=timezone.now())


def _announce_in_another_process(names: list[str]) -> None:
    invalidation.announce(names)


def announce_from_another_process(names: list[str]) -> None:
    child = multiprocessing.get_context("fork").Process(target=_announce_in_another_process, args=(names,))
    child.start()
    child.join(10)
    assert child.exitcode == 0


def test_an_unchanged_history_is_read_from_the_process_itself(redis_cache, shared_reads, products):
    listening()
    track("view", product=str(products[0].pk), visitor_id=ME)
    assert history() == ([str(products[0].pk)], 1)
    shared_reads.clear()
    assert history() == ([str(products[0].pk)], 0)
    assert shared_reads == []  # no round trip to Redis either


def test_a_change_announced_by_another_process_reaches_this_one(redis_cache, shared_reads, products):
    listener = listening()
    track("view", product=str(products[0].pk), visitor_id=ME)
    history()
    viewed_in_database(str(products[1].pk))  # what the other process wrote...
    assert history()[0] == [str(products[0].pk)]  # ...is not seen before it is announced
    seen = listener.seq
    announce_from_another_process([f"shop_reco:hs:v:{ME}"])
    deadline = time.monotonic() + 5
    while listener.seq == seen:
        assert time.monotonic() < deadline, "the announcement never arrived"
        time.sleep(0.01)
    assert history() == ([str(products[1].pk), str(products[0].pk)], 1)


def test_the_announcing_process_drops_its_copy_at_once(redis_cache, products):
    listening()
    track("view", product=str(products[0].pk), visitor_id=ME)
    history()
    viewed_in_database(str(products[1].pk))
    forget_histories(visitor_ids=[ME])  # what every write path of shop_reco calls
    assert history()[0] == [str(products[1].pk), str(products[0].pk)]  # no wait for the channel


def test_a_copy_read_while_a_change_was_announced_is_not_kept(redis_cache, products):
    listening()
    local = invalidation.LocalValues(10)
    token = invalidation.read_token()  # a request starts its shared read...
    forget_histories(visitor_ids=[ME])  # ...a write is announced meanwhile...
    local.put("history", [f"shop_reco:hs:v:{ME}"], ["old"], token)  # ...and its value may predate it
    assert local.get("history") is None
    token = invalidation.read_token()
    local.put("history", [f"shop_reco:hs:v:{ME}"], ["new"], token)
    assert local.get("history") == ["new"]
    forget_histories(visitor_ids=["someone else"])
    assert local.get("history") == ["new"]  # only its own names drop it


def test_nothing_read_before_the_channel_dropped_is_trusted_after_it(redis_cache, shared_reads, products):
    listener = listening()
    track("view", product=str(products[0].pk), visitor_id=ME)
    history()
    before = listener.epoch
    redis_cache.client_kill_filter(_type="pubsub")
    # While the channel is down another process writes and announces; this process cannot hear it.
    viewed_in_database(str(products[1].pk))
    redis_cache.delete(cache.make_key(f"shop_reco:hs:v:{ME}"))
    deadline = time.monotonic() + 10
    while listener.epoch in (0, before):
        assert time.monotonic() < deadline, "the listener never came back"
        time.sleep(0.01)
    shared_reads.clear()
    assert history() == ([str(products[1].pk), str(products[0].pk)], 1)
    assert shared_reads  # read again from Redis, not from the copy of the earlier subscription


def test_while_the_channel_is_down_every_page_reads_the_shared_cache(redis_cache, shared_reads, products):
    listener = listening()
    track("view", product=str(products[0].pk), visitor_id=ME)
    history()
    listener.stop()  # as when Redis is unreachable: epoch 0
    shared_reads.clear()
    assert history() == ([str(products[0].pk)], 0)
    assert len(shared_reads) == 1


def test_a_copy_expires_even_when_nothing_is_announced(redis_cache, products, monkeypatch):
    listening()
    track("view", product=str(products[0].pk), visitor_id=ME)
    history()
    viewed_in_database(str(products[1].pk))
    cache.delete(f"shop_reco:h::{ME}")  # the shared entry expired
    now = time.monotonic()
    monkeypatch.setattr(invalidation.time, "monotonic", lambda: now + invalidation.LOCAL_SECONDS + 1)
    assert history()[0] == [str(products[1].pk), str(products[0].pk)]


def _report_listener(queue) -> None:
    listener = invalidation.current_listener()
    queue.put(
        (listener is not None, listener.pid if listener else None, multiprocessing.current_process().pid)
    )


def test_a_forked_worker_listens_on_its_own(redis_cache):
    parent = listening()
    queue = multiprocessing.get_context("fork").SimpleQueue()
    child = multiprocessing.get_context("fork").Process(target=_report_listener, args=(queue,))
    child.start()
    child.join(10)
    has_listener, listener_pid, child_pid = queue.get()
    assert has_listener and listener_pid == child_pid != parent.pid
    assert invalidation.current_listener() is parent


def test_without_a_redis_cache_nothing_is_kept_locally(products):
    assert invalidation.current_listener() is None  # the test settings' local-memory cache
    track("view", product=str(products[0].pk), visitor_id=ME)
    history()
    track(
        "view", product=str(products[1].pk), visitor_id=ME, occurred_at=timezone.now() + timedelta(seconds=1)
    )
    assert history()[0] == [str(products[1].pk), str(products[0].pk)]


def test_a_channel_that_stops_answering_is_given_up_and_rejoined(redis_cache, monkeypatch):
    """A connection that dies without a word (a partition, a hung server) must not pass for a quiet channel:
    the listener pings, and when nothing answers it stops trusting local copies until it subscribes again."""
    monkeypatch.setattr(invalidation, "_PING_SECONDS", 0.2)
    listener = listening()
    before = listener.epoch
    redis_cache.execute_command("CLIENT", "PAUSE", "3000", "ALL")  # the server answers no one for 3 s
    deadline = time.monotonic() + 2.9
    while listener.epoch == before:
        assert time.monotonic() < deadline, "a silent channel was still trusted"
        time.sleep(0.02)
    assert listener.epoch == 0
    deadline = time.monotonic() + 10
    while listener.epoch in (0, before):
        assert time.monotonic() < deadline, "the listener never came back"
        time.sleep(0.02)


@pytest.fixture
def redis_without_scripts(redis_url, settings):
    """The cache on a Redis user that may not run scripts, publish or subscribe (as behind some proxies)."""
    admin = redis.Redis.from_url(redis_url)
    user, password = "shop_reco_no_scripts", "test-only"
    rules = ["on", f">{password}", "~*", "&*", "+@all", "-@scripting", "-publish", "-subscribe"]
    admin.execute_command("ACL", "SETUSER", user, *rules)
    host_part = redis_url.split("://", 1)[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://{user}:{password}@{host_part}",
        }
    }
    yield admin
    admin.execute_command("ACL", "DELUSER", user)
    admin.close()


def test_without_scripts_or_channels_changes_still_delete_and_nothing_is_kept_locally(
    redis_without_scripts, shared_reads, products, caplog
):
    track("view", product=str(products[0].pk), visitor_id=ME)
    history()
    stamp = cache.make_key(f"shop_reco:hs:v:{ME}")
    assert redis_without_scripts.exists(stamp)
    viewed_in_database(str(products[1].pk))
    forget_histories(visitor_ids=[ME])  # the script is refused: the stamp is deleted all the same
    assert not redis_without_scripts.exists(stamp)
    assert "could not announce" in caplog.text
    time.sleep(0.3)  # the listener tried to subscribe and was refused
    assert invalidation.current_listener().epoch == 0
    shared_reads.clear()
    assert history()[0] == [str(products[1].pk), str(products[0].pk)]
    assert history()[0] == [str(products[1].pk), str(products[0].pk)]
    assert len(shared_reads) == 2  # every page reads the shared cache: nothing kept locally
