"""A synthetic shop for the recompute benchmark: users, products and events written with COPY.

    python -m bench.pipeline.synth postgres://postgres@127.0.0.1:5432/DB [--users N --products N --events N]

The database must be migrated (the demo shop's schema). Everything comes from one seed:

- products: Zipf-like popularity (weight ``1 / (rank + 10) ** 1.0``, ranks shuffled over categories), 200
  categories of uneven size, names from a small vocabulary so content features mean something;
- shoppers: every user has at least one session, the rest of the sessions go to users with lognormal
  activity; a session looks at a few products, mostly from one category;
- events: each product looked at is a ``view``; about one in five is added to the cart; half of the
  sessions with a cart end in an order, whose ``purchase`` events share a basket reference;
- times: uniform over the last 60 days, events of a session seconds to minutes apart.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

DAYS = 60
CATEGORIES = 200
# Product words: a few shared adjectives, then words of the product's category (each category draws 24 from a
# vocabulary of 1,600 made-up words), so text similarity is sparse, as in a real catalogue.
ADJECTIVES = ["red", "blue", "green", "black", "white", "vintage", "classic", "modern", "retro", "floral"]
SYLLABLES = [a + b for a in "bdfgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]
WORDS_PER_CATEGORY = 24
TYPES = ("view", "add_to_cart", "purchase")
_PG_EPOCH = 946_684_800


def _binary_copy(columns: list[tuple[np.ndarray, str]]) -> bytes:
    """PostgreSQL binary COPY data of fixed-width NOT NULL columns, built by numpy in one go."""
    n = columns[0][0].shape[0]
    fields = [("count", ">i2")]
    for number, (_, dtype) in enumerate(columns):
        fields += [(f"len{number}", ">i4"), (f"value{number}", dtype)]
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["count"] = len(columns)
    for number, (values, dtype) in enumerate(columns):
        rows[f"len{number}"] = np.dtype(dtype).itemsize
        rows[f"value{number}"] = values
    return (
        b"PGCOPY\n\xff\r\n\x00"
        + (0).to_bytes(4, "big") * 2
        + rows.tobytes()
        + (-1).to_bytes(2, "big", signed=True)
    )


def _copy_text(cursor: Any, sql: str, lines: Iterator[str]) -> None:
    with cursor.copy(sql) as copy:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 50_000:
                copy.write("".join(batch))
                batch = []
        copy.write("".join(batch))


def generate(url: str, *, users: int, products: int, events: int, seed: int = 20240601) -> dict[str, float]:
    """Fill the (migrated, empty) database at ``url``; returns timings and counts."""
    import psycopg

    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    now = int(time.time())

    # -- catalogue
    category_sizes = rng.zipf(1.3, CATEGORIES).astype(np.float64).clip(max=50) + 5
    category_of = rng.choice(CATEGORIES, size=products, p=category_sizes / category_sizes.sum())
    popularity = 1.0 / (rng.permutation(products) + 10.0)
    vocabulary = [a + b for a in SYLLABLES for b in SYLLABLES[:17]]
    category_words = rng.integers(len(vocabulary), size=(CATEGORIES, WORDS_PER_CATEGORY))
    adjective = rng.integers(len(ADJECTIVES), size=products)
    # Zipf-ish word choice inside the category: the first words are the common ones ("mug", "bag").
    picks = np.minimum(rng.zipf(1.6, size=(products, 4)) - 1, WORDS_PER_CATEGORY - 1)
    words = np.take_along_axis(category_words[category_of], picks, axis=1)
    price = np.round(np.exp(rng.normal(1.3, 0.7, size=products)), 2) + 0.25
    stock = np.where(rng.random(products) < 0.97, rng.integers(1, 200, size=products), 0)

    # -- sessions and events
    mean_views_per_session = 4.0
    views_needed = int(events / 1.25) + 1  # a little more than needed; trimmed to ``events`` below
    n_sessions = max(users, int(1.05 * views_needed / mean_views_per_session))
    activity = rng.lognormal(0.0, 1.0, size=users)
    session_user = np.concatenate(
        [rng.permutation(users), rng.choice(users, size=n_sessions - users, p=activity / activity.sum())]
    )
    session_start = now - rng.random(n_sessions) * DAYS * 86_400
    session_category = rng.choice(CATEGORIES, size=n_sessions, p=_category_traffic(category_of, popularity))
    views = rng.geometric(1.0 / mean_views_per_session, size=n_sessions)
    view_session = np.repeat(np.arange(n_sessions), views)[:views_needed]
    n_views = view_session.size
    item = _zipf_items(rng, popularity, category_of, session_category[view_session], share_in_category=0.75)
    position = np.arange(n_views) - np.searchsorted(view_session, view_session)
    view_time = session_start[view_session] + position * rng.uniform(10, 120, size=n_views)
    carted = rng.random(n_views) < 0.2
    session_orders = rng.random(n_sessions) < 0.5
    bought = carted & session_orders[view_session]

    shopper = np.concatenate([session_user[view_session], session_user[view_session[carted]],
                              session_user[view_session[bought]]])  # fmt: skip
    product = np.concatenate([item, item[carted], item[bought]])
    kind = np.concatenate([np.zeros(n_views, np.int16), np.ones(int(carted.sum()), np.int16),
                           np.full(int(bought.sum()), 2, np.int16)])  # fmt: skip
    when = np.concatenate([view_time, view_time[carted] + rng.uniform(5, 60, size=int(carted.sum())),
                           session_start[view_session[bought]] + 3_600])  # fmt: skip
    basket = np.concatenate([np.full(n_views + int(carted.sum()), -1, np.int64), view_session[bought]])
    chosen = (
        np.sort(rng.permutation(shopper.size)[:events]) if shopper.size > events else np.arange(shopper.size)
    )
    order = chosen[np.argsort(when[chosen], kind="stable")]
    shopper, product, kind, when, basket = (
        shopper[order],
        product[order],
        kind[order],
        when[order],
        basket[order],
    )
    when = np.minimum(when, now)
    timings["generate_s"] = time.perf_counter() - started

    with psycopg.connect(url, autocommit=True) as connection, connection.cursor() as cursor:
        step = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        _copy_text(
            cursor,
            "COPY catalogue_category (id, name, slug) FROM STDIN",
            (f"{c + 1}\tCategory {c:03d}\tcategory-{c:03d}\n" for c in range(CATEGORIES)),
        )
        _copy_text(
            cursor,
            "COPY catalogue_product (id, sku, name, description, category_id, price, stock, is_active) FROM STDIN",
            (
                f"{n + 1}\tS{n:06d}\t{ADJECTIVES[a].title()} {vocabulary[w[0]]} {vocabulary[w[1]]}\t"
                f"{vocabulary[w[2]]} {vocabulary[w[3]]}\t{c + 1}\t{p:.2f}\t{s}\tt\n"
                for n, (a, w, c, p, s) in enumerate(
                    zip(adjective.tolist(), words.tolist(), category_of.tolist(), price.tolist(), stock.tolist(),
                        strict=True)
                )
            ),
        )  # fmt: skip
        joined = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now - DAYS * 86_400))
        _copy_text(
            cursor,
            "COPY auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, "
            "is_active, date_joined) FROM STDIN",
            (f"{u + 1}\t!\tf\tshopper{u}\t\t\t\tf\tt\t{joined}\n" for u in range(users)),
        )
        for table in ("catalogue_category", "catalogue_product", "auth_user"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        timings["catalogue_users_s"] = time.perf_counter() - step

        step = time.perf_counter()
        # Secondary indexes and constraints are rebuilt after the load: much faster than row by row.
        indexes = cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'shop_reco_event'::regclass AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        ).fetchall()
        constraints = cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'shop_reco_event'::regclass AND contype IN ('u', 'f')"
        ).fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE shop_reco_event DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute(
            "CREATE UNLOGGED TABLE bench_event_load (user_id int8, product int8, kind int2, at timestamptz, "
            "basket int8)"
        )
        micros = ((when - _PG_EPOCH) * 1e6).astype(np.int64)
        chunk = 2_000_000
        for lo in range(0, shopper.size, chunk):
            sl = slice(lo, lo + chunk)
            data = _binary_copy(
                [(shopper[sl] + 1, ">i8"), (product[sl] + 1, ">i8"), (kind[sl], ">i2"), (micros[sl], ">i8"),
                 (basket[sl], ">i8")]
            )  # fmt: skip
            with cursor.copy("COPY bench_event_load FROM STDIN (FORMAT binary)") as copy:
                copy.write(data)
        cursor.execute(
            "INSERT INTO shop_reco_event (event_type, visitor_id, user_id, product_key, quantity, basket_ref, "
            "slot, token, context, occurred_at) "
            "SELECT (ARRAY['view', 'add_to_cart', 'purchase'])[kind + 1], '', user_id, product::text, 1, "
            "CASE WHEN basket >= 0 THEN 'o' || basket ELSE '' END, '', '', '{}'::jsonb, at FROM bench_event_load"
        )
        cursor.execute("DROP TABLE bench_event_load")
        timings["events_copy_s"] = time.perf_counter() - step
        step = time.perf_counter()
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE shop_reco_event ADD CONSTRAINT "{name}" {definition}')
        timings["events_index_s"] = time.perf_counter() - step
        step = time.perf_counter()
        cursor.execute("VACUUM (FREEZE, ANALYZE)")
        timings["vacuum_s"] = time.perf_counter() - step
    timings.update(
        users=users, products=products, events=int(shopper.size), baskets=int(np.unique(basket[basket >= 0]).size),
        purchases=int((kind == 2).sum()), carts=int((kind == 1).sum()), views=int((kind == 0).sum()),
    )  # fmt: skip
    return timings


def _category_traffic(category_of: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    traffic = np.bincount(category_of, weights=popularity, minlength=CATEGORIES)
    return traffic / traffic.sum()


def _zipf_items(
    rng: np.random.Generator,
    popularity: np.ndarray,
    category_of: np.ndarray,
    wanted_category: np.ndarray,
    share_in_category: float,
) -> np.ndarray:
    """One product per draw: from ``wanted_category`` (by popularity within it) or from the whole catalogue."""
    n = wanted_category.size
    by_category = np.argsort(category_of, kind="stable")
    cumulative = np.cumsum(popularity[by_category])
    starts = np.searchsorted(category_of[by_category], np.arange(CATEGORIES))
    ends = np.searchsorted(category_of[by_category], np.arange(CATEGORIES), side="right")
    low = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0.0)
    high = cumulative[np.maximum(ends - 1, 0)]
    in_category = rng.random(n) < share_in_category
    target = np.where(
        in_category,
        low[wanted_category] + rng.random(n) * (high[wanted_category] - low[wanted_category]),
        rng.random(n) * cumulative[-1],
    )
    picked = np.searchsorted(cumulative, target, side="right").clip(max=popularity.size - 1)
    return by_category[picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    print(generate(args.url, users=args.users, products=args.products, events=args.events, seed=args.seed))


if __name__ == "__main__":
    main()
