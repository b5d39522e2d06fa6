"""Names of the stored recommendation lists: the contract between the recompute pipeline and the storefront.

Each published :class:`~shop_reco.models.RecommendationList` row is (kind, subject, source) -> ranked item keys.
"""

# kind="product", subject=product key
SIMILAR_CF = "similar_cf"  # item-based collaborative filtering neighbours
SIMILAR_CONTENT = "similar_content"  # TF-IDF/attribute neighbours
SIMILAR_HYBRID = "similar"  # the blend the "similar products" slot shows
BOUGHT_TOGETHER = "bought_together"  # association rules (lift/confidence ranked)

# kind="user" (subject=user pk) or kind="visitor" (subject=visitor id)
FOR_SHOPPER = "for_you"  # hybrid personal recommendations
BUY_AGAIN = "buy_again"  # the shopper's own repurchase candidates

# kind="global" (subject="") or kind="category" (subject=category name)
POPULAR = "popular"  # time-decayed popularity
TRENDING = "trending"  # smoothed recent growth

ALL_SOURCES = (
    SIMILAR_CF,
    SIMILAR_CONTENT,
    SIMILAR_HYBRID,
    BOUGHT_TOGETHER,
    FOR_SHOPPER,
    BUY_AGAIN,
    POPULAR,
    TRENDING,
)
