"""Synthetic implicit-feedback matrix for the speed benchmark (fixed seed, Zipf-like popularity)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def synthetic_matrix(
    n_users: int = 1_000_000,
    n_items: int = 100_000,
    n_interactions: int = 20_000_000,
    exponent: float = 1.0,
    seed: int = 0,
) -> sp.csr_matrix:
    """Users x items CSR (float32) of ``n_interactions`` draws, duplicates summed.

    Items are drawn with probability proportional to ``rank ** -exponent`` (Zipf-like), ranks
    shuffled over item ids; users uniformly. Duplicate draws add up, so the stored entries are a
    little fewer than ``n_interactions``.
    """
    rng = np.random.default_rng(seed)
    p = np.arange(1, n_items + 1, dtype=np.float64) ** -exponent
    p /= p.sum()
    perm = rng.permutation(n_items).astype(np.int32)
    items = perm[rng.choice(n_items, size=n_interactions, p=p)]
    users = rng.integers(0, n_users, size=n_interactions, dtype=np.int32)
    X = sp.csr_matrix(
        (np.ones(n_interactions, np.float32), (users, items)), shape=(n_users, n_items), dtype=np.float32
    )
    X.sum_duplicates()
    return X


def _fit_one(who: str) -> None:
    """Generate the matrix, fit one model, print ``fit_seconds peak_rss_gib nnz``."""
    import resource
    import time

    X = synthetic_matrix()
    if who == "implicit":
        from implicit.nearest_neighbours import CosineRecommender

        model = CosineRecommender(K=50)
        t = time.perf_counter()
        model.fit(X, show_progress=False)
    else:
        from shop_reco.engine.item_knn import ItemKNN

        t = time.perf_counter()
        ItemKNN(K=50).fit(X)
    elapsed = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{elapsed:.3f} {rss:.3f} {X.nnz}")


if __name__ == "__main__":
    import sys
    import warnings

    warnings.filterwarnings("ignore")
    _fit_one(sys.argv[1])
