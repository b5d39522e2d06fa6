"""Events to matrices: weights, decay, de-duplication, caps, id maps, baskets."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shop_reco.engine.interactions import IdMap, build_baskets, build_interactions, to_epoch_seconds

DAY = 86_400.0


def test_weights_decay_and_id_maps():
    users = ["u1", "u1", "u2", "u2", "u1"]
    items = ["a", "b", "a", "a", "a"]
    types = ["view", "purchase", "cart", "unknown", "view"]
    times = [0.0, 0.0, 10 * DAY, 10 * DAY, 10 * DAY]
    out = build_interactions(
        users, items, types, times, event_weights={"view": 1, "cart": 3, "purchase": 5}, half_life_days=10
    )
    X = out.matrix
    assert X.dtype == np.float32
    u1, u2 = out.user_map.transform(["u1", "u2"])
    a, b = out.item_map.transform(["a", "b"])
    assert X[u1, a] == pytest.approx(1 * 0.5 + 1)  # one view 10 days old (half), one fresh
    assert X[u1, b] == pytest.approx(5 * 0.5)
    assert X[u2, a] == pytest.approx(3)  # the unknown type weighs 0
    assert out.item_map.inverse([b, -1]) == ["b", None]


def test_dedupe_caps_quantities_and_distinct_baskets():
    users = ["u"] * 5
    items = ["a"] * 5
    types = ["view"] * 5
    times = [0, 1, 2, 100, 200]
    X = build_interactions(users, items, types, times, event_weights={"view": 1}, dedupe_seconds=5).matrix
    assert X[0, 0] == 3  # 0,1,2 collapse (gaps < 5 s), 100 and 200 stay
    X = build_interactions(
        users, items, types, times, event_weights={"view": 1}, max_events_per_pair=2
    ).matrix
    assert X[0, 0] == 2
    X = build_interactions(users, items, types, times, event_weights={"view": 1}, cap=4).matrix
    assert X[0, 0] == 4
    X = build_interactions(
        ["u", "u"],
        ["a", "a"],
        ["purchase"] * 2,
        [0, 1],
        quantities=[3, 4],
        event_weights={"purchase": 1},
        quantity_mode="linear",
    ).matrix
    assert X[0, 0] == 7
    X = build_interactions(
        ["u"] * 3,
        ["a"] * 3,
        ["purchase"] * 3,
        [0, 1, 2],
        basket_refs=["o1", "o1", "o2"],
        event_weights={"purchase": 1},
        distinct_baskets=True,
    ).matrix
    assert X[0, 0] == 2


def test_existing_maps_and_unknown_keys():
    items = IdMap(["a", "b"])
    out = build_interactions(["u"], ["zzz"], item_map=items, add_unknown=False)
    assert out.matrix.shape == (0, 2) and out.matrix.nnz == 0  # neither key is added
    assert len(items) == 2


def test_baskets_and_datetimes():
    b = build_baskets(
        ["o1", "o1", "o2", "", "c1"],
        ["a", "b", "a", "c", "d"],
        ["purchase", "purchase", "purchase", "purchase", "view"],
    )
    # The line without a basket ref and the view are not basket lines.
    assert b.matrix.toarray().tolist() == [[1, 1], [1, 0]]
    assert b.basket_map.keys == ["o1", "o2"]
    t = to_epoch_seconds([dt.datetime(1970, 1, 2, tzinfo=dt.UTC), dt.datetime(1970, 1, 2), 5])
    assert t.tolist() == [DAY, DAY, 5.0]
    assert to_epoch_seconds(np.array(["1970-01-02"], dtype="datetime64[D]")).tolist() == [DAY]
