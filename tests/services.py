"""Which real services the test run has. With SHOP_RECO_REQUIRE_SERVICES=1 (CI) a missing one fails the run."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

REQUIRE_SERVICES = os.environ.get("SHOP_RECO_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_reco")
REDIS_URL = os.environ.get("SHOP_RECO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    return POSTGRES_URL.startswith("postgres") and reachable(POSTGRES_URL, 5432)


def redis_available() -> bool:
    return reachable(REDIS_URL, 6379)
