from tests.tracking.fixtures import (  # noqa: F401  the beacon tests reuse the tracking tests' shop
    browser,
    buffered,
    customer,
    products,
    reco,
    tracking_state,
)
