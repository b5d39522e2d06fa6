"""Loaders for the shared benchmark data (read from ../shared/data or SHOP_RECO_SHARED_DATA)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shop_reco.engine.evaluation import basket_completion_split
from shop_reco.engine.interactions import IdMap


def shared_data_dir() -> Path | None:
    env = os.environ.get("SHOP_RECO_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


def load_online_retail(root: Path) -> pd.DataFrame:
    """Cleaned purchase lines: customer, item, invoice, time (the protocol's cleaning rules)."""
    df = pd.read_csv(
        root / "online-retail-dev" / "online_retail_before_2011-10-01.csv.gz",
        dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str},
        parse_dates=["InvoiceDate"],
    )
    df = df[~df["InvoiceNo"].str.startswith("C")]
    df = df[(df["Quantity"] > 0) & (df["UnitPrice"] > 0)]
    df = df[df["CustomerID"].notna()]
    df = df[df["StockCode"].str.match(r"^\d")]
    return pd.DataFrame(
        {
            "customer": df["CustomerID"].to_numpy(),
            "item": df["StockCode"].to_numpy(),
            "invoice": df["InvoiceNo"].to_numpy(),
            "time": df["InvoiceDate"].to_numpy(),
        }
    )


@dataclass
class RetailSplit:
    """One temporal split of the Online Retail protocol."""

    train: sp.csr_matrix  # customers x items, strength = distinct invoices
    users: np.ndarray  # test users (>= 1 train and >= 1 test purchase)
    truth_new: sp.csr_matrix  # per test user: test items not bought in train
    truth_all: sp.csr_matrix  # per test user: all test items
    train_baskets: sp.csr_matrix  # train invoices x items
    carts: sp.csr_matrix  # test invoices (>= 2 items) minus one hidden item
    hidden: np.ndarray
    n_items: int
    events: tuple[
        np.ndarray, np.ndarray, np.ndarray
    ]  # train (user, item, epoch seconds), one per invoice line
    now: float  # epoch seconds of the split time


def _codes(ids: IdMap, keys: pd.Series) -> np.ndarray:
    """``ids.transform(keys)`` vectorised (-1 for unknown keys); int64."""
    return pd.Index(ids.keys).get_indexer(keys.astype(str)).astype(np.int64)


def retail_split(df: pd.DataFrame, train_end: str, test_end: str, items: IdMap, users: IdMap) -> RetailSplit:
    t_end = np.datetime64(train_end)
    t_test_end = np.datetime64(test_end)
    train = df[df["time"] < t_end]
    test = df[(df["time"] >= t_end) & (df["time"] < t_test_end)]
    n_users, n_items = len(users), len(items)

    def strength(part: pd.DataFrame) -> sp.csr_matrix:
        pairs = part[["customer", "item", "invoice"]].drop_duplicates()
        u = _codes(users, pairs["customer"])
        i = _codes(items, pairs["item"])
        X = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(n_users, n_items))
        X.sum_duplicates()
        return X

    X_train = strength(train)
    X_test = strength(test)
    has_train = np.diff(X_train.indptr) > 0
    has_test = np.diff(X_test.indptr) > 0
    test_users = np.flatnonzero(has_train & has_test)
    truth_all = X_test[test_users].copy()
    truth_all.data[:] = 1.0
    bought = X_train[test_users].copy()
    bought.data[:] = 1.0
    truth_new = truth_all - truth_all.multiply(bought)
    truth_new = sp.csr_matrix(truth_new)
    truth_new.eliminate_zeros()

    def baskets(part: pd.DataFrame) -> sp.csr_matrix:
        pairs = part[["invoice", "item"]].drop_duplicates()
        inv = IdMap(sorted(pairs["invoice"].unique()))
        B = sp.csr_matrix(
            (
                np.ones(len(pairs), np.float32),
                (_codes(inv, pairs["invoice"]), _codes(items, pairs["item"])),
            ),
            shape=(len(inv), n_items),
        )
        B.sum_duplicates()
        B.data[:] = 1.0
        return B

    carts, hidden, _ = basket_completion_split(baskets(test), seed=42)
    return RetailSplit(
        train=X_train,
        users=test_users,
        truth_new=truth_new,
        truth_all=truth_all,
        train_baskets=baskets(train),
        carts=carts,
        hidden=hidden,
        n_items=n_items,
        events=(
            _codes(users, train["customer"]),
            _codes(items, train["item"]),
            train["time"].to_numpy().astype("datetime64[s]").astype(np.int64).astype(np.float64),
        ),
        now=float(t_end.astype("datetime64[s]").astype(np.int64)),
    )


def subsample(split: RetailSplit, n_users: int, n_carts: int, seed: int = 0) -> RetailSplit:
    """The same split evaluated on at most ``n_users`` test users and ``n_carts`` test carts.

    Training data is untouched; the subset is drawn with ``default_rng(seed)`` and kept in its
    original order (used by the quick smoke run only).
    """
    rng = np.random.default_rng(seed)
    u = np.sort(rng.choice(split.users.size, min(n_users, split.users.size), replace=False))
    c = np.sort(rng.choice(split.carts.shape[0], min(n_carts, split.carts.shape[0]), replace=False))
    return replace(
        split,
        users=split.users[u],
        truth_new=split.truth_new[u],
        truth_all=split.truth_all[u],
        carts=split.carts[c],
        hidden=split.hidden[c],
    )


def load_groceries(root: Path) -> tuple[sp.csr_matrix, list[str]]:
    with open(root / "groceries" / "groceries.csv", encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split(",") for line in fh if line.strip()]
    names = sorted({i for r in rows for i in r})
    index = {k: n for n, k in enumerate(names)}
    r = np.repeat(np.arange(len(rows)), [len(x) for x in rows])
    c = np.array([index[i] for x in rows for i in x])
    return sp.csr_matrix((np.ones(c.size, np.float32), (r, c)), shape=(len(rows), len(names))), names
