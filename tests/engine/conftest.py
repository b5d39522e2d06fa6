"""Engine tests: pure numpy/scipy, no Django.

The shared read-only data lives beside the repository (``../shared/data``) or where
``SHOP_RECO_SHARED_DATA`` points; tests needing it skip cleanly when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path | None:
    env = os.environ.get("SHOP_RECO_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data (../shared/data or SHOP_RECO_SHARED_DATA) not available")
    return path
