"""shop_reco: behaviour tracking and recommendations for Django shops."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "track"]


def track(*args: Any, **kwargs: Any) -> Any:
    """Record one shopper event; see :func:`shop_reco.tracking.track` for the arguments."""
    from shop_reco.tracking import track as _track

    return _track(*args, **kwargs)
