import pytest

from tests.tracking.fixtures import (  # noqa: F401  shared with tests/api/test_beacon.py
    browser,
    buffered,
    customer,
    private_redis,
    products,
    reco,
    tracking_state,
)


@pytest.fixture(autouse=True)
def _tracking_state(request):
    """Every tracking test runs against the test shop's URLs with no buffer and a closed breaker."""
    request.getfixturevalue("tracking_state")
