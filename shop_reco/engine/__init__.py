"""shop_reco's numeric core: numpy, scipy and scikit-learn only, never Django.

It takes a users x items CSR matrix (float32) plus id maps and returns arrays. Building matrices
from events lives in :mod:`.interactions`; evaluation in :mod:`.evaluation`. Every recommender
implements :class:`~shop_reco.engine.base.BaseRecommender` and is listed in :data:`ALGORITHMS`
by dotted path, the form the ``SHOP_RECO`` settings use.
"""

from __future__ import annotations

from .base import BaseRecommender, NotFittedError, import_recommender

__all__ = ["ALGORITHMS", "BaseRecommender", "NotFittedError", "import_recommender"]

#: Short name -> dotted path of every shipped recommender.
ALGORITHMS: dict[str, str] = {
    "item_knn": "shop_reco.engine.item_knn.ItemKNN",
    "user_knn": "shop_reco.engine.user_knn.UserKNN",
    "user_knn_rating": "shop_reco.engine.user_knn.UserKNNRating",
    "content": "shop_reco.engine.content.ContentRecommender",
    "cart_rules": "shop_reco.engine.association.CartRulesRecommender",
    "cooccurrence": "shop_reco.engine.association.CoOccurrenceRecommender",
    "popularity": "shop_reco.engine.popularity.PopularityRecommender",
    "trending": "shop_reco.engine.popularity.TrendingRecommender",
    "buy_it_again": "shop_reco.engine.popularity.BuyItAgainRecommender",
    "als": "shop_reco.engine.factors.ImplicitALS",
    "pure_svd": "shop_reco.engine.factors.PureSVD",
    "hybrid": "shop_reco.engine.hybrid.HybridRecommender",
}
