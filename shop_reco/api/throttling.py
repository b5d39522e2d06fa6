"""Per-visitor throttling for the beacon."""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from shop_reco.conf import reco_settings

logger = logging.getLogger("shop_reco.tracking")


class VisitorRateThrottle(SimpleRateThrottle):
    """``BEACON_THROTTLE_RATE`` requests per visitor id.

    A request without a known visitor (no cookie yet, or not tracked) is keyed on its client address
    instead, so dropping the cookie does not buy a fresh allowance. The address lives only in the cache
    key, for the throttle window; it is never stored with an event.
    """

    scope = "shop_reco_beacon"

    def get_rate(self) -> str | None:
        # Read per request (not a class attribute), so override_settings and reloads apply.
        return reco_settings.BEACON_THROTTLE_RATE

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:
            # The cache (Redis) is down: events arriving unthrottled for a while beat losing them all.
            logger.warning(
                "shop_reco beacon throttle: the cache is unreachable; not throttling", exc_info=True
            )
            return True

    def get_cache_key(self, request: Any, view: Any) -> str:
        visitor = getattr(request, "shop_reco_visitor", None)
        if visitor is not None and visitor.id and not visitor.is_new:
            ident = f"v:{visitor.id}"
        else:
            ident = f"a:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
