"""The production gunicorn settings' garbage-collector policy: each worker freezes its warm caches now and then,
after collecting, so full collections stop walking them and no cyclic garbage is kept."""

from __future__ import annotations

import gc
import weakref

import pytest

from demo_shop import gunicorn_conf


class Row:
    def __init__(self, n: int) -> None:
        self.n = n


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def frozen_restored():
    yield
    gc.unfreeze()


def test_a_worker_collects_then_freezes_once_due_and_not_before(frozen_restored, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(gunicorn_conf.time, "monotonic", lambda: clock[0])
    freezer = gunicorn_conf._PeriodicFreeze(300)
    freezer.start()
    assert freezer.due == 1060.0  # a minute after the fork, when the caches are warm
    cached = [Row(n) for n in range(1000)]  # a worker's cache: kept, and frozen
    garbage = Cycle()
    collected = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    clock[0] = 1059.0
    freezer.after_request()
    assert gc.get_freeze_count() == before and collected() is not None  # not due: nothing done
    clock[0] = 1060.0
    freezer.after_request()
    assert collected() is None  # the cyclic garbage was collected, not frozen for good
    assert gc.get_freeze_count() >= before + len(cached)
    walked = {id(thing) for thing in gc.get_objects()}  # what a collection walks now
    assert not any(id(entry) in walked for entry in cached)
    assert freezer.due == 1360.0


def test_zero_seconds_turns_it_off(monkeypatch):
    freezer = gunicorn_conf._PeriodicFreeze(0)
    freezer.start()
    before = gc.get_freeze_count()
    freezer.after_request()
    assert gc.get_freeze_count() == before
